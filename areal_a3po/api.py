"""The contract a provider author reads: what a provider is, what it receives, what a loss is.

Everything here is plain Python and torch; nothing imports AReaL. The registry, the built-in
providers, the config and the AReaL coupling all build on these types (see docs/extending.md).

A provider turns one micro-batch's :class:`ProxInputs` into log pi_prox::

    from areal_a3po.api import Provider, ProxInputs

    def halfway(inp: ProxInputs) -> torch.Tensor:      # a plain function is a provider too
        return 0.5 * (inp.behave_logp + inp.theta_logp)

    HALFWAY = Provider(compute=halfway, description="midpoint in log space")

and is registered under a name through the entry-point group ``areal_a3po.providers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

PROVIDER_GROUP = "areal_a3po.providers"  # entry-point group of providers (actor.prox_logp_method)
LOSS_GROUP = "areal_a3po.losses"  # entry-point group of actor losses (actor.a3po.loss)


class A3POConfigError(ValueError):
    """A recipe asks for something the plugin cannot do; the message names the YAML key."""


class ProxInputError(ValueError):
    """A provider input tensor is unusable; the message names the tensor and the token count."""


class ProxOptions(Protocol):
    """The options a provider may read (YAML ``actor.a3po``; implemented by
    ``areal_a3po.config.A3POConfig``, which builds on this module, so the contract names only
    what it needs and imports nothing back)."""

    anchor_offset: float  # k: pi_prox sits k versions behind pi_theta (a3po, a3po-linear)
    fallback: str  # the provider composite providers delegate to
    provider_options: dict[str, Any]  # free-form options for third-party providers


@dataclass(frozen=True)
class ProxInputs:
    """Everything a provider may read, for one micro-batch; all tensors share one shape.

    Tensors are token-aligned: position i holds the log-prob of token i+1 (AReaL's rolled layout)
    and ``versions[i]`` is that same token's version.
    """

    behave_logp: torch.Tensor  # log pi_behave (inference engine)
    theta_logp: torch.Tensor  # log pi_theta, detached (training forward)
    loss_mask: torch.Tensor  # bool, tokens that enter the loss
    versions: torch.Tensor | None  # int, v_behave per token; prompt tokens -1
    current_version: int  # v_theta
    recomputed: torch.Tensor | None = None  # prox from the recompute forward, when it ran
    minibatch: int = 0  # index of the PPO minibatch within the step
    n_minibatches: int = 1
    options: ProxOptions | None = None  # YAML actor.a3po (an A3POConfig)
    extras: dict[str, Any] = field(default_factory=dict)  # this micro-batch's memo
    # Memo shared by every micro-batch of one PPO update (the plugin's per-update checks and
    # per-version weight tables); a fresh dict outside an update.
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """A way to obtain log pi_prox, and what the plugin must do around it.

    compute: ProxInputs -> log pi_prox (float32, detached). None for ``native`` providers.
    needs_recompute: the controller must run AReaL's recompute forward (compute_logp) for it.
    needs_versions: compute reads ``versions``.
    approximate: an approximation that can be scored against the recompute.
    native: AReaL's own code path implements it; the plugin leaves AReaL untouched.
    composite: delegates to ``options.fallback`` (cannot itself be a fallback).
    calibrated: the controller decides per step (areal_a3po.calibration) whether the recompute runs.
    scores_approximations: on steps with the recompute, every approximate provider (or
        ``options.eval_providers``) is scored against it, not only the fallback.
    uses_train_logp: treats the training forward's log-probs as exact (exact only without dropout).
    prox_is_behave: pi_prox = pi_behave, so AReaL's options that compare the two (rejection
        sampling, M2PO) would do nothing; the config refuses them.
    exact: whether this micro-batch's log pi_prox is exact (logged as exact_token_share).
    finite: compute returns finite values wherever ``behave_logp`` and ``theta_logp`` are finite,
        so the plugin need not re-mask its output (a composite one: when its fallback is too).
    """

    compute: Callable[[ProxInputs], torch.Tensor] | None = None
    needs_recompute: bool = False
    needs_versions: bool = False
    approximate: bool = True
    native: bool = False
    composite: bool = False
    calibrated: bool = False
    scores_approximations: bool = False
    uses_train_logp: bool = False
    prox_is_behave: bool = False
    exact: Callable[[ProxInputs], bool] | None = None
    finite: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.compute is None and not self.native:
            raise TypeError("Provider.compute is required unless native=True")

    @property
    def can_fallback(self) -> bool:
        """Can stand in for the recompute (``actor.a3po.fallback``, scored by a3po-metrics)."""
        return (
            self.approximate and not self.native and not self.composite and not self.needs_recompute
        )


class LossFn(Protocol):
    """An actor loss (entry-point group ``areal_a3po.losses``, YAML ``actor.a3po.loss``).

    Called per micro-batch with AReaL's ``grpo_loss_fn`` arguments plus the provider's
    ``prox_logp`` (float32, detached, finite everywhere); returns the scalar loss.
    """

    def __call__(
        self,
        logprobs: torch.Tensor,
        entropy: torch.Tensor,
        input_data: dict,
        prox_logp: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor: ...
