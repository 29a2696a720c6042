"""Update fidelity against the noise floor (``areal_a3po/update_fidelity.py``).

The probed step runs on AReaL's real FSDPPPOActor (CPU, gloo, world size 1) at two PPO
minibatches, with a spy on the engine's real ``optimizer_step``: it records the gradient each real
step trains on and the weights / optimizer / LR-schedule state right before and after it, so the
probe's passes can be checked against what the update really did.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from areal_a3po import keys
from areal_a3po.config import A3POConfig, A3POConfigError

ROOT = Path(__file__).resolve().parents[1]
P = keys.PREFIX
UF = keys.update_fidelity_key
# scored: these two, AReaL's loglinear and current (fewer passes than every provider)
SCORED = {"eval_providers": ["a3po-step", "behave"]}


def _state(engine) -> dict:
    """Weights, optimizer state and LR schedule, copied."""
    opt = engine.optimizer.state_dict()
    return {
        "params": [p.detach().clone() for p in engine.model.parameters()],
        "optim": [
            {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for _, s in sorted(opt["state"].items())
        ],
        "sched": dict(engine.lr_scheduler.state_dict()),
    }


def _same(a: dict, b: dict) -> bool:
    """Bit-identical states."""

    def eq(x, y):
        if torch.is_tensor(x):
            return torch.equal(x, y)
        return x == y

    return (
        all(eq(x, y) for x, y in zip(a["params"], b["params"], strict=True))
        and len(a["optim"]) == len(b["optim"])
        and all(
            s.keys() == t.keys() and all(eq(s[k], t[k]) for k in s)
            for s, t in zip(a["optim"], b["optim"], strict=True)
        )
        and a["sched"] == b["sched"]
    )


class StepSpy:
    """Wraps the engine's real ``optimizer_step``: the gradient it steps on, the state before
    and after each call."""

    def __init__(self, engine):
        self.start = _state(engine)
        self.before, self.after, self.grads = [], [], []
        real = engine.optimizer_step

        def step(*args, **kwargs):
            self.before.append(_state(engine))
            self.grads.append(
                torch.cat([p.grad.detach().reshape(-1).clone() for p in engine.model.parameters()])
            )
            out = real(*args, **kwargs)
            self.after.append(_state(engine))
            return out

        engine.optimizer_step = step


def _rewards(batch: dict) -> None:
    # every row a non-zero reward (advantage), so that both minibatches have a gradient
    batch["rewards"] = torch.tensor([1.0, -1.0, 0.5, 1.0])


@pytest.fixture(scope="module")
def probed(make_actor, ppo_step):
    """One a3po-metrics step probed at two minibatches (rows at lags 0..3), with its spy."""
    with make_actor(prox_logp_method="a3po-metrics", ppo_n_minibatches=2) as actor:
        spy = StepSpy(actor)
        step = ppo_step(
            actor, "a3po-metrics", edit_batch=_rewards, update_fidelity_every=1, **SCORED
        )
        yield step, spy


def test_update_fidelity_reference_gradient_equals_the_real_steps(probed):
    step, spy = probed
    assert len(spy.grads) == 2  # one real optimizer step per minibatch
    for k, grad in enumerate(spy.grads):
        # the real step's gradient against the probe's reference: identical
        assert step.stats[P + UF(keys.UF_REFERENCE, k, keys.UF_REL_L2)] == 0.0
        norm = float(torch.linalg.vector_norm(grad.float()))
        logged = step.stats[P + UF(keys.UF_REFERENCE, k, keys.UF_GRAD_NORM)]
        assert logged == pytest.approx(norm, rel=1e-5)
        assert norm > 0.0


def test_update_fidelity_probe_leaves_weights_and_optimizer_bit_identical(probed):
    _, spy = probed
    # minibatch 0's probe passes ran between the update's start and its first real step,
    # minibatch 1's between the first real step and the second
    assert _same(spy.before[0], spy.start)
    assert _same(spy.before[1], spy.after[0])
    assert not _same(spy.after[0], spy.start)  # the real steps did train


def test_update_fidelity_identical_prox_on_minibatch0_reads_zero(probed):
    stats = probed[0].stats
    # a3po-step and current are pi_theta on minibatch 0, where the recompute evaluates the same
    # weights: the same loss up to the recompute's float rounding
    for name in ("a3po-step", "current"):
        assert stats[P + UF(name, 0, keys.UF_REL_L2)] < 1e-4, name
        assert stats[P + UF(name, 0, keys.UF_COS)] == pytest.approx(1.0, abs=1e-6), name


def test_update_fidelity_behave_at_lag_reads_above_zero(probed):
    stats = probed[0].stats
    for k in range(2):
        assert stats[P + UF(keys.UF_MINIBATCH, k, keys.UF_MEAN_LAG)] > 0.0 or k == 0
    lagged = max(range(2), key=lambda k: stats[P + UF(keys.UF_MINIBATCH, k, keys.UF_MEAN_LAG)])
    assert stats[P + UF("behave", lagged, keys.UF_REL_L2)] > 1e-3
    assert stats[P + UF("behave", lagged, keys.UF_COS)] < 1.0


def test_update_fidelity_logs_noise_floor_and_minibatch_for_each_minibatch(probed):
    step, _ = probed
    stats = step.stats
    n = sum(stats[P + UF(keys.UF_MINIBATCH, k, keys.UF_N_TOKENS)] for k in range(2))
    assert n == sum(step.staleness_counts().values())
    for k in range(2):
        floor = stats[P + UF(keys.UF_NOISE_FLOOR, k, keys.UF_REL_L2)]
        assert math.isfinite(floor) and floor > 0.0
        assert -1.0 <= stats[P + UF(keys.UF_NOISE_FLOOR, k, keys.UF_COS)] <= 1.0
    emitted = {k for k in stats if k.startswith(P + keys.UPDATE_FIDELITY + "/")}
    emitted = {k for k in emitted if not k.endswith("__count")}
    from areal_a3po import fidelity

    scored = fidelity.scored_by_metrics(A3POConfig(**SCORED))
    assert emitted == keys.update_fidelity_keys(scored, 2)


# ----------------------------------------------------------------------------- no AReaL run


@pytest.mark.version_independent
def test_update_fidelity_is_probe_every_nth_version_true():
    from areal_a3po.update_fidelity import is_probe

    assert [v for v in range(9) if is_probe(3, v)] == [2, 5, 8]
    assert not any(is_probe(0, v) for v in range(9))


@pytest.mark.version_independent
def test_update_fidelity_noise_floor_equal_halves_half_the_difference():
    from areal_a3po.update_fidelity import noise_floor

    # ||G_A - G_B|| = 3, equal halves: 3/2, relative to ||G_rec|| = 6
    assert noise_floor(9.0, 10.0, 10.0, 6.0) == pytest.approx(0.25)
    # unequal halves: sqrt(n_A n_B) / n
    assert noise_floor(9.0, 10.0, 30.0, 1.0) == pytest.approx(3.0 * math.sqrt(300.0) / 40.0)


@pytest.mark.version_independent
def test_update_fidelity_split_halves_alternate_rows_keep_shared_entries():
    from areal_a3po.update_fidelity import split_halves

    mb = {
        "attention_mask": torch.ones(5, 3, dtype=torch.bool),
        "input_ids": torch.arange(15).view(5, 3),
        "rewards_per_batch": torch.arange(8),  # not per row of this minibatch: shared
        "max_seqlen": 3,
    }
    a, b = split_halves(mb)
    assert a["input_ids"][:, 0].tolist() == [0, 6, 12]
    assert b["input_ids"][:, 0].tolist() == [3, 9]
    assert a["rewards_per_batch"] is mb["rewards_per_batch"] and a["max_seqlen"] == 3
    assert split_halves({"attention_mask": torch.ones(1, 3)}) is None


@pytest.mark.version_independent
@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_update_fidelity_every_bad_value_error_names_the_key(bad):
    with pytest.raises(A3POConfigError, match=r"^actor\.a3po\.update_fidelity_every must be"):
        A3POConfig(update_fidelity_every=bad)


@pytest.mark.parametrize("method", ["a3po", "recompute", "current"])
def test_update_fidelity_every_without_a3po_metrics_error_names_the_key(actor_config, method):
    with pytest.raises(A3POConfigError, match=r"^actor\.a3po\.update_fidelity_every: 2 needs"):
        actor_config(prox_logp_method=method, a3po=A3POConfig(update_fidelity_every=2))
    actor_config(prox_logp_method="a3po-metrics", a3po=A3POConfig(update_fidelity_every=2))


@pytest.mark.version_independent
def test_update_fidelity_reduce_run_means_over_probes_with_floor_and_verdict(tmp_path):
    """areal_a3po.report.update_fidelity on a synthetic tensorboard log of two probes."""
    from torch.utils.tensorboard import SummaryWriter

    from areal_a3po.report import update_fidelity as table

    writer = SummaryWriter(log_dir=str(tmp_path))
    logged = {  # step -> {local key: value}; step 2 is not a probe
        1: {
            UF("a3po-step", 1, "rel_l2"): 0.02,
            UF("behave", 1, "rel_l2"): 0.5,
            UF("noise_floor", 1, "rel_l2"): 0.2,
            UF("minibatch", 1, "mean_lag"): 1.0,
            UF("recompute", 1, "grad_norm"): 1.0,
        },
        3: {
            UF("a3po-step", 1, "rel_l2"): 0.04,
            UF("behave", 1, "rel_l2"): 0.7,
            UF("noise_floor", 1, "rel_l2"): 0.4,
            UF("minibatch", 1, "mean_lag"): 2.0,
            UF("recompute", 1, "grad_norm"): 3.0,
        },
    }
    for step, values in logged.items():
        for key, value in values.items():
            writer.add_scalar(P + key, value, step)
        writer.add_scalar("timeperf/train_step", 10.0, step)
    writer.add_scalar("timeperf/train_step", 2.0, 2)
    writer.close()
    run = table.reduce_run(str(tmp_path))
    assert run["probes"] == [1, 3]
    cell = run["cells"]["a3po-step"]["1"]
    assert cell["rel_l2"] == pytest.approx(0.03) and cell["n_probes"] == 2
    assert run["cells"]["noise_floor"]["1"]["rel_l2"] == pytest.approx(0.3)
    assert run["cells"]["minibatch"]["1"]["mean_lag"] == pytest.approx(1.5)
    assert run["train_step_s"] == {"probe": 10.0, "other": 2.0}
    kept = {**run, "seed": 1}  # as reduce_study keeps it
    # the table weights each probe by ||G_rec||: (0.02 x 1 + 0.04 x 3) / 4
    assert table.pooled(kept, "a3po-step", "1", "rel_l2") == pytest.approx(0.035)
    assert table.pooled(kept, "noise_floor", "1", "rel_l2") == pytest.approx(0.35)
    rows = table.table_rows([kept])
    verdicts = {r[0]: r[-1] for r in rows}
    assert verdicts["`a3po-step`"] == f"{table.BELOW}, point only (1 seed)"
    assert verdicts["`behave`"] == f"{table.ABOVE}, point only (1 seed)"


def _seeded_runs(errors: dict[str, list[float]], floors: list[float]) -> list[dict]:
    """Reduced runs (one per seed) of one minibatch: each provider's error, the floor."""

    def probe(metric: str, value: float) -> dict:  # one probe, at step 1
        return {"1": {metric: value, "per_probe": {metric: {"1": value}}}}

    runs = []
    for i, floor in enumerate(floors):
        cells = {name: probe("rel_l2", errs[i]) for name, errs in errors.items()}
        cells["noise_floor"] = probe("rel_l2", floor)
        cells["recompute"] = probe("grad_norm", 2.0)
        runs.append({"seed": i + 1, "cells": cells})
    return runs


