#!/bin/sh
# hsmcad -d on the demo defaults (no configuration file), started in a
# folder where ./hsmca-demo is the demo directory: -d moves the daemon to
# /, and a SIGHUP loads the defaults again. The reload must read the same
# files as the start-up did (those under the folder hsmcad was started
# in), not /hsmca-demo: a new bootstrap-ca (factory-ca.pem) takes effect.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v ss >/dev/null 2>&1 || skip_all "ss not installed"
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"

HSMCAD="$top_builddir/daemon/hsmcad"
# The demo defaults listen on fixed ports, and are used only when no
# configuration file is found.
for p in 8443 8080; do
	[ "$(ss -Htln "( sport = :$p )" | wc -l)" -eq 0 ] ||
		skip_all "port $p is in use, and the demo defaults listen on it"
done
SYSCONF=$("$HSMCAD" -h 2>&1 | sed -n 's/.*, then \(.*\)\/hsmca\/hsmca\.conf,$/\1/p')
[ -n "$SYSCONF" ] || bail "hsmcad's usage names no default configuration"
[ ! -e "$SYSCONF/hsmca/hsmca.conf" ] ||
	skip_all "$SYSCONF/hsmca/hsmca.conf exists: hsmcad would not use the demo defaults"
unset HSMCA_CONFIG HSMCA_HOME

START="$WORK/start"
CADIR="$START/hsmca-demo"
mkdir -p "$CADIR/tokens"
(umask 077; echo "user-pin-demo" >"$CADIR/user.pin"; echo "so-pin-demo" >"$CADIR/so.pin")
cat >"$CADIR/softhsm2.conf" <<EOC
directories.tokendir = $CADIR/tokens
objectstore.backend = file
log.level = ERROR
EOC
SOFTHSM2_CONF="$CADIR/softhsm2.conf"
export SOFTHSM2_CONF
cd "$START" || bail "cd $START"
# No -c: the CLI, as hsmcad, on the defaults, under ./hsmca-demo.
"$HSMCA" token init --so-pin-source "file:$CADIR/so.pin" >"$WORK/init.out" 2>&1 &&
	"$HSMCA" ca init >>"$WORK/init.out" 2>&1 ||
	{ sed 's/^/# /' "$WORK/init.out"; bail "token or CA init on the demo defaults failed"; }
"$HSMCA" ca download 1 >"$CADIR/root.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/server.key" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CADIR/server.csr" 2>/dev/null
"$HSMCA" issue --csr "$CADIR/server.csr" --profile server --chain --out "$CADIR/server.pem" ||
	bail "the server certificate"
# (lib.sh's helpers use $f.)
for fy in a b; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$CADIR/factory-$fy.key" -subj "/CN=Factory $fy" -days 100 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-out "$CADIR/factory-$fy.pem" 2>/dev/null
	bootstrap_cert "dev-$fy" "$CADIR/factory-$fy"
	csr_b64 "dev-$fy" ec:P-256 "/CN=dev-$fy"
done
cp "$CADIR/factory-a.pem" "$CADIR/factory-ca.pem"
URL="https://localhost:8443/.well-known/est"

# enroll NAME: dev-NAME enrolls with its bootstrap certificate; $STATUS.
enroll() {
	est_post simpleenroll "$WORK/dev-$1.b64" --cert "$WORK/dev-$1.boot.pem" \
		--key "$WORK/dev-$1.boot.key"
}

run "$HSMCAD" -d
check "hsmcad -d on the demo defaults starts (exit $RC)" test "$RC" -eq 0
FRONT=$(ss -Htlnp "( sport = :8443 )" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
DPID=$(awk '{ print $4 }' "/proc/$FRONT/stat" 2>/dev/null)
[ "$(cat "/proc/$DPID/comm" 2>/dev/null)" = hsmcad-parent ] ||
	bail "no hsmcad parent behind port 8443 (front ${FRONT:-none})"
trap 'kill "$DPID" 2>/dev/null; cleanup' EXIT
check "its working directory is /" test "$(readlink "/proc/$DPID/cwd")" = /

enroll a
check "a device of factory A enrolls (status $STATUS)" test "$STATUS" = 200
enroll b
check "one of factory B does not yet (status $STATUS)" test "$STATUS" = 403

# The factory changes: factory-ca.pem is factory B now. A reload that
# read from / finds no file, is refused, and keeps factory A.
cp "$CADIR/factory-b.pem" "$CADIR/factory-ca.pem.new"
mv "$CADIR/factory-ca.pem.new" "$CADIR/factory-ca.pem"
kill -HUP "$DPID"
i=0
while enroll b && [ "$STATUS" != 200 ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
check "after SIGHUP a device of factory B enrolls (status $STATUS)" test "$STATUS" = 200
enroll a
check "and one of factory A no longer does (status $STATUS)" test "$STATUS" = 403
check "the daemon runs on, with its store under the folder it was started in" \
	sh -c "kill -0 $DPID && [ \$(sqlite3 '$CADIR/hsmca.db' \"SELECT count(*) FROM cert WHERE subject LIKE '%dev-b%'\") -eq 1 ]"

# gone PID: not running (init may take a while to reap a zombie).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
kill "$DPID"
i=0
while ! gone "$DPID" && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done
check "SIGTERM stops it" gone "$DPID"

done_testing
