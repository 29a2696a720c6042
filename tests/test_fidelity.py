"""``areal_a3po.fidelity``: decisions as AReaL's loss takes them, and the per-lag, per-minibatch
scores of a real ``a3po-metrics`` step on AReaL's FSDP actor."""

from __future__ import annotations

import pytest
import torch

from areal_a3po import fidelity, keys
from areal_a3po.config import A3POConfig

P = keys.PREFIX


def _random(n: int = 4096, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    theta = -torch.rand(n, generator=g) * 4
    prox = theta + 0.4 * torch.randn(n, generator=g)
    behave = prox + 0.8 * torch.randn(n, generator=g)
    adv = torch.randn(n, generator=g)
    adv[::7] = 0.0
    return theta, prox, behave, adv


@pytest.mark.parametrize(
    "args",
    [
        {"eps_clip": 0.2, "eps_clip_higher": None, "c_clip": None},
        {"eps_clip": 0.2, "eps_clip_higher": 0.28, "c_clip": 1.5},
        {"eps_clip": 0.1, "eps_clip_higher": None, "c_clip": 3.0},
    ],
)
def test_clip_class_random_tokens_equals_areal_loss_clip_masks(args):
    from areal.utils.functional.functional import ppo_actor_loss_fn

    theta, prox, behave, adv = _random()
    mask = torch.ones_like(theta, dtype=torch.bool)
    _, stat = ppo_actor_loss_fn(
        logprobs=theta, proximal_logprobs=prox, old_logprobs=behave, advantages=adv,
        loss_mask=mask, **args,
    )  # fmt: skip
    expected = stat["clip_mask"].to(torch.int8) + 2 * stat["dual_clip_mask"].to(torch.int8)
    got = fidelity.clip_class(theta, prox, adv, args)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert 0 < int((got == 1).sum()) < len(got)
    if args["c_clip"] is not None and args["c_clip"] < 2:
        assert int((got == 2).sum()) > 0


@pytest.mark.parametrize(
    "rs",
    [
        {"metric": "ratio", "upper": 2.0},
        {"metric": "ratio", "upper": 2.0, "lower": 0.5, "action": "clamp"},
        {"metric": "kl_k3", "upper": 0.2},
        {"metric": "kl_k1", "upper": 0.3, "lower": -0.3},
    ],
)
def test_rejection_decision_token_level_equals_areal_rejection_sampling(rs):
    from areal.api.cli_args import RejectionSamplingConfig
    from areal.utils.functional.functional import apply_rejection_sampling

    config = RejectionSamplingConfig(**rs)
    _, prox, behave, _ = _random(seed=1)
    mask = torch.ones_like(prox, dtype=torch.bool)
    mask[::5] = False
    out = apply_rejection_sampling(prox, behave, mask, None, config)
    if config.action == "mask":
        expected = mask & ~out.loss_mask.bool()
    else:
        expected = mask & (out.behave_imp_weight != torch.exp(prox - behave))
    got = fidelity.rejection_decision(prox, behave, mask, config, {})
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert 0 < int(got.sum()) < int(mask.sum())


@pytest.fixture(scope="module")
def metrics_step(make_actor, ppo_step):
    """One a3po-metrics step, 4 PPO minibatches, rejection sampling on (AReaL's token mask)."""
    from areal.api.cli_args import RejectionSamplingConfig

    with make_actor(
        prox_logp_method="a3po-metrics",
        ppo_n_minibatches=4,
        rejection_sampling=RejectionSamplingConfig(metric="ratio", upper=1.2),
        a3po=A3POConfig(fallback="a3po-step"),
    ) as actor:
        return ppo_step(actor, seed=4)


def test_fidelity_metrics_step_four_minibatches_scores_every_provider(metrics_step):
    stats = metrics_step.stats
    fed = metrics_step.staleness_counts()  # rows at lags 0..3, one row per minibatch
    lags = {keys.fidelity_lag(d, 8) for d in fed}
    for name in ("a3po", "a3po-linear", "a3po-step", "behave", "loglinear", "current"):
        for metric in keys.FIDELITY_METRICS:
            found = [
                k for k in stats if k.startswith(P + f"fidelity/{name}/") and k.endswith(metric)
            ]
            assert found, f"no fidelity/{name}/.../{metric}"
    n = sum(stats[P + keys.fidelity_tokens(mb, lb)] for mb in range(4) for lb in lags)
    assert n == sum(fed.values())
    # exact where it should be: a3po-step and current (fallback a3po-step) on minibatch 0
    for name in ("a3po-step", "current"):
        for lb in lags:
            key = P + keys.fidelity_key(name, 0, lb, keys.ABS_DLOGP)
            if key in stats:
                assert stats[key] <= 1e-6
                assert stats[P + keys.fidelity_key(name, 0, lb, keys.CLIP_MISMATCH)] == 0.0
                assert stats[P + keys.fidelity_key(name, 0, lb, keys.REJECT_MISMATCH)] == 0.0
    # behave is pi_behave: wrong wherever the step moved away from it
    errors = [v for k, v in stats.items() if "/fidelity/behave/" in k and k.endswith("abs_dlogp")]
    assert max(errors) > 1e-3


def test_fidelity_loglinear_scored_as_areal_computes_it():
    """AReaL's loglinear on versions read one position off: at the first response position it
    reads the prompt's version, so it is pi_behave there; a3po reads the token's own version."""
    from areal.trainer.ppo.actor import compute_prox_logp_approximations

    versions = torch.tensor([[-1, -1, 1, 1, 3]])  # AReaL's layout: version of token i at i
    behave = torch.tensor([[0.0, -1.0, -2.0, -1.5, -0.5]])
    theta = torch.tensor([[0.0, -3.0, -1.0, -0.5, -2.5]])

    class Inp:
        pass

    inp = Inp()
    inp.versions = torch.roll(versions, -1, -1)  # the plugin's layout
    inp.theta_logp, inp.current_version = theta, 3
    got = fidelity.loglinear_prox(inp, behave)
    expected = compute_prox_logp_approximations(behave, theta, versions, 3, "loglinear")
    torch.testing.assert_close(got, expected["loglinear"], rtol=0, atol=0)
    torch.testing.assert_close(got[0, 1], behave[0, 1])  # reads the prompt's -1: behave


@pytest.mark.version_independent
def test_fidelity_reduce_run_weights_steps_by_bucket_tokens(tmp_path):
    """report.fidelity: a run's steps are combined by their bucket token counts."""
    from torch.utils.tensorboard import SummaryWriter

    from areal_a3po.report import fidelity as table

    writer = SummaryWriter(log_dir=str(tmp_path))
    tokens = P + keys.fidelity_tokens(1, "2")
    metric = P + keys.fidelity_key("a3po-step", 1, "2", keys.ABS_DLOGP)
    for step, (n, v) in enumerate([(10.0, 0.1), (30.0, 0.3)]):
        writer.add_scalar(tokens, n, step)
        writer.add_scalar(metric, v, step)
    writer.close()
    out = table.reduce_run(str(tmp_path))
    cell = out["scores"]["a3po-step"]["1/2"]
    assert cell["n_tokens"] == 40.0 and out["steps"] == 2
    assert cell[keys.ABS_DLOGP] == pytest.approx((10 * 0.1 + 30 * 0.3) / 40, rel=1e-6)


def keys_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.mark.version_independent
def test_fidelity_markdown_withdrawn_kept_file_says_so_with_reason():
    """The SmolLM2 table measured with vLLM's raw log-probs is shown withdrawn, with why."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "fidelity_bench", keys_root() / "benchmarks" / "fidelity.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    kept = keys_root() / "docs" / "benchmarks" / "fidelity"
    assert "**Withdrawn**: its behaviour log-probs were vLLM's raw ones" in bench.markdown(
        kept / "smollm2-raw-logprobs.json"
    )
    assert "Withdrawn" not in bench.markdown(kept / "pipeline-check-tiny.json")


@pytest.mark.version_independent
def test_fidelity_reduce_mismatch_step_without_fresh_tokens_is_left_out(tmp_path):
    """A step with no fresh lag-0 token logs n_tokens 0 and no average: the run's mismatch is the
    token-weighted mean over the other steps (it used to raise KeyError)."""
    from torch.utils.tensorboard import SummaryWriter

    from areal_a3po.report import fidelity as table
    from areal_a3po.report.load import load_scalars

    writer = SummaryWriter(log_dir=str(tmp_path))
    tokens, mean = keys.LAG_PREFIX + keys.MISMATCH_TOKENS, keys.LAG_PREFIX + keys.MISMATCH_ABS
    for step, (n, v) in enumerate([(10.0, 0.1), (0.0, None), (30.0, 0.3)]):
        writer.add_scalar(tokens, n, step)
        if v is not None:
            writer.add_scalar(mean, v, step)
    writer.close()
    out = table.reduce_mismatch(load_scalars(str(tmp_path)))
    assert out["n_tokens"] == 40.0
    assert out["abs_dlogp"] == pytest.approx((10 * 0.1 + 30 * 0.3) / 40, rel=1e-6)
