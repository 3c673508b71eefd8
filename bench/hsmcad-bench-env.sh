#!/bin/sh
# hsmcad-bench-env.sh start|stop: a real hsmcad on a fresh SoftHSM2 token
# (EC P-256 issuing CA, every certificate recorded and verified) for the
# benchmarks. `start` prints shell assignments for eval: HSMCAD_URL,
# HSMCAD_CERT, HSMCAD_KEY, HSMCAD_CACERT, HSMCAD_PID, HSMCAD_PORT.
# Environment: BENCH_DIR (default /tmp/hsmca-bench), WORKERS (0: cores),
# SESSIONS (4), TIMEOUT (10s), CA_KEY (ec-p256 | rsa-2048), HTTP (1: also the
# plain HTTP listener for CRLs and OCSP; prints HSMCAD_HTTP_PORT), ADMIN (1:
# also the admin API, the client certificate an operator; prints
# HSMCAD_ADMIN_PORT and HSMCAD_ADMIN_URL), BUILD (the
# build directory holding cli/hsmca and daemon/hsmcad; default ./build).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
D=${BENCH_DIR:-/tmp/hsmca-bench}
BUILD=${BUILD:-$top/build}
HSMCA="$BUILD/cli/hsmca"
HSMCAD="$BUILD/daemon/hsmcad"

if [ "${1:-start}" = stop ]; then
	[ -f "$D/hsmcad.pid" ] && kill "$(cat "$D/hsmcad.pid")" 2>/dev/null || true
	exit 0
fi
[ -x "$HSMCAD" ] || "$top/scripts/build.sh" >&2
rm -rf "$D"
mkdir -p "$D/tokens"
export SOFTHSM2_CONF="$D/softhsm2.conf"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$D" >"$SOFTHSM2_CONF"
(umask 077; openssl rand -hex 8 >"$D/user.pin"; openssl rand -hex 8 >"$D/so.pin")
cat >"$D/hsmca.conf" <<EOC
[hsm]
module = ${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
token = pkcs11:token=bench
pin-source = file:$D/user.pin
sessions = ${SESSIONS:-4}
[store]
path = $D/hsmca.db
[ca]
subject = CN=hsmca Bench CA
key-type = ${CA_KEY:-ec-p256}
crl-url = http://127.0.0.1:8080/crl/%g.crl
ocsp-url = http://127.0.0.1:8080/ocsp
[daemon]
listen = 127.0.0.1:0
tls-cert = $D/server-chain.pem
tls-key = $D/server.key
workers = ${WORKERS:-0}
timeout = ${TIMEOUT:-10s}
max-connections = 4096
$(if [ "${HTTP:-0}" = 1 ]; then echo "http-listen = 127.0.0.1:0"; fi)
pidfile = $D/hsmcad.pid
$(if [ "${ADMIN:-0}" = 1 ]; then printf '[admin]\nlisten = 127.0.0.1:0\nclient-ca = %s/factory.pem\noperators = CN=bench-client\n' "$D"; fi)
[est]
profile = device
bootstrap-ca = $D/factory.pem
cn-match = false
EOC
H="$HSMCA -c $D/hsmca.conf"
$H token init --so-pin-source "file:$D/so.pin" >/dev/null
$H ca init >/dev/null
$H ca download 1 >"$D/root.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/server.key" \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$D/server.csr" 2>/dev/null
$H issue --csr "$D/server.csr" --profile server --chain >"$D/server-chain.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/factory.key" \
	-subj "/CN=Bench Factory CA" -days 30 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$D/factory.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/client.key" \
	-subj "/CN=bench-client" -out "$D/client.csr" 2>/dev/null
openssl x509 -req -in "$D/client.csr" -CA "$D/factory.pem" -CAkey "$D/factory.key" \
	-CAcreateserial -days 30 -out "$D/client.pem" 2>/dev/null
"$HSMCAD" -c "$D/hsmca.conf" >"$D/hsmcad.log" 2>&1 &
pid=$!
i=0
until grep -q "ready:" "$D/hsmcad.log"; do
	i=$((i + 1))
	[ $i -lt 200 ] && kill -0 $pid 2>/dev/null || { cat "$D/hsmcad.log" >&2; exit 1; }
	sleep 0.05
done
port=$(sed -n 's/.*EST (mutual TLS) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$D/hsmcad.log")
echo "HSMCAD_PID=$pid HSMCAD_PORT=$port"
if [ "${HTTP:-0}" = 1 ]; then
	hport=$(sed -n 's/.*HTTP (CRL) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$D/hsmcad.log")
	echo "HSMCAD_HTTP_PORT=$hport"
fi
if [ "${ADMIN:-0}" = 1 ]; then
	aport=$(sed -n 's/.*admin API (mutual TLS) listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$D/hsmcad.log")
	echo "HSMCAD_ADMIN_PORT=$aport HSMCAD_ADMIN_URL=https://localhost:$aport"
fi
echo "HSMCAD_URL=https://localhost:$port/.well-known/est/simpleenroll"
echo "HSMCAD_CERT=$D/client.pem HSMCAD_KEY=$D/client.key HSMCAD_CACERT=$D/root.pem"
echo "SOFTHSM2_CONF=$SOFTHSM2_CONF"
