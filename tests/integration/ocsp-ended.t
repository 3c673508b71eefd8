#!/bin/sh
# ocsp-ended.t: a generation that ends while hsmcad runs is answered as
# a restarted hsmcad answers it: unauthorized (not ours), without asking
# the signer for what it can no longer sign, and with one log line for
# the generation, not a warning per request. hsmcad's clock moves while
# it runs through tests/front-fault/front-fault.so (FRONT_FAULT_CLOCK:
# HSMCA_NOW is a file's mtime), preloaded into the daemon.
. "$top_srcdir/tests/integration/lib.sh"

command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
SHIM="$top_builddir/tests/front-fault/front-fault.so"
[ -r "$SHIM" ] || skip_all "the front-fault shim is not built (make check builds it)"

est_setup oce
sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0|" "$CONF"
FRONT_FAULT_CLOCK=$CADIR/clock
export FRONT_FAULT_CLOCK
# Under AddressSanitizer its runtime must come first.
ASAN_RT=$(ldd "$top_builddir/daemon/hsmcad" | awk '$1 ~ /^libasan/ { print $3 }')
HSMCAD_PRELOAD="${ASAN_RT:+$ASAN_RT }$SHIM"
hsmcad_start
HSMCAD_PRELOAD=
[ -n "$HTTP_PORT" ] || bail "no HTTP listener in the log"
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
hsmca ca download 2 >"$WORK/gen2.pem"

csr_b64 dev1 ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/dev1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "a device certificate of generation 2 ($STATUS)" test "$STATUS" = 200
p7_certs >"$WORK/dev1.pem"

# ask NAME ARGS...: openssl ocsp for a certificate of generation 2, its
# output in $WORK/NAME.ocsp (it fails on an error response: not checked).
ask() {
	name=$1; shift
	openssl ocsp -issuer "$WORK/gen2.pem" "$@" -url "$OCSP_URL" -noverify \
		-resp_text >"$WORK/$name.ocsp" 2>&1 || :
}
i=0; until ask good -cert "$WORK/dev1.pem" && grep -q ": good" "$WORK/good.ocsp" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "while generation 2 serves: good" grep -q "dev1.pem: good" "$WORK/good.ocsp"

# A day past generation 2's end (730 days; its responder key is kept for
# a week more), for every process of hsmcad at once.
end=$(sqlite3 "$CADIR/hsmca.db" "SELECT not_after FROM ca_generation WHERE id = 2")
touch -d "@$((end + 86400))" "$FRONT_FAULT_CLOCK"
# unauthorized NAME: the answer is the unsigned unauthorized error.
unauthorized() {
	grep -q "Responder Error: unauthorized" "$WORK/$1.ocsp"
}
i=0; until ask ended -cert "$WORK/dev1.pem" && unauthorized ended || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "generation 2 ended while hsmcad runs: its certificate is answered unauthorized" \
	unauthorized ended
n=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	ask "again$i" -cert "$WORK/dev1.pem"
	unauthorized "again$i" && n=$((n + 1))
	ask "unknown$i" -serial "0x0badc0$i"
	unauthorized "unknown$i" && n=$((n + 1))
done
check "and so is every request after it, a serial it never issued too (20)" test "$n" -eq 20
check "one log line says so" \
	test "$(grep -c 'OCSP: CA generation 2 ended at .*: requests for its certificates are answered unauthorized' "$CADIR/hsmcad.log")" -eq 1
check "no warning for the requests (no responder to make, nothing signed)" \
	sh -c "! grep -q 'OCSP: generation 2: no responder\|OCSP: serial .* of generation 2' '$CADIR/hsmcad.log'"
check "no signature was asked of the signer for them" \
	sh -c "! grep -q 'OCSP: .*internalError\|the CA generation has expired' '$CADIR/hsmcad.log'"
hsmcad_stop

# A restarted hsmcad, its clock at the same time: the same answers.
HSMCA_NOW=$((end + 86400)); export HSMCA_NOW
unset FRONT_FAULT_CLOCK
hsmcad_start
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
ask restarted -cert "$WORK/dev1.pem"
check "restarted: the same answer, unauthorized" unauthorized restarted
ask restarted-unknown -serial 0x0badc0de
check "... for a serial it never issued too" unauthorized restarted-unknown
unset HSMCA_NOW

done_testing
