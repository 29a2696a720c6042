"""AReaL's proximal-reading options and ``reuse_train_logp`` with the plugin, on the real FSDP actor.

Runs on whichever AReaL this environment has; what a version lacks is skipped with the reason.
The step follows ``PPOTrainer.train`` for the actor (see tests/test_fsdp_actor.py). The batch's rows
have lags 0, 1, 2, 3 (``harness.make_batch``): with a3po's paper weight 1/lag on pi_behave, rows of
lag 0 and 1 get pi_prox = pi_behave exactly, rows of lag 2 and 3 do not, which lets each option's
effect be predicted from the plugin's pi_prox rather than from a recompute.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tests import harness as H

CURRENT_VERSION = 3


def _areal_methods() -> set[str]:
    from areal.utils.constants import ProxLogpMethod

    return {m.value for m in ProxLogpMethod}


HAS_REUSE = "reuse_train_logp" in _areal_methods()
needs_reuse = pytest.mark.skipif(
    not HAS_REUSE, reason="this AReaL has no prox_logp_method reuse_train_logp (added in 2.0)"
)
U = "ppo_actor/update/"
P = U + "compute_logp/"


def _has_cispo() -> bool:
    from areal.api.cli_args import PPOActorConfig

    return "use_cispo_loss" in {f.name for f in dataclasses.fields(PPOActorConfig)}


needs_cispo = pytest.mark.skipif(
    not _has_cispo(), reason="this AReaL has no actor.use_cispo_loss (added in 2.0)"
)


def _engine(root, name: str):
    """An FSDPPPOActor; every engine loads the same saved weights."""
    from areal.api.io_struct import FinetuneSpec
    from areal.engine.fsdp_engine import FSDPPPOActor

    model = H.build_tiny_qwen2(root / "model")
    engine = FSDPPPOActor(H.actor_config(model, prox_logp_method="recompute", trial_name=name))
    engine.create_process_group()
    engine.initialize(None, FinetuneSpec(total_train_epochs=1, dataset_size=10, train_batch_size=1))
    engine.set_version(CURRENT_VERSION)
    engine.behave_source = H.hf_token_logprobs(model)
    return engine


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("areal2-fsdp")
    with H.dist_env():
        pair = (_engine(root, "a"), _engine(root, "b"))
        yield pair
        for e in pair:
            e.destroy()


params = H.snapshot_params


def step(engine, method: str, seed: int = 0, **fields) -> dict[str, float]:
    """One PPOTrainer actor step with ``actor.prox_logp_method = method`` and extra actor fields."""
    from areal.utils import stats_tracker

    from areal_a3po.config import A3POConfig

    base = dict(prox_logp_method=method, rejection_sampling=None, m2_threshold=None)
    if "use_cispo_loss" in {f.name for f in dataclasses.fields(engine.config)}:
        base |= dict(use_cispo_loss=False, eps_clip=0.2, eps_clip_higher=None)
    for k, v in (base | fields).items():
        setattr(engine.config, k, v)
    engine.actor.m2_threshold = engine.config.m2_threshold  # PPOActor copies it at construction
    engine.config.a3po = A3POConfig()
    batch = H.make_batch(
        4, current_version=CURRENT_VERSION, seed=seed, logp_source=engine.behave_source
    )
    traj = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(4)]
    stats_tracker.export()
    if engine.config.should_compute_prox_logp():
        for t, logp in zip(traj, engine.compute_logp(traj), strict=True):
            t["prox_logp"] = logp
    engine.ppo_update(engine.compute_advantages(traj))
    return stats_tracker.export()


@needs_reuse
def test_current_equals_reuse_train_logp_one_minibatch_same_loss_and_update(engines):
    """Two engines from the same weights, same batch: plugin 'current' vs AReaL 'reuse_train_logp'."""
    a, b = engines
    before = params(a)
    for name, t in params(b).items():
        torch.testing.assert_close(t, before[name], rtol=0, atol=0)
    sa = step(a, "current", seed=11)
    sb = step(b, "reuse_train_logp", seed=11)
    assert not any(f"{P}current/" in k for k in sb) and f"{P}current/approx_logp/avg" in sa
    # Same proximal policy (the training forward's log-probs) and the same loss ...
    torch.testing.assert_close(sa[f"{P}current/approx_logp/avg"], sb[f"{P}prox_logp_gt/avg"])
    torch.testing.assert_close(sa[f"{U}actor_loss/avg"], sb[f"{U}actor_loss/avg"], rtol=0, atol=0)
    torch.testing.assert_close(sa[f"{U}importance_weight/avg"], 1.0)
    # ... and the same parameter update, bit for bit.
    pa, pb = params(a), params(b)
    moved = max(float((pa[n] - before[n]).abs().max()) for n in pa)
    assert moved > 0.0
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=0, atol=0)


def test_rejection_sampling_icepop_mask_reads_plugin_prox(engines):
    """IcePop-style ratio mask, tight bounds: only a3po rows with pi_prox != pi_behave (lag >= 2)."""
    from areal.api.cli_args import RejectionSamplingConfig

    rs = RejectionSamplingConfig(
        level="token", action="mask", metric="ratio", upper=1.0001, lower=0.9999
    )
    stats = step(engines[0], "a3po", rejection_sampling=rs)
    assert stats[f"{U}rs_filtered_fraction"] == pytest.approx(0.5)
    assert stats[f"{U}unclipped_behave_tokens"] == 2 * H.RESPONSE_LEN
    assert stats[f"{P}n_valid_tokens"] == 2 * H.RESPONSE_LEN  # plugin metrics on kept tokens
    assert math.isfinite(stats[f"{U}actor_loss/avg"])


def test_rejection_sampling_with_current_filters_against_training_forward(engines):
    """'current' on minibatch 0: pi_prox = pi_theta != pi_behave (behave carries noise), so a tight
    ratio mask drops every token, while a3po kept half: the mask reads the plugin's pi_prox."""
    from areal.api.cli_args import RejectionSamplingConfig

    tight = RejectionSamplingConfig(
        level="token", action="mask", metric="ratio", upper=1.0001, lower=0.9999
    )
    loose = dataclasses.replace(tight, upper=1e6, lower=1e-6)
    stats = step(engines[0], "current", rejection_sampling=loose)
    assert stats[f"{U}rs_filtered_fraction"] == 0.0
    assert stats[f"{U}unclipped_behave_tokens"] == 4 * H.RESPONSE_LEN
    stats = step(engines[0], "current", rejection_sampling=tight)
    assert stats[f"{U}rs_filtered_fraction"] == 1.0


