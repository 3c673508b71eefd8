#!/bin/sh
# The CLI's surface: help for every command, usage errors, exit codes,
# config checking, JSON output that parses.
. "$top_srcdir/tests/integration/lib.sh"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed (scripts/install-deps.sh)"

expect_ok "hsmca --help" "$HSMCA" --help
check "--help lists every command group" \
	sh -c "grep -q 'ca init' '$WORK/last.out' && grep -q 'issue' '$WORK/last.out' && grep -q 'cert list' '$WORK/last.out' && grep -q 'token init' '$WORK/last.out'"
check "--help documents the exit statuses" grep -q "3 not found" "$WORK/last.out"
run "$HSMCA" --version
check "--version prints the version" grep -Eq '^hsmca [0-9]+\.[0-9]+' "$WORK/last.out"

# Every command answers --help without touching a config or a token.
"$HSMCA" --help | sed -n 's/^  \([a-z-]*\( [a-z-]*\)\?\) \{2,\}.*/\1/p' | grep -v '^-' >"$WORK/cmds"
check "the command list is not empty" test -s "$WORK/cmds"
while read -r cmd; do
	# shellcheck disable=SC2086
	run env HSMCA_CONFIG=/nonexistent "$HSMCA" $cmd --help
	if [ "$RC" -eq 0 ] && grep -q "^usage: hsmca $cmd" "$WORK/last.out"; then
		ok "hsmca $cmd --help"
	else
		not_ok "hsmca $cmd --help"
	fi
done <"$WORK/cmds"

expect_fail "no command is a usage error" 2 "usage" "$HSMCA"
expect_fail "an unknown command is a usage error" 2 "unknown command 'frobnicate'" "$HSMCA" frobnicate
expect_fail "an unknown subcommand is a usage error" 2 "unknown ca command 'explode'" "$HSMCA" ca explode
expect_fail "an unknown option is a usage error" 2 "usage" "$HSMCA" --bogus ca list

expect_ok "the example config parses" "$HSMCA" -c "$top_srcdir/conf/hsmca.conf" config check
check "config check prints every section" \
	sh -c "grep -q '^\[hsm\]' '$WORK/last.out' && grep -q '^\[store\]' '$WORK/last.out' && grep -q '^\[ca\]' '$WORK/last.out' && grep -q '^\[profile device\]' '$WORK/last.out'"
cp "$WORK/last.out" "$WORK/normalized.conf"
run "$HSMCA" -c "$WORK/normalized.conf" config check
check "the normalized config re-parses to the same text" cmp -s "$WORK/last.out" "$WORK/normalized.conf"

printf '[hsm]\nmodule = /x.so\ntoken = pkcs11:token=t\npin-source = file:/p\nsesions = 4\n' >"$WORK/typo.conf"
expect_fail "a misspelt key is refused with file and line" 1 "typo.conf:5:.*sesions" \
	"$HSMCA" -c "$WORK/typo.conf" config check
printf '[hsm]\nmodule = /x.so\ntoken = pkcs11:token=t\npin-source = /plain/path\n[store]\npath = /s.db\n' >"$WORK/pin.conf"
expect_fail "a pin-source that is neither file: nor env: is refused" 1 "pin.conf:4:" \
	"$HSMCA" -c "$WORK/pin.conf" config check
expect_fail "a missing config file is refused" 1 "/nonexistent.conf" \
	"$HSMCA" -c /nonexistent.conf ca list

new_ca cl
hsmca ca init >/dev/null
make_csr d ec:P-256 "/CN=json-dev" 2>/dev/null
hsmca issue --csr "$WORK/d.csr" --profile device --out "$WORK/d.pem" >/dev/null
run hsmca --json ca list
check "ca list --json is a JSON array of two generations" \
	test "$(jq 'length' "$WORK/last.out")" = 2
check "ca list --json carries both thumbprints and the status" \
	test "$(jq -r '.[1] | [.status, (.sha1|length), (.sha256|length)] | join(",")' "$WORK/last.out")" = "active,40,64"
run hsmca --json cert list
check "cert list --json is a JSON array with the issued certificate" \
	test "$(jq -r '.[0].subject' "$WORK/last.out")" = "CN=json-dev"
serial=$(jq -r '.[0].serial' "$WORK/last.out")
run hsmca --json ca show 2
check "ca show --json includes the PEM" \
	sh -c "jq -r .pem '$WORK/last.out' | openssl x509 -noout"
run hsmca cert list --status revoked
check "cert list --status revoked is empty (header only)" test "$(wc -l <"$WORK/last.out")" -eq 1
run hsmca cert list --status valid
check "cert list --status valid lists it" grep -q "$serial" "$WORK/last.out"
HSMCA_NOW=$(( $(date +%s) + 400 * 86400 )) run hsmca cert list --status expired
check "400 days later it is listed as expired" grep -q "$serial.*expired" "$WORK/last.out"
expect_fail "an unknown status is a usage error" 2 "unknown status" hsmca cert list --status bogus
expect_fail "cert show of a non-hex serial is a usage error" 2 "not a serial" hsmca cert show xyz
expect_fail "cert show of an unknown serial exits 3" 3 "." hsmca cert show 0abc

done_testing
