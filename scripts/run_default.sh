#!/usr/bin/env bash
# Main job on its embedded default: AReaL's real asynchronous GRPO loop on CPU (tiny local model,
# synthetic task, vLLM CPU rollouts), trained once with the recompute baseline and once with A-3PO,
# then the side-by-side report. Sets up .venv first if needed. Extra args go to `a3po compare`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup_env.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/a3po compare --out runs/default "$@"
