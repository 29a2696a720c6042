"""The plugin's statistics, logged under AReaL's ``ppo_actor/update/compute_logp`` scope.

AReaL calls ``_log_proximal_approximation_stats`` right after the loss of each micro-batch; the
coupling replaces it with :func:`log_proximal_approximation_stats`, which records what the plugin's
provider did (from :data:`areal_a3po.loss.LOSS`) and otherwise calls AReaL's own function. Every
key name comes from :mod:`areal_a3po.keys`.

Cost: inside :func:`per_update` (the coupling opens it around ``PPOActor._ppo_update``) a
micro-batch only appends its tensors to a list, no torch op; at the end of the update
:func:`log_prox_stats` computes every statistic in one vectorised pass over the update's tokens and
hands ``stats_tracker`` one tensor per key. The exported values are the same as logging every
micro-batch (same tokens, same masks: ``{avg,min,max}`` over the step's loss tokens), at a fraction
of the torch calls, ``stats_tracker`` clones and export reductions.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from areal_a3po import approx, fidelity, keys, providers, registry
from areal_a3po.config import A3POConfig
from areal_a3po.loss import LOSS, LossState

# AReaL's own _log_proximal_approximation_stats, set by the coupling.
AREAL_LOG_STATS: dict[str, Callable[..., None]] = {}

# One micro-batch's record: the provider's result and the mask AReaL logs its statistics over.
Record = tuple[LossState, torch.Tensor]
_PENDING: contextvars.ContextVar[list[Record] | None] = contextvars.ContextVar(
    "a3po_pending_stats", default=None
)


@contextlib.contextmanager
def per_update(scope: str = keys.UPDATE_SCOPE) -> Iterator[None]:
    """Collect the micro-batches' statistics of one update; log them once, under ``scope``.

    ``scope``: AReaL's scope around the minibatch loop, which the caller (``_ppo_update``'s
    wrapper, inside AReaL's ``ppo_actor``) has already left. Nothing is logged if the update
    raises, or if a non-finite pi_theta is found (:func:`providers.check_theta_after_update`).
    """
    from areal.utils import stats_tracker

    records: list[Record] = []
    token = _PENDING.set(records)
    try:
        yield
    finally:
        _PENDING.reset(token)
    if records:
        # The update's micro-batches skipped their checks (check_update): pi_theta checked here.
        providers.check_theta_after_update([s.inputs for s, _ in records], records[0][0].name)
        with stats_tracker.scope(scope):
            log_prox_stats(records)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Micro-batches inside the block hand their records to a list that is dropped (extra passes
    that are not the update's: nothing logged, nothing computed)."""
    token = _PENDING.set([])
    try:
        yield
    finally:
        _PENDING.reset(token)


def log_proximal_approximation_stats(*args: Any, **kwargs: Any) -> None:
    """AReaL's hook after the loss: the plugin's statistics when a plugin provider ran."""
    state = LOSS.get()
    if state is None:
        return AREAL_LOG_STATS["log_stats"](*args, **kwargs)
    mask = kwargs.get("compute_logp_mask")
    if mask is None:
        mask = state.inputs.loss_mask
    pending = _PENDING.get()
    if pending is None:  # outside an update (a direct loss call): log this micro-batch now
        log_prox_stats([(state, mask.bool())])
    else:
        pending.append((state, mask.bool()))


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The records' tensors as one: a single record's in its own layout, several concatenated 1-D.

    ``stats_tracker`` pairs the i-th entry of a statistic with the i-th entry of its denominator
    and asserts equal shapes. AReaL logs ``compute_logp/n_valid_tokens``, ``prox_logp_gt`` and
    ``kl_div_*`` itself (its own methods) in the micro-batch's layout, packed 1-D or padded
    (batch, seq); a micro-batch logged alone therefore keeps its layout, so the plugin's entries
    pair with AReaL's wherever AReaL's own would (flattened, a padded micro-batch's entries broke
    the tracker after AReaL's). Several micro-batches (one update) reduce over tokens: 1-D.
    """
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat([t.reshape(-1) for t in tensors])


def _provider_rows(
    name: str,
    prox: torch.Tensor,
    behave: torch.Tensor,
    theta: torch.Tensor,
    gt: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """One provider's per-token statistics (float32, the records' layout), keyed by local name."""
    values = [prox, torch.exp(prox - behave), torch.exp(theta - prox)]  # pi_prox/pi_behave, ...
    if gt is not None:
        diff = (gt - prox).abs()
        values += [
            diff,
            diff / (gt.abs() + 1e-8),
            diff * diff,
            (torch.exp(gt - behave) - values[1]).abs(),
            (torch.exp(theta - gt) - values[2]).abs(),
        ]
    return dict(zip(_provider_keys(name), values, strict=False))


@functools.cache
def _provider_keys(name: str) -> tuple[str, ...]:
    """Local names of a provider's statistics: PROVIDER_STATS, then ERROR_STATS."""
    return tuple(keys.provider_key(name, m) for m in (*keys.PROVIDER_STATS, *keys.ERROR_STATS))


