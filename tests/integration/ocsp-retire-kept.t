#!/bin/sh
# ocsp-retire-kept.t: the OCSP responder key of an ended generation that
# the token refuses to destroy (tests/pkcs11-fault: fault=refuse
# on=destroy, CKR_ACTION_PROHIBITED) stays in the token, and the audit
# log says it was kept and why (outcome failed), never that it was
# destroyed; the next start without the fault destroys it. The clock
# moves 740 days ahead as in ocsp.t: generation 2 (730 days) has ended
# a week before.
. "$top_srcdir/tests/integration/lib.sh"
# hsmcad and the CLI both reach the token through the shim.
responder_setup ork
fault "fault=none"

sql() {
	sqlite3 "$CADIR/hsmca.db" "$1"
}
# wait_log PATTERN: until hsmcad's log matches (20 s at most).
wait_log() {
	i=0; until grep -q "$1" "$CADIR/hsmcad.log" || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
}

# ---- generation 2 gets its responder key ----
hsmcad_start
i=0; until [ "$(sql "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2")" -ge 1 ] || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
hsmcad_stop
check "generation 2 has a responder recorded" \
	test "$(sql "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2")" -ge 1
token_privkeys >"$WORK/keys.before"
check "its key is in the token" grep -q ' ocsp-gen2$' "$WORK/keys.before"

# ---- 740 days on, the token refuses every C_DestroyObject ----
HSMCA_NOW=$(( $(date +%s) + 740 * 86400 )); export HSMCA_NOW
expect_ok "generation 3 made" hsmca ca rotate
expect_ok "and activated" hsmca ca activate 3
fault "fault=refuse on=destroy"
hsmcad_start
wait_log "OCSP: responder key .* of CA generation 2 not destroyed"
check "hsmcad says the key of generation 2 was not destroyed, and why" \
	grep -q "OCSP: responder key pkcs11:.*object=ocsp-gen2.* of CA generation 2 not destroyed .*CKR_ACTION_PROHIBITED" "$CADIR/hsmcad.log"
check "the token was asked, and refused" grep -q "inject C_DestroyObject refuse" "$FLOG"
check "hsmcad is still running" kill -0 "$HSMCAD_PID"
hsmcad_stop
check "the key is still in the token" test "$(token_privkeys | grep -c ' ocsp-gen2$')" -eq 1
check "and so is every other key" test "$(token_privkeys | comm -13 - "$WORK/keys.before" | wc -l)" -eq 0
begin=$(sql "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:2'
	AND outcome = 'ok' AND detail LIKE 'OCSP responder key %object=ocsp-gen2%: its destruction in the token begins%'")
kept=$(sql "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:2'
	AND outcome = 'failed' AND detail LIKE 'OCSP responder key %object=ocsp-gen2% kept in the token, its destruction failed: %CKR_ACTION_PROHIBITED%'")
check "its destruction was recorded before it began ($begin)" test -n "$begin"
check "then a record says it was kept, outcome failed, with the token's reason ($kept)" \
	sh -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" -lt "$2" ]' - "$begin" "$kept"
check "no record says it was destroyed" \
	test "$(sql "SELECT count(*) FROM audit WHERE detail LIKE 'OCSP responder key % destroyed%'")" -eq 0
check "nor does the log" sh -c "! grep -q 'OCSP: responder key .* destroyed:' '$CADIR/hsmcad.log'"
expect_ok "the audit chain verifies" hsmca audit verify

# ---- the next start, the token willing: destroyed ----
fault "fault=none"
hsmcad_start
wait_log "OCSP: responder key .* of CA generation 2 destroyed"
hsmcad_stop
check "restarted without the fault, hsmcad destroys the key" \
	grep -q "OCSP: responder key pkcs11:.*object=ocsp-gen2.* of CA generation 2 destroyed: the generation ended" "$CADIR/hsmcad.log"
check "it is gone from the token" test "$(token_privkeys | grep -c ' ocsp-gen2$')" -eq 0
check "and nothing else is (the keys before, less one, and generation 3's)" \
	test "$(token_privkeys | comm -13 - "$WORK/keys.before")" = "$(grep ' ocsp-gen2$' "$WORK/keys.before")"
done_id=$(sql "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:2'
	AND outcome = 'ok' AND detail LIKE 'OCSP responder key %object=ocsp-gen2% destroyed in the token: the generation ended%'")
check "one record says it was destroyed, after the one that says it was kept ($done_id)" \
	sh -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" -gt "$2" ]' - "$done_id" "$kept"
check "after a second record of its destruction beginning" \
	test "$(sql "SELECT count(*) FROM audit WHERE object = 'gen:2' AND detail LIKE 'OCSP responder key %: its destruction in the token begins%' AND id > ${kept:-0} AND id < ${done_id:-0}")" -eq 1
expect_ok "the audit chain verifies" hsmca audit verify
unset HSMCA_NOW
done_testing
