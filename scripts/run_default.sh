#!/usr/bin/env bash
# Main job on its embedded default: the CPU recipe twins (recipes/cpu_tiny_{recompute,a3po}.yaml:
# AReaL's asynchronous GRPO loop, tiny local model, synthetic task, vLLM CPU rollouts), each run by
# AReaL's own local scheduler from the recipe header's launch line, then the side-by-side report.
# Sets up .venv first if needed. Extra args go to `a3po compare`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup_env.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/a3po compare --out runs/default "$@"
