#!/bin/sh
# make-csrs.sh N DIR [ec|rsa]: N device keys and CSRs for the benchmarks.
#   DIR/bench-device-NNNNN.csr   PEM PKCS#10, CN=bench-device-NNNNN
#   DIR/keys/bench-device-NNNNN.key
# EC is P-256, RSA is 2048 bits.  Existing files are kept, so running it
# again only fills in what is missing; one openssl per CSR, in parallel.
set -eu

usage() {
	echo "usage: $0 N DIR [ec|rsa]" >&2
	exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
n=$1
dir=$2
type=${3:-ec}
case $n in
''|*[!0-9]*) usage ;;
esac
if [ "$n" -lt 1 ] || [ "$n" -gt 99999 ]; then
	echo "$0: N must be 1..99999" >&2
	exit 2
fi
case $type in
ec)	newkey="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
rsa)	newkey="-newkey rsa:2048" ;;
*)	usage ;;
esac

mkdir -p "$dir/keys"
chmod 700 "$dir/keys"
jobs=$(nproc 2>/dev/null || echo 2)

# Batches of 50 per shell keep process start-up off the critical path.
# shellcheck disable=SC2016 # expanded by the inner shell
seq -f %05g 1 "$n" | NEWKEY=$newkey DIR=$dir xargs -P "$jobs" -n 50 sh -c '
	set -eu
	umask 077
	for i; do
		cn=bench-device-$i
		[ -s "$DIR/$cn.csr" ] && [ -s "$DIR/keys/$cn.key" ] && continue
		# shellcheck disable=SC2086
		openssl req -new $NEWKEY -nodes -subj "/CN=$cn" \
		    -keyout "$DIR/keys/$cn.key.tmp" -out "$DIR/$cn.csr.tmp" \
		    2>/dev/null
		mv "$DIR/keys/$cn.key.tmp" "$DIR/keys/$cn.key"
		chmod 644 "$DIR/$cn.csr.tmp"
		mv "$DIR/$cn.csr.tmp" "$DIR/$cn.csr"
	done
' sh

have=$(find "$dir" -maxdepth 1 -name 'bench-device-*.csr' | wc -l)
echo "make-csrs: $have $type CSRs in $dir"
