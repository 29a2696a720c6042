"""A-3PO: staleness-aware proximal policy approximation (arXiv 2512.06547), in pure torch.

Notation (paper, Sec. 3):
    pi_behave  policy that generated the token (inference engine), version v_behave
    pi_theta   policy being trained (training forward), version v_theta
    pi_prox    proximal policy of decoupled PPO, anchored k versions behind pi_theta
    d          staleness (lag) of a token, d = v_theta - v_behave

The paper interpolates in log space with a weight set by the lag (k = 1):
    log pi_prox = (1/d) log pi_behave + (1 - 1/d) log pi_theta          (d >= 1)
With an anchor offset k (v_prox = v_theta - k) the weight on pi_behave is
    w = (v_theta - v_prox) / (v_theta - v_behave) = k / d,  clamped to [0, 1]
so prox always lies between behave and theta. Fresh tokens (d = 0) use pi_behave (plain PPO);
prompt tokens (version < 0) are never touched.

Everything here is detached, host-sync free, and computed in float32.
No AReaL import: this module is the math only.
"""

from __future__ import annotations

import torch

__all__ = [
    "PROMPT_VERSION",
    "behave_weight",
    "lag_weight",
    "interpolate_log",
    "interpolate_prob",
    "staleness",
]

PROMPT_VERSION = -1  # AReaL tags prompt tokens with version -1


def staleness(versions: torch.Tensor, current_version: int | torch.Tensor) -> torch.Tensor:
    """Per-token lag d = v_theta - v_behave (int64); prompt tokens (v < 0) get d = 0."""
    v_behave = versions.to(torch.int64)
    d = (
        torch.as_tensor(current_version, dtype=torch.int64, device=versions.device) - v_behave
    )  # d = v_theta - v_behave
    return torch.where(v_behave >= 0, d, torch.zeros_like(d))


def behave_weight(lag: torch.Tensor, anchor_offset: float = 1.0) -> torch.Tensor:
    """Weight w on log pi_behave (float32): w = clamp(k / d, 0, 1) for d >= 1, w = 1 for d = 0."""
    d = lag.to(torch.float32)
    k = torch.as_tensor(anchor_offset, dtype=torch.float32, device=lag.device)
    w = torch.clamp(
        k / d.clamp(min=1.0), 0.0, 1.0
    )  # w = k / d, clamp keeps v_behave <= v_prox <= v_theta
    return torch.where(d > 0, w, torch.ones_like(w))  # d = 0: pi_prox = pi_behave


def lag_weight(
    versions: torch.Tensor, current_version: int | torch.Tensor, anchor_offset: float = 1.0
) -> torch.Tensor:
    """Fused ``behave_weight(staleness(versions, v_theta), k)`` in fewer passes (the hot path)."""
    d = (current_version - versions).to(torch.float32)  # d = v_theta - v_behave
    k = torch.as_tensor(anchor_offset, dtype=torch.float32, device=versions.device)
    w = torch.clamp_(k / d, max=1.0)  # w = k / d (d > 0 here, so w >= 0)
    return torch.where((versions >= 0) & (d > 0), w, 1.0)  # d = 0 or prompt: pi_behave


def _sandwich(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Clamp x into [min(a, b), max(a, b)] elementwise (guards against rounding)."""
    return torch.clamp(x, torch.minimum(a, b), torch.maximum(a, b))


def interpolate_log(
    behave_logp: torch.Tensor,
    theta_logp: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """Log-space (geometric) interpolation, the paper's A-3PO.

    log pi_prox = w log pi_behave + (1 - w) log pi_theta
    """
    lb = behave_logp.detach().to(torch.float32)
    lt = theta_logp.detach().to(torch.float32)
    prox = torch.lerp(lt, lb, weight.to(torch.float32))  # lerp is exact at w in {0, 1}
    return _sandwich(prox, lb, lt)


def interpolate_prob(
    behave_logp: torch.Tensor,
    theta_logp: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """Probability-space (arithmetic) interpolation, computed stably in log space.

    pi_prox = w pi_behave + (1 - w) pi_theta
    log pi_prox = logsumexp(log w + log pi_behave, log(1 - w) + log pi_theta)
    """
    lb = behave_logp.detach().to(torch.float32)
    lt = theta_logp.detach().to(torch.float32)
    w = weight.to(torch.float32)
    prox = torch.logaddexp(
        torch.log(w) + lb, torch.log1p(-w) + lt
    )  # log(0) = -inf drops a term exactly
    return _sandwich(prox, lb, lt)
