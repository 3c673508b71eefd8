#!/bin/sh
# The main job, on embedded defaults: installs what is needed, builds, and
# runs a demo CA whose keys live in a SoftHSM2 token under ./hsmca-demo.
# hsmcad serves EST over mutual TLS; a device enrolls with its factory
# certificate, renews with the safe flow, and its old certificate is
# revoked: it can no longer renew, and the CRL hsmcad serves lists it.
# Each run starts a fresh demo folder.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"

HSMCA="$top/build/cli/hsmca"
HSMCAD="$top/build/daemon/hsmcad"
HSMCA_HOME=${HSMCA_HOME:-$top/hsmca-demo}
SOFTHSM2_CONF="$HSMCA_HOME/softhsm2.conf"
export HSMCA_HOME SOFTHSM2_CONF
unset HSMCA_CONFIG HSMCA_NOW
SERVER=https://localhost:8443
dev="$HSMCA_HOME/device"
factory="$HSMCA_HOME/factory"

step() { printf '\n==> %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
pid=
stop_daemon() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }; }
trap stop_daemon EXIT

step "A fresh demo folder: $HSMCA_HOME (SoftHSM2 token, PINs, SQLite store)"
[ -f "$HSMCA_HOME/hsmcad.pid" ] && kill "$(cat "$HSMCA_HOME/hsmcad.pid")" 2>/dev/null || true
rm -rf "$HSMCA_HOME"
mkdir -p "$HSMCA_HOME/tokens" "$dev" "$factory"
cat >"$SOFTHSM2_CONF" <<EOC
directories.tokendir = $HSMCA_HOME/tokens
objectstore.backend = file
log.level = ERROR
EOC
# Random PINs in files only we can read: never on a command line.
(umask 077
 openssl rand -hex 12 >"$HSMCA_HOME/user.pin"
 openssl rand -hex 12 >"$HSMCA_HOME/so.pin")
show "$HSMCA" token init --so-pin-source "file:$HSMCA_HOME/so.pin"

step "The CA: a root and an issuing CA, keys generated inside the token"
show "$HSMCA" ca init
show "$HSMCA" ca list
"$HSMCA" ca download 1 >"$HSMCA_HOME/root.pem"

step "hsmcad's own TLS certificate, issued by the CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$HSMCA_HOME/server.key" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$HSMCA_HOME/server.csr" 2>/dev/null
"$HSMCA" issue --csr "$HSMCA_HOME/server.csr" --profile server --chain --out "$HSMCA_HOME/server.pem"

step "The factory: its CA signs a bootstrap certificate into each device"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$factory/factory.key" -subj "/CN=Demo Factory CA" -days 365 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out "$HSMCA_HOME/factory-ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$dev/bootstrap.key" -subj "/CN=device-0001" -out "$factory/device-0001.csr" 2>/dev/null
openssl x509 -req -in "$factory/device-0001.csr" -CA "$HSMCA_HOME/factory-ca.pem" \
	-CAkey "$factory/factory.key" -CAcreateserial -days 365 -out "$dev/bootstrap.pem" 2>/dev/null

step "hsmcad starts: EST over mutual TLS on $SERVER"
"$HSMCAD" >"$HSMCA_HOME/hsmcad.log" 2>&1 &
pid=$!
i=0
until grep -q "ready:" "$HSMCA_HOME/hsmcad.log"; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 $pid 2>/dev/null; then
		cat "$HSMCA_HOME/hsmcad.log"; echo "hsmcad did not start" >&2; exit 1
	fi
	sleep 0.05
done
sed 's/^/    /' "$HSMCA_HOME/hsmcad.log"
EST="--server $SERVER --cacert $HSMCA_HOME/root.pem"

step "The device enrolls with its factory certificate; its new key never leaves it"
# shellcheck disable=SC2086
show "$HSMCA" est enroll $EST --cert "$dev/bootstrap.pem" --key "$dev/bootstrap.key" \
	--subject CN=device-0001 --new-key "$dev/device.key" --out "$dev/device.pem"
first=$(openssl x509 -in "$dev/device.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')

step "Two independent verifiers check it"
# shellcheck disable=SC2086
"$HSMCA" est cacerts $EST --out "$dev/cacerts.pem"
show openssl verify -CAfile "$HSMCA_HOME/root.pem" -untrusted "$dev/cacerts.pem" "$dev/device.pem"
cat "$dev/device.pem" "$dev/cacerts.pem" >"$dev/chain.pem"
certtool --verify-chain --infile "$dev/chain.pem" 2>/dev/null | grep "Chain verification output"

step "Today the certificate is not due for renewal: nothing changes"
# shellcheck disable=SC2086
show "$HSMCA" est renew $EST --cert "$dev/device.pem" --key "$dev/device.key"

step "The device's clock reaches 340 days later (HSMCA_NOW): it renews with a new key, checks the new pair, then swaps"
# shellcheck disable=SC2086
HSMCA_NOW=$(( $(date +%s) + 340 * 86400 )) show "$HSMCA" est renew $EST \
	--cert "$dev/device.pem" --key "$dev/device.key"
show "$HSMCA" cert list

step "The superseded certificate is revoked: it can no longer renew, and the CRL says so"
if "$HSMCA" revoke --help >/dev/null 2>&1; then
	show "$HSMCA" revoke "$first" --reason superseded
	# shellcheck disable=SC2086
	if "$HSMCA" est reenroll $EST --cert "$dev/device.pem.old" --key "$dev/device.key.old" \
	    --new-key "$dev/x.key" --out "$dev/x.pem"; then
		echo "the revoked certificate renewed: this must not happen" >&2
		exit 1
	fi
	show "$HSMCA" cert list --status revoked
	# Relying parties learn it from the CRL hsmcad serves over plain HTTP
	# (the demo's http-listen), signed in the token.
	i=0
	until curl -sf -o "$dev/crl.der" http://127.0.0.1:8080/crl/2.crl &&
	    openssl crl -inform DER -in "$dev/crl.der" -noout -text 2>/dev/null |
	    grep -qi "Serial Number: $first"; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "the CRL did not list the revocation" >&2; exit 1; }
		sleep 0.1
	done
	openssl crl -inform DER -in "$dev/crl.der" -out "$dev/crl.pem"
	printf '$ openssl verify -crl_check ... device.pem.old\n'
	openssl verify -crl_check -CAfile "$HSMCA_HOME/root.pem" -untrusted "$dev/cacerts.pem" \
		-CRLfile "$dev/crl.pem" "$dev/device.pem.old" 2>&1 | grep -i "revoked" || true
	show openssl verify -crl_check -CAfile "$HSMCA_HOME/root.pem" -untrusted "$dev/cacerts.pem" \
		-CRLfile "$dev/crl.pem" "$dev/device.pem"
else
	echo "(hsmca revoke arrives with revocation support)"
fi

step "Done. hsmcad logged one line per request:"
grep "client=" "$HSMCA_HOME/hsmcad.log" | sed 's/^/    /'
echo
echo "Everything is under $HSMCA_HOME; with hsmcad stopped, try:"
echo "  export SOFTHSM2_CONF=$SOFTHSM2_CONF HSMCA_HOME=$HSMCA_HOME"
echo "  $HSMCA ca show 2"
echo "  $HSMCA cert show $first"
