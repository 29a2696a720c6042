"""``current`` (exact on minibatch 0) and ``hybrid`` (calibrated recompute) on AReaL's real FSDP actor."""

from __future__ import annotations

import pytest
import torch

from areal_a3po.config import A3POConfig
from tests import harness as H
from tests.test_fsdp_actor import CURRENT_VERSION, params

P = "ppo_actor/update/compute_logp/"


def fresh_step(model: str, root: str, method: str, n_minibatches: int, **a3po):
    """A new actor from the same checkpoint, one PPOTrainer actor step; (stats, params, n_forward)."""
    from areal.utils import stats_tracker

    with H.dist_env():
        engine = H.make_actor(
            H.actor_config(
                model,
                root,
                prox_logp_method=method,
                ppo_n_minibatches=n_minibatches,
                a3po=A3POConfig(**a3po),
            )
        )
        engine.set_version(CURRENT_VERSION)
        H.count_forwards(engine)
        batch = H.make_batch(
            4, current_version=CURRENT_VERSION, seed=1, logp_source=H.hf_token_logprobs(model)
        )
        traj = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(4)]
        stats_tracker.export()
        if engine.config.should_compute_prox_logp():
            for t, logp in zip(traj, engine.compute_logp(traj), strict=True):
                t["prox_logp"] = logp
        engine.ppo_update(engine.compute_advantages(traj))
        stats = engine.export_stats()
        after, n_forward = params(engine), engine.n_forward
        engine.destroy()
    return stats, after, n_forward


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("current")
    return H.build_tiny_qwen2(root / "model"), str(root)


def test_current_one_minibatch_same_loss_and_update_as_recompute_no_forward(model):
    path, root = model
    ref_stats, ref_params, ref_fwd = fresh_step(path, root, "recompute", 1)
    cur_stats, cur_params, cur_fwd = fresh_step(path, root, "current", 1)
    assert ref_fwd == 1 and cur_fwd == 0
    # float32 CPU, one sequence per micro-batch: the recompute equals the training forward exactly.
    assert cur_stats["ppo_actor/update/actor_loss/avg"] == pytest.approx(
        ref_stats["ppo_actor/update/actor_loss/avg"], rel=0, abs=1e-7
    )
    for name, ref in ref_params.items():
        torch.testing.assert_close(cur_params[name], ref, rtol=0, atol=1e-7)
    moved = max(float((ref_params[n] - p).abs().max()) for n, p in params_init(path).items())
    assert moved > 1e-4, "the step did not move the parameters, so equality would prove nothing"
    assert cur_stats[f"{P}exact_token_share/avg"] == 1.0
    assert cur_stats[f"{P}current/importance_weight/avg"] == pytest.approx(1.0, abs=1e-7)


def params_init(path: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return {n: p.detach() for n, p in m.named_parameters()}


def test_current_two_minibatches_first_exact_second_fallback(model):
    from areal_a3po import registry

    path, root = model
    fallback = registry.get_provider("a3po")
    calls: list[int] = []
    compute = fallback.compute

    def spy(inp):
        calls.append(inp.minibatch)
        return compute(inp)

    object.__setattr__(fallback, "compute", spy)  # Provider is frozen; restored below
    try:
        stats, _, n_fwd = fresh_step(path, root, "current", 2, fallback="a3po")
    finally:
        object.__setattr__(fallback, "compute", compute)
    assert n_fwd == 0
    assert calls == [1, 1], "the fallback must run on (only) minibatch 1's two micro-batches"
    assert stats[f"{P}exact_token_share/avg"] == pytest.approx(0.5, abs=1e-7)


def test_hybrid_switching_controller_and_worker_agree(model):
    """interval 3; tiny threshold escalates, huge threshold de-escalates (set before step 2)."""
    from areal.utils import stats_tracker

    path, root = model
    with H.dist_env():
        cfg = H.actor_config(
            path,
            root,
            prox_logp_method="hybrid",
            a3po=A3POConfig(calibration_interval=3, error_threshold=1e-12, fallback="a3po"),
        )
        engine = H.make_actor(cfg)
        src = H.hf_token_logprobs(path)
        decisions, recomputed, errors, forwards = [], [], [], []
        H.count_forwards(engine)
        for step in range(7):
            if step == 2:
                cfg.a3po.error_threshold = 1e9
            engine.set_version(CURRENT_VERSION + step)
            b = H.make_batch(4, current_version=CURRENT_VERSION + step, seed=step, logp_source=src)
            traj = [{k: v[i : i + 1] for k, v in b.items()} for i in range(4)]
            before = engine.n_forward
            decision = cfg.should_compute_prox_logp()  # the controller (same process in SPMD)
            if decision:
                for t, logp in zip(traj, engine.compute_logp(traj), strict=True):
                    t["prox_logp"] = logp
            engine.ppo_update(engine.compute_advantages(traj))
            stats = engine.export_stats()  # reduced stats: what the trainer exports each step
            decisions.append(decision)
            forwards.append(engine.n_forward - before)
            recomputed.append(stats[f"{P}recomputed"])
            errors.append(stats.get(f"{P}a3po/abs_error/avg"))
            assert stats[f"{P}exact_token_share/avg"] == (1.0 if decision else 0.0)
        engine.destroy()
    assert decisions == [True, True, True, True, False, False, True]
    assert forwards == [1 if d else 0 for d in decisions]
    assert recomputed == [
        1.0 if d else 0.0 for d in decisions
    ]  # the worker saw ground truth exactly then
    assert all((e is not None) == d for e, d in zip(errors, decisions, strict=True))
    assert all(e > 0 for e in errors if e is not None)
    cal = cfg.__dict__["_a3po_calibrator"]
    assert cal.escalated is False and cal.last_error == pytest.approx(errors[6])
    stats_tracker.export()
