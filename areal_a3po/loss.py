"""The plugin's side of AReaL's actor loss: resolve the provider, then call the selected loss.

:func:`grpo_loss_fn` replaces AReaL's ``grpo_loss_fn`` (same signature; installed by
:mod:`areal_a3po.coupling.actor`). For AReaL's own methods, or without the decoupled loss, it calls
AReaL's function unchanged. For a plugin provider it builds :class:`~areal_a3po.api.ProxInputs`
for the micro-batch, validates them, computes log pi_prox and calls the loss registered under
``actor.a3po.loss`` (default :func:`ppo_loss`: AReaL's decoupled PPO loss with that pi_prox).

The PPO minibatch index and the options reach the loss through :data:`UPDATE`, a context variable
the coupling sets around ``PPOActor._ppo_update``; the provider's result reaches the metrics
logging (:mod:`areal_a3po.prox_metrics`) through :data:`LOSS`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from areal_a3po import mismatch, registry
from areal_a3po.api import Provider, ProxInputError, ProxInputs
from areal_a3po.approx import detached_f32
from areal_a3po.config import A3POConfig
from areal_a3po.providers import check_inputs, check_update, checked

# AReaL's own grpo_loss_fn, set by the coupling when it patches areal.trainer.ppo.actor.
AREAL_GRPO_LOSS: dict[str, Callable[..., torch.Tensor]] = {}


@dataclass
class UpdateContext:
    """One ``_ppo_update`` call: options and the PPO minibatch being trained."""

    options: A3POConfig
    n_minibatches: int
    minibatch: int = -1
    shared: dict = field(default_factory=dict)  # ProxInputs.shared of its micro-batches
    # An update-fidelity probe pass (areal_a3po.update_fidelity): the log pi_prox to train on
    # instead of the provider's, from the micro-batch's LossState; None outside probe passes.
    probe: Callable[[LossState], torch.Tensor] | None = None


def begin_update(ctx: UpdateContext, data: dict, method: str, current_version: int) -> None:
    """Check the update's whole batch once (:func:`providers.check_update`), before AReaL splits
    it into micro-batches; with ``validate_inputs: false`` nothing is checked, here or later."""
    if not ctx.options.validate_inputs:
        return
    provider = registry.get_provider(method)
    batch = ProxInputs(
        behave_logp=data["logprobs"],
        theta_logp=data["logprobs"],  # not read: the training forward has not run yet
        loss_mask=data["loss_mask"].bool(),
        versions=data.get("versions"),
        current_version=current_version,
        recomputed=data.get("prox_logp"),
        n_minibatches=ctx.n_minibatches,
        options=ctx.options,
        shared=ctx.shared,
    )
    check_update(batch, method, needs_versions(provider, ctx.options))


@dataclass
class LossState:
    """One micro-batch's provider result, for the metrics logged right after the loss."""

    name: str
    provider: Provider
    inputs: ProxInputs
    prox: torch.Tensor
    input_data: dict = field(default_factory=dict)  # AReaL's micro-batch (advantages, ...)
    loss_kwargs: dict = field(default_factory=dict)  # grpo_loss_fn's options (eps_clip, ...)


UPDATE: contextvars.ContextVar[UpdateContext | None] = contextvars.ContextVar(
    "a3po_update", default=None
)
LOSS: contextvars.ContextVar[LossState | None] = contextvars.ContextVar("a3po_loss", default=None)


def areal_grpo_loss_fn(*args: Any, **kwargs: Any) -> torch.Tensor:
    """AReaL's original ``grpo_loss_fn``."""
    return AREAL_GRPO_LOSS["grpo_loss_fn"](*args, **kwargs)


def needs_versions(provider: Provider, options: A3POConfig) -> bool:
    """Whether the provider (or, for a composite one, its fallback) reads ``versions``."""
    if provider.composite:
        return registry.get_provider(options.fallback, key="actor.a3po.fallback").needs_versions
    return provider.needs_versions


def keeps_finite(provider: Provider, options: A3POConfig) -> bool:
    """Whether the provider's output is finite wherever its inputs are (see ``Provider.finite``)."""
    if provider.composite:
        fallback = registry.get_provider(options.fallback, key="actor.a3po.fallback")
        return provider.finite and fallback.finite
    return provider.finite


