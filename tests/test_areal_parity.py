"""Parity with AReaL 1.0.4's built-in ``loglinear`` and the token-alignment difference.

Runs AReaL's own functions: ``compute_prox_logp_approximations`` and ``PPOActor._compute_advantages``
(an unbound call on a real ``PPOActor`` with a real ``PPOActorConfig``; the engine is not needed
for advantage computation).
"""

from __future__ import annotations

import torch

from areal_a3po import approx
from areal_a3po.providers import a3po_log, a3po_prob
from areal_a3po.registry import ProxInputs


def _inputs(behave, theta, versions, current, mask=None):
    return ProxInputs(
        behave_logp=behave,
        theta_logp=theta,
        loss_mask=torch.ones_like(behave, dtype=torch.bool) if mask is None else mask,
        versions=versions,
        current_version=current,
    )


def test_a3po_one_version_per_sequence_matches_areal_loglinear_and_linear():
    from areal.trainer.ppo.actor import compute_prox_logp_approximations

    g = torch.Generator().manual_seed(0)
    behave = -torch.rand(6, 12, generator=g) * 5
    theta = -torch.rand(6, 12, generator=g) * 5
    current = 7
    versions = torch.tensor([7, 6, 5, 3, 0, 6], dtype=torch.int32)[:, None].expand(6, 12).clone()
    ours_log = a3po_log(_inputs(behave, theta, versions, current))
    ours_prob = a3po_prob(_inputs(behave, theta, versions, current))
    theirs = compute_prox_logp_approximations(
        old_logp=behave, logprobs=theta, versions=versions, current_version=current
    )
    torch.testing.assert_close(ours_log, theirs["loglinear"], rtol=1e-6, atol=1e-6)
    # AReaL computes log(p + 1e-10) in probability space; equal wherever p >> 1e-10.
    torch.testing.assert_close(ours_prob, theirs["linear"], rtol=1e-5, atol=1e-5)


def test_areal_linear_tiny_probabilities_floored_ours_exact():
    from areal.trainer.ppo.actor import compute_prox_logp_approximations

    behave = torch.tensor([[-50.0]])
    theta = torch.tensor([[-60.0]])
    versions = torch.tensor([[0]], dtype=torch.int32)
    theirs = compute_prox_logp_approximations(
        old_logp=behave, logprobs=theta, versions=versions, current_version=2
    )["linear"]
    ours = a3po_prob(_inputs(behave, theta, versions, 2))
    exact = torch.logaddexp(
        torch.log(torch.tensor(0.5)) - 50.0, torch.log(torch.tensor(0.5)) - 60.0
    )
    torch.testing.assert_close(ours, exact.reshape(1, 1), rtol=1e-6, atol=1e-5)
    assert float(theirs) > -23.1  # log(1e-10) floor: AReaL's value is ~27 nats off


def _advantages(make_batch, prox_logp_method: str):
    """(batch, AReaL's compute_advantages output, the first response token's log-prob position).

    The batch: 3 sequences at version 5 with lags 2, 3, 4.
    """
    from areal.api.cli_args import PPOActorConfig
    from areal.trainer.ppo.actor import PPOActor

    cfg = PPOActorConfig(
        experiment_name="a3po-test",
        trial_name="t0",
        backend="fsdp:d1",
        use_decoupled_loss=True,
        prox_logp_method=prox_logp_method,
        kl_ctl=0.0,
    )
    actor = PPOActor(cfg, engine=None)
    batch = make_batch(n_seqs=3, current_version=5, lags=[2, 3, 4])
    first = int(batch["loss_mask"][0].argmax()) - 1  # after AReaL's roll by -1
    return batch, actor._compute_advantages({k: v.clone() for k, v in batch.items()}), first


def test_areal_compute_advantages_loglinear_versions_one_token_off(make_batch):
    batch, out, first = _advantages(make_batch, "loglinear")
    mask = out["loss_mask"].bool()
    # AReaL rolls loss_mask and logprobs by -1 but leaves versions: the first response token
    # (its log-prob now at position `first`) is paired with the prompt's version -1.
    assert bool(mask[:, first].all())
    torch.testing.assert_close(
        out["versions"][:, first], torch.full((3,), -1, dtype=torch.int32), rtol=0, atol=0
    )
    torch.testing.assert_close(out["versions"], batch["versions"], rtol=0, atol=0)
    # So AReaL's loglinear treats that token as a prompt token (alpha = 0 -> pure behave).
    from areal.trainer.ppo.actor import compute_prox_logp_approximations

    theta = out["logprobs"] - 1.0
    theirs = compute_prox_logp_approximations(
        old_logp=out["logprobs"], logprobs=theta, versions=out["versions"], current_version=5
    )["loglinear"]
    torch.testing.assert_close(theirs[:, first], out["logprobs"][:, first], rtol=0, atol=0)


def test_plugin_compute_advantages_a3po_versions_rolled_with_logprobs(make_batch):
    batch, out, first = _advantages(make_batch, "a3po")
    mask = out["loss_mask"].bool()
    expected = torch.roll(batch["versions"], shifts=-1, dims=-1)
    torch.testing.assert_close(out["versions"], expected, rtol=0, atol=0)
    # Every loss-mask token now carries its own generation version, none the prompt tag.
    assert bool((out["versions"][mask] >= 0).all())
    torch.testing.assert_close(
        out["versions"][:, first],
        torch.tensor([3, 2, 1], dtype=torch.int32),
        rtol=0,
        atol=0,
    )
    # ... so a3po interpolates the first response token with its real lag.
    theta = out["logprobs"] - 1.0
    prox = a3po_log(_inputs(out["logprobs"], theta, out["versions"], 5, mask))
    lag = torch.tensor([2.0, 3.0, 4.0])
    expected_first = out["logprobs"][:, first] / lag + (1 - 1 / lag) * theta[:, first]
    torch.testing.assert_close(prox[:, first], expected_first, rtol=1e-6, atol=1e-6)


def test_staleness_counts_alignment_first_token_included(make_batch):
    _, out, _ = _advantages(make_batch, "a3po")
    mask = out["loss_mask"].bool()
    lag = approx.staleness(out["versions"], 5)
    counts = torch.stack([(mask & (lag == d)).sum() for d in (2, 3, 4)])
    n_resp = int(mask[0].sum())
    torch.testing.assert_close(counts, torch.full((3,), n_resp), rtol=0, atol=0)