def test_m2po_masks_only_tokens_where_plugin_prox_differs(engines):
    """M2PO, tiny threshold, one sequence per micro-batch: rows of lag 0 and 1 have
    (behave - prox)^2 = 0 and keep all tokens; in rows of lag 2 and 3 every token has m2 > 0, so
    AReaL masks all but one (its floor)."""
    stats = step(engines[0], "a3po", m2_threshold=1e-12)
    assert stats[f"{U}n_valid_tokens"] == 2 * H.RESPONSE_LEN + 2
    assert math.isfinite(stats[f"{U}actor_loss/avg"])


@needs_cispo
@pytest.mark.parametrize("method", ["a3po", "current"])
def test_cispo_is_weight_from_plugin_prox(engines, method):
    """CISPO's importance weight exp(theta - prox) is the plugin's (its own stat agrees)."""
    before = params(engines[0])
    stats = step(engines[0], method, use_cispo_loss=True, eps_clip=1.0, eps_clip_higher=4.0)
    assert math.isfinite(stats[f"{U}actor_loss/avg"])
    torch.testing.assert_close(
        stats[f"{U}importance_weight/avg"], stats[f"{P}{method}/importance_weight/avg"]
    )
    after = params(engines[0])
    assert max(float((after[n] - before[n]).abs().max()) for n in after) > 0.0


def test_module_flags_consistent_with_installed_areal():
    """Guard against a skip reason that lies: reuse_train_logp and CISPO arrived together (2.0)."""
    assert _has_cispo() is HAS_REUSE
