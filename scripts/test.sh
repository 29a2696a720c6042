#!/usr/bin/env bash
# Runs the whole test suite on CPU (sets up .venv first if needed). Extra args go to pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup_env.sh
export PYTHONUNBUFFERED=1
.venv/bin/ruff check areal_a3po tests
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
