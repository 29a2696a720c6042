"""A run killed mid-way and relaunched with the same header line continues through AReaL's recover.

The ``single-controller, local`` line of ``recipes/cpu_tiny_a3po.yaml`` (``recover.mode: on``) runs
``hybrid`` for STEPS steps with a recover checkpoint every FREQ steps; the whole process group
(controller, AReaL's workers, the vLLM CPU server) gets SIGKILL once step KILL_AFTER is in
tensorboard, and the same line is launched again. Checked: nothing of the killed run is left
running; the second run starts after the last checkpoint (AReaL's ``RecoverHandler``), logs to the
same tensorboard steps, its weight versions continue (token lags >= 0, equal to AReaL's own
V - v, within the staleness cap), and ``hybrid``'s calibration follows the global step with its
state restored from the file the plugin wrote beside AReaL's checkpoint. AReaL's evaluator runs
every EVAL_FREQ steps (on the task's prompts, ``harness.TINY_EVALUATION``): the merged run's
evaluations fall on the steps AReaL's own ``Evaluator`` picks in an uninterrupted run, although
AReaL checkpoints before the evaluator's check of the step (the plugin's
``coupling.recover.evaluator_after_check``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from areal_a3po import keys
from areal_a3po.compare import procs, runner
from areal_a3po.compare.progress import steps_logged
from areal_a3po.report import EVAL_REWARD_KEYS, load_scalars
from areal_a3po.testbeds.tiny import task
from areal_a3po.testbeds.tiny.model import build_model_dir
from tests import harness as H

STEPS, FREQ, KILL_AFTER, INTERVAL, CAP, EVAL_FREQ = 5, 2, 2, 3, 2, 2
LIMIT_S = 900  # per launch, on a loaded 2-core machine (~2 min each when quiet)
# AReaL draws worker ports from the global `random` it seeds with `seed` (areal 1.0.4
# rl_trainer.py:129, utils/network.py:156): a seed no other end-to-end test uses keeps this run's
# ports apart from a concurrent run's on the same machine.
SEED = 5
EXPERIMENT, TRIAL = "a3po-cpu-tiny", "hybrid"
LAG = "ppo_actor/a3po/token_lag"
THETA = "ppo_actor/update/version_stats/sample_staleness_theta"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2 * (LIMIT_S + 60) + 120),  # two launches (the fixture), on a loaded host
    pytest.mark.skipif(
        not H.on_areal_1_0(),
        reason="the embedded runs are checked with areal 1.0.4 (one end-to-end run per CI)",
    ),
]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    model = build_model_dir(str(out / "model"), list(task.VOCAB), SEED)
    fileroot = out / "areal"
    overrides = [
        f"total_train_steps={STEPS}", f"cluster.fileroot={fileroot}", f"actor.path={model}",
        f"trial_name={TRIAL}", f"seed={SEED}", "actor.prox_logp_method=hybrid",
        f"recover.freq_steps={FREQ}", "rollout.setup_timeout=900",
        f"+actor.a3po.calibration_interval={INTERVAL}", f"rollout.max_head_offpolicyness={CAP}",
        f"evaluator.freq_steps={EVAL_FREQ}", *H.TINY_EVALUATION,
    ]  # fmt: skip
    recipe = runner.recipe_path("a3po")
    cmd, cmd_env = runner.launch_command(recipe, overrides)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **cmd_env)
    run_dir = fileroot / "tensorboard" / EXPERIMENT / TRIAL
    logs = []

    def launch(name: str) -> subprocess.Popen:
        logs.append(out / f"{name}.log")
        return procs.launch_bounded(cmd, LIMIT_S, logs[-1], env=env, cwd=out)

    first = launch("first")
    try:
        while first.poll() is None and steps_logged(run_dir) <= KILL_AFTER:
            time.sleep(1.0)
        killed_at = steps_logged(run_dir)
        if first.poll() is not None:
            pytest.fail(
                f"the first run ended by itself (exit {first.returncode}) after {killed_at} "
                f"steps, before the kill:\n{logs[-1].read_text(errors='replace')[-3000:]}"
            )
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=60)
    time.sleep(2.0)
    left = procs.processes_mentioning(str(out))
    before = load_scalars(str(run_dir))
    second = launch("second")
    try:
        rc = second.wait(timeout=LIMIT_S + 60)
    finally:
        try:
            os.killpg(second.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert rc == 0, logs[-1].read_text(errors="replace")[-3000:]
    return {
        "killed_at": killed_at, "left": left, "before": before,
        "after": load_scalars(str(run_dir)), "second_log": logs[-1].read_text(errors="replace"),
        "leftovers": procs.processes_mentioning(str(out)), "fileroot": fileroot,
        "recipe": recipe, "overrides": overrides,
    }  # fmt: skip


def _resumed_at(log: str) -> int:
    """The first step the second run trains: AReaL's ``RecoverHandler`` logs the checkpoint's
    ``StepInfo`` and goes on after it."""
    return int(log.split("Recovering from StepInfo(")[1].split("global_step=")[1].split(",")[0])


def test_kill_leaves_no_process_and_relaunch_resumes_after_checkpoint(killed_and_resumed):
    r = killed_and_resumed
    assert r["killed_at"] > KILL_AFTER and r["left"] == [] and r["leftovers"] == []
    log = r["second_log"]
    resumed = _resumed_at(log)
    # the last checkpoint before the kill: steps FREQ-1, 2*FREQ-1, ... were checkpointed
    assert resumed % FREQ == 0 and 0 < resumed <= r["killed_at"], resumed
    assert f"hybrid calibration restored at global step {resumed - 1}" in log
    second_steps = {s for s in r["after"].scalars[keys.HYBRID_RECOMPUTE]}
    assert second_steps == set(range(STEPS))
    assert len(r["after"].event_files) == 2 and r["after"].superseded_files == []


def test_resumed_run_continues_versions_lags_and_calibration_schedule(killed_and_resumed):
    s = killed_and_resumed["after"].scalars
    for step in range(STEPS):
        lo, hi = s[f"{LAG}/min"][step], s[f"{LAG}/max"][step]
        assert 0 <= lo <= hi <= min(step, CAP), (step, lo, hi)  # V - v, never ahead of V = step
        if step in s.get(f"{THETA}_max", {}):  # AReaL's own V - v, where it logs it:
            # per micro-batch (stats_tracker.scalar), so the step's value is the mean over
            # micro-batches of each one's min / max, inside the plugin's token min / max
            theta = (s[f"{THETA}_min"][step], s[f"{THETA}_max"][step])
            assert lo <= theta[0] <= theta[1] <= hi, (step, theta, lo, hi)
            if lo == hi:
                assert theta == (lo, hi), (step, theta)
    escalated = s[keys.HYBRID_ESCALATED]
    expected = {  # the rule by the global step: a calibration step, or escalated before it
        step: float(step % INTERVAL == 0 or escalated[step] == 1.0) for step in range(STEPS)
    }
    assert s[keys.HYBRID_RECOMPUTE] == expected
    assert s["ppo_actor/update/compute_logp/recomputed"] == expected  # workers agree


def _uninterrupted_evaluations(recipe: Path, overrides: list[str]) -> list[int]:
    """The steps AReaL's ``Evaluator``, configured by AReaL's loader from the launched line, picks
    in a run of STEPS steps that nobody stops (the trainer checks it once per step)."""
    from areal.api.cli_args import GRPOConfig, load_expr_config
    from areal.api.io_struct import FinetuneSpec
    from areal.utils.evaluator import Evaluator

    config, _ = load_expr_config(["--config", str(recipe), *overrides], GRPOConfig)
    batch = config.train_dataset.batch_size
    evaluator = Evaluator(
        config.evaluator,
        FinetuneSpec(total_train_epochs=1, dataset_size=STEPS * batch, train_batch_size=batch),
    )
    steps: list[int] = []
    for step in range(STEPS):
        evaluator.evaluate(lambda s=step: steps.append(s), 0, step, step)
    return steps


def test_resumed_run_evaluates_on_the_uninterrupted_steps(killed_and_resumed):
    r = killed_and_resumed
    expected = _uninterrupted_evaluations(r["recipe"], r["overrides"])
    # the checkpointed step evaluated, after AReaL took its checkpoint: the case the plugin fixes
    assert _resumed_at(r["second_log"]) - 1 in expected, expected
    rewards = r["after"].scalars[EVAL_REWARD_KEYS[0]]
    assert sorted(rewards) == expected, (sorted(rewards), r["after"].orphaned)
    assert all(0.0 <= v <= 1.0 for v in rewards.values()), rewards


def test_plugin_state_saved_beside_areal_checkpoint(killed_and_resumed):
    (info,) = Path(killed_and_resumed["fileroot"]).glob("checkpoints/*/*/*/recover_info")
    step = json.loads((info / "step_info.json").read_text())["global_step"]
    state = json.loads((info / "a3po_state.json").read_text())
    assert state["global_step"] == step and step % FREQ == FREQ - 1, (state, step)
    (cal,) = state["calibrators"]
    assert cal["step"] == cal["observed_step"] == step
    assert cal["options"]["calibration_interval"] == INTERVAL
    assert sorted(p.name for p in info.iterdir() if p.name.startswith(".")) == []  # no temp left


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
