#!/bin/sh
# hsmca batch sign: a folder or a manifest of device CSRs; bad ones refused
# with a reason while the good ones are signed; certificates and chains
# that openssl and certtool verify; results.csv; exit codes; a re-run
# issues nothing new; the audit log has the batch and every certificate.
. "$top_srcdir/tests/integration/lib.sh"

new_ca bt
hsmca ca init >/dev/null || bail "ca init failed"
hsmca ca download 1 >"$WORK/root.pem"
hsmca ca download 2 >"$WORK/ica.pem"

# verify_both FILE: a certificate (followed by its chain) verifies with
# openssl verify and with certtool --verify-chain.
verify_both() {
	openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/ica.pem" "$1" >/dev/null 2>&1 || return 1
	cat "$1" "$WORK/root.pem" >"$WORK/v.chain"
	certtool --verify-chain --infile "$WORK/v.chain" >"$WORK/v.out" 2>&1 &&
		grep -q "Chain verification output: Verified" "$WORK/v.out"
}

# field DEVICE COLUMN: a column of results.csv in $OUT (2 serial, 3 sha256,
# 4 status, 5 reason).
field() {
	awk -F, -v d="$1" -v c="$2" '$1 == d { print $c }' "$OUT/results.csv"
}

valid_rows() {
	sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status = 'valid'"
}

# ---- a folder: four good CSRs and four bad ones ----
IN=$WORK/in
OUT=$WORK/out
mkdir -p "$IN"
for i in 1 2 3; do
	make_csr "dev-$i" ec:P-256 "/CN=dev-$i" 2>/dev/null
	cp "$WORK/dev-$i.csr" "$IN/dev-$i.csr"
done
make_csr dev-4 rsa:2048 "/CN=dev-4" 2>/dev/null
openssl req -in "$WORK/dev-4.csr" -outform DER -out "$IN/dev-4.der"
echo "not a CSR" >"$IN/garbage.csr"
make_csr weak rsa:1024 "/CN=weak" 2>/dev/null
cp "$WORK/weak.csr" "$IN/weak.pem"
make_csr wantsca ec:P-256 "/CN=wantsca" "basicConstraints=critical,CA:TRUE" 2>/dev/null
cp "$WORK/wantsca.csr" "$IN/wantsca.csr"
# A signature that does not verify: flip every bit of one byte of it.
openssl req -in "$WORK/dev-1.csr" -outform DER -out "$WORK/good.der"
len=$(stat -c %s "$WORK/good.der")
cp "$WORK/good.der" "$IN/badsig.der"
old=$(od -An -tu1 -j $((len - 5)) -N1 "$WORK/good.der" | tr -d ' ')
printf "\\$(printf %o $((old ^ 255)))" | dd of="$IN/badsig.der" bs=1 seek=$((len - 5)) conv=notrunc 2>/dev/null
echo "ignored" >"$IN/README.txt"

run hsmca batch sign --in "$IN" --out "$OUT" --profile device --jobs 3
check "some refused: exit 7" test "$RC" -eq 7
check "stdout: the summary" grep -q "8 CSRs, 4 signed (4 new, 0 already issued), 4 refused, 0 failed" "$WORK/last.out"
check "stderr: garbage refused with its reason" grep -q "^hsmca: garbage: refused: .*PKCS#10" "$WORK/last.err"
check "stderr: RSA-1024 refused with its reason" grep -q "^hsmca: weak: refused: .*1024" "$WORK/last.err"
check "stderr: CA:TRUE refused with its reason" grep -q "^hsmca: wantsca: refused: .*CA" "$WORK/last.err"
check "stderr: bad signature refused with its reason" grep -q "^hsmca: badsig: refused: .*signature" "$WORK/last.err"
check "stderr: one line per refusal, no terminal progress" \
	sh -c "test \$(wc -l <'$WORK/last.err') -eq 4 && ! grep -q \"\$(printf '\\r')\" '$WORK/last.err'"