def _scored_providers(state: LossState, options: A3POConfig) -> list[str]:
    """Approximate providers scored against the recompute on this update."""
    if state.inputs.recomputed is None:
        return []
    if state.provider.scores_approximations:
        return options.eval_providers or registry.approximate_provider_names()
    if state.provider.calibrated:
        return [options.fallback, *(n for n in options.eval_providers if n != options.fallback)]
    return []


def log_prox_stats(records: Sequence[Record]) -> None:
    """Plugin statistics of one update's micro-batches (AReaL's ``compute_logp`` scope and keys).

    One pass over the records' tokens; no host sync but for ``exact``'s per-micro-batch flag.
    """
    from areal.utils import stats_tracker

    state = records[0][0]
    inps = [s.inputs for s, _ in records]
    options = inps[0].options or A3POConfig()
    mask = _flat([m for _, m in records])
    behave = _flat([i.behave_logp for i in inps]).float()
    theta = _flat([i.theta_logp for i in inps]).float()
    prox = _flat([s.prox for s, _ in records])
    has_gt = all(i.recomputed is not None for i in inps)
    gt = _flat([i.recomputed for i in inps]).float() if has_gt else None
    rows: dict[str, torch.Tensor] = {}
    if gt is not None:
        rows[keys.PROX_LOGP_GT] = gt
    rows.update(
        _provider_rows(state.name, prox, behave, theta, gt if state.provider.approximate else None)
    )
    if state.provider.exact is not None:
        exact = [float(state.provider.exact(i)) for i in inps]
        rows[keys.EXACT_TOKEN_SHARE] = _flat(
            [
                torch.full(i.loss_mask.shape, e, device=prox.device)
                for i, e in zip(inps, exact, strict=True)
            ]
        )
    if has_gt:
        for name in _scored_providers(state, options):
            provider = registry.get_provider(name)
            if provider.needs_versions and any(i.versions is None for i in inps):
                continue
            approx_prox = _flat(
                [
                    torch.where(i.loss_mask, provider.compute(i).float(), i.recomputed.float())
                    for i in inps
                ]
            )
            rows.update(_provider_rows(name, approx_prox, behave, theta, gt))
    if all(i.versions is not None and i.current_version is not None for i in inps):
        # The weight on pi_behave per token (the lag itself: log_token_lag, per update).
        rows[keys.LAG_WEIGHT_BEHAVE] = _flat([providers.lag_weight(i) for i in inps])
    # log pi_theta - log pi_behave on the loss tokens, 0 elsewhere
    log_ratio = torch.where(mask, theta - behave, 0.0)
    direct, taylor, dual = keys.KL_DIV  # same drift estimators AReaL logs: dashboards keep working
    rows[direct] = -log_ratio
    rows[taylor] = log_ratio.square().div_(2.0)  # log_ratio**2 / 2
    rows[dual] = log_ratio.exp().sub_(1).sub_(log_ratio)  # exp(log_ratio) - 1 - log_ratio
    with stats_tracker.scope(keys.PROX_SCOPE):
        stats_tracker.denominator(**{keys.N_VALID_TOKENS: mask})
        stats_tracker.stat(**rows, denominator=keys.N_VALID_TOKENS)
        stats_tracker.scalar(**{keys.RECOMPUTED: float(has_gt)})
        fidelity.log_fidelity(records)  # per lag and minibatch, where the recompute ran


@functools.cache
def _lag_rows(bins: int, device, ndim: int) -> tuple[tuple[str, ...], torch.Tensor]:
    """Per-lag count names and lags 0..bins as float32, shaped to broadcast against the lag."""
    names = (*(keys.token_lag(b) for b in range(bins)), keys.token_lag_ge(bins))
    lags = torch.arange(bins + 1, dtype=torch.float32, device=device).view(-1, *([1] * ndim))
    return names, lags


def log_token_lag(
    versions: torch.Tensor, loss_mask: torch.Tensor, current_version: int, bins: int
) -> None:
    """Per-token lag V - v of the trained tokens, for every method (AReaL's own ones too).

    ``versions`` and ``loss_mask`` must be aligned (position i: token i+1). Logged under the
    caller's ``ppo_actor`` scope as ``a3po/token_lag`` with per-lag counts (:mod:`keys`), once
    per update.
    """
    from areal.utils import stats_tracker

    mask = loss_mask.bool() & (versions >= 0)
    lag = approx.staleness(versions, current_version).float()
    names, lags = _lag_rows(bins, lag.device, lag.dim())
    # Row b: masked tokens with lag b (b < bins); last row: lag >= bins.
    counts = torch.where(mask, lag.clamp(max=bins), -1.0) == lags
    with stats_tracker.scope(keys.LAG_SCOPE):
        stats_tracker.denominator(
            **{keys.LAG_TOKENS: mask}, **dict(zip(names, counts.unbind(0), strict=True))
        )
        stats_tracker.stat(**{keys.TOKEN_LAG: lag}, denominator=keys.LAG_TOKENS)