def grpo_loss_fn(logprobs: torch.Tensor, entropy: torch.Tensor, input_data: dict, **kwargs):
    """AReaL's ``grpo_loss_fn`` with plugin providers resolved first (same signature)."""
    method = kwargs.get("prox_logp_method", "recompute")
    plugin = kwargs.get("use_decoupled_loss", False) and registry.is_plugin_provider(method)
    ctx = UPDATE.get()
    # Every method: the train-inference mismatch monitor keeps this micro-batch (no torch op).
    mismatch.record(logprobs, input_data, kwargs, ctx.minibatch if ctx else 0, aligned=plugin)
    if not plugin:
        return areal_grpo_loss_fn(logprobs, entropy, input_data, **kwargs)
    options = ctx.options if ctx is not None else A3POConfig()
    provider = registry.get_provider(method)
    mask = input_data["loss_mask"].bool()
    theta = logprobs.detach()
    inputs = ProxInputs(
        behave_logp=input_data["logprobs"],
        theta_logp=theta,
        loss_mask=mask,
        versions=input_data.get("versions"),
        current_version=kwargs.get("current_version"),
        recomputed=input_data.get("prox_logp"),
        minibatch=max(ctx.minibatch, 0) if ctx is not None else 0,
        n_minibatches=ctx.n_minibatches if ctx is not None else 1,
        options=options,
        shared=ctx.shared if ctx is not None else {},
    )
    ok = checked(inputs)  # the update's batch passed check_update: only the new tensor is new
    if options.validate_inputs and not (ok and theta.shape == mask.shape):
        check_inputs(inputs, method, needs_versions(provider, options))
    prox = provider.compute(inputs)
    if not isinstance(prox, torch.Tensor) or prox.shape != mask.shape:
        raise ProxInputError(
            f"Provider '{method}' returned {getattr(prox, 'shape', type(prox).__name__)}; "
            f"it must return a tensor of the loss_mask's shape {tuple(mask.shape)}."
        )
    prox = detached_f32(prox)
    if not (ok and keeps_finite(provider, options)):
        # Outside the loss mask prox is never used; keep it finite so no NaN reaches a gradient.
        prox = torch.where(mask, prox, theta.to(torch.float32))
    loss = registry.get_loss(options.loss)
    state = LossState(method, provider, inputs, prox, input_data, kwargs)
    if ctx is not None and ctx.probe is not None:
        state.prox = prox = ctx.probe(state)
    token = LOSS.set(state)
    try:
        return loss(logprobs, entropy, input_data, prox, **kwargs)
    except RuntimeError as err:
        if AREAL_NONFINITE_PROX not in str(err):
            raise
        raise _nonfinite_prox_error(inputs, prox, method, provider) from err
    finally:
        LOSS.reset(token)


# AReaL's loss checks the proximal log-probs it is given (``_resolve_proximal_logp``, every
# version) and raises a RuntimeError that names prox_logp_method 'recompute', the method the
# plugin passes it. Caught and explained; the good path costs nothing (AReaL syncs anyway).
AREAL_NONFINITE_PROX = "prox_logp contains NaN or Inf"


def _nonfinite_prox_error(
    inputs: ProxInputs, prox: torch.Tensor, method: str, provider: Provider
) -> ProxInputError:
    """What made log pi_prox non-finite, for AReaL's error: an input (the full per-micro-batch
    check names it) or the provider itself."""
    check_inputs(inputs, method, needs_versions(provider, inputs.options or A3POConfig()))
    bad = ~torch.isfinite(prox)
    on_mask = int((bad & inputs.loss_mask).sum())
    return ProxInputError(
        f"provider '{method}' returned non-finite log pi_prox on {int(bad.sum())} of "
        f"{bad.numel()} tokens ({on_mask} inside the loss mask) although its inputs are finite "
        "there: a defect in the provider (set actor.prox_logp_method: recompute meanwhile)."
    )


def ppo_loss(
    logprobs: torch.Tensor,
    entropy: torch.Tensor,
    input_data: dict,
    prox_logp: torch.Tensor,
    **kwargs,
) -> torch.Tensor:
    """AReaL's decoupled PPO loss and statistics, with ``prox_logp`` as the proximal policy."""
    data = dict(input_data)
    state = LOSS.get()
    if state is None or not checked(state.inputs):  # checked: log pi_behave finite everywhere
        mask = input_data["loss_mask"].bool()
        data["logprobs"] = torch.where(mask, input_data["logprobs"], prox_logp)  # finite off-mask
    data["prox_logp"] = prox_logp
    kwargs["prox_logp_method"] = "recompute"  # AReaL then takes prox_logp as given
    return areal_grpo_loss_fn(logprobs, entropy, data, **kwargs)
