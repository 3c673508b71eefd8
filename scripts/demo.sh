#!/bin/sh
# The main job, on embedded defaults: installs what is needed, builds, and
# runs a demo CA whose keys live in a SoftHSM2 token under ./hsmca-demo:
# a root and an issuing CA generated in the token, a device enrolled,
# renewed with a new key, and both certificates checked by two verifiers.
# Each run starts a fresh demo folder.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"

HSMCA="$top/build/cli/hsmca"
HSMCA_HOME=${HSMCA_HOME:-$top/hsmca-demo}
SOFTHSM2_CONF="$HSMCA_HOME/softhsm2.conf"
export HSMCA_HOME SOFTHSM2_CONF
unset HSMCA_CONFIG

step() { printf '\n==> %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "A fresh demo folder: $HSMCA_HOME (SoftHSM2 token, PINs, SQLite store)"
rm -rf "$HSMCA_HOME"
mkdir -p "$HSMCA_HOME/tokens" "$HSMCA_HOME/device"
cat >"$SOFTHSM2_CONF" <<EOC
directories.tokendir = $HSMCA_HOME/tokens
objectstore.backend = file
log.level = ERROR
EOC
# Random PINs in files only readable by us: never on a command line.
(umask 077
 openssl rand -hex 12 >"$HSMCA_HOME/user.pin"
 openssl rand -hex 12 >"$HSMCA_HOME/so.pin")
show "$HSMCA" token init --so-pin-source "file:$HSMCA_HOME/so.pin"

step "The CA: a root and an issuing CA, keys generated inside the token"
show "$HSMCA" ca init
show "$HSMCA" ca list
"$HSMCA" ca download 1 >"$HSMCA_HOME/root.pem"
"$HSMCA" ca download 2 >"$HSMCA_HOME/issuing-ca.pem"

step "A device enrolls: its key stays on the device, only its CSR travels"
dev="$HSMCA_HOME/device"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dev/device.key"
openssl req -new -key "$dev/device.key" -subj "/CN=device-0001" \
	-addext "subjectAltName=URI:urn:hsmca-demo:device-0001" -out "$dev/device.csr"
show "$HSMCA" issue --csr "$dev/device.csr" --profile device --out "$dev/device.pem"
first=$(openssl x509 -in "$dev/device.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f)

step "Two independent verifiers check it"
show openssl verify -CAfile "$HSMCA_HOME/root.pem" -untrusted "$HSMCA_HOME/issuing-ca.pem" "$dev/device.pem"
cat "$dev/device.pem" "$HSMCA_HOME/issuing-ca.pem" "$HSMCA_HOME/root.pem" >"$dev/chain.pem"
certtool --verify-chain --infile "$dev/chain.pem" | grep "Chain verification output"

step "340 days later the device renews with a new key, same subject"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dev/device.new.key"
openssl req -new -key "$dev/device.new.key" -subj "/CN=device-0001" \
	-addext "subjectAltName=URI:urn:hsmca-demo:device-0001" -out "$dev/device.new.csr"
HSMCA_NOW=$(( $(date +%s) + 340 * 86400 ))
export HSMCA_NOW
show "$HSMCA" issue --csr "$dev/device.new.csr" --profile device --out "$dev/device.new.pem"
openssl verify -attime "$HSMCA_NOW" -CAfile "$HSMCA_HOME/root.pem" \
	-untrusted "$HSMCA_HOME/issuing-ca.pem" "$dev/device.new.pem"
mv "$dev/device.new.key" "$dev/device.key"
mv "$dev/device.new.pem" "$dev/device.pem"
show "$HSMCA" cert list
unset HSMCA_NOW

if "$HSMCA" revoke --help >/dev/null 2>&1; then
	step "The old certificate is revoked"
	show "$HSMCA" revoke "$first" --reason superseded
	show "$HSMCA" cert list
fi

step "Done. Everything is under $HSMCA_HOME; try:"
echo "  export SOFTHSM2_CONF=$SOFTHSM2_CONF HSMCA_HOME=$HSMCA_HOME"
echo "  $HSMCA ca show 2"
echo "  $HSMCA cert show $first"
