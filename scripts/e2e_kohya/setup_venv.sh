#!/usr/bin/env bash
# Creates kohya's own virtualenv for the e2e run (never the project's .venv):
#   scripts/e2e_kohya/setup_venv.sh SD_SCRIPTS_DIR VENV_DIR
# Idempotent: a stamp file holding the sd-scripts commit skips the work next time.
set -euo pipefail
sd="$(cd "$1" && pwd)"; venv="$2"
here="$(cd "$(dirname "$0")" && pwd)"
commit="$(git -C "$sd" rev-parse HEAD 2>/dev/null || echo unknown)"
stamp="$venv/.e2e-installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$commit" ]]; then exit 0; fi
py="${PY:-python3}"
test -x "$venv/bin/python" || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
# torch: the CPU build this machine carries (same as the project's). sd-scripts imports
# torchvision but does not list it; the only torchvision for torch 2.13.0 is a CUDA build
# whose C extension cannot load beside CPU torch: tv_shim.py lets it import (see docs).
"${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" --no-deps "${TORCHVISION_SPEC:-torchvision==0.28.0}"
# sd-scripts' own pins; its last line `-e .` installs its `library` package in place.
(cd "$sd" && "${pip[@]}" -r requirements.txt)
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$here/tv_shim.py" "$site/epochwatch_e2e_tv_shim.py"
echo "import epochwatch_e2e_tv_shim" > "$site/epochwatch_e2e_tv_shim.pth"
"$venv/bin/python" -c 'import torchvision.transforms, torch; print("kohya venv: torch", torch.__version__)'
echo "$commit" > "$stamp"
