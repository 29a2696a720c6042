"""Padded (batch, seq) and packed 1-D micro-batches through AReaL's (patched) ``grpo_loss_fn``.

AReaL's loss accepts both layouts (its own tests call it padded; its engines pack). The same
tokens in either layout must give the same loss and the same exported statistics, for every
registered provider (AReaL's own methods through the plugin's dispatch too), and the plugin's
statistics must not break ``stats_tracker`` when they share an export window with AReaL's own
``compute_logp`` statistics of the same layout (issue 34: a padded micro-batch after AReaL's
``recompute`` ended in ``AssertionError: (torch.Size([3, 10]), torch.Size([30]))``).

Real AReaL code throughout: ``PPOActor._compute_advantages`` and ``PPOActor._ppo_update`` as the
coupling patches them, with a stand-in engine whose ``train_batch`` calls the loss once per PPO
minibatch, in the layout under test (packed through AReaL's ``pack_tensor_dict``); no model.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch

from areal_a3po import keys, registry
from areal_a3po.config import A3POConfig
from tests import harness as H

VERSION = 5  # the trainer's weight version
MAX_LEN = 10
# Per sequence: prompt length, total length (< MAX_LEN: padded), versions of its response tokens
# (two versions: an interrupted generation, so a sequence mixes lags).
SEQS = [(3, 10, (5, 5)), (2, 8, (4, 2)), (4, 9, (3, 3)), (2, 6, (1, 0))]
PREFIXES = (keys.PREFIX, keys.LAG_PREFIX)  # the plugin's worker keys (compute_logp, token lag)
NATIVE = ("recompute", "loglinear", "metrics")
PLUGIN = tuple(sorted(n for n in registry.providers() if registry.is_plugin_provider(n)))


def _with_recompute(method: str) -> bool:
    """Whether the controller runs the recompute forward for ``method`` (hybrid: see cases)."""
    p = registry.get_provider(method)
    return p.needs_recompute or p.calibrated


# (method, recompute ran): every registered provider, hybrid on and off a calibration step.
CASES = [(m, _with_recompute(m)) for m in sorted(registry.providers())] + [("hybrid", False)]


def rollout(n_seqs: int = len(SEQS), with_recompute: bool = True) -> dict[str, torch.Tensor]:
    """A padded rollout batch in AReaL's un-rolled layout (RLVRWorkflow's), padding included."""
    g = torch.Generator().manual_seed(0)
    shape = (n_seqs, MAX_LEN)
    input_ids = torch.zeros(shape, dtype=torch.int64)
    attention_mask = torch.zeros(shape, dtype=torch.bool)
    loss_mask = torch.zeros(shape, dtype=torch.int32)
    versions = torch.zeros(shape, dtype=torch.int32)  # padding: 0, as concat_padded_tensors pads
    for r, (prompt, total, (v1, v2)) in enumerate(SEQS[:n_seqs]):
        input_ids[r, :total] = torch.randint(3, 64, (total,), generator=g)
        attention_mask[r, :total] = True
        loss_mask[r, prompt:total] = 1
        versions[r, :prompt] = -1
        half = prompt + (total - prompt) // 2
        versions[r, prompt:half] = v1
        versions[r, half:total] = v2
    logprobs = (-torch.rand(shape, generator=g) * 3 - 0.2) * loss_mask
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "loss_mask": loss_mask,
        "logprobs": logprobs,
        "versions": versions,
        "rewards": torch.tensor([1.0, 0.0, 1.0, 0.0][:n_seqs]),
    }
    if with_recompute:  # compute_logp's output: already rolled (position i: token i+1)
        noise = 0.3 * torch.randn(shape, generator=g)
        batch["prox_logp"] = (torch.roll(logprobs, -1, dims=-1) + noise).clamp(max=-0.01)
    return batch


def actor_config(method: str, n_minibatches: int = 2, **fields):
    from areal.api.cli_args import PPOActorConfig

    return PPOActorConfig(
        experiment_name="a3po-test",
        trial_name="t0",
        backend="fsdp:d1",
        use_decoupled_loss=True,
        prox_logp_method=method,
        ppo_n_minibatches=n_minibatches,
        kl_ctl=0.0,
        **fields,
    )


def theta_of(mb: dict[str, torch.Tensor], minibatch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A stand-in training forward on a padded micro-batch: (log pi_theta, entropy) per token,
    a function of the token and the PPO minibatch (the weights move between minibatches)."""
    ids = mb["input_ids"].float()
    theta = mb["logprobs"] + 0.4 * torch.cos(ids + minibatch) - 0.1
    return theta.clamp(max=-1e-3), 1.0 + 0.1 * torch.sin(ids)


