#!/bin/sh
# expiring: CA generations and valid certificates whose notAfter falls
# inside a window, soonest first, with the days left (negative once
# expired). Certificates of 30 or 60 days cannot be made directly, so the
# clock moves instead (HSMCA_NOW).
. "$top_srcdir/tests/integration/lib.sh"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed (scripts/install-deps.sh)"

# at DAYS CMD...: run hsmca with the clock DAYS days ahead of now.
at() {
	days=$1; shift
	run env HSMCA_NOW=$(( $(date +%s) + days * 86400 )) "$HSMCA" -c "$CONF" "$@"
}

new_ca exp
hsmca ca init >/dev/null || bail "ca init failed"
make_csr dev ec:P-256 "/CN=exp-dev" 2>/dev/null
hsmca issue --csr "$WORK/dev.csr" --profile device --out "$WORK/dev.pem" >/dev/null ||
	bail "issue failed"
serial=$(openssl x509 -in "$WORK/dev.pem" -noout -serial | sed 's/.*=//' | tr A-F a-f)
make_csr gone ec:P-256 "/CN=exp-revoked" 2>/dev/null
hsmca issue --csr "$WORK/gone.csr" --profile device --out "$WORK/gone.pem" >/dev/null ||
	bail "issue failed"
gone=$(openssl x509 -in "$WORK/gone.pem" -noout -serial | sed 's/.*=//' | tr A-F a-f)
hsmca revoke "$gone" --reason superseded >/dev/null || bail "revoke failed"

expect_ok "expiring --within 30d today" hsmca expiring --within 30d
check "lists nothing: the device certificate has a year left" \
	grep -q '^nothing expires before' "$WORK/last.out"
run hsmca --json expiring
check "--json with nothing to list is an empty array" test "$(jq length "$WORK/last.out")" = 0

at 340 expiring --within 30d --json
check "340 days on: --json lists the device certificate only (not the revoked one)" \
	test "$(jq -r 'map(.id) | join(",")' "$WORK/last.out")" = "$serial"
check "with about 25 days left, valid, not expired, its generation and profile" \
	test "$(jq -r '.[0] | [.kind, (.days_left >= 24 and .days_left <= 25), .status, .expired, .generation, .profile, .subject] | join(",")' "$WORK/last.out")" = \
	"cert,true,valid,false,2,device,CN=exp-dev"
at 340 expiring --within 20d
check "a 20-day window does not reach it" grep -q '^nothing expires before' "$WORK/last.out"
at 340 expiring --within 30d
check "the table shows KIND, ID, GEN, STATUS, NOT AFTER, DAYS" \
	sh -c "head -1 '$WORK/last.out' | grep -q '^KIND *ID *GEN *STATUS *NOT AFTER *DAYS' &&
	       grep -Eq '^cert +$serial +2 +valid +[0-9T:Z-]+ +2[45] +device +CN=exp-dev' '$WORK/last.out'"

at 370 --json expiring --within 30d
check "370 days on: it shows as expired, about -5 days" \
	test "$(jq -r '.[0] | [.id, .status, .expired, (.days_left <= -4 and .days_left >= -5)] | join(",")' "$WORK/last.out")" = \
	"$serial,expired,true,true"
at 370 expiring --within 30d --kind ca
check "--kind ca leaves the certificate out" grep -q '^nothing expires before' "$WORK/last.out"

# Near the end of generation 2 (730 days; the root has 10 years).
hsmca ca download 2 >"$WORK/gen2.pem"
gen2_end=$(date -d "$(openssl x509 -in "$WORK/gen2.pem" -noout -enddate | sed 's/.*=//')" +%s)
run env HSMCA_NOW=$(( gen2_end - 10 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --within 30d --kind ca
check "--kind ca 10 days before generation 2 ends lists generation 2, active, 10 days" \
	test "$(jq -r 'map([.kind, .id, .status, .days_left, .expired] | join(",")) | join(";")' "$WORK/last.out")" = \
	"ca,2,active,10,false"
run env HSMCA_NOW=$(( gen2_end - 10 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --within 30d
check "without --kind: the expired certificate first, then generation 2" \
	test "$(jq -r 'map(.kind) | join(",")' "$WORK/last.out")" = "cert,ca"
run env HSMCA_NOW=$(( gen2_end + 3 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --kind ca
check "after its end generation 2 shows as expired with negative days" \
	test "$(jq -r '.[0] | [.id, .status, .days_left, .expired] | join(",")' "$WORK/last.out")" = "2,expired,-3,true"
run env HSMCA_NOW=$(( $(date +%s) + 3640 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --within 30d --kind ca
check "near the root's end both generations are listed, soonest first" \
	test "$(jq -r 'map(.id) | join(",")' "$WORK/last.out")" = "2,1"

hsmca ca pop 2 --code exp-pop --out "$WORK/pop.pem" >/dev/null || bail "ca pop failed"
run hsmca --json expiring --within 30d --kind cert
check "a proof-of-possession certificate (2 days) is not listed" test "$(jq length "$WORK/last.out")" = 0

# A rotation step marks it expired in the store (hsmcad does every five
# minutes): it stays listed, and with nothing active it stays however
# long ago it ended.
HSMCA_NOW=$(( gen2_end + 3 * 86400 )) hsmca ca tick >/dev/null 2>&1 || bail "ca tick failed"
run env HSMCA_NOW=$(( gen2_end + 3 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --kind ca
check "once a tick has marked it expired, it is still listed" \
	test "$(jq -r '.[0] | [.id, .status, .days_left] | join(",")' "$WORK/last.out")" = "2,expired,-3"
run env HSMCA_NOW=$(( gen2_end + 100 * 86400 )) "$HSMCA" -c "$CONF" --json expiring --within 30d --kind ca
check "100 days later, with no active generation, too" \
	test "$(jq -r '.[0] | [.id, .status, .days_left] | join(",")' "$WORK/last.out")" = "2,expired,-100"


expect_fail "--kind other is a usage error" 2 "ca or cert" hsmca expiring --kind crl
expect_fail "--within garbage is a usage error" 2 "not a duration" hsmca expiring --within soon
expect_fail "an extra argument is a usage error" 2 "usage" hsmca expiring 30d

done_testing