@pytest.mark.version_independent
def test_update_fidelity_verdict_across_seeds_only_whole_interval_counts():
    """error / floor per seed, geometric mean and t-interval across seeds (the run is the unit):
    below or above the floor only when the whole interval is; 0 on every seed reads exact."""
    from areal_a3po.report import update_fidelity as table

    floors = [1.0, 0.8, 1.2]
    runs = _seeded_runs(
        {
            "a3po-step": [0.0, 0.0, 0.0],
            "a3po": [0.30, 0.26, 0.33],  # ratios 0.30, 0.325, 0.275
            "behave": [2.0, 1.7, 2.5],  # ratios 2.0, 2.125, 2.083
            "loglinear": [0.2, 1.6, 1.2],  # ratios 0.2, 2.0, 1.0: the interval holds 1
        },
        floors,
    )
    ratio = table.floor_ratio(runs, "a3po", "1")
    logs = np.log([0.30, 0.26 / 0.8, 0.33 / 1.2])
    assert ratio.estimate == pytest.approx(float(np.exp(logs.mean())))
    assert ratio.n_seeds == 3 and ratio.low < ratio.estimate < ratio.high < 1.0
    verdicts = {r[0]: r[-1] for r in table.table_rows(runs)}
    assert verdicts == {
        "`a3po-step`": table.EXACT,
        "`a3po`": table.BELOW,
        "`behave`": table.ABOVE,
        "`loglinear`": table.AT,
    }
    summary = table.verdict_summary(table.table_rows(runs))
    for part in ("`a3po-step` on every minibatch", "`a3po` on every minibatch",
                 "`loglinear` on none", "`behave` on none"):  # fmt: skip
        assert part in summary


