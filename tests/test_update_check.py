"""The update's batch is checked once; its micro-batches then look lag weights up per version.

``loss.begin_update`` runs ``providers.check_update`` on the whole batch before AReaL splits it
(one pass, two host syncs); the micro-batches skip ``check_inputs`` and take each token's weight
from a table over the versions -1..V. Nothing about the result may change: the weights and
log pi_prox equal the per-token computation exactly, bad input still fails with the same clear
error, and a batch the table cannot serve (a version outside [-1, V] off the loss mask) keeps the
per-micro-batch path.
"""

from __future__ import annotations

import pytest
import torch

V = 8  # trainer version
PROVIDERS = ("a3po", "a3po-linear", "a3po-step", "behave", "current")


def _inputs(dtype: torch.dtype, minibatch: int, shared: dict, versions=None):
    from areal_a3po.api import ProxInputs
    from areal_a3po.config import A3POConfig

    g = torch.Generator().manual_seed(3)
    shape = (4, 19) if versions is None else tuple(versions.shape)
    if versions is None:
        versions = torch.randint(V - 4, V + 1, shape, generator=g).to(dtype)
        versions[:, :3] = -1  # prompt tokens
    return ProxInputs(
        behave_logp=-torch.rand(shape, generator=g) * 3,
        theta_logp=-torch.rand(shape, generator=g) * 3,
        loss_mask=versions >= 0,
        versions=versions,
        current_version=V,
        minibatch=minibatch,
        n_minibatches=4,
        options=A3POConfig(anchor_offset=1.5),
        shared=shared,
    )


@pytest.mark.version_independent  # pure torch: leg 1 only
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("name", PROVIDERS)
def test_weight_table_checked_update_equals_per_token_weights(name, dtype):
    from areal_a3po import providers, registry

    provider = registry.get_provider(name)
    for minibatch in (0, 2):
        fresh = _inputs(dtype, minibatch, {})
        shared: dict = {}
        batch = _inputs(dtype, minibatch, shared)
        providers.check_update(batch, name, True)
        assert providers.checked(batch)  # the table path really runs
        torch.testing.assert_close(
            provider.compute(batch), provider.compute(fresh), rtol=0.0, atol=0.0
        )
        torch.testing.assert_close(
            providers.lag_weight(batch), providers.lag_weight(fresh), rtol=0.0, atol=0.0
        )
        assert any(isinstance(k, tuple) for k in shared)  # a per-version table was built


@pytest.mark.version_independent  # pure torch: leg 1 only
def test_check_update_version_off_mask_out_of_range_keeps_per_token_path():
    from areal_a3po import providers, registry

    versions = torch.full((2, 6), V, dtype=torch.int64)
    versions[:, :2] = -1
    versions[1, 0] = 99  # padding garbage off the loss mask: ignored by the check, not by a table
    shared: dict = {}
    batch = _inputs(torch.int64, 1, shared, versions=versions)
    batch.loss_mask[:, :2] = False
    providers.check_update(batch, "a3po", True)  # valid input: no error ...
    assert not providers.checked(batch)  # ... but no table: the micro-batches check themselves
    out = registry.get_provider("a3po").compute(batch)
    assert bool(torch.isfinite(out).all())


@pytest.mark.version_independent  # pure torch: leg 1 only
def test_check_update_version_ahead_on_mask_raises_naming_tokens():
    from areal_a3po import providers
    from areal_a3po.api import ProxInputError

    versions = torch.full((2, 6), V, dtype=torch.int64)
    versions[0, 4] = V + 1
    batch = _inputs(torch.int64, 0, {}, versions=versions)
    with pytest.raises(
        ProxInputError, match=r"versions ahead of the trainer \(current_version=8\): 1 of 12"
    ):
        providers.check_update(batch, "a3po", True)


