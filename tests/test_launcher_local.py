"""The user's path on CPU: recipe header line -> AReaL's local scheduler -> `a3po compare`.

One end-to-end run (``scripts/run_default.sh --steps 3``, both twins) covers:
* the ``single-controller, local`` line of each ``recipes/cpu_tiny_*.yaml`` header, executed as
  written by bash (``$RECIPE`` set, the venv's ``python3`` first on PATH) with AReaL overrides
  appended: the header cannot drift from what runs;
* AReaL's ``LocalScheduler`` starting the actor and rollout workers, the rollout worker starting
  the vLLM CPU server through the coupling, disk weight updates after every step;
* AReaL's tensorboard logs (``ppo_actor/...``), the plugin active in the workers (a3po stats,
  no ``compute_logp`` forward), and the report; then ``a3po compare DIR_A DIR_B`` on the two runs;
* nothing left running afterwards.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from areal_a3po import testbeds
from areal_a3po.compare import procs, runner
from areal_a3po.report import load_scalars
from tests import harness as H

REPO = Path(__file__).resolve().parents[1]
STEPS = 3
TWINS = ("recompute", "a3po")  # the recipe twins
ARMS = tuple(runner.default_providers())  # the main job's arms: recompute, a3po-step
TWIN_OF = dict(zip(ARMS, TWINS, strict=True))  # the twin recipe each arm runs
RECOMPUTE = "timeperf/recompute_logp"
A3PO_STAT = f"ppo_actor/update/compute_logp/{ARMS[1]}/approx_logp/avg"
# the plugin's token lag over the step (every method); AReaL's version_stats max is a mean
# over micro-batches of each one's max (stats_tracker.scalar), below 2 when some hold lag 1
STALENESS_MAX = "ppo_actor/a3po/token_lag/max"


# ----------------------------------------------------------------------------- cheap checks


@pytest.mark.parametrize("twin", TWINS)
def test_header_local_line_is_the_entry_script_with_scheduler_local(twin):
    recipe = runner.recipe_path(twin)
    line = runner.header_command(recipe)
    assert line == "python3 -m areal_a3po.testbeds.tiny.train --config $RECIPE scheduler.type=local"
    assert runner.header_command(recipe, "single-controller, Ray").endswith("scheduler.type=ray")
    cmd, env = runner.launch_command(recipe, ["total_train_steps=3"])
    assert cmd == ["bash", "-c", f'exec {line} "$@"', "a3po-arm", "total_train_steps=3"]
    assert env["RECIPE"] == str(recipe)
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_arm_plan_labels_only_swept_dimensions():
    assert runner.arm_plan(["recompute", "a3po"], [1], [2]) == [
        ("recompute", 1, 2, "recompute"),
        ("a3po", 1, 2, "a3po"),
    ]
    labels = [p[3] for p in runner.arm_plan(["recompute", "a3po"], [1, 2], [2, 4])]
    assert labels[:2] == ["recompute_s2_seed1", "a3po_s2_seed1"] and len(set(labels)) == 8


@pytest.mark.parametrize(
    "provider", ["recompute", "a3po-step", "a3po", "behave", "loglinear", "current"]
)
def test_arm_overrides_every_provider_loads_with_areal(provider, tmp_path, load_recipe):
    from areal_a3po.compare import arms

    twin, overrides = arms.arm_overrides(provider, 3, tmp_path / "fr", 1, 8, "/m", f"{provider}_x")
    cfg = load_recipe(runner.recipe_path(twin), tmp_path / "fr", *overrides)
    assert cfg.actor.prox_logp_method == provider
    # the twins' own methods run their recipe as written; every other provider is one override
    assert any("prox_logp_method" in o for o in overrides) == (provider not in ARMS)
    assert cfg.rollout.max_head_offpolicyness == 8 and cfg.total_train_steps == 3
    # behave's pi_prox is pi_behave: the recipe's rejection sampling is dropped (it filters nothing)
    assert (cfg.actor.rejection_sampling is None) == (provider == "behave")


def test_run_default_bad_sizes_raise_before_launching(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        runner.run_default(str(tmp_path), steps=0)
    with pytest.raises(ValueError, match="duplicate providers"):
        runner.run_default(str(tmp_path), steps=1, providers=["a3po", "a3po"])
    with pytest.raises(ValueError, match="label"):
        runner.run_arm("a3po", tmp_path, steps=1, label="../x")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # 7-15 s (other interpreters, or AReaL 2.x sources unpacked): --quick skips it
def test_run_arm_controller_failure_raises_naming_arm_and_log(tmp_path):
    """The entry script rejects a config that does not match the task; the runner reports it."""
    with pytest.raises(runner.EmbeddedRunError) as e:
        runner.run_arm("a3po", tmp_path, steps=1, progress=False,
                       extra_overrides=["gconfig.max_new_tokens=8"])  # fmt: skip
    msg = str(e.value)
    assert "[a3po]" in msg and "exited with code 1 after 0/1 steps" in msg
    assert str(tmp_path / "a3po" / "controller.log") in msg and "gconfig.max_new_tokens=8" in msg
    assert not procs.processes_mentioning(str(tmp_path)), procs.processes_mentioning(str(tmp_path))


def test_run_arm_over_time_limit_is_stopped_and_reported(tmp_path, monkeypatch):
    tiny = testbeds.get("tiny")  # an arm may run 2 s: AReaL never starts
    monkeypatch.setitem(
        testbeds.TESTBEDS, "tiny", replace(tiny, start_limit_s=2.0, step_limit_s=0.0)
    )
    with pytest.raises(runner.EmbeddedRunError, match=r"\[a3po\] AReaL's controller timed out"):
        runner.run_arm("a3po", tmp_path, steps=1, progress=False)
    assert not procs.processes_mentioning(str(tmp_path)), procs.processes_mentioning(str(tmp_path))
    summary = json.loads((tmp_path / "a3po" / "summary.json").read_text())
    assert summary["total_s"] < 60 and summary["rewards"] == []


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The README's main-job command at reduced size, from the repository root."""
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip(
            "scripts/run_default.sh always runs .venv (areal 1.0.4): the .venv leg covers it"
        )
    out = tmp_path_factory.mktemp("launcher")
    proc = subprocess.run(
        [str(REPO / "scripts" / "run_default.sh"), "--steps", str(STEPS), "--out", str(out),
         "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    leftovers = procs.processes_mentioning(str(out))
    assert not leftovers, leftovers
    summaries = {a: json.loads((out / a / "summary.json").read_text()) for a in ARMS}
    return out, summaries, proc.stdout


@pytest.mark.slow
def test_header_line_ran_as_written_for_both_twins(main_job):
    out, summaries, _ = main_job
    for arm in ARMS:
        recipe = runner.recipe_path(TWIN_OF[arm])
        launched = (out / arm / "launch_cmd.txt").read_text().strip()
        assert launched.startswith(f"RECIPE={shlex.quote(str(recipe))} bash -c ")
        assert f"exec {runner.header_command(recipe)} " in launched
        assert f"total_train_steps={STEPS} cluster.fileroot={out / arm / 'areal'}" in launched
        assert "prox_logp_method" not in launched  # each arm runs its twin's own method
        s = summaries[arm]
        assert len(s["rewards"]) == STEPS and s["first_step_s"] > 0, s


@pytest.mark.slow
def test_areal_local_scheduler_started_workers_and_vllm(main_job):
    out, _, _ = main_job
    for arm in ARMS:
        log = (out / arm / "controller.log").read_text(errors="replace")
        for role in ("actor", "rollout"):
            assert f"LocalScheduler INFO: Worker {role}/0 started" in log, (arm, role)
        assert "Created new worker via fork: eval-rollout/0" in log or "eval-rollout/0" in log
        bridge = (
            f"{sys.executable.rsplit('/', 1)[0]}/python3 -m areal_a3po.testbeds.vllm_cpu.server"
        )
        assert f"Launching vLLM server with command: {bridge}" in log, arm
        assert "--host 127.0.0.1" in log.split("Launching vLLM server with command:")[1][:2000]
        assert "reloaded weights from" in log, arm  # disk update reached vLLM's reload_weights
        assert "reload_weights(" not in log or "failed" not in log


@pytest.mark.slow
def test_tensorboard_logs_show_plugin_in_workers(main_job):
    out, summaries, _ = main_job
    runs = {a: load_scalars(summaries[a]["run_dir"]).scalars for a in ARMS}
    for arm, s in runs.items():
        assert any(tag.startswith("ppo_actor/") for tag in s), arm
        assert set(s["timeperf/train_step"]) == set(range(STEPS)), arm
        rewards = list(s["rollout/reward"].values())
        assert all(math.isfinite(r) and 0.0 <= r <= 1.0 for r in rewards), rewards
        assert max(s[STALENESS_MAX].values()) >= 2, arm  # stale rollouts reached the trainer
    base, a3po = ARMS
    assert set(runs[base][RECOMPUTE]) == set(range(STEPS))
    assert RECOMPUTE not in runs[a3po]  # compute_logp never ran in the A-3PO arm's actor worker
    assert set(runs[a3po][A3PO_STAT]) == set(range(STEPS))
    assert A3PO_STAT not in runs[base]


@pytest.mark.slow
def test_reports_from_run_default_and_from_two_run_dirs(main_job, tmp_path):
    out, summaries, stdout = main_job
    report = json.loads((out / "report" / "report.json").read_text())
    rows = {row["label"]: row for row in report["table"]}
    base, a3po = ARMS
    assert set(rows) == set(ARMS) == {"recompute", "a3po-step"}
    assert rows[base]["recompute_logp_s"] > 0 and rows[a3po]["recompute_logp_s"] == 0
    assert rows[a3po]["recompute_removed_share"] == 1.0
    assert "recompute_logp" in stdout
    for name in ("report.md", "reward_vs_step.png", "step_time_breakdown.png"):
        assert (out / "report" / name).stat().st_size > 0
    # One seed reads cleanly: which provider each arm ran, and no interval-less cells
    md = (out / "report" / "report.md").read_text()
    assert f"- `{a3po}`: A-3PO anchored at the start of the step" in md
    assert f"- `{base}`: AReaL's recompute forward pass" in md
    assert "no interval" not in md and "One seed per arm" in md
    a3po_bin = Path(sys.executable).parent / "a3po"
    dirs = [summaries[a]["run_dir"] for a in ARMS]
    proc = subprocess.run(
        [str(a3po_bin), "compare", *dirs, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [r["label"] for r in again["table"]] == list(ARMS)  # labels from the run dirs' names


# ----------------------------------------------------------------------------- pacing


def test_pace_mode_bad_value_names_the_variable(monkeypatch):
    from areal_a3po.testbeds import pacing

    monkeypatch.setenv(pacing.ENV, "fast")
    with pytest.raises(ValueError, match=r"AREAL_A3PO_PACE='fast': must be one of free, cap"):
        pacing.mode_from_env()
    monkeypatch.delenv(pacing.ENV)
    assert pacing.mode_from_env() == pacing.FREE


def test_pace_at_cap_without_staleness_manager_says_what_it_needs():
    from areal_a3po.testbeds import pacing

    with pytest.raises(RuntimeError, match="single-controller RolloutController"):
        pacing.pace_at_cap(object())


@pytest.mark.slow
@pytest.mark.skipif(
    not H.on_areal_1_0(),
    reason="the embedded runs are checked with areal 1.0.4 (one end-to-end run per CI, not per leg)",
)
def test_paced_arm_trains_every_token_at_the_cap_lag(tmp_path):
    """pace=cap: the batch of version V was generated at V - eta, so every token's lag is min(V, eta).

    Unpaced, the lag depends on which of generator and trainer is faster (tokens of one batch then
    spread over several lags); paced, min == max == min(V, eta) at every step.
    """
    eta, steps = 1, 3
    res = runner.run_arm("a3po", tmp_path, steps=steps, staleness=eta, progress=False, pace="cap")
    assert "AREAL_A3PO_PACE=cap " in (tmp_path / "a3po" / "launch_cmd.txt").read_text()
    s = load_scalars(res.run_dir).scalars
    for edge in ("min", "max"):
        lags = s[f"ppo_actor/a3po/token_lag/{edge}"]
        assert lags == {v: float(min(v, eta)) for v in range(steps)}, (edge, lags)
    assert not procs.processes_mentioning(str(tmp_path)), procs.processes_mentioning(str(tmp_path))


def test_compare_prints_arms_and_expected_time_before_launching(tmp_path, capsys):
    from areal_a3po import cli

    with pytest.raises(ValueError, match="steps must be >= 1"):  # refused before any arm starts
        cli.main(["compare", "--out", str(tmp_path), "--steps", "0", "--staleness", "2,4,8",
                  "--providers", "recompute,a3po,behave,loglinear", "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    expected = runner.expected_seconds(12, 0, "cap") / 60
    assert (
        f"a3po compare: 12 arms (4 providers x 3 staleness x 1 seeds), 0 steps each, pace=cap; "
        f"expected ~{expected:.0f} min" in out
    )
    assert not list(tmp_path.iterdir())


ENTRIES = (
    ("areal_a3po.testbeds.tiny.train", "cpu_tiny_a3po.yaml"),
    ("areal_a3po.testbeds.smollm2.train", "cpu_smollm2_a3po.yaml"),
    ("areal_a3po.testbeds.smollm2.train_multiturn", "cpu_smollm2_multiturn_a3po.yaml"),
)


@pytest.mark.parametrize(("module", "recipe"), ENTRIES, ids=[m for m, _ in ENTRIES])
def test_entry_script_sets_loopback_before_areal_is_imported(module, recipe):
    """Each recipe's entry script, as its header line starts it: loopback mode must be on before
    the first import of AReaL's network module, so its checks pass and the first error it meets
    is the bad ``AREAL_A3PO_PACE`` (an entry that imported AReaL first stops on the hook check)."""
    env = {k: v for k, v in os.environ.items() if k != "AREAL_A3PO_LOOPBACK"}
    cmd = [sys.executable, "-m", module, "--config", str(H.ROOT / "recipes" / recipe)]
    proc = subprocess.run(
        cmd, env={**env, "AREAL_A3PO_PACE": "bogus"}, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "AREAL_A3PO_PACE='bogus': must be one of" in proc.stderr, proc.stderr[-2000:]
    assert "hook is not active" not in proc.stderr