class StandInEngine:
    """What ``PPOActor._ppo_update`` needs of an engine; ``train_batch`` computes the loss once per
    PPO minibatch, padded as AReaL hands it over or packed as AReaL's engines do."""

    def __init__(self, layout: str):
        self.layout = layout
        self.losses: list[float] = []

    def train(self, mode: bool = True):
        return self

    def get_version(self) -> int:
        return VERSION

    def train_batch(self, input_, loss_fn, loss_weight_fn):
        theta, entropy = theta_of(input_, len(self.losses))
        loss = call_loss(loss_fn, theta, entropy, input_, self.layout)
        self.losses.append(float(loss))
        return {"loss": float(loss)}


def call_loss(loss_fn, theta, entropy, data: dict, layout: str) -> torch.Tensor:
    """``loss_fn(theta, entropy, data)`` with the padded tensors, or all of them packed."""
    if layout == "packed":
        from areal.utils.data import pack_tensor_dict

        packed = pack_tensor_dict({**data, "_theta": theta, "_entropy": entropy})
        theta, entropy = packed.pop("_theta"), packed.pop("_entropy")
        assert theta.dim() == 1 and packed["loss_mask"].dim() == 1
        data = packed
    else:
        assert theta.dim() == 2 and data["loss_mask"].dim() == 2
    return loss_fn(theta, entropy, data)


def plugin_stats(exported: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in exported.items() if k.startswith(PREFIXES) and "__count" not in k}


@contextlib.contextmanager
def quiet_actor(config, engine):
    """AReaL's PPOActor (its configuration log muted)."""
    import logging

    from areal.trainer.ppo.actor import PPOActor

    logging.disable(logging.WARNING)
    try:
        yield PPOActor(config, engine=engine)
    finally:
        logging.disable(logging.NOTSET)


def advantages(method: str, with_recompute: bool, n_seqs: int = len(SEQS)) -> dict:
    """``PPOActor._compute_advantages`` (versions rolled by the coupling for plugin providers)."""
    with quiet_actor(actor_config(method), None) as actor:
        return actor._compute_advantages(rollout(n_seqs, with_recompute))


def update(actor, data: dict) -> None:
    """``PPOActor.ppo_update`` on one batch: its ``_ppo_update`` (the patched one) in its scope."""
    from areal.utils import stats_tracker

    with stats_tracker.scope("ppo_actor"):
        actor._ppo_update(data)


def ppo_update(method: str, with_recompute: bool, layout: str, n_minibatches: int = 2, **fields):
    """One PPO update (the patched one): (losses per minibatch, exported stats)."""
    from areal.utils import stats_tracker

    engine = StandInEngine(layout)
    config = actor_config(method, n_minibatches, **fields)
    config.a3po = A3POConfig()
    with quiet_actor(config, engine) as actor:
        data = actor._compute_advantages(rollout(with_recompute=with_recompute))
        stats_tracker.export_all()
        update(actor, data)
    return engine.losses, stats_tracker.export_all()


def direct_loss(method: str, with_recompute: bool, layout: str) -> torch.Tensor:
    """AReaL's ``grpo_loss_fn`` (patched) called directly on the whole batch, as AReaL's own tests
    call it: outside an update, so the plugin logs this micro-batch at once."""
    from areal.trainer.ppo import actor as actor_mod
    from areal.utils import stats_tracker

    data = advantages(method, with_recompute)
    theta, entropy = theta_of(data, 0)
    loss_fn = functools.partial(actor_mod.grpo_loss_fn, **H.loss_kwargs(method, VERSION))
    with stats_tracker.scope(keys.WORKER_SCOPE):
        return call_loss(loss_fn, theta, entropy, data, layout)


def assert_same_stats(got: dict[str, float], expected: dict[str, float]) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize(("method", "with_recompute"), CASES)
def test_ppo_update_two_minibatches_packed_and_padded_same_loss_and_stats(method, with_recompute):
    """Two PPO minibatches through the patched ``_ppo_update``, each minibatch's loss in one call."""
    packed_losses, packed = ppo_update(method, with_recompute, "packed")
    padded_losses, padded = ppo_update(method, with_recompute, "padded")
    assert len(packed_losses) == 2
    assert all(torch.isfinite(torch.tensor(packed_losses + padded_losses)))
    torch.testing.assert_close(padded_losses, packed_losses, rtol=1e-5, atol=1e-6)
    expected = plugin_stats(packed)
    assert expected[keys.full(keys.N_VALID_TOKENS)] == sum(t - p for p, t, _ in SEQS)
    if registry.is_plugin_provider(method):
        assert keys.full(keys.provider_key(method, keys.APPROX_LOGP), "avg") in expected
    assert_same_stats(plugin_stats(padded), expected)


