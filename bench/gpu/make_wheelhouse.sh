#!/usr/bin/env bash
# Download every wheel `make setup` installs, except PyTorch, into bench/out/wheelhouse, so a
# GPU machine with only PyTorch (and no network) can install the project offline; see
# bench/gpu/README. Versions are this venv's (the set the tests ran with) plus the build
# backend (setuptools, wheel) that `pip install -e .` needs.
#
#   bench/gpu/make_wheelhouse.sh                       # for this machine's Python and platform
#   PY_VERSION=3.12 bench/gpu/make_wheelhouse.sh       # the GPU machine runs another Python
#   PY_VERSION=3.12 bench/gpu/make_wheelhouse.sh --image
#       only what a PyTorch image with the usual ML stack lacks (bench/gpu/image-requirements.txt,
#       about 9 MB) -> bench/out/wheelhouse-image; installed there by bench/gpu/run_on_image.sh
#
# Environment: PYTHON (default .venv/bin/python), WHEELHOUSE (default bench/out/wheelhouse),
# PY_VERSION (target Python, default this one's), PLATFORMS (pip --platform tags used when
# PY_VERSION differs; default manylinux_2_28_x86_64 manylinux2014_x86_64).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-.venv/bin/python}
OUT=${WHEELHOUSE:-bench/out/wheelhouse}
HERE_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_VERSION=${PY_VERSION:-$HERE_VERSION}
PLATFORMS=${PLATFORMS:-manylinux_2_28_x86_64 manylinux2014_x86_64}

if [ "${1:-}" = "--image" ]; then
  OUT=${WHEELHOUSE:-bench/out/wheelhouse-image}
  mkdir -p "$OUT"
  reqs="$OUT/requirements.txt"
  grep -vE '^\s*(#|$)' bench/gpu/image-requirements.txt > "$reqs"
else
  mkdir -p "$OUT"
  reqs="$OUT/requirements.txt"
  # torch, its CUDA/CPU runtime and the project itself come from elsewhere
  "$PYTHON" -m pip freeze --all --exclude-editable \
    | grep -viE '^(torch|triton|nvidia-|epochwatch)([=<> @]|$)' \
    | grep -vE '^(-e |#)' > "$reqs"
  grep -qiE '^wheel==' "$reqs" || echo "wheel" >> "$reqs"   # pyproject's build-system needs it
fi

target=()
if [ "$PY_VERSION" != "$HERE_VERSION" ]; then
  target=(--python-version "$PY_VERSION" --implementation cp)
  for p in $PLATFORMS; do target+=(--platform "$p"); done
fi
echo "wheelhouse: $(wc -l < "$reqs") packages for Python $PY_VERSION -> $OUT" >&2
"$PYTHON" -m pip download --only-binary=:all: --no-deps "${target[@]}" -d "$OUT" -r "$reqs"
echo "wheelhouse: $(ls "$OUT"/*.whl | wc -l) wheels, $(du -sh "$OUT" | cut -f1)" >&2
