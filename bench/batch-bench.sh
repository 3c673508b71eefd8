#!/bin/sh
# batch-bench.sh: factory batch signing (issue 6), side by side in one run
# on the same SoftHSM2 token and the same N EC P-256 device CSRs:
#
#   - `hsmca batch sign` (every certificate: CSR check, serial reserved
#     durably, HSM signature, verify-after-sign, record and audit entry
#     committed, DEVICE.crt + DEVICE.chain.pem, results.csv);
#   - `openssl ca -batch -infiles` with the libp11 engine, signing with the
#     very same key object in the token (no record, no verify);
#   - the pipeline ceiling of ../shared/BENCH.md, measured now: the raw
#     C_Sign rate of the token (bench/p11sign.c, one session per thread)
#     and OpenSSL's verify rates (`openssl speed`), giving
#     cores / (t_sign + t_verify(CSR, P-256) + t_verify(CA key));
#
# once with an EC P-256 CA key and once with an RSA-2048 CA key. The last
# line holds the ratios. Optional: PERF=1 profiles one hsmca run (perf).
# CRASH=N also kills a batch of N CSRs with SIGKILL KILLS times at random
# points and resumes it (the long version of tests/integration/batch-crash.t).
#
# usage: bench/batch-bench.sh [N]        (N default 10000)
# Environment: top_builddir (default ./build), SOFTHSM_MODULE, JOBS (hsmca
# --jobs; default its own), ROUNDS (default 1; medians over rounds),
# CSR_DIR (CSRs kept between runs, default /tmp/hsmca-bench-csrs), KEEP=1,
# KEYTYPES (default "ec-p256 rsa-2048").
set -eu

N=${1:-${N:-10000}}
ROUNDS=${ROUNDS:-1}
if [ -z "${top_builddir:-}" ] && [ -x ./build/cli/hsmca ]; then
	top_builddir=./build
fi
HSMCA=$(cd "${top_builddir:-.}" && pwd)/cli/hsmca
top=$(cd "$(dirname "$0")/.." && pwd)
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
CSR_DIR=${CSR_DIR:-/tmp/hsmca-bench-csrs}
ENGINE=$(find /usr/lib -name pkcs11.so -path '*engines-3*' 2>/dev/null | head -1)
[ -x "$HSMCA" ] || { echo "$0: no $HSMCA (set top_builddir)" >&2; exit 2; }
[ -n "$ENGINE" ] || { echo "$0: the libp11 engine is missing (libengine-pkcs11-openssl)" >&2; exit 2; }
for tool in sqlite3 openssl cc pkg-config; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done
CORES=$(nproc)

