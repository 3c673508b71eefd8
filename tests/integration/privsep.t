#!/bin/sh
# Privilege separation: hsmcad runs as a parent, a front (the network)
# and a signer (the token). The front has no PKCS#11 module mapped, no
# PIN anywhere in its memory, opens the store read-only, runs sandboxed
# and cannot gain privileges; the signer cannot be traced or read. When
# either child dies the daemon stops (nothing restarted silently).
. "$top_srcdir/tests/integration/lib.sh"

est_setup ps
# The PIN comes from the environment here: the harder case, since the
# parent inherits it and forks the front.
cp "$CADIR/user.pin" "$WORK/pin.copy"
PIN=$(cat "$CADIR/user.pin")
sed -i "s|^pin-source = .*|pin-source = env:HSMCA_PS_PIN|" "$CONF"
# Unprivileged, as in production: the store and token belong to nobody.
sed -i "s|^\[daemon\]|[daemon]\nuser = nobody|" "$CONF"
chown -R nobody "$CADIR"
chmod o+x "$WORK"
HSMCA_PS_PIN=$PIN
export HSMCA_PS_PIN
hsmcad_start


FRONT=$(child_named hsmcad-front)
SIGNER=$(child_named hsmcad-signer)
check "the parent has a front child ($FRONT)" test -n "$FRONT"
check "and a signer child ($SIGNER)" test -n "$SIGNER"
check "and no other" test "$(grep -l "^[0-9]* ([^)]*) . $HSMCAD_PID " /proc/[0-9]*/stat 2>/dev/null | wc -l)" -eq 2

# ---- what is mapped ----
check "the signer has the PKCS#11 module mapped (the check can see it)" \
	grep -q "$(basename "$SOFTHSM_MODULE")" "/proc/$SIGNER/maps"
check "the front has no PKCS#11 module mapped" \
	sh -c "! grep -q '$(basename "$SOFTHSM_MODULE")' /proc/$FRONT/maps"
check "nor p11-kit's proxy" sh -c "! grep -q 'p11-kit' /proc/$FRONT/maps"
check "the parent neither" sh -c "! grep -q '$(basename "$SOFTHSM_MODULE")' /proc/$HSMCAD_PID/maps"

# ---- the PIN ----
# scan_mem PID STRING: every readable mapping of PID, searched for STRING
# (root reads /proc/PID/mem even of a process that is not dumpable).
cat >"$WORK/scan.py" <<'EOF'
import re, sys
pid, needle = sys.argv[1], sys.argv[2].encode()
found = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        lo, hi, perm = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        # Sanitizer builds reserve terabytes of shadow memory: metadata,
        # never data; skip anything that large.
        if perm[0] != "r" or "[vvar]" in line or "[vsyscall]" in line or \
                hi - lo > (1 << 30):
            continue
        tail = b""
        pos = lo
        while pos < hi:
            try:
                mem.seek(pos)
                chunk = mem.read(min(hi - pos, 1 << 24))
            except (OSError, ValueError):
                break
            if not chunk:
                break
            if needle in tail + chunk:
                found = 1
            tail = chunk[-len(needle):]
            pos += len(chunk)
print(found)
EOF
check "the scan finds what the front holds (its store path)" \
	test "$(python3 "$WORK/scan.py" "$FRONT" "$CADIR/hsmca.db")" = 1
# A sanitizer runtime keeps its own copy of the environment it started
# with (for its options), out of hsmcad's reach: there the memory scans
# for an environment PIN say nothing and are skipped.
if grep -q "libasan\|libubsan" "/proc/$FRONT/maps"; then
	ok "the PIN is nowhere in the front's memory # SKIP sanitizer build: its runtime copies the environment"
else
	check "the PIN is nowhere in the front's memory" \
		test "$(python3 "$WORK/scan.py" "$FRONT" "$PIN")" = 0
fi
check "nor in its environment block" sh -c "! tr '\\0' '\\n' </proc/$FRONT/environ | grep -qF '$PIN'"
check "the signer wiped its environment's copy once logged in" \
	sh -c "! tr '\\0' '\\n' </proc/$SIGNER/environ | grep -qF '$PIN'"
if grep -q "libasan\|libubsan" "/proc/$FRONT/maps"; then
	ok "nor in the parent's memory # SKIP sanitizer build"
else
	check "nor in the parent's memory" \
		test "$(python3 "$WORK/scan.py" "$HSMCAD_PID" "$PIN")" = 0
fi

