#!/bin/sh
# hsmcad keeps working when the HSM misbehaves. The token is SoftHSM2
# behind tests/pkcs11-fault/pkcs11-fault.so, which injects faults as the
# control file says, while hsmcad runs, and records violations: a
# session used by two threads at once, more sessions open than the cap.
. "$top_srcdir/tests/integration/lib.sh"

command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"

est_setup faults
hsmca ca download 2 >"$CADIR/ica.pem"
# hsmcad loads the shim; more workers than signing sessions, so the cap
# is what bounds them.
fault_conf
sed -i -e 's/^sessions = .*/sessions = 3/' -e 's/^workers = .*/workers = 4/' "$CONF"
PKCS11_FAULT_MAX_SESSIONS=3
export PKCS11_FAULT_MAX_SESSIONS

# The detectors fire when they should: a session used by two threads at
# once, more sessions open than the cap (2 here).
echo "fault=none" >"$CTL"
: >"$FLOG"
PKCS11_FAULT_MAX_SESSIONS=2 "$top_builddir/tests/pkcs11-fault/selftest" "$SHIM" "$CTL"
check "the shim sees a session used by two threads at once" \
	grep -q 'VIOLATION session .* used by two threads' "$FLOG"
check "the shim sees more sessions open than the cap" \
	grep -q 'VIOLATION 3 sessions open, the cap is 2' "$FLOG"

echo "fault=none" >"$CTL"
: >"$FLOG"
# As in production: hsmcad drops root after logging in, and only root
# may read the PIN file. Every login after a fault must still work.
cp "$CADIR/user.pin" "$CADIR/root-only.pin"
chmod 600 "$CADIR/root-only.pin"
sed -i -e "s|^pin-source = .*|pin-source = file:$CADIR/root-only.pin|" \
	-e "s|^\[daemon\]|[daemon]\nuser = nobody|" "$CONF"
chown -R nobody "$CADIR"
chown root:root "$CADIR/root-only.pin"
chmod o+x "$WORK"
hsmcad_start

BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"
csr_b64 dev1 ec:P-256 /CN=dev-1
ISSUED=0

# fault SETTINGS: switch the shim (a new file: it re-reads on change).
fault() {
	echo "$*" >"$CTL.new" && mv "$CTL.new" "$CTL"
}

