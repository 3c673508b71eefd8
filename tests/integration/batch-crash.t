#!/bin/sh
# hsmca batch sign survives kill -9 anywhere. A batch of CSRs grows by a
# slice per round; each round starts it, kills it with SIGKILL after a
# random delay (before, while or after it signs), then runs it again to
# the end. After each kill and after each resume:
#   - every certificate in the output folder is in the store;
#   - no CSR has two certificates, no serial is used twice;
#   - PRAGMA integrity_check is ok;
# and after each resume also:
#   - every certificate in the store for the batch is in the output,
#     and results.csv lists every device as signed.
# KILLS (default 24) rounds over N (default 200) CSRs; bench/ runs longer.
#
# SoftHSM2's file store rewrites token.object in place at every login: a
# kill at that moment loses the token itself (a real HSM, or SoftHSM2's
# database store, which Debian does not build, keeps it). The token does
# not change during a batch, so it is copied before each kill and put back
# if SoftHSM2 lost it; the test says when that happened. The CA's own
# state, the store and the output folder, is never touched.
. "$top_srcdir/tests/integration/lib.sh"

N=${N:-200}
KILLS=${KILLS:-24}
command -v sqlite3 >/dev/null || skip_all "sqlite3 not installed (scripts/install-deps.sh)"

new_ca bc
hsmca ca init >/dev/null || bail "ca init failed"
DB=$CADIR/hsmca.db
mkdir -p "$WORK/csrs"
sh "$top_srcdir/bench/make-csrs.sh" "$N" "$WORK/csrs" >/dev/null || bail "make-csrs failed"
OUT=$WORK/out

# The DER of every PEM block on stdin, one uppercase hex line each.
pem_hex() {
	awk 'BEGIN {
		b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		for (i = 0; i < 64; i++) v[substr(b, i + 1, 1)] = i
		for (i = 0; i < 256; i++) hx[i] = sprintf("%02X", i)
	}
	/-----BEGIN/ { s = ""; next }
	/-----END/ {
		acc = 0; bits = 0; out = ""
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "=") break
			acc = acc * 64 + v[c]; bits += 6
			if (bits >= 8) {
				bits -= 8; byte = int(acc / 2 ^ bits)
				acc -= byte * 2 ^ bits; out = out hx[byte]
			}
		}
		print out; next
	}
	{ s = s $0 }'
}

# invariants AFTER_RESUME COUNT: the checks above; COUNT devices in the batch.
invariants() {
	what=$1
	find "$OUT" -name '*.crt' -exec cat {} + 2>/dev/null | pem_hex | sort >"$WORK/out.hex"
	sqlite3 "$DB" "SELECT hex(der) FROM cert WHERE status IN ('valid', 'revoked')" | sort >"$WORK/store.hex"
	bad=""
	[ -z "$(comm -23 "$WORK/out.hex" "$WORK/store.hex")" ] || bad="$bad output-not-in-store"
	[ -z "$(sqlite3 "$DB" "SELECT csr_sha256 FROM cert WHERE status IN ('valid', 'revoked') GROUP BY csr_sha256 HAVING count(*) > 1")" ] ||
		bad="$bad csr-twice"
	[ -z "$(sqlite3 "$DB" "SELECT serial FROM cert GROUP BY serial HAVING count(*) > 1")" ] || bad="$bad serial-twice"
	[ "$(sqlite3 "$DB" "PRAGMA integrity_check")" = ok ] || bad="$bad integrity"
	if [ "$what" = resume ]; then
		# Every certificate of the store belongs to this batch: the
		# store holds nothing else, and the batch only grows.
		[ -z "$(comm -13 "$WORK/out.hex" "$WORK/store.hex")" ] || bad="$bad store-not-in-output"
		[ "$(wc -l <"$WORK/store.hex")" -eq "$2" ] || bad="$bad count-$(wc -l <"$WORK/store.hex")-not-$2"
		[ "$(grep -Ec ',(issued|existing),' "$OUT/results.csv")" -eq "$2" ] || bad="$bad results"
	fi
	[ -z "$bad" ] || { echo "#$bad"; return 1; }
}

ls "$WORK/csrs"/*.csr | sort >"$WORK/all"
# Kill delays follow the machine's speed (ASan or not, loaded or not): a
# round that finished before its kill shortens the next rounds' range, a
# killed one widens it, so that most kills land while the batch runs.
range=400
round=0
while [ "$round" -lt "$KILLS" ]; do
	round=$((round + 1))
	# The first KILLS-4 rounds each add a slice; the last ones kill the
	# whole batch again, mostly while it only checks and writes files.
	n=$(( N * round / (KILLS - 4) ))
	[ "$n" -le "$N" ] || n=$N
	mkdir -p "$WORK/in"
	awk -F/ -v n="$n" 'NR <= n { d = $NF; sub(/\.csr$/, "", d); print d "," $0 }' "$WORK/all" >"$WORK/in/list.csv"
	delay=$(od -An -N2 -tu2 /dev/urandom | awk -v r="$range" '{ printf "%.3f", 0.005 + ($1 % r) / 1000 }')
	rm -rf "$WORK/tokens.copy"
	cp -a "$CADIR/tokens" "$WORK/tokens.copy"
	"$HSMCA" -c "$CONF" batch sign --in "$WORK/in/list.csv" --out "$OUT" \
		--profile device --jobs 4 >"$WORK/kill.out" 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null && killed=killed || killed=finished
	wait "$pid" 2>/dev/null
	if [ "$killed" = killed ]; then
		range=$((range * 5 / 4))
	elif [ "$range" -gt 30 ]; then
		range=$((range * 2 / 3))
	fi
	for t in "$CADIR"/tokens/*/; do
		if [ ! -s "$t/token.object" ]; then
			echo "# round $round: SoftHSM2 lost its token.object in the kill; token copied back"
			rm -rf "$CADIR/tokens"
			cp -a "$WORK/tokens.copy" "$CADIR/tokens"
		fi
	done
	echo "$round $killed after $delay" >>"$WORK/rounds"
	check "round $round ($n CSRs, $killed after ${delay}s): invariants hold after the kill" invariants kill "$n"
	run "$HSMCA" -c "$CONF" batch sign --in "$WORK/in/list.csv" --out "$OUT" --profile device --jobs 4
	check "round $round: the resumed run finishes (exit 0)" test "$RC" -eq 0
	check "round $round: invariants hold after the resume" invariants resume "$n"
done

burnt=$(sqlite3 "$DB" "SELECT count(*) FROM cert WHERE status IN ('reserved', 'failed')")
echo "# serials reserved by a killed run and burnt: $burnt"
echo "# rounds killed while running: $(grep -c 'killed after' "$WORK/rounds")"
check "no reservation is left pending" \
	test "$(sqlite3 "$DB" "SELECT count(*) FROM cert WHERE status = 'reserved'")" -eq 0
expect_ok "the audit chain verifies" hsmca audit verify
done_testing
