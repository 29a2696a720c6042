"""``current`` (exact on minibatch 0) and ``hybrid`` (calibrated recompute) on AReaL's real FSDP actor."""

from __future__ import annotations

import pytest
import torch

from areal_a3po.config import A3POConfig

P = "ppo_actor/update/compute_logp/"


def fresh_step(make_actor, ppo_step, method: str, n_minibatches: int, **a3po):
    """A new actor from the same checkpoint, one PPOTrainer actor step (parameters kept)."""
    with make_actor(
        prox_logp_method=method, ppo_n_minibatches=n_minibatches, a3po=A3POConfig(**a3po)
    ) as actor:
        return ppo_step(actor, seed=1, keep_params=True)


def test_current_one_minibatch_same_loss_and_update_as_recompute_no_forward(make_actor, ppo_step):
    ref = fresh_step(make_actor, ppo_step, "recompute", 1)
    cur = fresh_step(make_actor, ppo_step, "current", 1)
    assert ref.forwards == 1 and cur.forwards == 0
    # float32 CPU, one sequence per micro-batch: the recompute equals the training forward exactly.
    assert cur.stats["ppo_actor/update/actor_loss/avg"] == pytest.approx(
        ref.stats["ppo_actor/update/actor_loss/avg"], rel=0, abs=1e-7
    )
    for name, expected in ref.params_after.items():
        torch.testing.assert_close(cur.params_after[name], expected, rtol=0, atol=1e-7)
    moved = max(float((ref.params_after[n] - p).abs().max()) for n, p in ref.params_before.items())
    assert moved > 1e-4, "the step did not move the parameters, so equality would prove nothing"
    assert cur.stats[f"{P}exact_token_share/avg"] == 1.0
    assert cur.stats[f"{P}current/importance_weight/avg"] == pytest.approx(1.0, abs=1e-7)


def test_current_two_minibatches_first_exact_second_fallback(make_actor, ppo_step):
    from areal_a3po import registry

    fallback = registry.get_provider("a3po")
    calls: list[int] = []
    compute = fallback.compute

    def spy(inp):
        calls.append(inp.minibatch)
        return compute(inp)

    object.__setattr__(fallback, "compute", spy)  # Provider is frozen; restored below
    try:
        step = fresh_step(make_actor, ppo_step, "current", 2, fallback="a3po")
    finally:
        object.__setattr__(fallback, "compute", compute)
    assert step.forwards == 0
    assert calls == [1, 1], "the fallback must run on (only) minibatch 1's two micro-batches"
    assert step.stats[f"{P}exact_token_share/avg"] == pytest.approx(0.5, abs=1e-7)


def test_hybrid_switching_controller_and_worker_agree(make_actor, ppo_step):
    """interval 3; tiny threshold escalates, huge threshold de-escalates (set before step 2)."""
    options = A3POConfig(calibration_interval=3, error_threshold=1e-12, fallback="a3po")
    steps = []
    with make_actor(prox_logp_method="hybrid", a3po=options) as actor:
        cfg, start = actor.config, actor.get_version()
        for step in range(7):
            if step == 2:
                cfg.a3po.error_threshold = 1e9
            actor.set_version(start + step)
            # the controller decides (same process in SPMD); stats are what the trainer exports
            steps.append(ppo_step(actor, seed=step))
    decisions = [s.recomputed for s in steps]
    recomputed = [s.stats[f"{P}recomputed"] for s in steps]  # the worker saw ground truth then
    errors = [s.stats.get(f"{P}a3po/abs_error/avg") for s in steps]
    assert decisions == [True, True, True, True, False, False, True]
    assert [s.forwards for s in steps] == [1 if d else 0 for d in decisions]
    assert recomputed == [1.0 if d else 0.0 for d in decisions]
    assert [s.stats[f"{P}exact_token_share/avg"] for s in steps] == recomputed
    assert all((e is not None) == d for e, d in zip(errors, decisions, strict=True))
    assert all(e > 0 for e in errors if e is not None)
    cal = cfg.__dict__["_a3po_calibrator"]
    assert cal.escalated is False and cal.last_error == pytest.approx(errors[6])
