#!/usr/bin/env bash
# Compiles gotrace/native's C sources into gotrace.native._fastpath, next to them, for the
# Python given (default: the project's .venv), when the sources, this script or that Python
# changed since the last build. Needs gcc and the Python headers (Debian's python3-dev).
#
#   scripts/build_native.sh [PYTHON]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
DIR="$ROOT/gotrace/native"
die() { echo "build_native: error: $*" >&2; exit 1; }

read -r include suffix < <("$PY" -c 'import sysconfig
print(sysconfig.get_paths()["include"], sysconfig.get_config_var("EXT_SUFFIX"))') \
    || die "cannot ask $PY for its include directory"
[ -f "$include/Python.h" ] || die "no Python.h in $include (install python3-dev)"
out="$DIR/_fastpath$suffix"
stamp="$DIR/.build-stamp"
want=$(cat "$DIR"/*.c "$DIR"/*.h "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
want="$want $include $suffix"
if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
echo "build_native: compiling gotrace/native -> $(basename "$out")" >&2
gcc -O2 -fPIC -shared -std=c11 -D_GNU_SOURCE -Wall -Wextra -fvisibility=hidden \
    -I"$include" -o "$out.tmp" "$DIR"/*.c \
    || { rm -f "$out.tmp"; die "compiling gotrace/native/*.c failed (gcc's messages above)"; }
mv "$out.tmp" "$out"
echo "$want" >"$stamp"
