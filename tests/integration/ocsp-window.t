#!/bin/sh
# ocsp-window.t: a delegated OCSP responder certificate and its
# ocsp_responder row are one commit. hsmca used to record the
# certificate (issue_finish), then the row in a second commit; a stop or
# a store failure in between left a valid, recorded responder
# certificate that nothing used and nothing would ever revoke, and the
# next attempt issued another. The failure is made exactly there: a
# trigger refuses every insert into ocsp_responder (what a full disk or
# a stop does to the second commit), hsmcad is killed (SIGKILL) while it
# keeps failing, then the trigger is dropped and hsmcad restarted. Three
# ways in: a key adopted after a crash (pkcs11-fault, as ocsp-crash.t),
# a key made fresh, and a renewal for the recorded key. After each, no
# valid responder certificate is one no row names, every signed one that
# was not recorded ended failed with an audit record saying why, and
# once the store takes the row, each generation has exactly one valid
# responder certificate that `openssl ocsp` verifies.
. "$top_srcdir/tests/integration/lib.sh"
responder_setup ocw
hsmca ca download 2 >"$WORK/gen2.pem"
cat "$WORK/gen2.pem" "$CADIR/root.pem" >"$WORK/chain2.pem"

sql() {
	sqlite3 -cmd ".timeout 5000" "$CADIR/hsmca.db" "$1" 2>/dev/null
}
REFUSED="test: ocsp_responder refused"
# What the store says of a refused row (SQLite's code, not the trigger's
# text).
cannot() {
	echo "cannot record the OCSP responder of CA generation $1"
}
refuse_rows() {
	sqlite3 -cmd ".timeout 5000" "$CADIR/hsmca.db" "CREATE TRIGGER test_refuse_responder
		BEFORE INSERT ON ocsp_responder BEGIN SELECT RAISE(ABORT, '$REFUSED'); END;"
}
allow_rows() {
	sqlite3 -cmd ".timeout 5000" "$CADIR/hsmca.db" "DROP TRIGGER test_refuse_responder"
}
# unnamed_valid: the valid responder certificates no ocsp_responder row
# names (every generation).
unnamed_valid() {
	sql "SELECT count(*) FROM cert c WHERE c.profile = 'ocsp-responder' AND c.status = 'valid'
		AND NOT EXISTS (SELECT 1 FROM ocsp_responder r
			WHERE r.issuer_id = c.issuer_id AND r.serial = c.serial)"
}
# valid GEN / failed GEN: generation GEN's responder certificates so.
valid() {
	sql "SELECT count(*) FROM cert WHERE profile = 'ocsp-responder' AND status = 'valid' AND issuer_id = $1"
}
failed() {
	sql "SELECT count(*) FROM cert WHERE profile = 'ocsp-responder' AND status = 'failed' AND issuer_id = $1"
}
# failed_audited GEN: how many of those have hsmcad's failed issue
# record saying the responder could not be recorded.
failed_audited() {
	sql "SELECT count(*) FROM cert c WHERE c.profile = 'ocsp-responder' AND c.status = 'failed'
		AND c.issuer_id = $1 AND EXISTS (SELECT 1 FROM audit a WHERE a.actor = 'hsmcad'
			AND a.action = 'issue' AND a.outcome = 'failed' AND a.object = 'serial:' || c.serial
			AND a.detail LIKE '%$(cannot "$1")%')"
}
# tried GEN: how many attempts at generation GEN's responder the log shows refused.
tried() {
	grep -c "OCSP: generation $1: no responder certificate, its CA key signs: .*$(cannot "$1")" \
		"$CADIR/hsmcad.log"
}
# wait_tried GEN N: until N attempts were refused (30 s at most).
wait_tried() {
	i=0; until [ "$(tried "$1")" -ge "$2" ] || [ $i -ge 600 ]; do i=$((i + 1)); sleep 0.05; done
}
# wait_rows GEN N: until generation GEN has N responder rows (20 s at most).
wait_rows() {
	i=0; until [ "$(sql "SELECT count(*) FROM ocsp_responder WHERE issuer_id = $1")" = "$2" ] ||
		[ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
}
# kill9: SIGKILL to hsmcad and each of its processes, nothing orderly.
kill9() {
	for p in "$HSMCAD_PID" $(pgrep -P "$HSMCAD_PID"); do
		kill -KILL "$p" 2>/dev/null
	done
	wait "$HSMCAD_PID" 2>/dev/null
	HSMCAD_PID=
}
# accounted: the keys the store accounts for: the generations', the
# recorded responders', and those of an open intent.
accounted() {
	sql "SELECT key_uri FROM ca_generation WHERE key_uri IS NOT NULL
		UNION SELECT key_uri FROM ocsp_responder UNION SELECT key_uri FROM ocsp_key_intent" | key_uri_ids
}
all_accounted() {
	token_privkeys | awk '{ print $1 }' | sort -u >"$WORK/token.ids"
	accounted >"$WORK/accounted.ids"
	test -z "$(comm -23 "$WORK/token.ids" "$WORK/accounted.ids")"
}
# responder_pem GEN: generation GEN's latest recorded responder certificate.
responder_pem() {
	sql "SELECT writefile('$WORK/r$1.der', cert_der) FROM ocsp_responder WHERE issuer_id = $1
		ORDER BY not_after DESC LIMIT 1" >/dev/null
	openssl x509 -inform DER -in "$WORK/r$1.der" -out "$WORK/r$1.pem" 2>/dev/null
}
# ocsp_verified GEN CHAIN WHAT OPTS...: a response for WHAT (-serial N or
# -cert FILE) verifies against CHAIN (-CAfile) and against generation
# GEN's recorded responder certificate alone (-VAfile), signed by it.
ocsp_verified() {
	g=$1 chain=$2; shift 2
	OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
	responder_pem "$g" || return 1
	rserial=$(openssl x509 -in "$WORK/r$g.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f)
	i=0; until openssl ocsp -issuer "$WORK/gen$g.pem" "$@" -url "$OCSP_URL" \
		-CAfile "$chain" -resp_text >"$WORK/ocsp$g.out" 2>&1 || [ $i -ge 200 ]; do
		i=$((i + 1)); sleep 0.05
	done
	grep -q 'Response verify OK' "$WORK/ocsp$g.out" || return 1
	sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$WORK/ocsp$g.out" >"$WORK/signer$g.pem"
	[ "$(openssl x509 -in "$WORK/signer$g.pem" -noout -serial | sed 's/serial=//' |
		tr A-F a-f)" = "$rserial" ] || return 1
	openssl ocsp -issuer "$WORK/gen$g.pem" "$@" -url "$OCSP_URL" -VAfile "$WORK/r$g.pem" \
		>"$WORK/va$g.out" 2>&1 && grep -q 'Response verify OK' "$WORK/va$g.out"
}

# ---- adopting a key: a crash made generation 2's responder key, then
# the store refuses the responder's row ----
fault "fault=crash on=generate label=ocsp-gen"
crash_run
fault "fault=none"
uri2=$(sql "SELECT key_uri FROM ocsp_key_intent WHERE issuer_id = 2")
check "a crash left generation 2's responder key made and unrecorded ($uri2)" \
	sh -c '[ -n "$1" ] && [ "$(grep -c "inject C_GenerateKeyPair crash" "$2")" -eq 1 ]' - "$uri2" "$FLOG"
refuse_rows
hsmcad_start
wait_tried 2 2
kill9
check "restarted, hsmcad adopted the key and the store refused its responder row ($(tried 2) attempts), then hsmcad was killed" \
	sh -c '[ "$1" -ge 2 ] && grep -q "responder key $2 of CA generation 2, made before hsmcad stopped and never recorded, is adopted" "$3"' \
	- "$(tried 2)" "$uri2" "$CADIR/hsmcad.log"
check "no valid responder certificate is left that no responder row names" \
	test "$(unnamed_valid)" = 0
check "generation 2 has no valid responder certificate" test "$(valid 2)" = 0
n2=$(failed 2)
check "each responder certificate signed for the adopted key ended failed ($n2)" \
	test "$n2" -ge 2
check "each with hsmcad's failed issue record naming the store's refusal" \
	test "$(failed_audited 2)" = "$n2"
check "no record says the key was adopted: it was not" \
	test "$(sql "SELECT count(*) FROM audit WHERE object = 'gen:2' AND detail LIKE '%$uri2 adopted%'")" = 0
check "the key is still in the token and its intent open, for the next start" \
	test "$(sql "SELECT count(*) FROM ocsp_key_intent WHERE key_uri = '$uri2'")" = 1 \
	-a "$(token_privkeys | grep -c ' ocsp-gen2$')" = 1

# ---- a key made fresh: generation 3's, the store still refusing ----
expect_ok "generation 3 made" hsmca ca rotate
hsmca ca download 3 >"$WORK/gen3.pem"
cat "$WORK/gen3.pem" "$CADIR/root.pem" >"$WORK/chain3.pem"
hsmcad_start
wait_tried 3 2
kill9
check "generation 3's responder was made, and its row refused ($(tried 3) attempts), then hsmcad was killed" \
	test "$(tried 3)" -ge 2
check "no valid responder certificate is left that no responder row names" \
	test "$(unnamed_valid)" = 0
check "generation 3 has no valid responder certificate" test "$(valid 3)" = 0
n3=$(failed 3)
check "each one signed for it ended failed ($n3), with its failed issue record" \
	sh -c '[ "$1" -ge 2 ] && [ "$2" = "$1" ]' - "$n3" "$(failed_audited 3)"
check "every key in the token is one the store accounts for" all_accounted

# ---- the store takes the rows again ----
allow_rows
hsmcad_start
wait_rows 2 1
wait_rows 3 1
serial2=$(sql "SELECT serial FROM ocsp_responder WHERE issuer_id = 2")
serial3=$(sql "SELECT serial FROM ocsp_responder WHERE issuer_id = 3")
check "generation 2 has exactly one valid responder certificate, its row's ($serial2), for the adopted key" \
	test "$(valid 2)" = 1 -a -n "$serial2" \
	-a "$(sql "SELECT key_uri FROM ocsp_responder WHERE issuer_id = 2")" = "$uri2"
check "generation 3 has exactly one valid responder certificate, its row's ($serial3)" \
	test "$(valid 3)" = 1 -a -n "$serial3"
check "no valid responder certificate is one no row names" test "$(unnamed_valid)" = 0
check "the audit log records each one's issuance" \
	test "$(sql "SELECT count(*) FROM audit WHERE actor = 'hsmcad' AND action = 'issue' AND outcome = 'ok'
		AND object IN ('serial:$serial2', 'serial:$serial3')")" = 2
check "and the adoption of generation 2's key, with its certificate $serial2" \
	test "$(sql "SELECT count(*) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:2' AND outcome = 'ok'
		AND detail = 'OCSP responder key $uri2 adopted: generated for the generation before hsmcad stopped and not recorded then, now recorded with responder certificate $serial2'")" = 1
check "no intent is left" test "$(sql "SELECT count(*) FROM ocsp_key_intent")" = 0
check "every key in the token is one the store names" all_accounted
sed -n '1,/END CERTIFICATE/p' "$CADIR/server-chain.pem" >"$WORK/server.pem"
check "generation 2's answers verify (-CAfile and -VAfile), signed by $serial2" \
	ocsp_verified 2 "$WORK/chain2.pem" -cert "$WORK/server.pem"
check "generation 3's answers verify (-CAfile and -VAfile), signed by $serial3" \
	ocsp_verified 3 "$WORK/chain3.pem" -serial 0x0123abcd
hsmcad_stop

# ---- renewal for the recorded key (21 days on: 9 of its 30 left),
# the store refusing the row ----
HSMCA_NOW=$(( $(date +%s) + 21 * 86400 )); export HSMCA_NOW
refuse_rows
hsmcad_start
wait_tried 2 2
kill9
check "renewing generation 2's responder, its row refused ($(tried 2) attempts), then hsmcad was killed" \
	test "$(tried 2)" -ge 2
check "no valid responder certificate is left that no responder row names" \
	test "$(unnamed_valid)" = 0
check "generation 2 still has exactly one valid responder certificate, $serial2" \
	test "$(valid 2)" = 1 -a "$(sql "SELECT count(*) FROM cert WHERE serial = '$serial2' AND status = 'valid'")" = 1
check "each renewal signed ended failed, with its failed issue record" \
	sh -c '[ "$1" -gt "$2" ] && [ "$3" = "$1" ]' - "$(failed 2)" "$n2" "$(failed_audited 2)"
allow_rows
hsmcad_start
wait_rows 2 2
wait_rows 3 2
renewed2=$(sql "SELECT serial FROM ocsp_responder WHERE issuer_id = 2 ORDER BY not_after DESC LIMIT 1")
check "renewed: two rows for generation 2 ($serial2, $renewed2), one key" \
	test "$renewed2" != "$serial2" \
	-a "$(sql "SELECT count(DISTINCT key_uri) FROM ocsp_responder WHERE issuer_id = 2")" = 1
check "two valid responder certificates for each generation, both named" \
	test "$(valid 2)" = 2 -a "$(valid 3)" = 2 -a "$(unnamed_valid)" = 0
check "the renewed one signs, and its answers verify at that time" \
	ocsp_verified 2 "$WORK/chain2.pem" -cert "$WORK/server.pem" -attime "$HSMCA_NOW" -validity_period 3000000
hsmcad_stop
expect_ok "the audit chain verifies" hsmca audit verify
unset HSMCA_NOW
done_testing
