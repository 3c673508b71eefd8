#!/bin/sh
# Configure and build hsmca in ./build (out of tree). Extra arguments go to
# configure. Used by demo.sh and test.sh.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p build
cd build
if [ ! -f Makefile ] || [ "${HSMCA_RECONFIGURE:-0}" = 1 ] || [ "$#" -gt 0 ]; then
	../configure --enable-werror "$@" >configure.out 2>&1 || { cat configure.out; exit 1; }
fi
make -j"$(nproc)" >make.out 2>&1 || { cat make.out; exit 1; }
echo "build: ok ($top/build)"
