"""Embedded default, reduced size: AReaL's real asynchronous GRPO loop end to end on CPU.

Runs two arms (``recompute`` and an approximating arm: ``a3po`` when installed, else AReaL's
``loglinear``) for ``CI_STEPS`` steps each -- vLLM CPU server through the bridge, PPOTrainer with
RLVRWorkflow, FSDP actor, disk weight updates -- and checks what AReaL's StatsLogger wrote to
tensorboard. About 4 minutes on 2 cores.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from areal_a3po.embedded import task
from areal_a3po.embedded.runner import (
    BASELINE_PROVIDER,
    CI_STEPS,
    default_providers,
    vllm_server_cmd,
)

STALENESS_MAX = "ppo_actor/update/version_stats/sample_staleness_theta_max"
REWARD = "rollout/reward"
TRAIN_STEP = "timeperf/train_step"
RECOMPUTE = "timeperf/recompute_logp"


# ------------------------------------------------------------------------------ fast unit checks


def test_reward_counts_successor_transitions():
    ids = [task.token_id(c) for c in "fgh"]
    perfect = [task.token_id(c) for c in task.continuation(5 + 3, task.MAX_NEW_TOKENS)]  # "abcd..."
    assert task.score(ids, perfect) == 1.0
    # one wrong letter breaks two transitions; the rest still counts (local rule)
    broken = list(perfect)
    broken[5] = task.token_id("a") if perfect[5] != task.token_id("a") else task.token_id("b")
    assert task.score(ids, broken) == (task.MAX_NEW_TOKENS - 2) / task.MAX_NEW_TOKENS
    # <eos> (id 1) ends the completion; nothing after it counts
    assert task.score(ids, perfect[:4] + [1] + perfect[5:]) == 4 / task.MAX_NEW_TOKENS
    assert task.score(ids, []) == 0.0
    assert task.reward_fn("fgh", "", ids, perfect, query="fgh", answer="x") == 1.0


def test_tokenizer_is_identical_for_auto_and_fast_classes(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from areal_a3po.embedded.model import TinyModelSpec, build_model_dir

    d = build_model_dir(str(tmp_path / "m"), list(task.VOCAB), seed=1)
    auto = AutoTokenizer.from_pretrained(d)  # a Qwen2 config makes this a Qwen2Tokenizer
    fast = PreTrainedTokenizerFast.from_pretrained(d)
    for text in ("abc", "fgh", "habcdefg"):
        expected = [task.token_id(c) for c in text]
        assert task.get_input_ids(text, auto) == expected
        assert task.get_input_ids(text, fast) == expected
        assert auto.decode(expected) == text
    assert len(auto) == len(fast) == len(task.VOCAB) + 2
    assert (auto.pad_token_id, auto.eos_token_id) == (0, 1)
    assert TinyModelSpec().head_dim >= 32  # vLLM CPU attention


def test_vllm_command_runs_areal_server_module_through_the_bridge():
    cmd = vllm_server_cmd(
        {
            "dtype": "float32",
            "block_size": 32,
            "enforce_eager": True,
            "gpu_memory_utilization": 0.9,
        },
        "/m",
        12345,
    )
    assert cmd[1:3] == ["-m", "areal_a3po.vllm_cpu.server"]
    joined = " ".join(cmd)
    assert "--host 127.0.0.1 --port 12345" in joined
    assert "--block-size 32" in joined and "--enforce-eager" in joined
    assert "--no-enable-prefix-caching" in joined
    assert "gpu-memory-utilization" not in joined


# ------------------------------------------------------------------------------------ end to end


def _scalars(run_dir: str) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The README's main-job command at reduced size: run_default.sh -> `a3po compare` -> report."""
    providers = default_providers()
    out = tmp_path_factory.mktemp("embedded")
    proc = subprocess.run(
        [
            str(REPO / "scripts" / "run_default.sh"),
            "--steps",
            str(CI_STEPS),
            "--out",
            str(out),
            "--providers",
            ",".join(providers),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    report = json.loads((out / "report" / "report.json").read_text())
    return providers, out, report, proc.stdout


@pytest.fixture(scope="module")
def reduced_run(main_job):
    providers, out, _, _ = main_job
    return {p: str(out / p) for p in providers}


@pytest.mark.slow
def test_main_job_report_shows_both_arms_and_the_saving(main_job):
    providers, out, report, stdout = main_job
    rows = {row["label"]: row for row in report["table"]}
    assert set(rows) == set(providers)
    base, approx = (
        rows[BASELINE_PROVIDER],
        rows[next(p for p in providers if p != BASELINE_PROVIDER)],
    )
    assert base["recompute_logp_s"] > 0 and approx["recompute_logp_s"] == 0
    assert approx["recompute_removed_share"] == 1.0
    for row in (base, approx):
        assert math.isfinite(row["step_time_s"]) and row["step_time_s"] > 0
        assert math.isfinite(row["reward_final"]) and 0.0 <= row["reward_final"] <= 1.0
        assert row["staleness_max"] >= 2, "no token with a lag above 1 reached the trainer"
    assert math.isfinite(approx["step_time_ratio"])
    for name in ("report.md", "reward_vs_step.png", "step_time_breakdown.png"):
        assert (out / "report" / name).stat().st_size > 0
    assert "recompute_logp" in stdout  # the table was printed


@pytest.mark.slow
def test_reduced_default_runs_areal_loop_for_both_arms(reduced_run):
    assert len(reduced_run) == 2 and BASELINE_PROVIDER in reduced_run
    for provider, run_dir in reduced_run.items():
        assert Path(run_dir).is_dir(), provider
        assert list(Path(run_dir).glob("events.out.tfevents.*")), f"{provider}: no event files"
        s = _scalars(run_dir)
        assert set(s[TRAIN_STEP]) == set(range(CI_STEPS)), f"{provider}: {s.get(TRAIN_STEP)}"
        assert set(s["timeperf/update_weights"]) == set(range(CI_STEPS)), provider
        rewards = [s[REWARD][k] for k in range(CI_STEPS)]
        assert all(math.isfinite(r) and 0.0 <= r <= 1.0 for r in rewards), (provider, rewards)


@pytest.mark.slow
def test_only_the_recompute_arm_runs_the_recompute_forward(reduced_run):
    for provider, run_dir in reduced_run.items():
        s = _scalars(run_dir)
        if provider == BASELINE_PROVIDER:
            assert set(s.get(RECOMPUTE, {})) == set(range(CI_STEPS)), provider
        else:
            assert RECOMPUTE not in s, f"{provider} ran AReaL's recompute_logp forward"


@pytest.mark.slow
def test_stale_rollouts_are_trained_on(reduced_run):
    """max_head_offpolicyness=2: samples generated 2 weight versions back reach the trainer."""
    for provider, run_dir in reduced_run.items():
        lags = _scalars(run_dir)[STALENESS_MAX]
        assert max(lags.values()) >= 2, (provider, lags)


@pytest.mark.slow
def test_weights_reach_vllm_after_every_step(reduced_run):
    """Disk weight updates went through AReaL's /areal_update_weights into vLLM's reload_weights."""
    for provider, run_dir in reduced_run.items():
        log = (Path(run_dir) / "logs" / "vllm.log").read_text(errors="replace")
        assert log.count("reloaded weights from") >= CI_STEPS, provider
        assert not re.search(r"reload_weights\(.*\) failed", log), provider
