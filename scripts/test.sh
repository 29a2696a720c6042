#!/usr/bin/env bash
# Runs the whole test suite on CPU (sets up .venv first if needed). Extra args go to pytest.
# --quick: leave out the tests marked slow (end-to-end, multi-process): the inner loop. CI runs all.
# Legs: 1. areal 1.0.4 (.venv), whole suite; 2. AReaL 2.0.0 (.venv-areal2), whole suite but the
# tests marked version_independent;
# 3. AReaL main snapshot (PYTHONPATH=.areal-main over .venv-areal2): activation, loss parity, FSDP
# engine, mismatch monitor, padded and packed loss inputs, update-fidelity probe, multi-turn and
# agent token versions. Legs 2-3 need the snapshots in ../shared/vendor (CI has
# them; elsewhere they are skipped).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
args=() quick=0
for a in "$@"; do
  if [ "$a" = --quick ]; then quick=1; else args+=("$a"); fi
done
# Legs 2-3 leave out tests marked version_independent (they read no AReaL code that differs).
if [ $quick = 1 ]; then m1="not slow" m2="not slow and not version_independent"
else m1="" m2="not version_independent"; fi
scripts/setup_env.sh
export PYTHONUNBUFFERED=1
.venv/bin/ruff check areal_a3po tests
pytest=(-m pytest -q -p no:cacheprovider)
rc=0
echo "=== leg 1/3: areal 1.0.4 (.venv), whole suite"
.venv/bin/python "${pytest[@]}" ${m1:+-m "$m1"} ${args[@]+"${args[@]}"} || rc=1
vendor=$(realpath -m "$root/../shared/vendor")
if [ ! -f "$vendor/areal-2.0.0.tar.gz" ]; then
  echo "=== legs 2-3 (AReaL 2.0) skipped: $vendor/areal-2.0.0.tar.gz not found (CI keeps AReaL snapshots there)"
  exit $rc
fi
t0=$SECONDS
scripts/setup_env.sh --areal "$vendor/areal-2.0.0.tar.gz" .venv-areal2
echo "AReaL 2.0.0 environment ready in $((SECONDS - t0)) s"
echo "=== leg 2/3: AReaL 2.0.0 (.venv-areal2), whole suite"
.venv-areal2/bin/python "${pytest[@]}" -m "$m2" ${args[@]+"${args[@]}"} || rc=1
main=$(ls "$vendor"/areal-main-*.tar.gz 2>/dev/null | head -n 1)
if [ -z "$main" ]; then
  echo "=== leg 3/3 skipped: no areal-main-*.tar.gz in $vendor"
  exit $rc
fi
scripts/setup_env.sh --overlay "$main" .areal-main
echo "=== leg 3/3: AReaL $(basename "$main" .tar.gz) (.areal-main over .venv-areal2): activation, loss parity, FSDP engine, version race, mismatch monitor, padded inputs, update-fidelity probe, multi-turn versions"
PYTHONPATH="$root/.areal-main" .venv-areal2/bin/python "${pytest[@]}" tests/test_activation.py \
  tests/test_areal_parity.py tests/test_fsdp_actor.py tests/test_areal2_config.py \
  tests/test_areal2_fsdp.py tests/test_version_race.py tests/test_mismatch.py \
  tests/test_padded_inputs.py tests/test_update_fidelity.py tests/test_multi_turn_versions.py -m "$m2" ${args[@]+"${args[@]}"} || rc=1
exit $rc
