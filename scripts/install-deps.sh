#!/bin/sh
# Install the Debian packages hsmca needs to build, test and run its demo.
# Idempotent: packages already present are left alone; safe to run again.
set -eu

PKGS="build-essential autoconf autoconf-archive automake libtool pkg-config
libssl-dev openssl
libp11-dev libp11-kit-dev libengine-pkcs11-openssl opensc softhsm2
libevent-dev libsqlite3-dev sqlite3 libjansson-dev libcmocka-dev libseccomp-dev
gnutls-bin curl ca-certificates jq iproute2 python3"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
