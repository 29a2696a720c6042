"""The plugin's statistics, logged under AReaL's ``ppo_actor/update/compute_logp`` scope.

AReaL calls ``_log_proximal_approximation_stats`` right after the loss of each micro-batch; the
coupling replaces it with :func:`log_proximal_approximation_stats`, which logs what the plugin's
provider did (from :data:`areal_a3po.loss.LOSS`) and otherwise calls AReaL's own function. Every
key name comes from :mod:`areal_a3po.keys`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from areal_a3po import approx, keys, providers, registry
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


def _log_provider(
    name: str,
    prox: torch.Tensor,
    inp: ProxInputs,
    behave_logp: torch.Tensor,
    theta_logp: torch.Tensor,
    gt: torch.Tensor | None,
) -> None:
    """One provider's statistics (``behave_logp``/``theta_logp``/``gt``: float32 views)."""
    from areal.utils import stats_tracker

    names = _provider_keys(name)
    behave = torch.where(inp.loss_mask, behave_logp, prox)
    behave_w = torch.exp(prox - behave)  # pi_prox / pi_behave
    theta_w = torch.exp(theta_logp - prox)  # pi_theta / pi_prox
    values = [prox, behave_w, theta_w]
    if gt is not None:
        diff = (gt - prox).abs()
        values += [
            diff,
            diff / (gt.abs() + 1e-8),
            diff * diff,
            (torch.exp(gt - behave) - behave_w).abs(),
            (torch.exp(theta_logp - gt) - theta_w).abs(),
        ]
    stats = dict(zip(names, values, strict=False))
    stats_tracker.stat(**stats, denominator=keys.N_VALID_TOKENS)


@functools.cache
def _provider_keys(name: str) -> tuple[str, ...]:
    """Local names of a provider's statistics: PROVIDER_STATS, then ERROR_STATS."""
    return tuple(keys.provider_key(name, m) for m in (*keys.PROVIDER_STATS, *keys.ERROR_STATS))


def _scored_providers(state: LossState, options: A3POConfig) -> list[str]:
    """Approximate providers scored against the recompute on this micro-batch."""
    if state.inputs.recomputed is None:
        return []
    if state.provider.scores_approximations:
        return options.eval_providers or registry.approximate_provider_names()
    if state.provider.calibrated:
        return [options.fallback, *(n for n in options.eval_providers if n != options.fallback)]
    return []


@functools.cache
def _lag_rows(bins: int, device, ndim: int) -> tuple[tuple[str, ...], torch.Tensor]:
    """Per-lag count names and lags 0..bins as float32, shaped to broadcast against the lag."""
    names = (*(keys.token_lag(b) for b in range(bins)), keys.token_lag_ge(bins))
    lags = torch.arange(bins + 1, dtype=torch.float32, device=device).view(-1, *([1] * ndim))
    return names, lags


def _log_lag_counts(lag: torch.Tensor, mask: torch.Tensor, bins: int) -> None:
    """Tokens of ``mask`` per lag 0..bins-1 and >= bins (float ``lag``), from one comparison."""
    from areal.utils import stats_tracker

    names, lags = _lag_rows(bins, lag.device, lag.dim())
    # Row b: masked tokens with lag b (b < bins); last row: lag >= bins.
    counts = torch.where(mask, lag.clamp(max=bins), -1.0) == lags
    stats_tracker.denominator(**dict(zip(names, counts.unbind(0), strict=True)))


def _log_lag_weight(inp: ProxInputs) -> None:
    """The weight w on pi_behave per token (the lag itself: :func:`log_token_lag`, per update)."""
    from areal.utils import stats_tracker

    weight = providers.lag_weight(inp)  # the provider's own tensor when it computed one
    stats_tracker.stat(**{keys.LAG_WEIGHT_BEHAVE: weight}, denominator=keys.N_VALID_TOKENS)


def log_prox_stats(state: LossState, mask: torch.Tensor) -> None:
    """Plugin statistics under ``ppo_actor/update/compute_logp`` (AReaL's scope and key style).

    Per micro-batch, so kept lean: no host sync, float32 views made once, one pass per
    intermediate (``stats_tracker`` clones every logged tensor and reduces only at export).
    """
    from areal.utils import stats_tracker

    inp = state.inputs
    options = inp.options or A3POConfig()
    gt = inp.recomputed.float() if inp.recomputed is not None else None
    behave_logp = inp.behave_logp.float()
    theta_logp = inp.theta_logp.float()
    with stats_tracker.scope(keys.PROX_SCOPE):
        stats_tracker.denominator(**{keys.N_VALID_TOKENS: mask})
        if gt is not None:
            stats_tracker.stat(**{keys.PROX_LOGP_GT: gt}, denominator=keys.N_VALID_TOKENS)
        scored_gt = gt if state.provider.approximate else None
        _log_provider(state.name, state.prox, inp, behave_logp, theta_logp, scored_gt)
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
            approx_prox = torch.where(inp.loss_mask, provider.compute(inp).float(), gt)
            _log_provider(name, approx_prox, inp, behave_logp, theta_logp, gt)
        if inp.versions is not None and inp.current_version is not None:
            _log_lag_weight(inp)
        # log pi_theta - log pi_behave on the loss tokens, 0 elsewhere
        log_ratio = torch.where(mask, theta_logp - behave_logp, 0.0).detach()
        direct, taylor, dual = keys.KL_DIV
        stats_tracker.stat(  # same drift estimators AReaL logs, so dashboards keep working
            **{
                direct: -log_ratio,
                taylor: log_ratio.square().div_(2.0),  # log_ratio**2 / 2
                dual: log_ratio.exp().sub_(1).sub_(log_ratio),  # exp(log_ratio) - 1 - log_ratio
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
    lag = approx.staleness(versions, current_version).float()
    with stats_tracker.scope(keys.LAG_SCOPE):
        stats_tracker.denominator(**{keys.LAG_TOKENS: mask})
        _log_lag_counts(lag, mask, bins)
        stats_tracker.stat(**{keys.TOKEN_LAG: lag}, denominator=keys.LAG_TOKENS)
