"""AReaL's real FSDPPPOActor on CPU (gloo, world size 1, tiny local Qwen2): ppo_update per provider.

The ``ppo_step`` fixture follows ``areal.trainer.rl_trainer.PPOTrainer.train`` line for line for
the actor: ``if config.actor.should_compute_prox_logp(): compute_logp`` -> ``compute_advantages`` ->
``ppo_update``. Engine forwards are counted on the engine instance.
"""

from __future__ import annotations

import math

import pytest
import torch


def test_ppo_update_recompute_runs_compute_logp_forward(fsdp_actor, ppo_step):
    step = ppo_step(fsdp_actor, "recompute")
    stats = step.stats
    assert step.recomputed and step.forwards == 1
    assert math.isfinite(stats["ppo_actor/update/actor_loss/avg"])
    assert "ppo_actor/update/compute_logp/prox_logp_gt/avg" in stats
    assert not any("/compute_logp/a3po" in k for k in stats)  # no plugin provider ran


@pytest.mark.parametrize("method", ["recompute", "loglinear", "a3po"])
def test_ppo_update_any_method_logs_token_lag_equal_to_fed_lags(fsdp_actor, ppo_step, method):
    from areal_a3po import keys

    step = ppo_step(fsdp_actor, method)
    stats, fed = step.stats, step.staleness_counts()  # rows at lags 0, 1, 2, 3
    for lag, n_tokens in fed.items():
        assert stats[keys.LAG_PREFIX + keys.token_lag(lag)] == n_tokens
    assert stats[keys.LAG_PREFIX + keys.LAG_TOKENS] == sum(fed.values())
    assert stats[keys.LAG_PREFIX + keys.token_lag_ge(8)] == 0
    assert stats[keys.LAG_PREFIX + keys.TOKEN_LAG + "/max"] == 3
    torch.testing.assert_close(
        stats[keys.LAG_PREFIX + keys.TOKEN_LAG + "/avg"], 1.5, rtol=0.0, atol=1e-6
    )


@pytest.mark.parametrize("method", ["a3po", "a3po-linear", "behave"])
def test_ppo_update_approximate_provider_skips_forward_and_updates(fsdp_actor, ppo_step, method):
    step = ppo_step(fsdp_actor, method, keep_params=True)
    stats = step.stats
    assert not step.recomputed
    assert step.forwards == 0, "the recompute forward ran although the provider skips it"
    assert math.isfinite(stats["ppo_actor/update/actor_loss/avg"])
    before, after = step.params_before, step.params_after
    moved = max(float((after[n] - before[n]).abs().max()) for n in after)
    assert moved > 0.0, "ppo_update did not change any parameter"
    key = f"ppo_actor/update/compute_logp/{method}/approx_logp/avg"
    assert math.isfinite(stats[key])
    assert "ppo_actor/update/compute_logp/prox_logp_gt/avg" not in stats


def test_ppo_update_a3po_logs_lag_weight_of_the_fed_lags(fsdp_actor, ppo_step):
    step = ppo_step(fsdp_actor, "a3po")
    stats = step.stats
    p = "ppo_actor/update/compute_logp/"
    fed = step.staleness_counts()  # the batch's rows have lags 0, 1, 2, 3
    assert sorted(fed) == [0, 1, 2, 3]
    weight = {0: 1.0, 1: 1.0, 2: 0.5, 3: 1.0 / 3.0}  # w = clamp(1/d, 0, 1), d = 0 -> behave
    expected = sum(weight[d] * n for d, n in fed.items()) / sum(fed.values())
    torch.testing.assert_close(stats[f"{p}lag_weight_behave/avg"], expected, rtol=0.0, atol=1e-6)
    # the lag itself is logged once per update, for every method: ppo_actor/a3po/token_lag
    assert not any(k.startswith(f"{p}staleness") for k in stats)
    for name in ("behave_imp_weight", "importance_weight"):
        assert stats[f"{p}a3po/{name}/avg"] > 0


def test_ppo_update_a3po_metrics_logs_error_of_every_approximation(fsdp_actor, ppo_step):
    step = ppo_step(fsdp_actor, "a3po-metrics")
    stats = step.stats
    assert step.recomputed and step.forwards == 1
    p = "ppo_actor/update/compute_logp/"
    for name in ("a3po", "a3po-linear", "behave"):
        for err in (
            "abs_error",
            "rel_error",
            "importance_weight_abs_error",
            "behave_imp_weight_abs_error",
        ):
            assert stats[f"{p}{name}/{err}/avg"] >= 0.0
    # a3po-metrics trains on the recompute: its own "approximation" is the ground truth.
    assert stats[f"{p}a3po-metrics/approx_logp/avg"] == pytest.approx(
        stats[f"{p}prox_logp_gt/avg"], abs=1e-6
    )
    # On minibatch 0 the recompute equals the training forward, so theta/prox == 1 exactly.
    assert stats[f"{p}a3po-metrics/importance_weight/avg"] == pytest.approx(1.0, abs=1e-6)
