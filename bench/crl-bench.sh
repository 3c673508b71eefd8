#!/bin/sh
# crl-bench.sh: CRL generation and revocation at scale.
#
#   1. one generation with N revoked certificates, written straight into
#      the store with sqlite3 in one transaction (fake DER: a CRL only
#      reads serial, revocation time, reason and notAfter);
#   2. `hsmca crl` (signed in SoftHSM2) against `openssl ca -gencrl`
#      (a P-256 key file, the same curve) over the same entries, from an
#      index.txt with the same serials, dates and reasons;
#   3. the cost of one more revocation with 1,000 and with N certificates
#      already revoked: the whole `hsmca revoke` command (process, store
#      open, one committed UPDATE, fsync), and the store's UPDATE alone
#      (the same statement, 2,000 of them in one transaction).
#
# The last line holds the ratios. Not part of `make check`.
#
# usage: bench/crl-bench.sh [N]          (N default 1000000)
# Environment:
#   top_builddir    build tree holding cli/hsmca (default: ./build, as
#                   scripts/build.sh makes it, else .)
#   SOFTHSM_MODULE  default /usr/lib/softhsm/libsofthsm2.so
#   REVOKES=20      `hsmca revoke` commands timed at each size (mean)
#   KEEP=1          keep the work directory
set -eu

N=${1:-${N:-1000000}}
REVOKES=${REVOKES:-20}
if [ -z "${top_builddir:-}" ] && [ -x ./build/cli/hsmca ]; then
	top_builddir=./build
