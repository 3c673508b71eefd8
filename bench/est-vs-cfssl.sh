#!/bin/sh
# est-vs-cfssl.sh: hsmcad's EST enrollment against cfssl's sign endpoint,
# same CSRs, same client, alternating rounds on the same machine.
# The last line is the ratio of the median rates, hsmcad/cfssl.
#
# hsmcad must already be running; this script starts and stops cfssl.
# Environment:
#   HSMCAD_URL      https://127.0.0.1:PORT/.well-known/est/simpleenroll (required)
#   HSMCAD_CERT, HSMCAD_KEY   TLS client certificate and key for hsmcad
#   HSMCAD_CACERT   CA file that verifies hsmcad's server certificate
#   ROUNDS=5 REQUESTS=2000 CONC=32 WARMUP=200
#   FRESH=0         1: new connection and full handshake per request
#   KEYTYPE=ec      device keys: ec (P-256) or rsa (2048)
#   NCSRS=$REQUESTS CSRs to generate (reused round-robin; max 99999)
#   CSR_DIR         where the CSRs live (kept between runs)
#   CFSSL_TLS=0     1: cfssl over HTTPS with client certificates, like EST
#   VERIFY=1        0: the load generator does not verify hsmcad's server
#                   certificate (wrk and h2load never do): on 2 cores the
#                   client's check of the chain on every fresh handshake (a
#                   P-384 root signature) takes CPU the server would use
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${HSMCAD_URL:?set HSMCAD_URL to the simpleenroll URL of hsmcad}"
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-2000}
CONC=${CONC:-32}
WARMUP=${WARMUP:-200}
FRESH=${FRESH:-0}
KEYTYPE=${KEYTYPE:-ec}
NCSRS=${NCSRS:-$REQUESTS}
[ "$NCSRS" -le 99999 ] || NCSRS=99999
CSR_DIR=${CSR_DIR:-${TMPDIR:-/tmp}/hsmca-bench-csrs-$KEYTYPE}
CFSSL_TLS=${CFSSL_TLS:-0}
[ "$ROUNDS" -ge 5 ] || { echo "$0: ROUNDS must be at least 5" >&2; exit 2; }

conn=keepalive
freshopt=
if [ "$FRESH" = 1 ]; then
	conn=fresh
	freshopt=--fresh
fi

make -s -C "$here" estload
"$here/make-csrs.sh" "$NCSRS" "$CSR_DIR" "$KEYTYPE" >&2

# A private cfssl, so a hand-started one is neither reused nor stopped.
CFSSL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/est-vs-cfssl.XXXXXX")
export CFSSL_DIR
cleanup() {
	"$here/cfssl.sh" stop 2>/dev/null || true
	rm -rf "$CFSSL_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$CFSSL_TLS" = 1 ]; then
	eval "$("$here/cfssl.sh" start --tls)"
	set -- --cert "$CFSSL_CLIENT_CERT" --key "$CFSSL_CLIENT_KEY" \
	    --cacert "$CFSSL_CACERT"
else
	eval "$("$here/cfssl.sh" start)"
	set --
fi
cfssl_tls="$*"

hsmcad_tls=
[ -n "${HSMCAD_CERT:-}" ] && hsmcad_tls="--cert $HSMCAD_CERT --key ${HSMCAD_KEY:?HSMCAD_KEY goes with HSMCAD_CERT}"
if [ "${VERIFY:-1}" = 0 ]; then
	hsmcad_tls="$hsmcad_tls --insecure"
elif [ -n "${HSMCAD_CACERT:-}" ]; then
	hsmcad_tls="$hsmcad_tls --cacert $HSMCAD_CACERT"
fi

results=$CFSSL_DIR/results

# run SIDE NREQ: one estload run; a run with any error stops the benchmark.
run() {
	side=$1
	nreq=$2
	if [ "$side" = hsmcad ]; then
		# shellcheck disable=SC2086
		set -- --url "$HSMCAD_URL" --mode est $hsmcad_tls
	else
		# shellcheck disable=SC2086
		set -- --url "$CFSSL_URL" --mode cfssl $cfssl_tls
	fi
	if ! line=$("$here/estload" "$@" --csrs "$CSR_DIR" \
	    --concurrency "$CONC" --requests "$nreq" $freshopt); then
		echo "$side: $line" >&2
		echo "$0: $side had errors; no ratio" >&2
		exit 1
	fi
	echo "$line"
}

echo "machine: $(nproc) cores, $(openssl version | cut -d' ' -f1-2)," \
    "$(softhsm2-util --version 2>/dev/null | sed 's/^/SoftHSM2 /' || echo 'SoftHSM2 ?'), cfssl $(cfssl version 2>/dev/null | sed -n 's/^Version: //p')"
echo "setup: $conn conc=$CONC requests=$REQUESTS rounds=$ROUNDS $KEYTYPE CSRs=$NCSRS cfssl=$(echo "$CFSSL_URL" | cut -d: -f1) verify=${VERIFY:-1}"

run hsmcad "$WARMUP" >/dev/null
run cfssl "$WARMUP" >/dev/null

: > "$results"
i=1
while [ "$i" -le "$ROUNDS" ]; do
	# Alternate who goes first, so drift on a shared machine cancels out.
	if [ $((i % 2)) -eq 1 ]; then order="hsmcad cfssl"; else order="cfssl hsmcad"; fi
	for side in $order; do
		line=$(run "$side" "$REQUESTS")
		echo "round $i $side: $line"
		echo "$side $line" >> "$results"
	done
	i=$((i + 1))
done

# median SIDE FIELD: the median of one numeric field over the rounds.
. "$here/lib.sh"
median() { field_median "$results" "$1" "$2"; }

for side in hsmcad cfssl; do
	echo "median $side: rate=$(median "$side" rate)/s p50=$(median "$side" p50)ms p99=$(median "$side" p99)ms"
done
h=$(median hsmcad rate)
c=$(median cfssl rate)
awk -v h="$h" -v c="$c" -v conn="$conn" -v n="$ROUNDS" 'BEGIN {
	printf "hsmcad/cfssl=%.2f (%s, median of %d rounds: hsmcad %.1f/s, cfssl %.1f/s)\n", h / c, conn, n, h, c
}'
