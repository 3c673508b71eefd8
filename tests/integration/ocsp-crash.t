#!/bin/sh
# ocsp-crash.t: hsmcad stops between generating an OCSP responder key
# (ocsp-genN) and recording it: tests/pkcs11-fault (fault=crash
# on=generate label=ocsp-gen) kills the signer right after
# C_GenerateKeyPair made the pair. The intent hsmcad committed before
# making the key leads the next start to it: the key of a generation
# that serves and has no responder is adopted; the key of one that has
# ended is destroyed, audited before and after. Either way the token
# then holds no key the store does not name.
. "$top_srcdir/tests/integration/lib.sh"
# hsmcad and the CLI both reach the token through the shim; only the
# making of a key labelled ocsp-gen* is ever crashed.
responder_setup ocr
hsmca ca download 2 >"$WORK/gen2.pem"
cat "$WORK/gen2.pem" "$CADIR/root.pem" >"$WORK/chain.pem"

sql() {
	sqlite3 "$CADIR/hsmca.db" "$1" 2>/dev/null
}
token_ids() {
	token_privkeys | awk '{ print $1 }' | sort -u
}
# named_ids: the keys the store names: the generations' and the
# recorded responders'.
named_ids() {
	sql "SELECT key_uri FROM ca_generation WHERE key_uri IS NOT NULL
		UNION SELECT key_uri FROM ocsp_responder" | key_uri_ids
}
# in_token ID / unnamed ID: the token holds key ID; no store row names it.
in_token() {
	[ -n "$1" ] && token_ids | grep -qx "$1"
}
unnamed() {
	[ -n "$1" ] && ! named_ids | grep -qx "$1"
}
# wait_log PATTERN: until hsmcad's log matches (20 s at most).
wait_log() {
	i=0; until grep -q "$1" "$CADIR/hsmcad.log" || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
}

# ---- a crash while generation 2's responder key is made: adopted ----
fault "fault=crash on=generate label=ocsp-gen"
crash_run
check "the shim killed the signer right after C_GenerateKeyPair" \
	test "$(grep -c 'inject C_GenerateKeyPair crash' "$FLOG")" -eq 1
check "and hsmcad stopped: its signer was killed" \
	grep -q "the signer process was killed by signal 9" "$CADIR/hsmcad.log"
check "no responder was recorded" test "$(sql "SELECT count(*) FROM ocsp_responder")" = 0
uri2=$(sql "SELECT key_uri FROM ocsp_key_intent WHERE issuer_id = 2")
check "the key's intent was recorded first: generation 2, ocsp-gen2 ($uri2)" \
	sh -c 'case $1 in pkcs11:*";id="*";object=ocsp-gen2;"*) true ;; *) false ;; esac' - "$uri2"
id2=$(echo "$uri2" | key_uri_ids)
check "the key it names was made: it is in the token" in_token "$id2"
check "and no store row names it" unnamed "$id2"
token_ids >"$WORK/token.1"
named_ids >"$WORK/named.1"
check "it is the one key in the token the store does not name" \
	test "$(comm -23 "$WORK/token.1" "$WORK/named.1")" = "${id2:-none}"

fault "fault=none"
hsmcad_start
i=0; until [ "$(sql "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2")" = 1 ] || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
check "restarted, generation 2's responder is the key made before the crash" \
	test "$(sql "SELECT group_concat(key_uri) FROM ocsp_responder WHERE issuer_id = 2")" = "$uri2"
check "its intent is closed" test "$(sql "SELECT count(*) FROM ocsp_key_intent")" = 0
check "one ocsp-gen2 key in the token, not two" test "$(token_privkeys | grep -c ' ocsp-gen2$')" -eq 1
token_ids >"$WORK/token.2"
named_ids >"$WORK/named.2"
check "the token holds exactly the keys the store names ($(wc -l <"$WORK/token.2"))" \
	cmp -s "$WORK/token.2" "$WORK/named.2"
serial=$(sql "SELECT serial FROM ocsp_responder WHERE issuer_id = 2")
check "the audit log says it was adopted, with its responder certificate ($serial)" \
	test "$(sql "SELECT count(*) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:2' AND outcome = 'ok'
		AND detail = 'OCSP responder key $uri2 adopted: generated for the generation before hsmcad stopped and not recorded then, now recorded with responder certificate $serial'")" = 1
