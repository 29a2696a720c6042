"""AReaL's real FSDPPPOActor on CPU (gloo, world size 1, tiny local Qwen2): ppo_update per provider.

The step below follows ``areal.trainer.rl_trainer.PPOTrainer.train`` line for line for the actor:
``if config.actor.should_compute_prox_logp(): compute_logp`` -> ``compute_advantages`` ->
``ppo_update``. Engine forwards are counted on the engine instance.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests import harness as H

CURRENT_VERSION = 3


@pytest.fixture(scope="module")
def actor(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    model = H.build_tiny_qwen2(root / "model")
    with H.dist_env():
        cfg = H.actor_config(model, str(root), prox_logp_method="recompute")
        engine = H.make_actor(cfg)
        engine.set_version(CURRENT_VERSION)
        H.count_forwards(engine)
        engine.behave_source = H.hf_token_logprobs(model)
        yield engine
        engine.destroy()


def params(engine) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in engine.model.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = t.detach().clone()
    return out


def train_step(engine, method: str, seed: int = 0, **a3po) -> dict[str, float]:
    """One PPOTrainer actor step with actor.prox_logp_method = method; returns exported stats."""
    from areal.utils import stats_tracker

    from areal_a3po.config import A3POConfig

    engine.config.prox_logp_method = method
    engine.config.a3po = A3POConfig(**a3po)
    batch = H.make_batch(
        4, current_version=CURRENT_VERSION, seed=seed, logp_source=engine.behave_source
    )
    traj = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(4)]
    stats_tracker.export()  # drop anything earlier tests left
    if engine.config.should_compute_prox_logp():  # the trainer's decision (rl_trainer.py)
        for t, logp in zip(traj, engine.compute_logp(traj), strict=True):
            t["prox_logp"] = logp
    adv = engine.compute_advantages(traj)
    engine.ppo_update(adv)
    return stats_tracker.export()


def test_ppo_update_recompute_runs_compute_logp_forward(actor):
    before = actor.n_forward
    stats = train_step(actor, "recompute")
    assert actor.n_forward - before == 1
    assert math.isfinite(stats["ppo_actor/update/actor_loss/avg"])
    assert "ppo_actor/update/compute_logp/prox_logp_gt/avg" in stats
    assert not any("/a3po/" in k for k in stats)


@pytest.mark.parametrize("method", ["a3po", "a3po-linear", "behave"])
def test_ppo_update_approximate_provider_skips_forward_and_updates(actor, method):
    before_params = params(actor)
    before = actor.n_forward
    stats = train_step(actor, method)
    assert actor.n_forward - before == 0, "the recompute forward ran although the provider skips it"
    assert math.isfinite(stats["ppo_actor/update/actor_loss/avg"])
    after = params(actor)
    moved = max(float((after[n] - before_params[n]).abs().max()) for n in after)
    assert moved > 0.0, "ppo_update did not change any parameter"
    key = f"ppo_actor/update/compute_logp/{method}/approx_logp/avg"
    assert math.isfinite(stats[key])
    assert "ppo_actor/update/compute_logp/prox_logp_gt/avg" not in stats


def test_ppo_update_a3po_logs_staleness_per_lag(actor):
    stats = train_step(actor, "a3po")
    p = "ppo_actor/update/compute_logp/"
    # make_batch: rows have lags 0, 1, 2, 3; each row has RESPONSE_LEN loss tokens after the roll.
    n_tokens = H.RESPONSE_LEN
    for lag in range(4):
        assert stats[f"{p}staleness_lag_{lag}"] == n_tokens
    assert stats[f"{p}staleness_lag_ge8"] == 0
    assert stats[f"{p}staleness/max"] == 3
    assert stats[f"{p}staleness/avg"] == pytest.approx(1.5, abs=1e-6)
    for name in ("behave_imp_weight", "importance_weight"):
        assert stats[f"{p}a3po/{name}/avg"] > 0


def test_ppo_update_a3po_metrics_logs_error_of_every_approximation(actor):
    before = actor.n_forward
    stats = train_step(actor, "a3po-metrics")
    assert actor.n_forward - before == 1
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