def test_ppo_update_good_batch_checks_once_not_per_micro_batch(fsdp_actor, ppo_step, monkeypatch):
    """On AReaL's FSDP actor (one sequence per micro-batch): one whole-batch check, no
    per-micro-batch check, the same statistics keys."""
    from areal_a3po import loss, providers

    calls = {"update": 0, "micro_batch": 0}
    update, micro = providers.check_update, loss.check_inputs

    def counting_update(*a, **kw):
        calls["update"] += 1
        return update(*a, **kw)

    def counting_micro(*a, **kw):
        calls["micro_batch"] += 1
        return micro(*a, **kw)

    monkeypatch.setattr(loss, "check_update", counting_update)
    monkeypatch.setattr(loss, "check_inputs", counting_micro)
    step = ppo_step(fsdp_actor, "a3po-step")
    assert calls == {"update": 1, "micro_batch": 0}
    assert (
        step.stats["ppo_actor/update/actor_loss/avg"]
        == step.stats["ppo_actor/update/actor_loss/avg"]
    )  # finite (NaN != NaN)


def test_ppo_update_version_ahead_raises_before_any_micro_batch(fsdp_actor, ppo_step):
    from areal_a3po.api import ProxInputError

    def ahead(batch):  # one response token labelled with a version the trainer never had
        row = int(batch["loss_mask"].sum(-1).argmax())
        col = int(batch["loss_mask"][row].nonzero()[0]) + 1
        batch["versions"][row, col] = fsdp_actor.get_version() + 1

    with pytest.raises(ProxInputError, match="versions ahead of the trainer"):
        ppo_step(fsdp_actor, "a3po", edit_batch=ahead)


@pytest.mark.version_independent  # pure torch: leg 1 only
def test_check_theta_after_update_nonfinite_off_mask_passes_on_mask_raises():
    from areal_a3po import providers
    from areal_a3po.api import ProxInputError

    shared: dict = {}
    batch = _inputs(torch.int64, 0, shared)
    providers.check_update(batch, "a3po", True)
    assert providers.checked(batch)
    off = (~batch.loss_mask).nonzero()[0]
    batch.theta_logp[tuple(off)] = float("nan")  # off the loss mask: ignored
    providers.check_theta_after_update([batch], "a3po")
    on = batch.loss_mask.nonzero()
    batch.theta_logp[tuple(on[0])] = float("inf")
    batch.theta_logp[tuple(on[1])] = float("nan")
    with pytest.raises(ProxInputError, match=r"pi_theta\): 2 of 64 loss-mask tokens"):
        providers.check_theta_after_update([batch], "a3po")


@pytest.mark.parametrize("method", ["a3po-step", "behave"])
def test_ppo_update_nonfinite_theta_raises_weights_kept(fsdp_actor, ppo_step, method):
    """A NaN training forward inside a checked update (its micro-batches skip the check before
    the loss). a3po-step: log pi_prox = pi_theta on minibatch 0 is NaN, AReaL's loss refuses it
    and the plugin names the tensor. behave: log pi_prox is finite, the loss and gradient are
    not, AReaL skips the optimizer step and the update ends with the same error. Either way no
    weight changes and the actor trains on."""
    from areal_a3po.api import ProxInputError
    from tests.harness import snapshot_params

    calls = []

    def nan_logits(module, args, output):  # the update's first forward only
        calls.append(1)
        if len(calls) == 1:
            output.logits = output.logits * float("nan")  # in the graph: NaN gradients too
        return output

    before = snapshot_params(fsdp_actor)
    handle = fsdp_actor.model.register_forward_hook(nan_logits)
    try:
        with pytest.raises(ProxInputError, match=r"training log-probs \(pi_theta\): \d+ of \d+"):
            ppo_step(fsdp_actor, method)
    finally:
        handle.remove()
    assert (len(calls) > 1) == (method == "behave")  # behave: raised at the end of the update
    after = snapshot_params(fsdp_actor)
    for name, t in before.items():  # one minibatch: its step skipped, no weight lost or changed
        torch.testing.assert_close(after[name], t, rtol=0.0, atol=0.0)
    step = ppo_step(fsdp_actor, method, keep_params=True)  # and the actor trains on
    assert any(not torch.equal(t, step.params_after[n]) for n, t in step.params_before.items())
