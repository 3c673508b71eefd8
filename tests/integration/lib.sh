# lib.sh: shared set-up for the integration tests. Each test gets a fresh
# work directory with its own SoftHSM2 token directory and store, and
# speaks TAP. Sourced by tests/integration/*.t.
# shellcheck shell=sh

set -u
: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"

HSMCA="$top_builddir/cli/hsmca"
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
T_NAME=$(basename "$0" .t)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsmca-it.$T_NAME.XXXXXX")
T_N=0
T_FAILED=0

cleanup() {
	if [ "$T_FAILED" -ne 0 ] || [ "${KEEP_WORK:-0}" = 1 ]; then
		echo "# work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# bail REASON: stop the test, keeping the work directory for a look.
bail() {
	T_FAILED=$((T_FAILED + 1))
	echo "Bail out! $*"
	exit 1
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

for tool in openssl certtool pkcs11-tool; do
	command -v "$tool" >/dev/null 2>&1 || skip_all "$tool not installed (scripts/install-deps.sh)"
done
[ -r "$SOFTHSM_MODULE" ] || skip_all "SoftHSM2 module $SOFTHSM_MODULE missing"

ok() {
	T_N=$((T_N + 1))
	echo "ok $T_N - $1"
}

not_ok() {
	T_N=$((T_N + 1))
	T_FAILED=$((T_FAILED + 1))
	echo "not ok $T_N - $1"
	# awk ends every line, the last too: an output without a final
	# newline ("000" from curl -w) swallowed the next test's line.
	if [ -s "$WORK/last.out" ]; then awk '{ print "#   out: " $0 }' "$WORK/last.out" | head -20; fi
	if [ -s "$WORK/last.err" ]; then awk '{ print "#   err: " $0 }' "$WORK/last.err" | head -20; fi
}

# run CMD...: run it, keeping stdout/stderr in $WORK/last.out / last.err
# and the exit status in $RC.
run() {
	"$@" >"$WORK/last.out" 2>"$WORK/last.err"
	RC=$?
}

# expect_ok DESC CMD...: the command succeeds.
expect_ok() {
	desc=$1; shift
	run "$@"
	if [ "$RC" -eq 0 ]; then ok "$desc"; else not_ok "$desc (exit $RC)"; fi
}

# expect_fail DESC STATUS PATTERN CMD...: the command exits with STATUS and
# its stderr matches the grep -E PATTERN.
expect_fail() {
	desc=$1; status=$2; pattern=$3; shift 3
	run "$@"
	if [ "$RC" -eq "$status" ] && grep -Eq -- "$pattern" "$WORK/last.err"; then
		ok "$desc"
	else
		not_ok "$desc (exit $RC, wanted $status and /$pattern/)"
	fi
}

# check DESC CMD...: a test expression (no output capture).
check() {
	desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

done_testing() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}

# free_port: a TCP port nothing listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# raw_request PORT REQUEST [CAFILE [CERT KEY]]: send REQUEST (\r and \n
# written so) to 127.0.0.1:PORT, over TLS to localhost if CAFILE is
# given, and read until the server closes: what came back in
# $WORK/last.out; RC 0 if the server closed the connection, 2 if it had
# not within 20 s.
raw_request() {
	python3 - "$@" >"$WORK/last.out" 2>"$WORK/last.err" <<'EOP'
import socket, ssl, sys
port = int(sys.argv[1])
req = sys.argv[2].replace("\\r", "\r").replace("\\n", "\n")
s = socket.create_connection(("127.0.0.1", port), timeout=20)
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    if len(sys.argv) > 5:
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    s = ctx.wrap_socket(s, server_hostname="localhost")
s.sendall(req.encode("latin-1"))
rc = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        sys.stdout.buffer.write(b)
except socket.timeout:
    rc = 2
except (ConnectionResetError, ssl.SSLError):
    pass
sys.exit(rc)
EOP
	RC=$?
}

# headers_only: $WORK/last.out is an HTTP answer with not one byte after
# its headers (an answer to HEAD).
headers_only() {
	grep -q '^HTTP/1.1 ' "$WORK/last.out" &&
		[ "$(sed -n '/^\r$/,$p' "$WORK/last.out" | wc -c)" -eq 2 ]
}

# new_ca NAME [KEY-TYPE]: a fresh token, PIN files and config under
# $WORK/NAME; sets CONF and exports SOFTHSM2_CONF. The CRL and OCSP URLs
# name ${CA_HTTP:-127.0.0.1:8080}.
new_ca() {
	d="$WORK/$1"
	mkdir -p "$d/tokens"
	(umask 077; echo "user-pin-$1" >"$d/user.pin"; echo "so-pin-$1" >"$d/so.pin")
	cat >"$d/softhsm2.conf" <<EOC
directories.tokendir = $d/tokens
objectstore.backend = file
log.level = ERROR
EOC
	cat >"$d/hsmca.conf" <<EOC
[hsm]
module = $SOFTHSM_MODULE
token = pkcs11:token=$1
pin-source = file:$d/user.pin
sessions = 2

[store]
path = $d/hsmca.db

[ca]
subject = CN=hsmca Test Device CA $1,O=hsmca tests
key-type = ${2:-ec-p256}
validity = 730d
root-subject = CN=hsmca Test Root CA $1,O=hsmca tests
root-key-type = ${3:-ec-p384}
root-validity = 3650d
crl-url = http://${CA_HTTP:-127.0.0.1:8080}/crl/%g.crl
ocsp-url = http://${CA_HTTP:-127.0.0.1:8080}/ocsp
EOC
	CONF="$d/hsmca.conf"
	CADIR="$d"
	SOFTHSM2_CONF="$d/softhsm2.conf"
	export SOFTHSM2_CONF
	if ! "$HSMCA" -c "$CONF" token init --so-pin-source "file:$d/so.pin" \
		>"$WORK/token-init.out" 2>&1; then
		sed 's/^/# /' "$WORK/token-init.out"
		bail "token init for $1 failed"
	fi
}

hsmca() {
	"$HSMCA" -c "$CONF" "$@"
}

# engine_conf: $CADIR/engine.cnf, an OpenSSL configuration that loads the
# libp11 engine for the CA's token, so that openssl and curl
# (OPENSSL_CONF=$CADIR/engine.cnf) use keys in it. A test token: its PIN
# is in the file.
engine_conf() {
	cat >"$CADIR/engine.cnf" <<EOC
openssl_conf = init
[init]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
MODULE_PATH = $SOFTHSM_MODULE
PIN = $(cat "$CADIR/user.pin")
init = 0
EOC
}

# make_csr NAME KEYSPEC SUBJ [ADDEXT]: key and CSR in $WORK/NAME.{key,csr}
# KEYSPEC: ec:P-256 | ec:P-384 | ec:secp256k1 | rsa:2048 | rsa:1024
make_csr() {
	name=$1; spec=$2; subj=$3; ext=${4:-}
	case $spec in
	ec:*) openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${spec#ec:}" \
		-out "$WORK/$name.key" 2>/dev/null ;;
	rsa:*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${spec#rsa:}" \
		-out "$WORK/$name.key" 2>/dev/null ;;
	esac
	if [ -n "$ext" ]; then
		openssl req -new -key "$WORK/$name.key" -subj "$subj" -addext "$ext" \
			-out "$WORK/$name.csr"
	else
		openssl req -new -key "$WORK/$name.key" -subj "$subj" -out "$WORK/$name.csr"
	fi
}

# count_rows: every certificate row in the store, whatever its status.
count_rows() {
	sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM cert'
}

# sigalgs_match CERT: tbsCertificate.signature and signatureAlgorithm are
# the same DER bytes (the field failure of seed 003 had them differ).
sigalgs_match() {
	openssl x509 -in "$1" -outform DER -out "$WORK/cert.der" || return 1
	openssl asn1parse -inform DER -in "$WORK/cert.der" >"$WORK/asn1.txt" || return 1
	# The third element of the TBS (after version and serial), and the
	# second element of the Certificate.
	tbs_off=$(awk '/d=2/ { n++; if (n == 3) { sub(":.*", "", $1); print $1 } }' "$WORK/asn1.txt")
	out_off=$(awk '/d=1/ { n++; if (n == 2) { sub(":.*", "", $1); print $1 } }' "$WORK/asn1.txt")
	[ -n "$tbs_off" ] && [ -n "$out_off" ] || return 1
	der_slice "$tbs_off" >"$WORK/alg.tbs"
	der_slice "$out_off" >"$WORK/alg.out"
	[ -s "$WORK/alg.tbs" ] && cmp -s "$WORK/alg.tbs" "$WORK/alg.out"
}

# der_slice OFFSET: the bytes of the element at OFFSET of $WORK/cert.der.
der_slice() {
	len=$(sed -n "s/^ *$1:d=[0-9]* *hl=\([0-9]*\) *l= *\([0-9]*\).*/\1 \2/p" "$WORK/asn1.txt" |
		awk '{ print $1 + $2 }')
	dd if="$WORK/cert.der" bs=1 skip="$1" count="$len" 2>/dev/null
}

# ---- hsmcad ----

# est_setup NAME: a CA (new_ca NAME + ca init), a server certificate for
# hsmcad, a factory CA and a bootstrap certificate for CN=dev-1, and a
# [daemon] + [est] config listening on a port the kernel picks.
est_setup() {
	new_ca "$1"
	hsmca ca init >/dev/null || bail "ca init failed"
	hsmca ca download 1 >"$CADIR/root.pem"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$CADIR/server.key" -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CADIR/server.csr" 2>/dev/null
	hsmca issue --csr "$CADIR/server.csr" --profile server --chain >"$CADIR/server-chain.pem"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$CADIR/factory.key" -subj "/CN=Factory CA $1" -days 100 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-out "$CADIR/factory.pem" 2>/dev/null
	bootstrap_cert dev-1
	cat >>"$CONF" <<EOC

[daemon]
listen = 127.0.0.1:0
tls-cert = $CADIR/server-chain.pem
tls-key = $CADIR/server.key
workers = 2
timeout = 5s
max-body = 16k
pidfile = $CADIR/hsmcad.pid

[est]
profile = device
bootstrap-ca = $CADIR/factory.pem

[est edge]
profile = edge-ca
bootstrap-ca = $CADIR/factory.pem
cn-match = false
serverkeygen = true
EOC
}

# admin_listener [ROLE [CN]]: after est_setup, the admin API, where CN
# (default dev-1: its bootstrap certificate, from the factory CA) is one
# of ROLE (default auditors).
admin_listener() {
	cat >>"$CONF" <<EOC

[admin]
listen = 127.0.0.1:0
client-ca = $CADIR/factory.pem
${1:-auditors} = CN=${2:-dev-1}
EOC
}

# all_listeners [ROLE]: after est_setup, plain HTTP (http-listen) and the
# admin API too (admin_listener ROLE).
all_listeners() {
	sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0|" "$CONF"
	admin_listener "$@"
}

# bootstrap_cert CN [FACTORY]: a factory-issued certificate in $WORK/CN.boot.{key,pem}
bootstrap_cert() {
	f=${2:-$CADIR/factory}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/$1.boot.key" -subj "/CN=$1" -out "$WORK/$1.boot.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/$1.boot.csr" -CA "$f.pem" -CAkey "$f.key" \
		-CAcreateserial -days 30 -out "$WORK/$1.boot.pem" 2>/dev/null
}

# hsmcad_start: start the daemon in the foreground (backgrounded), wait
# until it answers; sets HSMCAD_PID, PORT and URL. HSMCAD_PRELOAD, if
# set, is the daemon's LD_PRELOAD (not the clients').
hsmcad_start() {
	if [ -n "${HSMCAD_PRELOAD:-}" ]; then
		LD_PRELOAD=$HSMCAD_PRELOAD "$top_builddir/daemon/hsmcad" -c "$CONF" \
			>"$CADIR/hsmcad.log" 2>&1 &
	else
		"$top_builddir/daemon/hsmcad" -c "$CONF" >"$CADIR/hsmcad.log" 2>&1 &
	fi
	HSMCAD_PID=$!
	PORT=
	i=0
	# 30 s at most: three processes under a sanitizer on a loaded machine
	# take a while; a daemon that died ends the wait at once.
	while [ $i -lt 600 ]; do
		PORT=$(sed -n 's/.*EST (mutual TLS) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$CADIR/hsmcad.log")
		if [ -n "$PORT" ] && grep -q "ready:" "$CADIR/hsmcad.log"; then
			break
		fi
		kill -0 "$HSMCAD_PID" 2>/dev/null || break
		i=$((i + 1))
		sleep 0.05
	done
	URL="https://localhost:$PORT/.well-known/est"
	HTTP_PORT=$(sed -n 's/.*HTTP (CRL) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$CADIR/hsmcad.log")
	ADMIN_PORT=$(sed -n 's/.*admin API (mutual TLS) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$CADIR/hsmcad.log")
	if ! grep -q "ready:" "$CADIR/hsmcad.log"; then
		sed 's/^/# hsmcad: /' "$CADIR/hsmcad.log"
		# Still running (hung) or gone: what each process was doing.
		for p in $HSMCAD_PID $(pgrep -P "$HSMCAD_PID" 2>/dev/null); do
			echo "# process $p: $(cat /proc/$p/comm 2>/dev/null || echo gone)" \
				"$(awk '/^State:/ { print $2, $3 }' /proc/$p/status 2>/dev/null)" \
				"wchan $(cat /proc/$p/wchan 2>/dev/null)"
		done
		bail "hsmcad did not start"
	fi
	# Poll until it answers, never a blind sleep.
	i=0
	until curl -sf --cacert "$CADIR/root.pem" "$URL/cacerts" -o /dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { sed 's/^/# hsmcad: /' "$CADIR/hsmcad.log"; bail "hsmcad does not answer"; }
		sleep 0.05
	done
	trap 'hsmcad_stop; cleanup' EXIT
}

hsmcad_stop() {
	if [ -n "${HSMCAD_PID:-}" ]; then
		kill "$HSMCAD_PID" 2>/dev/null
		wait "$HSMCAD_PID" 2>/dev/null
		HSMCAD_PID=
	fi
}

# child_named NAME: the pid of the daemon's child whose comm is NAME.
child_named() {
	for s in /proc/[0-9]*/stat; do
		p=${s#/proc/}; p=${p%/stat}
		[ "$(awk '{ print $4 }' "$s" 2>/dev/null)" = "$HSMCAD_PID" ] || continue
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] && { echo "$p"; return; }
	done
}

# hsmcad_reload: SIGHUP to the running hsmcad; returns once its log says
# it reloaded (or after 10 s; the caller checks what the reload did).
hsmcad_reload() {
	rl_n=$(grep -c "reloaded:" "$CADIR/hsmcad.log")
	kill -HUP "$HSMCAD_PID"
	rl_i=0
	until [ "$(grep -c "reloaded:" "$CADIR/hsmcad.log")" -gt "$rl_n" ] || [ $rl_i -ge 200 ]; do
		rl_i=$((rl_i + 1)); sleep 0.05
	done
}

# rotate_to GEN: the appliance's admin rotates the CA (ca rotate, then
# ca activate GEN), and SIGHUP has the running hsmcad load the generations
# again; returns once it says it reloaded.
rotate_to() {
	expect_ok "ca rotate" hsmca ca rotate
	expect_ok "ca activate $1" hsmca ca activate "$1"
	hsmcad_reload
}

# est_post OP FILE.b64 [CURL ARGS...]: POST a base64 CSR; body in
# $WORK/last.out, HTTP status in $STATUS.
est_post() {
	op=$1; body=$2; shift 2
	STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
		-H "Content-Type: application/pkcs10" --data-binary "@$body" "$@" "$URL/$op")
}

# csr_b64 NAME KEYSPEC SUBJ [ADDEXT]: make_csr, then base64 DER in NAME.b64
csr_b64() {
	make_csr "$@" 2>/dev/null
	openssl req -in "$WORK/$1.csr" -outform DER | base64 >"$WORK/$1.b64"
}

# mime_part FILE N: the body of part N of the multipart answer in FILE
# (the boundary from $WORK/hdr, the headers curl -D wrote), CRs removed.
mime_part() {
	mpb=$(sed -n 's/^[Cc]ontent-[Tt]ype: multipart\/mixed; boundary=\([^[:space:]]*\).*/\1/p' \
		"$WORK/hdr" | tr -d '\r')
	tr -d '\r' <"$1" | awk -v b="--$mpb" -v want="$2" '
		$0 == b || $0 == b "--" { part++; body = 0; next }
		part == want && !body && /^$/ { body = 1; next }
		part == want && body { print }'
}

# p7_certs [FILE [PART]]: the certificates of the base64 PKCS#7 in FILE
# (default $WORK/last.out), or in part PART of the multipart answer in
# FILE, as PEM; the log says what was read if that is not a whole PEM.
# The PEM markers are matched at the start of the line, dashes included:
# a base64 line may hold "END" or "BEGIN" (about one certificate in two
# hundred), and a looser pattern cut such a certificate short (this was
# the "file read back short" seen six times in tests and CI).
p7_certs() {
	p7in=${1:-$WORK/last.out}
	p7pem=$( { if [ -n "${2:-}" ]; then mime_part "$p7in" "$2"; else cat "$p7in"; fi; } |
		base64 -d | openssl pkcs7 -inform DER -print_certs 2>"$WORK/p7.err" |
		sed -n '/^-----BEGIN /,/^-----END /p')
	if [ -n "$p7pem" ] && [ "$(printf '%s\n' "$p7pem" | grep -c '^-----BEGIN ')" -eq \
	    "$(printf '%s\n' "$p7pem" | grep -c '^-----END ')" ]; then
		printf '%s\n' "$p7pem"
		return 0
	fi
	echo "# p7_certs: no whole certificate from $p7in${2:+ part $2}," \
		"$(wc -c <"$p7in") bytes; openssl said: $(head -c 300 "$WORK/p7.err" | tr '\n' ' ')" >&2
	return 1
}

# ---- reservations left behind (reserved-sweep.t, cert-sweep.t) ----

# fault_env: tests/pkcs11-fault's control file ($CTL) and log ($FLOG)
# under $CADIR, in the environment of whatever loads the shim ($SHIM);
# skips the test when the shim is not built. fault SPEC tells the shim
# what to do from now on; it logs what it injected in $FLOG.
fault_env() {
	SHIM="$top_builddir/tests/pkcs11-fault/pkcs11-fault.so"
	[ -r "$SHIM" ] || skip_all "the fault shim is not built (make check builds it)"
	CTL="$CADIR/fault.ctl"
	FLOG="$CADIR/fault.log"
	PKCS11_FAULT_MODULE=$SOFTHSM_MODULE
	PKCS11_FAULT_CONTROL=$CTL
	PKCS11_FAULT_LOG=$FLOG
	export PKCS11_FAULT_MODULE PKCS11_FAULT_CONTROL PKCS11_FAULT_LOG
	: >"$FLOG"
}
# fault_cli: the CLI signs through the shim with -c $CADIR/shim.conf
# (CONF, and hsmcad, use the token directly).
fault_cli() {
	fault_env
	command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
	sed "s|^module = .*|module = $SHIM|" "$CONF" >"$CADIR/shim.conf"
}
# fault_conf: hsmcad and the CLI both reach the token through the shim
# (CONF's module).
fault_conf() {
	fault_env
	sed -i "s|^module = .*|module = $SHIM|" "$CONF"
}
fault() {
	echo "$*" >"$CTL.new" && mv "$CTL.new" "$CTL"
}
# responder_setup NAME: the OCSP responder-key tests' CA (token NAME),
# with an HTTP listener, hsmcad and the CLI reaching the token through
# the fault shim.
responder_setup() {
	command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
	command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
	command -v pkcs11-tool >/dev/null 2>&1 || skip_all "pkcs11-tool not installed"
	est_setup "$1"
	RESPONDER_TOKEN=$1
	sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0|" "$CONF"
	fault_conf
}
# token_privkeys: the private keys in responder_setup's token, "ID LABEL"
# a line (PIN on argv: a throwaway test token only).
token_privkeys() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$RESPONDER_TOKEN" --login \
		--pin "$(cat "$CADIR/user.pin")" --list-objects --type privkey 2>/dev/null |
		awk '/label:/ { l = $2 } /ID:/ { print $2, l }' | sort
}
# key_uri_ids: the CKA_ID of the key URIs on stdin, as pkcs11-tool
# prints it.
key_uri_ids() {
	sed -n 's/.*;id=\([^;]*\).*/\1/p' | tr -d '%' | tr 'A-F' 'a-f' | sort -u
}
# crash_run: hsmcad until the shim kills its signer (hsmcad then exits:
# a signer gone is fatal), 30 s at most.
crash_run() {
	"$top_builddir/daemon/hsmcad" -c "$CONF" >"$CADIR/hsmcad.log" 2>&1 &
	cpid=$!
	i=0; while kill -0 "$cpid" 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done
	kill "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
}
# cert_status SERIAL: the row's status in the store.
cert_status() {
	sqlite3 "$CADIR/hsmca.db" "SELECT status FROM cert WHERE serial = '$1'"
}
# reserved_count: the rows reserved now.
reserved_count() {
	sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status = 'reserved'"
}
# held N: wait until N rows are reserved and the shim has held N
# signatures (the issues are inside C_Sign).
held() {
	i=0
	until [ "$(reserved_count)" -ge "$1" ] &&
	    [ "$(grep -c 'inject C_Sign' "$FLOG")" -ge "$1" ] || [ $i -ge 400 ]; do
		i=$((i + 1)); sleep 0.05
	done
	[ $i -lt 400 ]
}
# killed_issue NAME N: an `hsmca issue` of profile device killed while
# the token signs (fault hang first): it dies between reserving its
# serial and recording its certificate, the Nth reservation left.
killed_issue() {
	make_csr "$1" ec:P-256 "/CN=$1" 2>/dev/null
	"$HSMCA" -c "$CADIR/shim.conf" issue --csr "$WORK/$1.csr" --profile device \
		--out "$WORK/$1.pem" >/dev/null 2>&1 &
	ki_pid=$!
	held "$2" || bail "issue $1 never reached the token"
	kill -9 "$ki_pid"
	wait "$ki_pid" 2>/dev/null
}