check "and so does hsmcad's log" \
	grep -q "OCSP: responder key $uri2 of CA generation 2, made before hsmcad stopped and never recorded, is adopted" "$CADIR/hsmcad.log"
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
i=0; until openssl ocsp -issuer "$WORK/gen2.pem" -serial 0x0123abcd -url "$OCSP_URL" \
	-CAfile "$WORK/chain.pem" -resp_text >"$WORK/adopted.ocsp" 2>&1 || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$WORK/adopted.ocsp" >"$WORK/responder.pem"
check "a response signed with the adopted key verifies, its certificate the one recorded" \
	sh -c "grep -q 'Response verify OK' '$WORK/adopted.ocsp' &&
		[ \"\$(openssl x509 -in '$WORK/responder.pem' -noout -serial | sed 's/serial=//' | tr A-F a-f)\" = \"\$(echo '$serial' | tr A-F a-f)\" ]"
hsmcad_stop
expect_ok "the audit chain verifies" hsmca audit verify

# ---- a crash while generation 3's responder key is made; restarted
# after generation 3 has ended (740 days on): destroyed ----
expect_ok "generation 3 made" hsmca ca rotate
fault "fault=crash on=generate label=ocsp-gen"
crash_run
check "the shim killed the signer making generation 3's key" \
	test "$(grep -c 'inject C_GenerateKeyPair crash' "$FLOG")" -eq 2
uri3=$(sql "SELECT key_uri FROM ocsp_key_intent WHERE issuer_id = 3")
id3=$(echo "$uri3" | key_uri_ids)
check "its intent is recorded ($uri3)" \
	sh -c 'case $1 in pkcs11:*";object=ocsp-gen3;"*) true ;; *) false ;; esac' - "$uri3"
check "and its key is in the token" in_token "$id3"
fault "fault=none"
HSMCA_NOW=$(( $(date +%s) + 740 * 86400 )); export HSMCA_NOW
expect_ok "generation 4 made" hsmca ca rotate
expect_ok "and activated" hsmca ca activate 4
hsmcad_start
wait_log "OCSP: responder key .* of CA generation 3 destroyed"
i=0; until [ "$(sql "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 4")" = 1 ] || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
wait_log "OCSP: responder key .* of CA generation 2 destroyed"
hsmcad_stop
check "restarted, hsmcad destroys the key made for generation 3" \
	grep -q "OCSP: responder key $uri3 of CA generation 3 destroyed: made before hsmcad stopped and never recorded, it signed nothing" "$CADIR/hsmcad.log"
check "it is gone from the token" test "$(token_privkeys | grep -c " ocsp-gen3\$")" -eq 0
begin3=$(sql "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:3' AND outcome = 'ok'
	AND detail = 'OCSP responder key $uri3: its destruction in the token begins: generated before hsmcad stopped and never recorded, it signed nothing, and no responder of the generation is to use it'")
done3=$(sql "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:3' AND outcome = 'ok'
	AND detail = 'OCSP responder key $uri3 destroyed in the token: generated before hsmcad stopped and never recorded, it signed nothing, and no responder of the generation is to use it'")
check "the audit log announced its destruction ($begin3), then recorded it ($done3)" \
	sh -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" -lt "$2" ]' - "$begin3" "$done3"
check "no intent is left" test "$(sql "SELECT count(*) FROM ocsp_key_intent")" = 0
check "generation 2's recorded key, ended, is retired as before" \
	test "$(token_privkeys | grep -c ' ocsp-gen2$')" -eq 0
token_ids >"$WORK/token.3"
named_ids >"$WORK/named.3"
check "every key in the token is one the store names" \
	test -z "$(comm -23 "$WORK/token.3" "$WORK/named.3")"
sql "SELECT key_uri FROM ca_generation WHERE key_uri IS NOT NULL
	UNION SELECT key_uri FROM ocsp_responder WHERE issuer_id = 4" | key_uri_ids >"$WORK/kept.3"
check "and every CA key, and generation 4's responder key, is still there ($(wc -l <"$WORK/kept.3"))" \
	test "$(wc -l <"$WORK/kept.3")" -eq 5 -a -z "$(comm -23 "$WORK/kept.3" "$WORK/token.3")"
expect_ok "the audit chain verifies" hsmca audit verify
unset HSMCA_NOW
done_testing