@pytest.mark.version_independent
def test_update_fidelity_closest_summary_names_twins_and_tells_apart_only_by_interval():
    """The provider closest to the recompute's gradient per minibatch: providers equal on every
    seed are named together, the next one compared by the paired per-seed error ratios."""
    from scipy import stats

    from areal_a3po.report import update_fidelity as table

    floors = [1.0, 1.0, 1.0]
    a3po = [0.30, 0.26, 0.33]
    runs = _seeded_runs({"a3po": a3po, "current": a3po, "behave": [2.0, 1.7, 2.5]}, floors)
    lower = table.closest_summary(runs)
    ratios = np.log(np.array(a3po) / np.array([2.0, 1.7, 2.5]))
    half = stats.t.ppf(0.975, df=2) * ratios.std(ddof=1) / np.sqrt(3)  # 95 % t-interval
    low, high = np.exp(ratios.mean() - half), np.exp(ratios.mean() + half)
    assert lower == (
        "Closest to the recompute's gradient, per minibatch (geometric mean of the per-seed "
        "errors; against the next provider, of the per-seed error ratios): minibatch 1: `a3po` = "
        f"`current`, its error {np.exp(ratios.mean()):.2f} x `behave`'s [{low:.2f}, {high:.2f}], "
        "lower."
    )
    runs = _seeded_runs({"a3po": a3po, "loglinear": [0.2, 1.6, 1.2]}, floors)
    assert "`a3po`, its error" in (apart := table.closest_summary(runs))
    assert "`loglinear`'s" in apart and apart.endswith(", not told apart.")
    runs = _seeded_runs({"a3po-step": [0.0, 0.0, 0.0], "a3po": a3po}, floors)
    assert "minibatch 1: `a3po-step`, exact" in table.closest_summary(runs)


