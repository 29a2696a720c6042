"""Fidelity of the proximal-policy approximations against AReaL's recompute (the ground truth).

On micro-batches that carry the recompute (``a3po-metrics`` every step, ``hybrid`` on calibration
steps), every scored provider is compared with it per PPO minibatch index k and token lag d:

* ``abs_dlogp``: mean |log pi_prox(provider) - log pi_prox(recompute)| over the loss tokens;
* ``clip_mismatch``: share of loss tokens whose PPO clip decision differs. The decision is the one
  AReaL's ``ppo_actor_loss_fn`` takes with the actor's ``eps_clip`` / ``eps_clip_higher`` /
  ``c_clip``: ratio r = pi_theta/pi_prox, advantage A; clipped when A > 0 and r > 1 + eps_high or
  A < 0 and r < 1 - eps_clip; dual-clipped when A < 0 and r > c_clip (three classes);
* ``reject_mismatch``: share of loss tokens whose rejection-sampling decision differs (the
  actor's ``rejection_sampling``: rejected for ``action: mask``, weight clamped for ``clamp``),
  decided by AReaL's own helpers on pi_prox/pi_behave (0 without rejection sampling).

Scored: ``a3po-metrics`` scores ``eval_providers`` (or every approximate provider) plus AReaL's
``loglinear`` (AReaL's ``compute_prox_logp_approximations`` on the versions as AReaL passes them,
one position off) and ``current`` (exact on minibatch 0, ``fallback`` after); ``hybrid`` scores its
``fallback`` and ``eval_providers``. Statistics are logged with ``stats_tracker`` (reduce type
AVG: one key each); no host sync, except AReaL's sequence-level rejection sampling, which itself
syncs (only with ``rejection_sampling.level: sequence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from areal_a3po import approx, keys, registry
from areal_a3po.config import A3POConfig
from areal_a3po.loss import LossState

LOGLINEAR = "loglinear"  # AReaL's native approximation, scored through AReaL's own function
CURRENT = "current"  # composite: exact on minibatch 0, the fallback after

__all__ = [
    "clip_class",
    "log_fidelity",
    "loglinear_prox",
    "rejection_decision",
    "scored",
    "scored_by_metrics",
    "scored_prox",
]


def scored(state: LossState) -> list[str]:
    """Providers whose fidelity is logged on this micro-batch (empty without the recompute)."""
    inp = state.inputs
    if inp.recomputed is None or inp.versions is None:
        return []
    options = inp.options if isinstance(inp.options, A3POConfig) else A3POConfig()
    if state.provider.scores_approximations:
        return scored_by_metrics(options)
    if state.provider.calibrated:
        return list(dict.fromkeys([options.fallback, *options.eval_providers]))
    return []


def scored_by_metrics(options: A3POConfig) -> list[str]:
    """What ``a3po-metrics`` scores: ``eval_providers`` (or every approximate provider), then
    AReaL's ``loglinear`` and ``current``."""
    names = options.eval_providers or registry.approximate_provider_names()
    return list(dict.fromkeys([*names, LOGLINEAR, CURRENT]))


def loglinear_prox(inp, behave_logp: torch.Tensor) -> torch.Tensor:
    """AReaL's ``loglinear`` as AReaL computes it in its loss: its own function, given the
    versions in AReaL's layout (the plugin rolled them to pair each token with its own version;
    rolled back here, so AReaL reads token i's version at position i, one position off)."""
    from areal.trainer.ppo.actor import compute_prox_logp_approximations

    versions = torch.roll(inp.versions, shifts=1, dims=-1)  # AReaL's layout (un-rolled)
    out = compute_prox_logp_approximations(
        old_logp=behave_logp,
        logprobs=inp.theta_logp.detach(),
        versions=versions,
        current_version=inp.current_version,
        method=LOGLINEAR,
    )
    return out[LOGLINEAR].float()


def clip_class(
    theta_logp: torch.Tensor, prox_logp: torch.Tensor, advantages: torch.Tensor, args: dict
) -> torch.Tensor:
    """AReaL's per-token PPO clip decision (``ppo_actor_loss_fn``, token level), as int8:
    0 unclipped, 1 clipped (``clip_mask``), 2 dual-clipped (``dual_clip_mask``)."""
    eps = float(args.get("eps_clip", 0.2))
    eps_high = args.get("eps_clip_higher")
    hi = 1.0 + (eps if eps_high is None else float(eps_high))
    ratio = torch.exp(theta_logp - prox_logp)
    a = advantages.float()
    # -A r < -A clamp(r, 1 - eps, hi): A > 0 and r > hi, or A < 0 and r < 1 - eps
    clipped = ((a > 0) & (ratio > hi)) | ((a < 0) & (ratio < 1.0 - eps))
    out = clipped.to(torch.int8)
    c_clip = args.get("c_clip")
    if c_clip is not None:  # c |A| < max(-A r, -A clamp(r)): A < 0 and r > c_clip
        out = torch.where((a < 0) & (ratio > float(c_clip)), 2, out).to(torch.int8)
    return out