fi
HSMCA=${top_builddir:-.}/cli/hsmca
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
[ -x "$HSMCA" ] || { echo "$0: no $HSMCA (set top_builddir)" >&2; exit 2; }
[ "$N" -ge 2000 ] || { echo "$0: N must be at least 2000" >&2; exit 2; }
for tool in sqlite3 openssl softhsm2-util; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 2; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/crl-bench.XXXXXX")
cleanup() { [ "${KEEP:-0}" = 1 ] && echo "work directory: $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- a CA in a fresh SoftHSM2 token ----
mkdir -p "$W/tokens" "$W/ossl"
(umask 077; echo bench-user-pin >"$W/user.pin"; echo bench-so-pin >"$W/so.pin")
cat >"$W/softhsm2.conf" <<EOF
directories.tokendir = $W/tokens
objectstore.backend = file
log.level = ERROR
EOF
cat >"$W/hsmca.conf" <<EOF
[hsm]
module = $SOFTHSM_MODULE
token = pkcs11:token=crlbench
pin-source = file:$W/user.pin

[store]
path = $W/hsmca.db

[ca]
subject = CN=CRL Bench Device CA
key-type = ec-p256
validity = 730d
root-subject = CN=CRL Bench Root CA
root-key-type = ec-p256
EOF
SOFTHSM2_CONF=$W/softhsm2.conf
export SOFTHSM2_CONF
hsmca() { "$HSMCA" -c "$W/hsmca.conf" "$@"; }
hsmca token init --so-pin-source "file:$W/so.pin" >/dev/null
hsmca ca init >/dev/null
GEN=2
DB=$W/hsmca.db

# ms: milliseconds since the epoch
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# add_revoked COUNT: COUNT revoked rows of generation GEN, in one
# transaction: random 128-bit serials (first octet 0x10-0x7f), revoked in
# the last 30 days for unspecified / keyCompromise / superseded /
# cessationOfOperation, valid for a year more.
add_revoked() {
	now=$(date +%s)
	sqlite3 "$DB" <<EOF
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
INSERT INTO cert (issuer_id, serial, status, subject, not_before, not_after,
    der, created_at, revoked_at, revoke_reason)
SELECT $GEN,
    printf('%02x', 16 + abs(random()) % 112) || lower(hex(randomblob(15))),
    'revoked', 'CN=bench-' || i, $now - 86400 * 60, $now + 86400 * 365,
    x'3000', $now - 86400 * 60, $now - abs(random()) % (86400 * 30),
    CASE abs(random()) % 4 WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 4 ELSE 5 END
FROM n;
COMMIT;
EOF
	# Written with synchronous=OFF: flush it now, or the first fsync of
	# the store (in the first timed revocation) pays for all of it.
	sync "$DB"
}

# add_valid PREFIX COUNT: COUNT valid certificates with serials PREFIX0001...
add_valid() {
	now=$(date +%s)
	sqlite3 "$DB" <<EOF
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO cert (issuer_id, serial, status, subject, not_before, not_after,
    der, created_at)
SELECT $GEN, '$1' || printf('%04x', i), 'valid', 'CN=valid-' || i,
    $now - 86400, $now + 86400 * 365, x'3000', $now - 86400 FROM n;
COMMIT;
EOF
}

# time_revokes PREFIX: mean milliseconds of one `hsmca revoke`, over REVOKES
time_revokes() {
	t0=$(ms)
	i=1
	while [ "$i" -le "$REVOKES" ]; do
		hsmca revoke "$1$(printf '%04x' "$i")" --reason keyCompromise >/dev/null
		i=$((i + 1))
	done
	t1=$(ms)
	echo $(( (t1 - t0) * 1000 / REVOKES ))	# microseconds
}

# time_updates PREFIX COUNT: mean microseconds of the store's revocation
# UPDATE (lib/store.c, STMT_CERT_REVOKE), COUNT of them in one transaction
time_updates() {
	i=1
	{
		echo "BEGIN;"
		while [ "$i" -le "$2" ]; do
			printf "UPDATE cert SET status = 'revoked', revoked_at = %s, revoke_reason = 1 WHERE serial = '%s%04x' AND issuer_id = %s AND (status = 'valid' OR (status = 'revoked' AND revoke_reason = 6 AND 1 != 6));\n" \
			    "$(date +%s)" "$1" "$i" "$GEN"
			i=$((i + 1))
		done
		echo "COMMIT;"
	} >"$W/updates.sql"
	# The cost of starting sqlite3 and opening the store, subtracted.
	t0=$(ms); sqlite3 "$DB" "SELECT 1" >/dev/null; t1=$(ms)
	base=$((t1 - t0))
	t0=$(ms); sqlite3 "$DB" <"$W/updates.sql"; t1=$(ms)
	changed=$(sqlite3 "$DB" "SELECT count(*) FROM cert WHERE serial LIKE '$1%' AND status = 'revoked'")
	[ "$changed" -eq "$2" ] || { echo "$0: $changed of $2 updates applied" >&2; exit 1; }
	echo $(( (t1 - t0 - base) * 1000 / $2 ))
}

# ---- one revocation at 1,000 revoked ----
add_revoked 1000
add_valid 0a0a0a0a 200
add_valid 0b0b0b0b 200
add_valid 0c0c0c0c 2000
add_valid 0d0d0d0d 2000
sync "$DB"
rev_small=$(time_revokes 0a0a0a0a)
upd_small=$(time_updates 0c0c0c0c 2000)

# ---- N revoked ----
t0=$(ms)
add_revoked $((N - 1000 - REVOKES - 2000))
t1=$(ms)
total=$(sqlite3 "$DB" "SELECT count(*) FROM cert WHERE issuer_id = $GEN AND status = 'revoked'")
echo "store: $total revoked certificates of generation $GEN (inserted in $((t1 - t0)) ms)"
rev_big=$(time_revokes 0b0b0b0b)
upd_big=$(time_updates 0d0d0d0d 2000)
total=$(sqlite3 "$DB" "SELECT count(*) FROM cert WHERE issuer_id = $GEN AND status = 'revoked'")

# ---- the same entries for openssl ca ----
# index.txt: R <TAB> notAfter <TAB> revocationDate[,reason] <TAB> SERIAL <TAB> unknown <TAB> subject
sqlite3 -separator '	' "$DB" "SELECT 'R',
    substr(strftime('%Y%m%d%H%M%S', not_after, 'unixepoch'), 3) || 'Z',
    substr(strftime('%Y%m%d%H%M%S', revoked_at, 'unixepoch'), 3) || 'Z' ||
      CASE revoke_reason WHEN 1 THEN ',keyCompromise' WHEN 4 THEN ',superseded'
      WHEN 5 THEN ',cessationOfOperation' ELSE '' END,
    upper(serial), 'unknown', '/' || subject
    FROM cert WHERE issuer_id = $GEN AND status = 'revoked'" >"$W/ossl/index.txt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/ossl/ca.key" 2>/dev/null
openssl req -x509 -new -key "$W/ossl/ca.key" -subj "/CN=CRL Bench OpenSSL CA" -days 730 \
	-addext keyUsage=critical,keyCertSign,cRLSign -out "$W/ossl/ca.pem" 2>/dev/null
echo 01 >"$W/ossl/crlnumber"
cat >"$W/ossl/ca.cnf" <<EOF
[ ca ]
default_ca = bench
[ bench ]
dir = $W/ossl
database = \$dir/index.txt
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
crlnumber = \$dir/crlnumber
unique_subject = no
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF

# ---- the CRLs: ROUNDS alternating runs of each side, medians ----
ROUNDS=${ROUNDS:-5}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
run_hsmca() {
	t0=$(ms)
	/usr/bin/time -f %M -o "$W/hsmca.rss" "$HSMCA" -c "$W/hsmca.conf" crl --ca $GEN --out "$W/hsmca.crl" >"$W/hsmca.out"
	t1=$(ms)
	echo $((t1 - t0)) >>"$W/t_hsmca"
}
run_ossl() {
	t0=$(ms)
	/usr/bin/time -f %M -o "$W/ossl.rss" openssl ca -config "$W/ossl/ca.cnf" -gencrl -out "$W/ossl.crl" 2>"$W/ossl.err"
	t1=$(ms)
	echo $((t1 - t0)) >>"$W/t_ossl"
}
: >"$W/t_hsmca"
: >"$W/t_ossl"
r=1
while [ $r -le "$ROUNDS" ]; do
	if [ $((r % 2)) -eq 1 ]; then run_hsmca; run_ossl; else run_ossl; run_hsmca; fi
	echo "round $r: hsmca $(tail -1 "$W/t_hsmca") ms, openssl $(tail -1 "$W/t_ossl") ms"
	r=$((r + 1))
done
t_hsmca=$(median <"$W/t_hsmca")
t_ossl=$(median <"$W/t_ossl")
grep -q " $total revoked" "$W/hsmca.out" || { echo "$0: hsmca crl did not list $total entries:" >&2; cat "$W/hsmca.out" >&2; exit 1; }
hsmca ca download $GEN >"$W/ica.pem"
openssl crl -in "$W/hsmca.crl" -noout -verify -CAfile "$W/ica.pem" 2>"$W/verify.err" || true
grep -q "verify OK" "$W/verify.err" || { echo "$0: the hsmca CRL does not verify" >&2; exit 1; }

echo "hsmca crl (median of $ROUNDS):          $t_hsmca ms, $(wc -c <"$W/hsmca.crl") bytes PEM, peak RSS $(cat "$W/hsmca.rss") KiB ($(cat "$W/hsmca.out" | sed 's/;.*//'))"
echo "openssl ca -gencrl (median of $ROUNDS): $t_ossl ms, $(wc -c <"$W/ossl.crl") bytes PEM, peak RSS $(cat "$W/ossl.rss") KiB"
echo "one revocation, hsmca revoke (whole command, mean of $REVOKES): $rev_small us at ~1000 revoked, $rev_big us at $total revoked"
echo "one revocation, store UPDATE (mean of 2000 in one transaction): $upd_small us at ~3000 revoked, $upd_big us at $total revoked"
awk -v a="$t_hsmca" -v b="$t_ossl" -v c="$rev_big" -v d="$rev_small" -v f="$upd_big" -v g="$upd_small" -v n="$total" 'BEGIN {
	printf "ratios: hsmca crl / openssl ca -gencrl = %.2f at %d entries; one revocation at %d / at 1000: hsmca revoke %.2f, store UPDATE %.2f\n",
	    a / b, n, n, c / d, (g > 0 ? f / g : 0) }'
