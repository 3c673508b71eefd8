#!/bin/sh
# batch-remote-bench.sh [N [ROUNDS]]: `hsmca batch sign` on the appliance
# (local mode: the token and the store directly) against the same batch
# signed from a station through hsmcad's admin API (remote mode: mutual
# TLS on loopback, one keep-alive connection per job), side by side on one
# token and one store, N EC P-256 CSRs (default 2000), ROUNDS alternating
# rounds (default 3), medians. Each round starts from a store without the
# batch's certificates, so both modes issue all N. The last line holds the
# ratio (target: remote >= 0.8x local).
# Environment: BUILD (default ./build), JOBS (both modes; default the
# command's), CSR_DIR (default /tmp/hsmca-bench-csrs), BENCH_DIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
ROUNDS=${2:-3}
BUILD=${BUILD:-$top/build}
export BUILD
HSMCA="$BUILD/cli/hsmca"
CSR_DIR=${CSR_DIR:-/tmp/hsmca-bench-csrs}
D=${BENCH_DIR:-/tmp/hsmca-bench}

"$top/bench/make-csrs.sh" "$N" "$CSR_DIR" ec >&2
W=$(mktemp -d /tmp/hsmca-batch-remote.XXXXXX)
mkdir -p "$W/in"
i=1
for f in "$CSR_DIR"/bench-device-*.csr; do
	[ $i -le "$N" ] || break
	ln -s "$f" "$W/in/"
	i=$((i + 1))
done
eval "$(ADMIN=1 BENCH_DIR=$D "$top/bench/hsmcad-bench-env.sh" start)"
trap 'BENCH_DIR=$D "$top/bench/hsmcad-bench-env.sh" stop; rm -rf "$W"' EXIT
export SOFTHSM2_CONF

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The previous round's files are moved aside, deleted only at the end
# (see batch-bench.sh: on ext4 without a journal, inodes freed in the last
# minute, or five, make new files slow to create).
mkdir -p "$W/trash"
clean() {
	sqlite3 "$D/hsmca.db" "DELETE FROM cert WHERE subject LIKE 'CN=bench-device-%'; DELETE FROM batch;"
	[ ! -e "$W/out" ] || mv "$W/out" "$W/trash/out.$(date +%s%N)"
}
# one MODE: certificates/s of one run
one() {
	clean
	# The previous run's files written back: each run's syncfs pays for
	# its own files only.
	sync
	# The CSRs read before each run, so neither mode waits on the disk
	# for files the page cache dropped (batch-bench.sh, warm).
	cat "$W"/in/*.csr >/dev/null
	t0=$(ms)
	if [ "$1" = local ]; then
		"$HSMCA" -c "$D/hsmca.conf" batch sign --in "$W/in" --out "$W/out" \
			--profile device ${JOBS:+--jobs $JOBS} >"$W/$1.out"
	else
		"$HSMCA" --server "$HSMCAD_ADMIN_URL" --cert "$HSMCAD_CERT" --key "$HSMCAD_KEY" \
			--cacert "$HSMCAD_CACERT" batch sign --in "$W/in" --out "$W/out" \
			--profile device ${JOBS:+--jobs $JOBS} >"$W/$1.out"
	fi
	t1=$(ms)
	[ "$(grep -c ',issued,' "$W/out/results.csv")" -eq "$N" ] ||
		{ echo "$0: $1 did not issue $N" >&2; cat "$W/$1.out" >&2; exit 1; }
	awk -v n="$N" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f\n", n * 1000 / ms }'
}

: >"$W/local"
: >"$W/remote"
r=1
while [ $r -le "$ROUNDS" ]; do
	one local >>"$W/local"
	one remote >>"$W/remote"
	r=$((r + 1))
done
l=$(median <"$W/local")
m=$(median <"$W/remote")
echo "local:  $l certificates/s (rounds: $(tr '\n' ' ' <"$W/local"))"
echo "remote: $m certificates/s (rounds: $(tr '\n' ' ' <"$W/remote"))"
echo "batch sign, $N EC P-256 CSRs: remote/local $(awk -v a="$m" -v b="$l" 'BEGIN { printf "%.2fx", a / b }') (target >= 0.80x)"
