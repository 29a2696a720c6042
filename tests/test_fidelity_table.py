"""``a3po fidelity``: the fidelity table of a3po-metrics runs (``areal_a3po.report.fidelity``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from areal_a3po import cli, keys
from areal_a3po.report import fidelity as table
from areal_a3po.report import stats
from areal_a3po.report.seeds import TRAINER, ArmSeeds, recommend

pytestmark = pytest.mark.version_independent
ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "fidelity"
P = keys.PREFIX


def _docs_section(name: str) -> str:
    """The docs/benchmarks.md fidelity block's section of kept file ``name``."""
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    block = page.split("<!-- generated: fidelity -->\n", 1)[1].split("<!-- end generated", 1)[0]
    return block.split(f"### `{name}`\n\n", 1)[1].split("\n### ", 1)[0]


def _write_run(path: Path, abs_dlogp: dict[str, float], steps: int = 2) -> str:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(path))
    for step in range(steps):
        writer.add_scalar(P + keys.fidelity_tokens(0, "1"), 10.0, step)
        for provider, value in abs_dlogp.items():
            for metric in keys.FIDELITY_METRICS:
                v = value if metric == keys.ABS_DLOGP else 0.0
                writer.add_scalar(P + keys.fidelity_key(provider, 0, "1", metric), v, step)
    writer.close()
    return str(path)


@pytest.mark.parametrize("name", ["pipeline-check-tiny", "smollm2", "smollm2-multiturn"])
def test_fidelity_cli_kept_file_prints_the_table_docs_show(name, capsys):
    assert cli.main(["fidelity", str(KEPT / f"{name}.json")]) == 0
    out = capsys.readouterr().out
    assert _docs_section(name) in out
    assert "Closest to the recompute at staleness 2: `a3po-step`" in out


def test_fidelity_cli_withdrawn_kept_file_tables_equal_the_docs_below_the_withdrawal(capsys):
    """The withdrawal is the study's word (benchmarks/fidelity.py), the tables the product's."""
    assert cli.main(["fidelity", str(KEPT / "smollm2-raw-logprobs.json")]) == 0
    docs = _docs_section("smollm2-raw-logprobs").split("no longer evidence.\n\n", 1)[1]
    assert docs in capsys.readouterr().out


def test_fidelity_cli_run_without_a3po_metrics_keys_error_names_the_method(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    writer.add_scalar("ppo_actor/task_reward/avg", 0.5, 0)
    writer.close()
    assert cli.main(["fidelity", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "actor.prox_logp_method=a3po-metrics" in err


@pytest.mark.parametrize("n_runs", [2, 3])
def test_fidelity_cli_run_dirs_interval_only_from_min_seeds_closest_named(tmp_path, capsys, n_runs):
    dirs = [
        _write_run(tmp_path / f"s{i}", {"a3po-step": 0.01 * (1 + i / 10), "behave": 0.2 + i / 100})
        for i in range(n_runs)
    ]
    assert cli.main(["fidelity", *dirs, "--staleness", "2"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `behave` |"))
    assert ("[" in row) == (n_runs >= stats.MIN_SEEDS)
    assert "**staleness 2** (`rollout.max_head_offpolicyness=2`, `ppo_n_minibatches=1`" in out
    assert "Closest to the recompute at staleness 2: `a3po-step`" in out
    if n_runs >= stats.MIN_SEEDS:
        assert "its interval lies below the next one's (`behave`)" in out
    else:
        assert "no interval to tell them apart" in out


def test_fidelity_cli_bad_staleness_error_names_a3po_fidelity(tmp_path):
    with pytest.raises(SystemExit, match=r"^a3po fidelity: --staleness must be integers"):
        cli.main(["fidelity", str(tmp_path), "--staleness", "two"])


def test_fidelity_markdown_providers_beyond_the_known_ones_listed_after_them(tmp_path):
    run = table.reduce_run(_write_run(tmp_path, {"zeta": 0.3, "a3po": 0.1}))
    rows = [line for line in table.markdown([run]).splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows][:2] == ["a3po", "zeta"]


def _arm(label: str, ratio: tuple[float, float], diff: tuple[float, float]) -> ArmSeeds:
    def iv(lo: float, hi: float) -> stats.Interval:
        return stats.Interval((lo + hi) / 2, lo, hi, 3, "test")

    return ArmSeeds(label, [1, 2, 3], 1, {}, "", {}, None, ratio={TRAINER: iv(*ratio)},
                    reward_difference=iv(*diff))  # fmt: skip


def test_recommend_noninferior_and_faster_by_intervals_lowest_ratio_wins():
    base = _arm("recompute", (1.0, 1.0), (0.0, 0.0))
    arms = [
        base,
        _arm("slow", (0.95, 1.02), (-0.01, 0.02)),  # not faster
        _arm("worse", (0.5, 0.6), (-0.08, 0.01)),  # lower bound below -margin
        _arm("good", (0.7, 0.8), (-0.04, 0.02)),
        _arm("best", (0.6, 0.7), (-0.03, 0.01)),
    ]
    assert recommend(arms) == "best"
    assert recommend(arms[:4]) == "good"
    assert recommend(arms[:3]) is None


@pytest.mark.parametrize("name", ["smollm2", "smollm2-multiturn"])
def test_fidelity_kept_real_model_tables_lag0_minibatch0_under_0_01_for_every_provider(name):
    """Behaviour log-probs the trainer can trust: tokens of lag 0 on PPO minibatch 0 were
    generated by the weights the recompute evaluates, so every provider, whatever it reads
    (pi_behave or pi_theta), is within 0.01 nats of the recompute there, in every kept run."""
    kept = json.loads((KEPT / f"{name}.json").read_text())
    gaps = {
        (run["label"], provider): cells["0/0"]["abs_dlogp"]
        for run in kept["runs"]
        for provider, cells in run["scores"].items()
    }
    assert {p for _, p in gaps} == set(table.PROVIDERS)
    assert max(gaps.values()) < 0.01, {k: v for k, v in gaps.items() if v >= 0.01}


def test_fidelity_kept_raw_logprobs_table_lag0_minibatch0_fails_the_same_check():
    """Negative control: the withdrawn table (vLLM's log-probs before temperature) scores the
    mismatch itself for every provider that reads pi_behave on those tokens."""
    kept = json.loads((KEPT / "smollm2-raw-logprobs.json").read_text())
    for run in kept["runs"]:
        for provider in ("a3po", "a3po-linear", "behave", "loglinear"):
            assert run["scores"][provider]["0/0"]["abs_dlogp"] > 0.1
