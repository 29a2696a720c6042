"""Options of the plugin, set in an AReaL recipe under ``actor.a3po`` (no AReaL import here).

Example::

    actor:
      use_decoupled_loss: true
      prox_logp_method: a3po-step # recompute | loglinear | metrics | a3po | a3po-step | behave | ...
      a3po:
        anchor_offset: 1.0

Every field is validated when AReaL's ``load_expr_config`` builds the config; the error names the
YAML key. ``docs/configuration.md`` lists the same fields (a test keeps the two in sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from areal_a3po import keys, registry
from areal_a3po.api import A3POConfigError

YAML_PREFIX = "actor.a3po"
ERROR_METRICS = keys.CALIBRATION_ERROR_METRICS

__all__ = [
    "ERROR_METRICS",
    "YAML_PREFIX",
    "A3POConfig",
    "A3POConfigError",
    "check_update_fidelity",
    "validate_actor",
]


def _opt(default: Any, help: str, factory: bool = False) -> Any:
    """A field with its help text (shown by AReaL's CLI and docs/configuration.md)."""
    if factory:
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class A3POConfig:
    """Options of the proximal-log-prob providers and the actor loss (YAML ``actor.a3po``)."""

    anchor_offset: float = _opt(
        1.0,
        "k: the proximal policy sits k versions behind pi_theta. Weight on pi_behave "
        "is k/d for lag d (clamped to [0, 1]); 1 is the paper, 0 makes prox = theta.",
    )
    loss: str = _opt("ppo", "Actor loss, by name (entry-point group areal_a3po.losses).")
    staleness_bins: int = _opt(
        8, "Per-lag token counts are logged for lags 0..staleness_bins-1 and one 'ge' bucket above."
    )
    eval_providers: list[str] = _opt(
        list,
        "With prox_logp_method a3po-metrics: approximate providers whose error "
        "against the recompute is logged. Empty means every registered approximate provider.",
        factory=True,
    )
    fallback: str = _opt(
        "a3po-step",
        "Approximate provider used by 'current' on PPO minibatches after the first, "
        "and by 'hybrid' on steps without the recompute (a3po-step: anchored at the start of "
        "the step, as the recompute; docs/method.md).",
    )
    calibration_interval: int = _opt(
        10, "hybrid: run the real recompute every N training steps (N >= 1)."
    )
    error_threshold: float = _opt(
        0.02,
        "hybrid: when the fallback's error against the recompute exceeds this on a "
        "calibration step, recompute every step until it is back under.",
    )
    error_metric: str = _opt(
        "abs_error",
        "hybrid: the error compared with error_threshold, mean over loss tokens: "
        "abs_error (nats of log pi_prox) or importance_weight_abs_error (|pi_theta/pi_prox| "
        "ratio error).",
    )
    validate_inputs: bool = _opt(
        True,
        "Check provider inputs (dtypes, shapes, versions, NaN/inf inside the loss "
        "mask) once per PPO update on the whole batch; costs two device-to-host syncs.",
    )
    update_fidelity_every: int = _opt(
        0,
        "With prox_logp_method a3po-metrics: every N-th update (by weight version) probes each "
        "PPO minibatch's gradient with every scored provider's pi_prox against the recompute's, "
        "beside the recompute's split-half noise floor (extra forward+backward passes; "
        "docs/metrics.md). 0 = off.",
    )
    provider_options: dict[str, Any] = _opt(
        dict, "Free-form options for third-party providers (read from ProxInputs).", factory=True
    )

    def __post_init__(self) -> None:
        _check_number("anchor_offset", self.anchor_offset, minimum=0.0)
        if isinstance(self.staleness_bins, bool) or not isinstance(self.staleness_bins, int):
            raise A3POConfigError(
                f"{YAML_PREFIX}.staleness_bins must be an integer, got {self.staleness_bins!r}."
            )
        if not 1 <= self.staleness_bins <= 64:
            raise A3POConfigError(
                f"{YAML_PREFIX}.staleness_bins must be in [1, 64], got {self.staleness_bins}."
            )
        if not isinstance(self.validate_inputs, bool):
            raise A3POConfigError(
                f"{YAML_PREFIX}.validate_inputs must be true or false, got {self.validate_inputs!r}."
            )
        _check_int("calibration_interval", self.calibration_interval, minimum=1)
        _check_number("error_threshold", self.error_threshold, minimum=0.0)
        _check_int("update_fidelity_every", self.update_fidelity_every, minimum=0, note=" (0: off)")
        if self.error_metric not in ERROR_METRICS:
            raise A3POConfigError(
                f"{YAML_PREFIX}.error_metric must be one of {list(ERROR_METRICS)}, got "
                f"{self.error_metric!r}."
            )
        registry.get_loss(self.loss, key=f"{YAML_PREFIX}.loss")
        fallback = registry.get_provider(self.fallback, key=f"{YAML_PREFIX}.fallback")
        if not fallback.can_fallback:
            raise A3POConfigError(
                f"{YAML_PREFIX}.fallback: '{self.fallback}' cannot stand in for the recompute; "
                f"choose an approximate provider: {registry.approximate_provider_names()}."
            )
        for name in self.eval_providers:
            provider = registry.get_provider(name, key=f"{YAML_PREFIX}.eval_providers")
            if not provider.approximate:
                raise A3POConfigError(
                    f"{YAML_PREFIX}.eval_providers lists '{name}', which is not an approximate "
                    f"provider; choose from {registry.approximate_provider_names()}."
                )


def _check_int(name: str, value: Any, minimum: int, note: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise A3POConfigError(
            f"{YAML_PREFIX}.{name} must be an integer >= {minimum}{note}, got {value!r}."
        )


def _check_number(name: str, value: Any, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise A3POConfigError(f"{YAML_PREFIX}.{name} must be a number, got {value!r}.")
    if not math.isfinite(value) or value < minimum:
        raise A3POConfigError(
            f"{YAML_PREFIX}.{name} must be a finite number >= {minimum}, got {value!r}."
        )


def validate_actor(
    prox_logp_method: str, use_decoupled_loss: bool, options: A3POConfig | None
) -> None:
    """Cross-field checks on the actor config (called when PPOActorConfig is built)."""
    provider = registry.get_provider(prox_logp_method, key="actor.prox_logp_method")
    if not provider.native and not use_decoupled_loss:
        raise A3POConfigError(
            f"actor.prox_logp_method: {prox_logp_method} only acts in decoupled PPO, but "
            "actor.use_decoupled_loss is false, so no proximal policy would be used. Set "
            "actor.use_decoupled_loss: true (or choose prox_logp_method: recompute)."
        )
    if options is not None and not isinstance(options, A3POConfig):
        raise A3POConfigError(
            f"{YAML_PREFIX} must be a mapping of A3POConfig fields, got {type(options).__name__}."
        )
    if options is not None:
        check_update_fidelity(prox_logp_method, options)


def check_update_fidelity(prox_logp_method: str, options: A3POConfig) -> None:
    """``update_fidelity_every`` probes against the recompute that only ``a3po-metrics`` trains
    on while scoring the others; raises A3POConfigError naming the key otherwise."""
    if not options.update_fidelity_every:
        return
    provider = registry.get_provider(prox_logp_method, key="actor.prox_logp_method")
    if not provider.scores_approximations:
        scorers = [n for n, p in registry.providers().items() if p.scores_approximations]
        raise A3POConfigError(
            f"{YAML_PREFIX}.update_fidelity_every: {options.update_fidelity_every} needs "
            f"actor.prox_logp_method {' or '.join(scorers)} (it trains on the recompute and scores "
            f"the other providers against it), got {prox_logp_method}. Set "
            f"{YAML_PREFIX}.update_fidelity_every: 0 or actor.prox_logp_method: {scorers[0]}."
        )