check "four certificates recorded, nothing for the refused" test "$(valid_rows)" -eq 4
check "no reserved or failed serial left behind" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status != 'valid'")" -eq 0
check "results.csv: a header and one line per device" test "$(wc -l <"$OUT/results.csv")" -eq 9
check "results.csv: devices in name order" \
	test "$(cut -d, -f1 "$OUT/results.csv" | tr '\n' ' ')" = "device badsig dev-1 dev-2 dev-3 dev-4 garbage wantsca weak "
for d in dev-1 dev-2 dev-3 dev-4; do
	check "$d: issued" test "$(field $d 4)" = issued
	run verify_both "$OUT/$d.chain.pem"
	check "$d: DEVICE.chain.pem verifies with openssl and certtool" test "$RC" -eq 0
	run openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/ica.pem" "$OUT/$d.crt"
	check "$d: DEVICE.crt verifies" test "$RC" -eq 0
	serial=$(openssl x509 -in "$OUT/$d.crt" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
	check "$d: results.csv has its serial" test "$serial" = "$(field $d 2)"
	fp=$(openssl x509 -in "$OUT/$d.crt" -outform DER | sha256sum | cut -d' ' -f1)
	check "$d: results.csv has its SHA-256 fingerprint" test "$fp" = "$(field $d 3)"
	csrfp=$(openssl req -in "$WORK/$d.csr" -outform DER | sha256sum | cut -d' ' -f1)
	check "$d: the store links it to its CSR" \
		test "$(sqlite3 "$CADIR/hsmca.db" "SELECT serial FROM cert WHERE csr_sha256 = '$csrfp' AND status = 'valid'")" = "$serial"
	check "$d: subject from the CSR" sh -c "openssl x509 -in '$OUT/$d.crt' -noout -subject | grep -q 'CN *= *$d'"
done
check "refused lines in results.csv carry their reason" \
	sh -c "test '$(field weak 4)' = refused && test -n '$(field weak 5)'"
check "no file for a refused device" test ! -e "$OUT/weak.crt" -a ! -e "$OUT/garbage.chain.pem"
check "no temporary file left" test -z "$(find "$OUT" -name '*.tmp*')"

# ---- the same batch again: nothing new, the same certificates ----
cp "$OUT/results.csv" "$WORK/results.first"
rows=$(count_rows)
run hsmca batch sign --in "$IN" --out "$OUT" --profile device
check "re-run: exit 7 again" test "$RC" -eq 7
check "re-run: 4 already issued, 0 new" grep -q "4 signed (0 new, 4 already issued)" "$WORK/last.out"
check "re-run: nothing added to the store" test "$(count_rows)" -eq "$rows"
check "re-run: the same serials and fingerprints" \
	sh -c "cut -d, -f1-3 '$WORK/results.first' >'$WORK/a'; cut -d, -f1-3 '$OUT/results.csv' >'$WORK/b'; cmp -s '$WORK/a' '$WORK/b'"
check "re-run: status existing" test "$(field dev-2 4)" = existing
check "re-run: the store counts two runs of batch 1" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT runs FROM batch WHERE id = 1")" -eq 2

# ---- the audit log ----
db() { sqlite3 "$CADIR/hsmca.db" "$1"; }
check "audit: one record per certificate, under the batch's name" \
	test "$(db "SELECT count(*) FROM audit WHERE action = 'issue' AND object LIKE 'serial:%' AND actor LIKE '% batch:1'")" -eq 4
check "audit: one record for the batch per run" \
	test "$(db "SELECT count(*) FROM audit WHERE action = 'issue' AND object = 'batch:1' AND outcome = 'refused'")" -eq 2
check "audit: the batch record counts what happened" \
	test "$(db "SELECT count(*) FROM audit WHERE object = 'batch:1' AND detail LIKE '%8 CSRs: 4 issued, 0 already issued, 4 refused, 0 failed%'")" -eq 1
check "audit: refusals recorded with their device" \
	test "$(db "SELECT count(*) FROM audit WHERE action = 'refuse' AND object = 'batch:1 device:weak'")" -ge 1
expect_ok "audit: the chain verifies" hsmca audit verify

# ---- a CSV manifest: per-device profile, relative paths, a header ----
mkdir -p "$WORK/m/csrs"
make_csr hub ec:P-256 "/CN=hub.example" "subjectAltName=DNS:hub.example" 2>/dev/null
make_csr dev-5 ec:P-384 "/CN=dev-5" 2>/dev/null
cp "$WORK/hub.csr" "$WORK/dev-5.csr" "$WORK/m/csrs/"
cat >"$WORK/m/list.csv" <<EOF
device,csr,profile
# a comment line
hub-1,csrs/hub.csr,server
dev-5,$WORK/m/csrs/dev-5.csr
EOF
OUT=$WORK/out-csv
expect_ok "CSV manifest: all signed, exit 0" hsmca batch sign --in "$WORK/m/list.csv" --out "$OUT" --profile device
check "CSV manifest: the server profile for hub-1" \
	sh -c "openssl x509 -in '$OUT/hub-1.crt' -noout -ext extendedKeyUsage | grep -q 'TLS Web Server Authentication'"
check "CSV manifest: the default profile for dev-5" \
	sh -c "openssl x509 -in '$OUT/dev-5.crt' -noout -ext extendedKeyUsage | grep -q 'TLS Web Client Authentication'"
run verify_both "$OUT/hub-1.chain.pem"
check "CSV manifest: hub-1 verifies" test "$RC" -eq 0

# ---- JSON Lines, --json, and a CSR already issued by another batch ----
make_csr dev-6 ec:P-256 "/CN=dev-6" 2>/dev/null
printf '{"device": "dev-6", "csr": "%s"}\n{"device": "dev-1-again", "csr": "%s"}\n' \
	"$WORK/dev-6.csr" "$WORK/dev-1.csr" >"$WORK/m/list.jsonl"
OUT=$WORK/out-jsonl
rows=$(count_rows)
run hsmca --json batch sign --in "$WORK/m/list.jsonl" --out "$OUT" --profile device
check "JSON Lines: exit 0" test "$RC" -eq 0
check "--json: counts" sh -c "jq -e '.issued == 1 and .existing == 1 and .refused == 0' '$WORK/last.out' >/dev/null"
check "a CSR signed in an earlier batch gets its certificate back, not a second one" \
	test "$(field dev-1-again 2)" = "$(awk -F, '$1 == "dev-1" { print $2 }' "$WORK/results.first")"
check "JSON Lines: one new row" test "$(count_rows)" -eq $((rows + 1))

# ---- one CSR listed for two devices ----
OUT=$WORK/out-dup
printf 'a,%s\nb,%s\n' "$WORK/dev-6.csr" "$WORK/dev-6.csr" >"$WORK/m/dup.csv"
run hsmca batch sign --in "$WORK/m/dup.csv" --out "$OUT" --profile device
check "the same CSR twice: exit 7" test "$RC" -eq 7
check "the same CSR twice: the second is refused, naming the first" \
	sh -c "test '$(field b 4)' = refused && grep -q 'same CSR as device a' '$OUT/results.csv'"

# ---- manifests as spreadsheets and scripts write them ----
# A header-less CSV whose first device is called "device": a device, not
# a header (a header is exactly device,csr[,profile]).
OUT=$WORK/out-noheader
printf 'device,%s\nd2,%s\n' "$WORK/dev-6.csr" "$WORK/dev-5.csr" >"$WORK/m/noheader.csv"
run hsmca batch sign --in "$WORK/m/noheader.csv" --out "$OUT" --profile device
S6=$(awk -F, 'NR > 1 && $1 == "device" { print $2 }' "$OUT/results.csv")
check "a header-less CSV's first device \"device\" is signed, not taken for a header" \
	sh -c "[ '$RC' = 0 ] && [ -n '$S6' ] && [ '$(field d2 4)' = existing ]"
# A UTF-8 byte order mark, CRLF, RFC 4180 quotes (a path with a comma,
# a doubled quote).
cp "$WORK/dev-6.csr" "$WORK/m/with,comma.csr"
cp "$WORK/dev-5.csr" "$WORK/m/with\"quote.csr"
printf '\357\273\277device,csr\r\n"q-1","with,comma.csr"\r\nq-2 , "with""quote.csr" \r\n' >"$WORK/m/excel.csv"
OUT=$WORK/out-excel
run hsmca batch sign --in "$WORK/m/excel.csv" --out "$OUT" --profile device
check "a CSV with a byte order mark, CRLF and quoted fields" \
	sh -c "[ '$RC' = 0 ] && [ '$(field q-1 2)' = '$S6' ] && [ '$(field q-2 4)' = existing ] &&
		[ \$(wc -l <'$OUT/results.csv') -eq 3 ]"
printf '"q-1","unclosed\n' >"$WORK/m/open.csv"
expect_fail "a quote not closed on its line: refused, naming the line" 1 "open.csv:1: a quoted field" \
	hsmca batch sign --in "$WORK/m/open.csv" --out "$WORK/o2" --profile device
printf '\357\273\277{"device": "q-3", "csr": "%s"}\n' "$WORK/dev-6.csr" >"$WORK/m/bom.jsonl"
OUT=$WORK/out-bom
run hsmca batch sign --in "$WORK/m/bom.jsonl" --out "$OUT" --profile device
check "JSON Lines with a byte order mark" sh -c "[ '$RC' = 0 ] && [ '$(field q-3 4)' = existing ]"
# JSON Lines members are strings, and only the three known ones.
printf '{"device": "q-4", "csr": "%s", "profile": ["server"]}\n' "$WORK/dev-6.csr" >"$WORK/m/type.jsonl"
expect_fail "JSON Lines: a profile that is not a string is refused, naming the line" 1 \
	'type.jsonl:1: "profile" is not a string' \
	hsmca batch sign --in "$WORK/m/type.jsonl" --out "$WORK/o2" --profile device
printf '{"device": "q-4", "csr": "%s"}\n{"device": "q-5", "csr": "%s", "profil": "server"}\n' \
	"$WORK/dev-6.csr" "$WORK/dev-5.csr" >"$WORK/m/member.jsonl"
expect_fail "JSON Lines: an unknown member is refused, naming the line" 1 \
	'member.jsonl:2: unknown member "profil"' \
	hsmca batch sign --in "$WORK/m/member.jsonl" --out "$WORK/o2" --profile device
printf '{"device": "q-4", "device": "q-5", "csr": "%s"}\n' "$WORK/dev-6.csr" >"$WORK/m/twokeys.jsonl"
expect_fail "JSON Lines: a member given twice is refused" 1 'twokeys.jsonl:1: .*duplicate' \
	hsmca batch sign --in "$WORK/m/twokeys.jsonl" --out "$WORK/o2" --profile device
check "... and nothing was written" test ! -e "$WORK/o2/results.csv"

# ---- --fail-fast: nothing signed when a CSR is refused ----
make_csr dev-7 ec:P-256 "/CN=dev-7" 2>/dev/null
mkdir -p "$WORK/ff"
cp "$WORK/dev-7.csr" "$IN/garbage.csr" "$WORK/ff/"
rows=$(count_rows)
OUT=$WORK/out-ff
run hsmca batch sign --in "$WORK/ff" --out "$OUT" --profile device --fail-fast
check "--fail-fast: exit 1" test "$RC" -eq 1
check "--fail-fast: says why" grep -q "fail-fast" "$WORK/last.err"
check "--fail-fast: nothing signed" test "$(count_rows)" -eq "$rows"
check "--fail-fast: dev-7 skipped in results.csv" test "$(field dev-7 4)" = skipped

# ---- a revoked certificate's CSR, a disallowed device ----
expect_ok "revoke dev-2" hsmca revoke "$(awk -F, '$1 == "dev-2" { print $2 }' "$WORK/results.first")"
OUT=$WORK/out
run hsmca batch sign --in "$IN" --out "$OUT" --profile device
check "a revoked certificate's CSR is refused, not signed again" \
	sh -c "test '$(field dev-2 4)' = refused && grep -q 'revoked' '$OUT/results.csv'"
make_csr banned ec:P-256 "/CN=banned-7" 2>/dev/null
expect_ok "disallow banned-7" hsmca disallow add banned-7
mkdir -p "$WORK/ban" && cp "$WORK/banned.csr" "$WORK/ban/"
OUT=$WORK/out-ban
run hsmca batch sign --in "$WORK/ban" --out "$OUT" --profile device
check "a disallowed device is refused" sh -c "test '$RC' -eq 7 && test '$(field banned 4)' = refused"

# ---- --fail-fast: what signing would refuse is found before anything is signed ----
# dev-2's certificate is revoked: the lookup that refuses its CSR when
# signing runs while checking, so aa-new, taken first, is not signed.
make_csr aa-new ec:P-256 "/CN=aa-new" 2>/dev/null
mkdir -p "$WORK/ff2"
cp "$WORK/aa-new.csr" "$WORK/dev-2.csr" "$WORK/ff2/"
rows=$(count_rows)
OUT=$WORK/out-ff2
run hsmca batch sign --in "$WORK/ff2" --out "$OUT" --profile device --fail-fast --jobs 1
check "--fail-fast, a revoked certificate's CSR: exit 1, refused with its reason" \
	sh -c "[ '$RC' = 1 ] && [ '$(field dev-2 4)' = refused ] && grep -q 'revoked' '$OUT/results.csv'"
check "... nothing signed" test "$(count_rows)" -eq "$rows"
check "... aa-new skipped" test "$(field aa-new 4)" = skipped

# ---- an earlier certificate that has expired: refused, not handed out ----
mkdir -p "$WORK/exp"
cp "$WORK/dev-3.csr" "$WORK/exp/"
S3=$(awk -F, '$1 == "dev-3" { print $2 }' "$WORK/results.first")
OUT=$WORK/out-exp
run env HSMCA_NOW=$(( $(date +%s) + 500 * 86400 )) "$HSMCA" -c "$CONF" batch sign \
	--in "$WORK/exp" --out "$OUT" --profile device
check "500 days on, dev-3's expired certificate is refused, naming it (exit 7)" \
	sh -c "[ '$RC' = 7 ] && [ '$(field dev-3 4)' = refused ] &&
		grep -q 'dev-3: refused: .*serial $S3, expired .*new key and CSR' '$WORK/last.err'"
check "... and no file handed out" test ! -e "$OUT/dev-3.crt"

# ---- after a CA rotation: each certificate with its own generation's chain ----
# A re-run hands out dev-1's certificate, issued by generation 2, while
# generation 3 signs; dev-9 is new, from generation 3.
expect_ok "ca rotate" hsmca ca rotate
expect_ok "ca activate 3" hsmca ca activate 3
make_csr dev-9 ec:P-256 "/CN=dev-9" 2>/dev/null
mkdir -p "$WORK/rot"
cp "$WORK/dev-1.csr" "$WORK/dev-9.csr" "$WORK/rot/"
OUT=$WORK/out-rot
run hsmca batch sign --in "$WORK/rot" --out "$OUT" --profile device
check "after rotation: all signed" test "$RC" -eq 0
check "after rotation: dev-1 already issued, dev-9 new" \
	sh -c "test '$(field dev-1 4)' = existing && test '$(field dev-9 4)' = issued"
check "dev-1 is generation 2's, dev-9 generation 3's" sh -c "
	openssl x509 -in '$OUT/dev-1.crt' -noout -issuer | grep -q 'Device CA' &&
	test \"\$(openssl x509 -in '$OUT/dev-1.crt' -noout -ext authorityKeyIdentifier)\" != \
	     \"\$(openssl x509 -in '$OUT/dev-9.crt' -noout -ext authorityKeyIdentifier)\""
# Each .chain.pem alone (with the root) proves its certificate.
for d in dev-1 dev-9; do
	check "$d.chain.pem verifies its certificate (openssl)" \
		openssl verify -CAfile "$WORK/root.pem" -untrusted "$OUT/$d.chain.pem" "$OUT/$d.crt"
	cat "$OUT/$d.chain.pem" "$WORK/root.pem" >"$WORK/v.chain"
	run certtool --verify-chain --infile "$WORK/v.chain"
	check "$d.chain.pem verifies its certificate (certtool)" grep -q "Chain verification output: Verified" "$WORK/last.out"
done

# ---- generation 2 revoked: its certificates are not handed out again ----
S1=$(field dev-1 2)
expect_ok "ca revoke 2 (keyCompromise)" hsmca ca revoke --reason keyCompromise 2
OUT=$WORK/out-rev2
run hsmca batch sign --in "$WORK/rot" --out "$OUT" --profile device
check "dev-1's certificate, from revoked generation 2, is refused, naming it (exit 7)" \
	sh -c "[ '$RC' = 7 ] && [ '$(field dev-1 4)' = refused ] &&
		grep -q 'dev-1: refused: .*serial $S1, .*generation 2 .*revoked.*new key and CSR' '$WORK/last.err'"
check "... dev-9's, from generation 3, still handed out" test "$(field dev-9 4)" = existing

# ---- a run that fails once begun still ends the batch's record ----
mkdir -p "$WORK/out-fail/results.csv" "$WORK/fail-in"
cp "$WORK/dev-9.csr" "$WORK/fail-in/"
run hsmca batch sign --in "$WORK/fail-in" --out "$WORK/out-fail" --profile device
BID=$(sqlite3 "$CADIR/hsmca.db" "SELECT max(id) FROM batch")
check "results.csv cannot be replaced: the run fails (exit 1)" \
	sh -c "[ '$RC' = 1 ] && grep -q 'results.csv' '$WORK/last.err'"
check "... the batch's audit record says it failed, and why" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE object = 'batch:$BID' AND outcome = 'failed' AND detail LIKE '%the run failed: %results.csv%'")" -eq 1
check "... and the batch's run is finished" \
	test -n "$(sqlite3 "$CADIR/hsmca.db" "SELECT finished_at FROM batch WHERE id = $BID")"

# ---- input errors: refused before anything ----
expect_fail "unknown profile" 3 "unknown profile" hsmca batch sign --in "$IN" --out "$WORK/o2" --profile nope
printf 'a,%s\na,%s\n' "$WORK/dev-6.csr" "$WORK/dev-7.csr" >"$WORK/m/twice.csv"
expect_fail "a device listed twice" 1 "listed twice" hsmca batch sign --in "$WORK/m/twice.csv" --out "$WORK/o2" --profile device
printf '../evil,%s\n' "$WORK/dev-6.csr" >"$WORK/m/evil.csv"
expect_fail "a device id that is not a file name" 1 "cannot name a file" \
	hsmca batch sign --in "$WORK/m/evil.csv" --out "$WORK/o2" --profile device
printf 'x,%s,server,extra\n' "$WORK/dev-6.csr" >"$WORK/m/bad.csv"
expect_fail "a malformed manifest line names its line" 1 "bad.csv:1: more than three" \
	hsmca batch sign --in "$WORK/m/bad.csv" --out "$WORK/o2" --profile device
mkdir -p "$WORK/empty"
expect_fail "an empty folder" 1 "no CSRs" hsmca batch sign --in "$WORK/empty" --out "$WORK/o2" --profile device
rows=$(count_rows)
expect_fail "--out the --in folder: refused (its .chain.pem files would be read as CSRs)" 1 \
	"is the --in folder" hsmca batch sign --in "$WORK/ff2" --out "$WORK/ff2/" --profile device
check "... nothing signed or written" \
	sh -c "[ '$(count_rows)' = '$rows' ] && [ ! -e '$WORK/ff2/results.csv' ] && [ ! -e '$WORK/ff2/aa-new.crt' ]"
expect_fail "usage without --out" 2 "usage" hsmca batch sign --in "$IN" --profile device
check "nothing written for refused inputs" test ! -e "$WORK/o2/results.csv"
# Another local run (or hsmcad signing for a station) holds the store's
# batch lock: this one is refused before it signs anything.
rows=$(count_rows)
run flock -n "$CADIR/hsmca.db-batch.lock" "$HSMCA" -c "$CONF" batch sign --in "$WORK/ff2" \
	--out "$WORK/o3" --profile device
check "a second local run while one holds the batch lock: refused (exit 1), nothing signed" \
	sh -c "[ '$RC' = 1 ] && grep -q 'another batch is signing with the store' '$WORK/last.err' &&
		[ '$(count_rows)' = '$rows' ]"
expect_ok "audit: the chain still verifies" hsmca audit verify
run sqlite3 "$CADIR/hsmca.db" "PRAGMA integrity_check"
check "store integrity_check ok" grep -qx ok "$WORK/last.out"

done_testing
