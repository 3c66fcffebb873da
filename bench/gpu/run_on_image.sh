#!/usr/bin/env bash
# Run the GPU benchmark on a machine whose Python already holds PyTorch and the usual ML stack
# but not the rest of this project's needs, with no network: the wheels fetched here by
# `bench/gpu/make_wheelhouse.sh --image` are installed into a private folder (nothing of the
# machine's own is touched), put on PYTHONPATH, and `python -m bench.run_gpu` runs with the
# arguments given. The JSON line also goes to $OUT/bench-gpu.json when OUT is set.
#
#   bench/gpu/run_on_image.sh                     # the CUDA run, as make bench-gpu
#   bench/gpu/run_on_image.sh --smoke --device cpu
#
# Environment: PYTHON (default python3), WHEELS (default bench/out/wheelhouse-image),
# SITE (where they are installed, default /tmp/epochwatch-site).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-bench/out/wheelhouse-image}
SITE=${SITE:-/tmp/epochwatch-site}
json_out=${OUT:-bench/out}/bench-gpu.json

ls "$WHEELS"/*.whl > /dev/null || { echo "run_on_image: no wheels in $WHEELS (make_wheelhouse.sh --image)" >&2; exit 2; }
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$PYTHON" - <<'PY'
from importlib.metadata import version
names = ("torch", "diffusers", "transformers", "peft", "accelerate", "huggingface-hub", "pydantic")
print("run_on_image: " + ", ".join(f"{n} {version(n)}" for n in names))
PY
mkdir -p "$(dirname "$json_out")"
exec "$PYTHON" -m bench.run_gpu --json-out "$json_out" "$@"
