#!/usr/bin/env bash
# Runs the whole test suite on CPU (sets up .venv first if needed). Extra args go to pytest.
# --quick: leave out the tests marked slow (end-to-end, multi-process): the inner loop. CI runs all.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
args=()
for a in "$@"; do
  if [ "$a" = --quick ]; then args+=(-m "not slow"); else args+=("$a"); fi
done
scripts/setup_env.sh
export PYTHONUNBUFFERED=1
.venv/bin/ruff check areal_a3po tests
.venv/bin/python -m pytest -q -p no:cacheprovider ${args[@]+"${args[@]}"}