def test_a3po_metrics_sequence_rejection_sampling_packed_and_padded_same_fidelity():
    """AReaL's sequence-level rejection sampling groups tokens by cu_seqlens when packed and by
    row when padded: the fidelity scores (reject_mismatch among them) agree."""
    from areal.api.cli_args import RejectionSamplingConfig

    rs = RejectionSamplingConfig(
        level="sequence", action="mask", metric="ratio", upper=1.05, lower=0.95
    )
    runs = {
        layout: ppo_update("a3po-metrics", True, layout, rejection_sampling=rs)
        for layout in ("packed", "padded")
    }
    (packed_losses, packed), (padded_losses, padded) = runs["packed"], runs["padded"]
    torch.testing.assert_close(padded_losses, packed_losses, rtol=1e-5, atol=1e-6)
    expected = plugin_stats(packed)
    mismatch = [v for k, v in expected.items() if k.endswith(keys.REJECT_MISMATCH)]
    assert mismatch and max(mismatch) > 0  # some approximation decides differently
    assert_same_stats(plugin_stats(padded), expected)


@pytest.mark.parametrize(("method", "with_recompute"), CASES)
def test_direct_loss_call_packed_and_padded_same_loss_and_stats(method, with_recompute):
    from areal.utils import stats_tracker

    results = {}
    for layout in ("packed", "padded"):
        stats_tracker.export_all()
        loss = direct_loss(method, with_recompute, layout)
        assert bool(torch.isfinite(loss))
        results[layout] = (float(loss), plugin_stats(stats_tracker.export_all()))
    torch.testing.assert_close(results["padded"][0], results["packed"][0], rtol=1e-6, atol=1e-6)
    assert_same_stats(results["padded"][1], results["packed"][1])


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("native", NATIVE)
@pytest.mark.parametrize("method", PLUGIN)
def test_plugin_loss_after_areal_method_same_window_no_shape_error(method, native, layout):
    """AReaL's own method, then a plugin provider, on the same micro-batch in one export window
    (as a script comparing against ``recompute`` runs them), and the other way round: the plugin's
    entries pair with AReaL's ``compute_logp`` entries, and its own statistics are those it logs
    alone."""
    from areal.utils import stats_tracker

    recompute = _with_recompute(method) or registry.get_provider(native).needs_recompute
    stats_tracker.export_all()
    direct_loss(method, recompute, layout)
    alone = plugin_stats(stats_tracker.export_all())
    for first, second in ((native, method), (method, native)):
        direct_loss(first, recompute, layout)
        direct_loss(second, recompute, layout)
        both = plugin_stats(stats_tracker.export_all())
        ours = {k: v for k, v in both.items() if k in alone}
        ours.pop(keys.full(keys.N_VALID_TOKENS))  # counted twice: AReaL's and the plugin's
        assert_same_stats(ours, {k: alone[k] for k in ours})
        assert both[keys.full(keys.N_VALID_TOKENS)] == 2 * alone[keys.full(keys.N_VALID_TOKENS)]


@pytest.mark.parametrize("method", ["a3po", "a3po-metrics"])
def test_plugin_update_after_areal_update_one_minibatch_same_window_no_shape_error(method):
    """One-minibatch updates of AReaL's ``recompute`` and a plugin provider, padded, one export
    window: the plugin's once-per-update log of a single micro-batch keeps its layout."""
    from areal.utils import stats_tracker

    _, alone = ppo_update(method, True, "padded", n_minibatches=1)
    alone = plugin_stats(alone)
    stats_tracker.export_all()
    for m in ("recompute", method):
        engine = StandInEngine("padded")
        with quiet_actor(actor_config(m, 1), engine) as actor:
            update(actor, actor._compute_advantages(rollout(with_recompute=True)))
        assert torch.isfinite(torch.tensor(engine.losses)).all()
    both = plugin_stats(stats_tracker.export_all())
    approx = keys.full(keys.provider_key(method, keys.APPROX_LOGP), "avg")
    torch.testing.assert_close(both[approx], alone[approx], rtol=1e-5, atol=1e-6)
