#!/bin/sh
# ca-expired.t: a CA whose issuing generation expired with none to take
# over (hsmcad was not running when the rotation was due). hsmcad says so
# every day, also once a rotation step has marked the generation expired;
# issuance is refused saying what to do; `ca rotate` and `ca activate`
# bring the CA back.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"

est_setup cex
hsmca ca download 2 >"$WORK/gen2.pem" || bail "ca download"
end=$(date -d "$(openssl x509 -in "$WORK/gen2.pem" -noout -enddate | sed 's/.*=//')" +%s)
HSMCA_NOW=$((end + 40 * 86400))
export HSMCA_NOW

expect_ok "a rotation step 40 days after generation 2 ended" hsmca ca tick
run hsmca --json ca list
check "it marked generation 2 expired" \
	test "$(jq -r '.[] | select(.id == 2) | .status' "$WORK/last.out")" = expired

hsmcad_start
i=0
while ! grep -q "error: CA issuing generation 2 .* expired at " "$CADIR/hsmcad.log" && [ $i -lt 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "hsmcad logs an error for generation 2, though it is marked expired" \
	grep -q "error: CA issuing generation 2 .* expired at .*: it was the last active generation and none took over, nothing can be issued (hsmca ca rotate, then hsmca ca activate)" "$CADIR/hsmcad.log"
hsmcad_stop
make_csr dev-2 ec:P-256 /CN=dev-2 2>/dev/null
expect_fail "hsmca issue is refused, saying what to do" 1 \
	"no active CA generation .*hsmca ca rotate.*hsmca ca activate" \
	hsmca issue --csr "$WORK/dev-2.csr" --profile device

expect_ok "hsmca ca rotate" hsmca ca rotate
expect_ok "hsmca ca activate 3" hsmca ca activate 3
expect_ok "the CA issues again" hsmca issue --csr "$WORK/dev-2.csr" --profile device --out "$WORK/dev-2.pem"
hsmca ca download 3 >"$WORK/gen3.pem"
expect_ok "... under generation 3 (openssl verify)" \
	openssl verify -attime "$HSMCA_NOW" -partial_chain -CAfile "$WORK/gen3.pem" "$WORK/dev-2.pem"

# Near the root's end a new generation cannot outlive it: rotating 30
# days before, the new one would become active after the root (and it)
# ended. Made all the same, with a warning that says what to do.
hsmca ca download 1 >"$WORK/root.pem"
rend=$(date -d "$(openssl x509 -in "$WORK/root.pem" -noout -enddate | sed 's/.*=//')" +%s)
HSMCA_NOW=$((rend - 30 * 86400))
export HSMCA_NOW
run hsmca ca rotate
check "ca rotate 30 days before the root ends warns that generation 4 ends before it activates" \
	grep -q "warning: generation 4 ends at .* with the root, before it would become active: activate it sooner (.hsmca ca activate 4.)" "$WORK/last.err"
run hsmca --json ca show 4
check "... its notAfter is the root's" \
	test "$(date -d "$(jq -r .not_after "$WORK/last.out")" +%s)" -eq "$rend"

done_testing