# ---- the store ----
# fd_mode PID FILE: the access mode (0 read-only, 1 write-only, 2 read-write)
# of PID's descriptors on FILE, one per line.
fd_modes() {
	for fd in /proc/$1/fd/*; do
		[ "$(readlink "$fd")" = "$2" ] || continue
		flags=$(awk '/^flags:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}")
		echo $(( 0$flags & 3 ))
	done
}
check "the front has the store open" test -n "$(fd_modes "$FRONT" "$CADIR/hsmca.db")"
check "read-only only" test "$(fd_modes "$FRONT" "$CADIR/hsmca.db" | sort -u)" = 0
check "the signer has it read-write" test "$(fd_modes "$SIGNER" "$CADIR/hsmca.db" | sort -u | tail -1)" = 2

# ---- the processes ----
check "the front cannot gain privileges" grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$FRONT/status"
check "the front runs under a seccomp filter" grep -q "^Seccomp:[[:space:]]*2" "/proc/$FRONT/status"
NOBODY=$(id -u nobody)
for p in "$HSMCAD_PID" "$FRONT" "$SIGNER"; do
	check "process $p runs as nobody (real, effective, saved)" \
		test "$(awk '/^Uid:/ { print $2, $3, $4 }' "/proc/$p/status")" = "$NOBODY $NOBODY $NOBODY"
done
# A process that is not dumpable has its /proc files owned by root: its
# own user cannot read its memory or trace it.
check "the signer is not dumpable" test "$(stat -c %u "/proc/$SIGNER/mem")" = 0
check "nor the front" test "$(stat -c %u "/proc/$FRONT/mem")" = 0

# ---- it works, through the processes ----
csr_b64 d1 ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/d1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "an enrollment is signed by the signer and answered by the front" test "$STATUS" = 200

# ---- nothing restarted silently ----
# gone PID: wait (10 s at most) until PID has exited; true if it has.
gone() {
	i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
	! kill -0 "$1" 2>/dev/null
}
# stops_after WHAT: the daemon exits, non-zero.
stops_after() {
	check "when the $1 dies the daemon stops" gone "$HSMCAD_PID"
	wait "$HSMCAD_PID"; rc=$?
	HSMCAD_PID=
	check "with a failure status ($rc)" test "$rc" -ne 0
}
kill -9 "$SIGNER"
stops_after signer
check "saying why" grep -q "the signer process was killed by signal 9" "$CADIR/hsmcad.log"
check "the front is gone too" sh -c "! kill -0 $FRONT 2>/dev/null"

hsmcad_start
FRONT=$(child_named hsmcad-front)
SIGNER=$(child_named hsmcad-signer)
kill -9 "$FRONT"
stops_after front
check "and the signer ends (its channel closed)" gone "$SIGNER"

hsmcad_start
FRONT=$(child_named hsmcad-front)
SIGNER=$(child_named hsmcad-signer)
kill -TERM "$HSMCAD_PID"
wait "$HSMCAD_PID"; rc=$?
HSMCAD_PID=
check "SIGTERM: the daemon drains and exits 0 ($rc)" test "$rc" -eq 0
check "both children are gone" sh -c "! kill -0 $FRONT 2>/dev/null && ! kill -0 $SIGNER 2>/dev/null"

# A SIGHUP (a reload, a log rotation) while the daemon starts waits for
# it: from the moment its main() has blocked signals (SigBlk shows
# SIGHUP, bit 1) to the front's readiness, the daemon comes up and
# reloads.
# started_up PID: wait until PID has SIGHUP blocked.
started_up() {
	i=0
	until [ $(( 0x$(awk '/^SigBlk:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0) & 2 )) -ne 0 ] ||
		[ $i -ge 400 ]; do
		i=$((i + 1)); sleep 0.005
	done
}
for delay in 0 0.02 0.1 0.3; do
	"$top_builddir/daemon/hsmcad" -c "$CONF" >"$CADIR/hsmcad.log" 2>&1 &
	HSMCAD_PID=$!
	started_up "$HSMCAD_PID"
	sleep "$delay"
	kill -HUP "$HSMCAD_PID"
	i=0
	until grep -q "reloaded:" "$CADIR/hsmcad.log" || [ $i -ge 600 ] ||
		! kill -0 "$HSMCAD_PID" 2>/dev/null; do
		i=$((i + 1)); sleep 0.05
	done
	check "a SIGHUP ${delay}s into the start-up: the daemon runs" kill -0 "$HSMCAD_PID"
	check "and it reloaded once ready" grep -q "reloaded:" "$CADIR/hsmcad.log"
	kill -TERM "$HSMCAD_PID"
	wait "$HSMCAD_PID"; rc=$?
	HSMCAD_PID=
	check "then SIGTERM ends it with 0 ($rc)" test "$rc" -eq 0
done
# A SIGTERM during the start-up stops it cleanly once started.
"$top_builddir/daemon/hsmcad" -c "$CONF" >"$CADIR/hsmcad.log" 2>&1 &
HSMCAD_PID=$!
started_up "$HSMCAD_PID"
kill -TERM "$HSMCAD_PID"
wait "$HSMCAD_PID"; rc=$?
HSMCAD_PID=
check "a SIGTERM during the start-up: exit 0 ($rc)" test "$rc" -eq 0
check "no process is killed by it" sh -c "! grep -q 'killed by signal' '$CADIR/hsmcad.log'"

# A store hsmcad creates at its first start, still as root, belongs to
# the user it then runs as: the signer writes it (here an audit record
# of a refused enrollment), and later starts open it.
mkdir "$CADIR/newstore"
chown nobody "$CADIR/newstore"
sed "s|^path = .*|path = $CADIR/newstore/hsmca.db|" "$CONF" >"$CADIR/new.conf"
CONF_SAVED=$CONF
CONF="$CADIR/new.conf"
hsmcad_start
check "a new store belongs to the daemon's user" \
	test "$(stat -c %U "$CADIR/newstore/hsmca.db")" = nobody
run curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" \
	-H "Content-Type: application/pkcs10" --data-binary @/dev/null "$URL/simpleenroll"
check "a refused enrollment is answered (401)" test "$(cat "$WORK/last.out")" = 401
# The refusal is answered first and recorded after (the front hands it
# to the signer and does not wait), so give the record time to land.
i=0
until [ "$(sqlite3 "$CADIR/newstore/hsmca.db" "SELECT count(*) FROM audit")" -ge 1 ] ||
	[ $i -ge 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "and the signer could record it" \
	test "$(sqlite3 "$CADIR/newstore/hsmca.db" "SELECT count(*) FROM audit")" -ge 1
check "the signer still runs" kill -0 "$(child_named hsmcad-signer)"
hsmcad_stop
CONF=$CONF_SAVED

done_testing
