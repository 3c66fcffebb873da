#!/usr/bin/env bash
# Run a command (the test suite) in an environment that owes nothing to this machine's
# user settings: empty git configs, a throwaway HOME and XDG folders, an explicit locale and
# time zone, no inherited PYTHONPATH or Hugging Face cache variables. Installation (make setup)
# is not run through this: it keeps the machine's pip configuration (package mirrors).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/epochwatch-hermetic.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/config" "$scratch/cache" "$scratch/data" "$scratch/state"
: > "$scratch/gitconfig-global"
: > "$scratch/gitconfig-system"

# Hugging Face and PyTorch cache/location variables: a test must never find a model there.
for name in $(env | sed -n 's/^\(HF_[A-Za-z0-9_]*\|HUGGINGFACE_[A-Za-z0-9_]*\|TRANSFORMERS_CACHE\|DIFFUSERS_CACHE\|TORCH_HOME\|XDG_[A-Za-z0-9_]*\|GIT_[A-Za-z0-9_]*\|PYTHON[A-Za-z0-9_]*\|LC_[A-Za-z]*\)=.*/\1/p'); do
    unset "$name"
done

export HOME="$scratch/home"
export XDG_CONFIG_HOME="$scratch/config" XDG_CACHE_HOME="$scratch/cache"
export XDG_DATA_HOME="$scratch/data" XDG_STATE_HOME="$scratch/state"
export GIT_CONFIG_GLOBAL="$scratch/gitconfig-global" GIT_CONFIG_SYSTEM="$scratch/gitconfig-system"
export GIT_CONFIG_NOSYSTEM=1
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The project's own folder, not an inherited path: child processes (`python -m watcher`) import
# this checkout's code.
export PYTHONPATH="$repo"
export EPOCHWATCH_HERMETIC=1
cd "$repo"
exec "$@"