# enroll: one simpleenroll; STATUS, TIME (seconds), headers in $WORK/hdr.
enroll() {
	out=$(curl -s -o "$WORK/last.out" -D "$WORK/hdr" -w '%{http_code} %{time_total}' \
		--max-time 20 --cacert "$CADIR/root.pem" -H "Content-Type: application/pkcs10" \
		--data-binary "@$WORK/dev1.b64" $BOOT "$URL/simpleenroll")
	STATUS=${out% *}
	TIME=${out#* }
	if [ "$STATUS" = 200 ]; then ISSUED=$((ISSUED + 1)); fi
}

# issued_ok: the answer is a certificate that openssl verifies.
issued_ok() {
	p7_certs >"$WORK/got.pem" 2>/dev/null &&
		openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/ica.pem" \
			"$WORK/got.pem" >/dev/null 2>&1
}

# refused_503: 503 with Retry-After, within 2 s, and no certificate.
refused_503() {
	[ "$STATUS" = 503 ] && grep -qi '^Retry-After: [0-9]' "$WORK/hdr" &&
		awk -v t="$TIME" 'BEGIN { exit !(t < 2.0) }' &&
		! grep -q 'BEGIN\|^MI' "$WORK/last.out"
}

rows() {
	sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status = '$1'"
}

# recovered LABEL: after the fault is cleared, an enrollment succeeds
# again within 10 s, without a restart; RECOVERY is the seconds it took.
recovered() {
	t0=$(date +%s.%N)
	i=0
	while :; do
		enroll
		[ "$STATUS" = 200 ] && break
		i=$((i + 1))
		[ $i -lt 100 ] || break
		sleep 0.1
	done
	RECOVERY=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	check "$1: enrollment works again within 10 s of the token coming back (${RECOVERY}s)" \
		awk -v t="$RECOVERY" -v s="$STATUS" 'BEGIN { exit !(s == 200 && t < 10) }'
	check "$1: and what it issued verifies" issued_ok
	kill -0 "$HSMCAD_PID" 2>/dev/null || bail "hsmcad died"
}

# logins_since MARK: C_Login calls that succeeded after line MARK of the log.
logins_since() {
	tail -n "+$(($1 + 1))" "$FLOG" | grep -c '^login 0x0$'
}

# ---- a healthy token ----
enroll
check "enrollment through the shim works" test "$STATUS" = 200
check "and openssl verifies what it issued" issued_ok

# ---- corrupted signatures: verify-after-sign catches every one ----
valid0=$(rows valid)
failed0=$(rows failed)
fault "fault=corrupt rate=100"
bad=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	enroll
	if [ "$STATUS" = 200 ] || grep -q 'BEGIN\|^MI' "$WORK/last.out"; then bad=$((bad + 1)); fi
done
fault "fault=none"
check "10 corrupted signatures: none released" test "$bad" = 0
check "the shim corrupted 10 signatures" test "$(grep -c 'inject C_Sign corrupt' "$FLOG")" = 10
check "their serials are marked failed" test "$(rows failed)" = $((failed0 + 10))
check "each with its audit record naming verify-after-sign" test "$(sqlite3 \
	"$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE action = 'issue'
	AND outcome = 'failed' AND detail LIKE '%verify-after-sign%'")" = 10
check "nothing valid was recorded for them" test "$(rows valid)" = "$valid0"
enroll
check "the next signature is good again" test "$STATUS" = 200

# Faults that take the token down: each gets 503 + Retry-After within 2 s
# while it lasts, and the signer comes back by itself.
for f in "fault=device on=sign" "fault=session on=sign" "fault=login on=sign" \
    "fault=removed"; do
	name=${f#fault=}
	mark=$(wc -l <"$FLOG")
	reserved0=$(rows reserved)
	fault "$f"
	okn=0
	for i in 1 2 3 4 5; do
		enroll
		if refused_503; then okn=$((okn + 1)); else
			echo "# $name: status $STATUS in ${TIME}s: $(head -c 200 "$WORK/last.out")"
		fi
	done
	check "$name: 5 requests answered 503 with Retry-After within 2 s" test "$okn" = 5
	check "$name: no serial left half-issued" test "$(rows reserved)" = "$reserved0"
	fault "fault=none"
	recovered "$name"
	check "$name: the signer logged in again" test "$(logins_since "$mark")" -ge 1
done

# ---- a token that comes back but cannot open sessions or log in yet ----
fault "fault=removed"
enroll
fault "fault=device on=open,login"
enroll
check "sessions failing to open: 503 with Retry-After within 2 s" refused_503
enroll
check "and again" refused_503
fault "fault=none"
recovered "open/login failures"

# ---- a hanging C_Sign: the front does not wait for it ----
fault "fault=hang on=sign"
enroll
check "hang: the request is answered 503 with Retry-After within 2 s (${TIME}s)" refused_503
enroll
check "hang: so is the next one (${TIME}s)" refused_503
fault "fault=none"
recovered "hang"

# load: 8 clients, 5 enrollments each, at once; answers in $WORK/load.all.
load() {
	pids=
	for j in 1 2 3 4 5 6 7 8; do
		(for i in 1 2 3 4 5; do
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 \
				--cacert "$CADIR/root.pem" -H "Content-Type: application/pkcs10" \
				--data-binary "@$WORK/dev1.b64" $BOOT "$URL/simpleenroll"
		done) >"$WORK/load.$j" &
		pids="$pids $!"
	done
	# Not a bare wait: hsmcad is a child of this shell too.
	wait $pids
	cat "$WORK"/load.[0-9] >"$WORK/load.all"
	n200=$(grep -c '^200$' "$WORK/load.all")
	ISSUED=$((ISSUED + n200))
}

# ---- a healthy token under concurrent load: the cap is reached ----
load
check "40 concurrent enrollments on a healthy token all succeed" test "$n200" = 40
echo "# sessions open at most so far: $(sed -n 's/^max-open //p' "$FLOG" | tail -1) (the cap is 3)"

# ---- a flaky token under concurrent load ----
fault "fault=device on=sign rate=20"
load
fault "fault=none"
nother=$(grep -vc '^200$\|^503$' "$WORK/load.all")
echo "# under load with 20% device errors: $n200 issued, $(grep -c '^503$' "$WORK/load.all") refused 503"
check "under load, every answer is 200 or 503" test "$nother" = 0
recovered "flaky token"

# ---- what the shim saw, all along ----
check "sessions never exceeded the cap of 3 (most open: $(sed -n 's/^max-open //p' "$FLOG" | tail -1))" \
	sh -c "! grep -q 'VIOLATION .*sessions open' '$FLOG'"
check "no session was used by two threads at once" \
	sh -c "! grep -q 'VIOLATION session' '$FLOG'"
check "no serial is left reserved" test "$(rows reserved)" = 0
check "one valid record per certificate answered ($ISSUED)" test "$(rows valid)" = $((ISSUED + 1))
# Every valid record verifies (the +1 is hsmcad's own server certificate).
: >"$WORK/bad-records"
sqlite3 "$CADIR/hsmca.db" "SELECT hex(der) FROM cert WHERE status = 'valid'" |
while read -r hex; do
	echo "$hex" | xxd -r -p | openssl x509 -inform DER >"$WORK/rec.pem" 2>/dev/null &&
		openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/ica.pem" \
			"$WORK/rec.pem" >/dev/null 2>&1 || echo bad >>"$WORK/bad-records"
done
check "every valid record is a certificate openssl verifies" test ! -s "$WORK/bad-records"
check "hsmcad ran through all of it" kill -0 "$HSMCAD_PID"
grep -q "the HSM is back" "$CADIR/hsmcad.log" &&
	ok "hsmcad logged its recoveries" || not_ok "hsmcad logged its recoveries"

# ---- SIGTERM while C_Sign hangs: hsmcad still ends ----
# The front drains for timeout (5 s), the signer gives its worker timeout
# more, then gives up on it. The shim holds the call 60 s: the old
# daemon waited for it, however long a real token would.
reserved0=$(rows reserved)
valid0=$(rows valid)
fault "fault=hang on=sign"
enroll
check "hang before SIGTERM: the request is answered 503 (${TIME}s)" refused_503
kill -TERM "$HSMCAD_PID"
# ended PID: exited (a zombie until this shell waits for it).
ended() {
	[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)" = Z ]
}
i=0
while ! ended "$HSMCAD_PID" && [ $i -lt 800 ]; do i=$((i + 1)); sleep 0.05; done
check "SIGTERM: hsmcad ends within 40 s though C_Sign still hangs (~$((i / 20)) s)" \
	ended "$HSMCAD_PID"
fault "fault=none"
wait "$HSMCAD_PID"
RC=$?
HSMCAD_PID=
check "and exits 1: a request was abandoned (exit $RC)" test "$RC" -eq 1
check "the signer says it gave up on its worker" \
	grep -q "signer: 5s after the front ended, its workers are still inside the token: giving up" \
	"$CADIR/hsmcad.log"
check "and names the enrollment it abandoned" \
	grep -q "signer: abandoned inside the token: enrollment by est:bootstrap:CN=dev-1, profile device" \
	"$CADIR/hsmcad.log"
check "its serial stays reserved: nothing was recorded for it" \
	test "$(rows reserved)" = $((reserved0 + 1)) -a "$(rows valid)" = "$valid0"
check "the store is whole" test "$(sqlite3 "$CADIR/hsmca.db" 'PRAGMA integrity_check')" = ok
check "the pidfile is gone" test ! -e "$CADIR/hsmcad.pid"
done_testing
