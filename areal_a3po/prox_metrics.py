"""The plugin's statistics, logged under AReaL's ``ppo_actor/update/compute_logp`` scope.

AReaL calls ``_log_proximal_approximation_stats`` right after the loss of each micro-batch; the
coupling replaces it with :func:`log_proximal_approximation_stats`, which logs what the plugin's
provider did (from :data:`areal_a3po.loss.LOSS`) and otherwise calls AReaL's own function. Every
key name comes from :mod:`areal_a3po.keys`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from areal_a3po import approx, keys, registry
from areal_a3po.api import ProxInputs
from areal_a3po.config import A3POConfig
from areal_a3po.loss import LOSS, LossState

# AReaL's own _log_proximal_approximation_stats, set by the coupling.
AREAL_LOG_STATS: dict[str, Callable[..., None]] = {}


def log_proximal_approximation_stats(*args: Any, **kwargs: Any) -> None:
    """AReaL's hook after the loss: the plugin's statistics when a plugin provider ran."""
    state = LOSS.get()
    if state is None:
        return AREAL_LOG_STATS["log_stats"](*args, **kwargs)
    mask = kwargs.get("compute_logp_mask")
    if mask is None:
        mask = state.inputs.loss_mask
    log_prox_stats(state, mask.bool())


def _log_provider(name: str, prox: torch.Tensor, inp: ProxInputs, gt: torch.Tensor | None) -> None:
    from areal.utils import stats_tracker

    k = keys.provider_key
    behave = torch.where(inp.loss_mask, inp.behave_logp.float(), prox)
    behave_w = torch.exp(prox - behave)  # pi_prox / pi_behave
    theta_w = torch.exp(inp.theta_logp.float() - prox)  # pi_theta / pi_prox
    stats = {
        k(name, keys.APPROX_LOGP): prox,
        k(name, keys.BEHAVE_IMP_WEIGHT): behave_w,
        k(name, keys.IMPORTANCE_WEIGHT): theta_w,
    }
    if gt is not None:
        gt = gt.float()
        diff = (gt - prox).abs()
        stats[k(name, keys.ABS_ERROR)] = diff
        stats[k(name, keys.REL_ERROR)] = diff / (gt.abs() + 1e-8)
        stats[k(name, keys.SQUARED_ERROR)] = diff * diff
        stats[k(name, keys.BEHAVE_IMP_WEIGHT_ABS_ERROR)] = (torch.exp(gt - behave) - behave_w).abs()
        stats[k(name, keys.IMPORTANCE_WEIGHT_ABS_ERROR)] = (
            torch.exp(inp.theta_logp.float() - gt) - theta_w
        ).abs()
    stats_tracker.stat(**stats, denominator=keys.N_VALID_TOKENS)


def _scored_providers(state: LossState, options: A3POConfig) -> list[str]:
    """Approximate providers scored against the recompute on this micro-batch."""
    if state.inputs.recomputed is None:
        return []
    if state.provider.scores_approximations:
        return options.eval_providers or registry.approximate_provider_names()
    if state.provider.calibrated:
        return [options.fallback, *(n for n in options.eval_providers if n != options.fallback)]
    return []


def log_prox_stats(state: LossState, mask: torch.Tensor) -> None:
    """Plugin statistics under ``ppo_actor/update/compute_logp`` (AReaL's scope and key style)."""
    from areal.utils import stats_tracker

    inp = state.inputs
    options = inp.options or A3POConfig()
    gt = inp.recomputed
    with stats_tracker.scope(keys.PROX_SCOPE):
        stats_tracker.denominator(**{keys.N_VALID_TOKENS: mask})
        if gt is not None:
            stats_tracker.stat(**{keys.PROX_LOGP_GT: gt.float()}, denominator=keys.N_VALID_TOKENS)
        _log_provider(state.name, state.prox, inp, gt if state.provider.approximate else None)
        stats_tracker.scalar(**{keys.RECOMPUTED: float(gt is not None)})
        if state.provider.exact is not None:
            exact = float(state.provider.exact(inp))
            stats_tracker.stat(
                **{keys.EXACT_TOKEN_SHARE: torch.full_like(state.prox, exact)},
                denominator=keys.N_VALID_TOKENS,
            )
        for name in _scored_providers(state, options):
            provider = registry.get_provider(name)
            if provider.needs_versions and inp.versions is None:
                continue
            approx_prox = torch.where(inp.loss_mask, provider.compute(inp).float(), gt.float())
            _log_provider(name, approx_prox, inp, gt)
        if inp.versions is not None and inp.current_version is not None:
            lag = approx.staleness(inp.versions, inp.current_version)
            bins = options.staleness_bins
            stats_tracker.denominator(
                **{keys.staleness_lag(b): mask & (lag == b) for b in range(bins)},
                **{keys.staleness_lag_ge(bins): mask & (lag >= bins)},
            )
            stats_tracker.stat(
                **{
                    keys.STALENESS: lag.float(),
                    keys.LAG_WEIGHT_BEHAVE: approx.behave_weight(lag, options.anchor_offset),
                },
                denominator=keys.N_VALID_TOKENS,
            )
        log_ratio = (
            inp.theta_logp.float() - torch.where(mask, inp.behave_logp.float(), 0.0)
        ).detach()
        log_ratio = torch.where(mask, log_ratio, 0.0)
        direct, taylor, dual = keys.KL_DIV
        stats_tracker.stat(  # same drift estimators AReaL logs, so dashboards keep working
            **{
                direct: -log_ratio,
                taylor: log_ratio**2 / 2.0,
                dual: log_ratio.exp() - 1 - log_ratio,
            },
            denominator=keys.N_VALID_TOKENS,
        )


def log_token_lag(
    versions: torch.Tensor, loss_mask: torch.Tensor, current_version: int, bins: int
) -> None:
    """Per-token lag V - v of the trained tokens, for every method (AReaL's own ones too).

    ``versions`` and ``loss_mask`` must be aligned (position i: token i+1). Logged under the
    caller's ``ppo_actor`` scope as ``a3po/token_lag`` with per-lag counts (:mod:`keys`).
    """
    from areal.utils import stats_tracker

    mask = loss_mask.bool() & (versions >= 0)
    lag = current_version - versions.to(torch.int64)
    with stats_tracker.scope(keys.LAG_SCOPE):
        stats_tracker.denominator(
            **{keys.LAG_TOKENS: mask},
            **{keys.token_lag(b): mask & (lag == b) for b in range(bins)},
            **{keys.token_lag_ge(bins): mask & (lag >= bins)},
        )
        stats_tracker.stat(**{keys.TOKEN_LAG: lag.float()}, denominator=keys.LAG_TOKENS)
