"""Tokens trained at a lag above ``rollout.max_head_offpolicyness``: how many, when, and why
(:data:`WHY`, which report.md prints under the numbers)."""

from __future__ import annotations

from dataclasses import dataclass

from areal_a3po.report.load import RunData
from areal_a3po.report.summarise import TOKEN_LAG_MAX_KEYS, TOKEN_LAG_RE

WHY = (
    "AReaL's staleness cap counts samples, not versions: a rollout group may start while "
    "``accepted + running <= (cap + V + 1) * batch_size`` (V the rollout side's version). That "
    "bounds the lag at the cap only if groups are trained in the order they started. "
    "``prepare_batch`` hands the trainer the oldest *finished* groups, so a group that started "
    "early but finishes late (its samples queued behind others in the inference server, or "
    "aborted by a weight update and resumed with the next version) is overtaken by groups that "
    "started after it, and is trained one batch later: its early tokens then have lag cap + 1. "
    "The token lag the plugin logs is exact (V - v per token); the overshoot is AReaL's "
    "scheduling, about one group's tokens at a time. Arms paced at the cap "
    "(``a3po compare --pace cap``) have nothing in flight when a batch is taken, and none."
)


@dataclass(frozen=True)
class OverCap:
    """One run's tokens above its staleness cap."""

    label: str
    cap: int
    share: float  # of trained tokens, lag > cap
    max_lag: float
    tokens_at: dict[int, float]  # step -> tokens trained above the cap (steps that had some)
    n_steps: int
    tokens_per_step: float  # mean trained tokens per step, for scale

    def sentence(self) -> str:
        where = ", ".join(f"{s} ({n:.0f} tokens)" for s, n in self.tokens_at.items())
        return (
            f"{self.label}: {self.share:.2%} of trained tokens at lag > {self.cap} (max "
            f"{self.max_lag:g}), at steps {where} of {self.n_steps}; a step trains "
            f"{self.tokens_per_step:.0f} tokens on average."
        )


def over_cap(data: RunData, label: str, cap: int) -> OverCap | None:
    """None unless the run logged token lags and some exceed ``cap``."""
    max_tag = data.find(TOKEN_LAG_MAX_KEYS)
    if max_tag is None or max(data.scalars[max_tag].values()) <= cap:
        return None
    per_step: dict[int, float] = {}  # tokens above the cap
    total = 0.0
    for tag, series in data.scalars.items():
        m = TOKEN_LAG_RE.search(tag)
        if m is None:
            continue
        total += sum(series.values())
        if int(m.group(2)) > cap:  # "ge B" counts too: every token >= B > cap
            for step, n in series.items():
                per_step[step] = per_step.get(step, 0.0) + n
    tokens_at = {s: n for s, n in sorted(per_step.items()) if n > 0}
    n_steps = len(data.scalars[max_tag])
    return OverCap(
        label,
        cap,
        sum(tokens_at.values()) / total if total else 0.0,
        max(data.scalars[max_tag].values()),
        tokens_at,
        n_steps,
        total / n_steps if n_steps else 0.0,
    )
