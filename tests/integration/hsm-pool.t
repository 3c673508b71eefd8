#!/bin/sh
# Several threads sign at once through the session pool (see hsm_pool.c).
. "$top_srcdir/tests/integration/lib.sh"
new_ca pool
sed -i 's/^sessions = .*/sessions = 3/' "$CONF"
exec "$top_builddir/tests/integration/hsm_pool" "$CONF"
