#!/bin/sh
# [hsm] session-copy: an issuing key signs through a session copy of it
# made in the token (C_CopyObject), not through the token object that
# SoftHSM2 re-reads on every signature. The fault shim's "trace" says
# which kind of object each C_SignInit is given; its "copy" lines log
# every C_CopyObject. The copies are session objects: the token keeps
# the same keys, and a token that will not copy signs with the key.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v pkcs11-tool >/dev/null 2>&1 || skip_all "pkcs11-tool not installed"

est_setup copy
hsmca ca download 2 >"$CADIR/ica.pem"
RESPONDER_TOKEN=copy
fault_conf
token_privkeys >"$WORK/keys.before"

not() { ! "$@"; }
# signs_with KIND: the shim's log, emptied before the step, names at least
# one signature and every one of them by KIND (token or session).
signs_with() {
	[ "$(grep -c '^sign-init ' "$FLOG")" -gt 0 ] &&
		[ "$(grep '^sign-init ' "$FLOG" | grep -vc "^sign-init $1\$")" -eq 0 ]
}
verifies() {
	openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/ica.pem" "$1" >/dev/null 2>&1
}
# issue_one NAME WHAT: the shim's log emptied, a certificate for CN=NAME
# issued by the CLI into $WORK/NAME.pem.
issue_one() {
	: >"$FLOG"
	make_csr "$1" ec:P-256 "/CN=$1" 2>/dev/null
	expect_ok "$2" hsmca issue --csr "$WORK/$1.csr" --profile device --out "$WORK/$1.pem"
}

# The CLI, one certificate.
fault "fault=none trace"
issue_one one "issue with session-copy on (the default)"
check "the issuing key was copied, and the copy made" grep -q '^copy 0x0$' "$FLOG"
check "the certificate is signed through the copy, never the token key" signs_with session
check "and verifies" verifies "$WORK/one.pem"
run certtool --verify --load-ca-certificate "$CADIR/ica.pem" --infile "$WORK/one.pem"
check "and certtool agrees" grep -q "Verified" "$WORK/last.out"

# A batch: many signatures from several workers through one copy.
mkdir "$WORK/in"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	make_csr "in/dev-$i" ec:P-256 "/CN=batch-dev-$i" 2>/dev/null
	rm -f "$WORK/in/dev-$i.key"
done
: >"$FLOG"
expect_ok "batch sign, 12 CSRs, 3 jobs" \
	hsmca batch sign --in "$WORK/in" --out "$WORK/out" --profile device --jobs 3
check "the batch made one copy of the key" test "$(grep -c '^copy 0x0$' "$FLOG")" -eq 2
check "every batch signature went through the copy" signs_with session
check "12 signatures at least" test "$(grep -c '^sign-init session$' "$FLOG")" -ge 12
n=0
for f in "$WORK"/out/*.crt; do verifies "$f" && n=$((n + 1)); done
check "the 12 certificates verify" test "$n" -eq 12

# Off: the token key signs, and nothing is copied.
sed -i 's/^\[hsm\]$/[hsm]\nsession-copy = no/' "$CONF"
issue_one two "issue with session-copy = no"
check "no copy is made" not grep -q '^copy ' "$FLOG"
check "the token key signs" signs_with token
check "and the certificate verifies" verifies "$WORK/two.pem"
sed -i '/^session-copy = no$/d' "$CONF"

# A token that refuses to copy (CKA_COPYABLE false, or no C_CopyObject):
# the key itself signs, and nothing is said to the operator.
fault "fault=refuse on=copy trace"
issue_one three "issue when the token refuses the copy"
check "the copy was asked for and refused" grep -q '^inject C_CopyObject refuse$' "$FLOG"
check "the token key signs instead" signs_with token
check "and the certificate verifies" verifies "$WORK/three.pem"
check "the refusal is not the operator's business" not grep -qi 'copy' "$WORK/last.err"

# hsmcad: enrollment through the copy, and again after the token was
# taken away and given back (its session, and the copy with it, gone).
fault "fault=none trace"
hsmcad_start
: >"$FLOG"
csr_b64 e1 ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/e1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "hsmcad enrolls (200)" test "$STATUS" = 200
check "through the copy" signs_with session
fault "fault=removed"
est_post simpleenroll "$WORK/e1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "the token away: 503" test "$STATUS" = 503
fault "fault=none trace"
: >"$FLOG"
i=0
while [ $i -lt 100 ]; do
	est_post simpleenroll "$WORK/e1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
	[ "$STATUS" = 200 ] && break
	i=$((i + 1)); sleep 0.1
done
check "the token back: hsmcad enrolls again without a restart" test "$STATUS" = 200
check "through a new copy, made in the new session" grep -q '^copy 0x0$' "$FLOG"
check "every signature since through it" signs_with session
hsmcad_stop

# The copies were session objects: the token holds the keys it held.
token_privkeys >"$WORK/keys.after"
check "the token's private keys are the ones it had" cmp -s "$WORK/keys.before" "$WORK/keys.after"
check "which are the two generations' keys" test "$(wc -l <"$WORK/keys.after")" -eq 2
check "the shim saw no session misuse" not grep -q VIOLATION "$FLOG"

done_testing