def _write_probed_run(path: Path, seed: int, probed: bool) -> str:
    """An a3po-metrics run's log: fidelity scores on minibatches 0 and 1 at every step, and, when
    ``probed``, update-fidelity probes at steps 1 and 3 (every 2) on minibatch 1."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(path))
    for step in range(4):
        for mb in (0, 1):
            writer.add_scalar(P + keys.fidelity_tokens(mb, "1"), 10.0, step)
            for metric in keys.FIDELITY_METRICS:
                value = 0.05 * seed if metric == keys.ABS_DLOGP else 0.0
                writer.add_scalar(P + keys.fidelity_key("a3po", mb, "1", metric), value, step)
        if probed and step in (1, 3):
            writer.add_scalar(P + UF("a3po", 1, "rel_l2"), 0.2 * seed, step)
            writer.add_scalar(P + UF("noise_floor", 1, "rel_l2"), 1.0, step)
            writer.add_scalar(P + UF("recompute", 1, "grad_norm"), 2.0, step)
            writer.add_scalar(P + UF("minibatch", 1, "mean_lag"), 1.0, step)
    writer.close()
    return str(path)


@pytest.mark.version_independent
def test_fidelity_cli_probed_runs_print_update_fidelity_table_unprobed_runs_do_not(
    tmp_path, capsys
):
    """``a3po fidelity`` on run directories: the update-fidelity table follows the fidelity table
    when the runs logged probes (``every`` read off the probe steps), and is absent otherwise."""
    from areal_a3po import cli

    runs = [_write_probed_run(tmp_path / f"s{i}", i, probed=True) for i in (1, 2, 3)]
    assert cli.main(["fidelity", *runs, "--staleness", "2"]) == 0
    out = capsys.readouterr().out
    uf = out.split("## Update fidelity against the noise floor\n", 1)[1]
    assert uf.startswith(
        "\n**staleness 2** (`rollout.max_head_offpolicyness=2`, `ppo_n_minibatches=2`, "
        "`actor.a3po.update_fidelity_every=2`, seeds [1, 2, 3], probes at steps [1, 3]);"
    )
    row = next(line for line in uf.splitlines() if line.startswith("| `a3po`"))
    assert [c.strip() for c in row.strip("|").split("|")][:6] == [
        "`a3po`", "1", "1.00", "0.4", "–", "1"
    ]  # fmt: skip
    assert "minibatch 1: `a3po`" in uf
    plain = [_write_probed_run(tmp_path / f"p{i}", i, probed=False) for i in (1, 2)]
    assert cli.main(["fidelity", *plain]) == 0
    assert "Update fidelity" not in capsys.readouterr().out
