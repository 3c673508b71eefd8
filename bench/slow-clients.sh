#!/bin/sh
# slow-clients.sh: enrollment latency on a quiet hsmcad against the same
# daemon while N slow clients (bench/slowloris: mutual TLS, request
# headers a byte every 1-2 s, reconnecting as soon as they are dropped)
# hold connections open. Rounds alternate quiet and loaded, so drift on a
# shared machine cancels out; the last line is the ratio of the median
# p99 latencies, loaded/quiet (issue 7's target: at most 2).
#
# Starts and stops its own hsmcad (hsmcad-bench-env.sh).
# Environment:
#   BUILD           build directory with cli/hsmca, daemon/hsmcad (./build)
#   SLOW=500        slow connections
#   ROUNDS=5 DURATION=10 (seconds of enrollments per run) CONC=8 WARMUP=100
#   TIMEOUT=3s      hsmcad's [daemon] timeout, the request deadline: a run
#                   lasts several, so the slow clients are dropped and come
#                   back during it
#   CSR_DIR         where the CSRs live (kept between runs)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
SLOW=${SLOW:-500}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONC=${CONC:-8}
WARMUP=${WARMUP:-100}
TIMEOUT=${TIMEOUT:-3s}
CSR_DIR=${CSR_DIR:-${TMPDIR:-/tmp}/hsmca-bench-csrs-ec}
export TIMEOUT

make -s -C "$here" estload slowloris
"$here/make-csrs.sh" 1000 "$CSR_DIR" ec >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/slow-clients.XXXXXX")
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	"$here/hsmcad-bench-env.sh" stop
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
eval "$("$here/hsmcad-bench-env.sh" start)"
results=$work/results

# load ARGS: one estload run; a run with any error stops the benchmark.
load() {
	if ! line=$("$here/estload" --url "$HSMCAD_URL" --mode est \
	    --cert "$HSMCAD_CERT" --key "$HSMCAD_KEY" --cacert "$HSMCAD_CACERT" \
	    --csrs "$CSR_DIR" --concurrency "$CONC" "$@"); then
		echo "$line" >&2
		echo "$0: enrollments failed; no ratio" >&2
		exit 1
	fi
	echo "$line"
}

# slow_start / slow_stop: SLOW dribbling connections around a run.
slow_start() {
	"$here/slowloris" -m tls -n "$SLOW" -i 1 -j 1 -r -d 3600 \
	    -c "$HSMCAD_CERT" -k "$HSMCAD_KEY" 127.0.0.1 "$HSMCAD_PORT" \
	    >"$work/slow.out" 2>"$work/slow.err" &
	spid=$!
	n=0
	until grep -q 'open$' "$work/slow.err"; do
		n=$((n + 1))
		[ $n -lt 1200 ] && kill -0 "$spid" 2>/dev/null ||
		    { cat "$work/slow.err" >&2; exit 1; }
		sleep 0.05
	done
	grep -q "slowloris: $SLOW open" "$work/slow.err" ||
	    { cat "$work/slow.err" >&2; exit 1; }
}
slow_stop() {
	kill "$spid"
	wait "$spid" || true
	spid=
}

# front_rss: the resident set of hsmcad's processes together, KiB.
front_rss() {
	for p in "$HSMCAD_PID" $(ps -o pid= --ppid "$HSMCAD_PID"); do
		cat "/proc/$p/status" 2>/dev/null
	done | awk '/^VmRSS:/ { r += $2 } END { print r }'
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(openssl version | cut -d' ' -f1-2)"
echo "setup: conc=$CONC duration=${DURATION}s rounds=$ROUNDS slow=$SLOW timeout=$TIMEOUT keepalive"

load --requests "$WARMUP" >/dev/null
: >"$results"
i=1
while [ "$i" -le "$ROUNDS" ]; do
	if [ $((i % 2)) -eq 1 ]; then order="quiet loaded"; else order="loaded quiet"; fi
	for side in $order; do
		if [ "$side" = loaded ]; then
			slow_start
			line=$(load --duration "$DURATION")
			rss=$(front_rss)
			slow_stop
			echo "round $i $side: $line rss=${rss}KiB slow: $(cat "$work/slow.out")"
		else
			line=$(load --duration "$DURATION")
			echo "round $i $side: $line"
		fi
		echo "$side $line" >>"$results"
	done
	i=$((i + 1))
done

# median SIDE FIELD: the median of one numeric field over the rounds.
. "$here/lib.sh"
median() { field_median "$results" "$1" "$2"; }

for side in quiet loaded; do
	echo "median $side: rate=$(median "$side" rate)/s p50=$(median "$side" p50)ms p99=$(median "$side" p99)ms"
done
awk -v q50="$(median quiet p50)" -v l50="$(median loaded p50)" \
    -v q99="$(median quiet p99)" -v l99="$(median loaded p99)" \
    -v n="$ROUNDS" -v s="$SLOW" 'BEGIN {
	printf "loaded/quiet p99=%.2f p50=%.2f (%d slow clients, median of %d rounds)\n",
	    l99 / q99, l50 / q50, s, n
}'