W=$(mktemp -d "${TMPDIR:-/tmp}/batch-bench.XXXXXX")
cleanup() { [ "${KEEP:-0}" = 1 ] && echo "work directory: $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2046
cc -O2 -o "$W/p11sign" "$top/bench/p11sign.c" $(pkg-config --cflags p11-kit-1) -lpthread -ldl
sh "$top/bench/make-csrs.sh" "$N" "$CSR_DIR" >&2
ls "$CSR_DIR"/bench-device-*.csr | sort | head -n "$N" >"$W/csrs"
mkdir -p "$W/in"
while read -r f; do ln -s "$f" "$W/in/"; done <"$W/csrs"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# setup KEYTYPE: a fresh token and CA in $W/$KEYTYPE, and an openssl ca
# directory signing with the same token key through the engine.
setup() {
	D=$W/$1
	rm -rf "$D"
	mkdir -p "$D/tokens" "$D/ossl/certs"
	(umask 077; openssl rand -hex 8 >"$D/user.pin"; openssl rand -hex 8 >"$D/so.pin")
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$D" >"$D/softhsm2.conf"
	SOFTHSM2_CONF=$D/softhsm2.conf
	export SOFTHSM2_CONF
	cat >"$D/hsmca.conf" <<EOF
[hsm]
module = $SOFTHSM_MODULE
token = pkcs11:token=batchbench
pin-source = file:$D/user.pin
sessions = $((CORES * 2))
[store]
path = $D/hsmca.db
[ca]
subject = CN=Batch Bench Device CA
key-type = $1
root-key-type = ec-p256
crl-url = http://127.0.0.1:8080/crl/%g.crl
ocsp-url = http://127.0.0.1:8080/ocsp
EOF
	"$HSMCA" -c "$D/hsmca.conf" token init --so-pin-source "file:$D/so.pin" >/dev/null
	"$HSMCA" -c "$D/hsmca.conf" ca init >/dev/null
	"$HSMCA" -c "$D/hsmca.conf" ca download 2 >"$D/ossl/ca.pem"
	uri=$(sqlite3 "$D/hsmca.db" "SELECT key_uri FROM ca_generation WHERE kind = 'issuing'")
	# The PIN from its file (pin-source), never in argv.
	cat >"$D/ossl/engine.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $SOFTHSM_MODULE
init = 0
EOF
	cat >"$D/ossl/ca.cnf" <<EOF
[ca]
default_ca = bench
[bench]
dir = $D/ossl
database = \$dir/index.txt
new_certs_dir = \$dir/certs
certificate = \$dir/ca.pem
serial = \$dir/serial
rand_serial = yes
default_md = sha256
default_days = 365
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = device
[anything]
commonName = supplied
[device]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:http://127.0.0.1:8080/crl/2.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:8080/ocsp
EOF
	# libp11 reads the whole file as the PIN: no newline.
	(umask 077; printf '%s' "$(cat "$D/user.pin")" >"$D/ossl/pin")
	KEYURI="$uri;pin-source=file:$D/ossl/pin"
}

# Each round writes into a fresh folder and the previous round's files are
# only deleted at the end: on ext4 without a journal (these machines) a
# new inode skips every inode of its group freed in the last 60 s (300 s
# while the inode table block is dirty: recently_deleted()), so deleting thousands of files just before a
# round made the next one's file creations, either side's, quadratic.
retire() { [ ! -e "$1" ] || mv "$1" "$W/trash/$(basename "$1").$(date +%s%N)"; }
mkdir -p "$W/trash"

# Both sides read the same CSR files: read them first, so neither pays
# for the other's evictions (these virtual machines' page cache shrinks
# under the host's pressure; a run whose CSRs were partly evicted waited
# on the disk for them).
warm() { xargs cat <"$W/csrs" >/dev/null; }

# run_hsmca KEYTYPE: certificates/s of one `hsmca batch sign` (a fresh store
# state: the certificates of the previous round are deleted first).
run_hsmca() {
	sqlite3 "$D/hsmca.db" "DELETE FROM cert; DELETE FROM batch;"
	retire "$D/out"
	# Nothing of the other side's left to write back: hsmca's syncfs
	# would pay for openssl ca's dirty files.
	sync
	warm
	t0=$(ms)
	# shellcheck disable=SC2086
	"$HSMCA" -c "$D/hsmca.conf" batch sign --in "$W/in" --out "$D/out" \
		--profile device ${JOBS:+--jobs $JOBS} >"$D/hsmca.out"
	t1=$(ms)
	[ "$(grep -c ',issued,' "$D/out/results.csv")" -eq "$N" ] || { echo "$0: hsmca did not issue $N" >&2; cat "$D/hsmca.out" >&2; exit 1; }
	echo $(( N * 1000 / (t1 - t0) ))
}

run_openssl() {
	: >"$D/ossl/index.txt"
	retire "$D/ossl/certs"
	mkdir "$D/ossl/certs"
	sync
	warm
	t0=$(ms)
	# shellcheck disable=SC2046
	OPENSSL_CONF=$D/ossl/engine.cnf openssl ca -config "$D/ossl/ca.cnf" -batch -notext \
		-keyform engine -engine pkcs11 -keyfile "$KEYURI" \
		-out "$D/ossl/all.pem" -infiles $(cat "$W/csrs") >"$D/ossl.log" 2>&1 ||
		{ tail -5 "$D/ossl.log" >&2; exit 1; }
	t1=$(ms)
	[ "$(wc -l <"$D/ossl/index.txt")" -eq "$N" ] || { echo "$0: openssl ca did not sign $N" >&2; exit 1; }
	echo $(( N * 1000 / (t1 - t0) ))
}

# verify rate per core of ALG (openssl speed names), from the same run
speed_verify() {
	openssl speed -seconds 2 "$1" 2>/dev/null | awk -v a="$2" '
		a == "ec" && /256 bits ecdsa \(nistp256\)/ { print $NF; exit }
		a == "rsa" && /^rsa 2048 bits/ { print $NF; exit }'
}

summary=""
for kt in ${KEYTYPES:-ec-p256 rsa-2048}; do
	setup "$kt"
	: >"$D/h"; : >"$D/o"
	r=0
	while [ "$r" -lt "$ROUNDS" ]; do
		run_hsmca >>"$D/h"
		run_openssl >>"$D/o"
		r=$((r + 1))
	done
	h=$(median <"$D/h"); o=$(median <"$D/o")
	case $kt in ec-p256) p=ec ;; *) p=rsa ;; esac
	sign1=$("$W/p11sign" "$SOFTHSM_MODULE" batchbench "$D/user.pin" "$p" 1 2 | awk '{ print $4 }')
	signn=$("$W/p11sign" "$SOFTHSM_MODULE" batchbench "$D/user.pin" "$p" "$CORES" 2 | awk '{ print $4 }')
	vec=$(speed_verify ecdsap256 ec)
	if [ "$p" = ec ]; then vca=$vec; else vca=$(speed_verify rsa2048 rsa); fi
	ceil=$(awk -v c="$CORES" -v s="$sign1" -v v1="$vec" -v v2="$vca" \
		'BEGIN { printf "%d", c / (1 / s + 1 / v1 + 1 / v2) }')
	echo "$kt: hsmca batch sign $h/s (rounds: $(tr '\n' ' ' <"$D/h")), openssl ca -infiles $o/s ($(tr '\n' ' ' <"$D/o"))"
	echo "$kt: C_Sign $sign1/s on 1 thread, $signn/s on $CORES; verify/s per core: P-256 $vec, CA key $vca; ceiling $ceil/s"
	if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
		sqlite3 "$D/hsmca.db" "DELETE FROM cert; DELETE FROM batch;"
		retire "$D/out"
		perf record -q -g -o "$W/perf.$kt" "$HSMCA" -c "$D/hsmca.conf" batch sign --in "$W/in" \
			--out "$D/out" --profile device >/dev/null 2>&1 || true
		echo "$kt: where hsmca's time goes (perf, self time by library, then by symbol):"
		perf report -i "$W/perf.$kt" --no-children --sort dso -g none --stdio 2>/dev/null |
			grep -v '^#' | grep . | head -8
		perf report -i "$W/perf.$kt" --no-children --sort sym -g none --stdio 2>/dev/null |
			grep -v '^#' | grep . | head -15
	fi
	summary="$summary $kt: hsmca/openssl-ca $(awk -v a="$h" -v b="$o" 'BEGIN { printf "%.2fx", a / b }'), hsmca/ceiling $(awk -v a="$h" -v b="$ceil" 'BEGIN { printf "%.0f%%", 100 * a / b }');"
done

if [ -n "${CRASH:-}" ]; then
	# The long crash test: the make check test at a larger size.
	top_builddir=$(dirname "$(dirname "$HSMCA")") top_srcdir=$top N=$CRASH \
		KILLS=${KILLS:-100} SOFTHSM_MODULE=$SOFTHSM_MODULE \
		sh "$top/tests/integration/batch-crash.t" | grep -E '^(not ok|1\.\.|#)' || true
fi
echo "N=$N cores=$CORES:$summary"