def rejection_decision(
    prox_logp: torch.Tensor, behave_logp: torch.Tensor, mask: torch.Tensor, config: Any, data: dict
) -> torch.Tensor:
    """True where AReaL's rejection sampling acts on the token: rejected (``action: mask``) or
    its pi_prox/pi_behave weight clamped (``action: clamp``)."""
    from areal.utils.functional import functional as F

    log_ratio = prox_logp.float() - behave_logp.float()
    log_ratio = torch.where(torch.isfinite(log_ratio), log_ratio, 0.0)
    weight = torch.exp(log_ratio)
    if getattr(config, "level", "token") != "token":  # AReaL's own function (it syncs)
        rs = F.apply_rejection_sampling(
            prox_logp, behave_logp, mask, data.get("cu_seqlens"), config
        )
        if config.action == "mask":
            return mask & ~rs.loss_mask.bool()
        return mask & (rs.behave_imp_weight != weight)
    if config.metric == "ratio":
        metric = weight
    else:
        metric = F.KLEstimator._compute_approx_kl(
            log_probs=prox_logp.detach(),
            log_probs_base=behave_logp.detach(),
            kl_estimator=config.metric.replace("kl_", ""),
            apply_clamp=False,
        )
    if config.action == "mask":
        return mask & ~F._check_bounds(metric, config)
    lower = config.lower if config.lower is not None else 0.0
    return mask & (weight.clamp(min=lower, max=config.upper) != weight)


def scored_prox(name: str, state: LossState) -> torch.Tensor:
    """The log pi_prox (float32) that scored provider ``name`` gives this micro-batch, on the
    loss tokens (``loglinear``: AReaL's own function); the recompute's elsewhere."""
    inp = state.inputs
    if name == LOGLINEAR:
        prox = loglinear_prox(inp, state.input_data.get("logprobs", inp.behave_logp))
    else:
        prox = registry.get_provider(name).compute(inp).float()
    return torch.where(inp.loss_mask.bool(), prox, inp.recomputed.float())


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _rejected(states: Sequence[LossState], proxes: list[torch.Tensor], rs: Any) -> torch.Tensor:
    """Where rejection sampling ``rs`` acts on each micro-batch with these pi_prox, flattened."""
    return _flat(
        [
            rejection_decision(
                p,
                s.input_data.get("logprobs", s.inputs.behave_logp),
                s.inputs.loss_mask.bool(),
                rs,
                s.input_data,
            )
            for s, p in zip(states, proxes, strict=True)
        ]
    )


def log_fidelity(records: Sequence[tuple[LossState, Any]]) -> None:
    """Log the fidelity statistics of one update's micro-batches (``(LossState, mask)`` records,
    inside the ``compute_logp`` scope), over their loss tokens: all of them, since the
    recompute's own rejections are decisions to compare."""
    states = [s for s, _ in records]
    names = scored(states[0]) if states else []
    if not names or any(scored(s) != names or "advantages" not in s.input_data for s in states):
        return
    from areal.utils import stats_tracker
    from areal.utils.stats_tracker import ReduceType

    inps = [s.inputs for s in states]
    options = inps[0].options if isinstance(inps[0].options, A3POConfig) else A3POConfig()
    bins = options.staleness_bins
    args = states[0].loss_kwargs
    rs = args.get("rejection_sampling")
    mask = _flat([i.loss_mask.bool() for i in inps])
    gt = _flat([i.recomputed.float() for i in inps])
    theta = _flat([i.theta_logp.detach().float() for i in inps])
    adv = _flat([s.input_data["advantages"].float() for s in states])
    lag = _flat([approx.staleness(i.versions, i.current_version) for i in inps]).clamp(max=bins)
    minibatch = _flat([torch.full(i.loss_mask.shape, i.minibatch, device=lag.device) for i in inps])
    buckets = [
        (mb, keys.fidelity_lag(d, bins), mask & (minibatch == mb) & (lag == d))
        for mb in sorted({i.minibatch for i in inps})
        for d in range(bins + 1)
    ]
    stats_tracker.denominator(**{keys.fidelity_tokens(mb, lb): b for mb, lb, b in buckets})
    gt_clip = clip_class(theta, gt, adv, args)
    gt_proxes = [i.recomputed.float() for i in inps]
    gt_reject = _rejected(states, gt_proxes, rs) if rs is not None else None
    for name in names:
        proxes = [scored_prox(name, s) for s in states]
        prox = _flat(proxes)
        values = {
            keys.ABS_DLOGP: (prox - gt).abs(),
            keys.CLIP_MISMATCH: (clip_class(theta, prox, adv, args) != gt_clip).float(),
        }
        if gt_reject is not None:
            values[keys.REJECT_MISMATCH] = (_rejected(states, proxes, rs) != gt_reject).float()
        else:  # no rejection sampling configured: no decision to differ
            values[keys.REJECT_MISMATCH] = torch.zeros_like(prox)
        for mb, lb, _ in buckets:
            stats_tracker.stat(
                denominator=keys.fidelity_tokens(mb, lb),
                reduce_type=ReduceType.AVG,
                **{keys.fidelity_key(name, mb, lb, m): v for m, v in values.items()},
            )
