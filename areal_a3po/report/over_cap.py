"""Tokens trained at a lag above ``rollout.max_head_offpolicyness``: how many, when, and why
(:data:`WHY`, which report.md prints under the numbers), from a run's kept record."""

from __future__ import annotations

from dataclasses import dataclass

from areal_a3po.report.record import RunRecord
from areal_a3po.report.summarise import TOKEN_LAG_SOURCE

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


def over_cap(record: RunRecord, label: str, cap: int) -> OverCap | None:
    """None unless the run kept the plugin's token lags (records kept before the per-lag token
    counts have none) and some exceed ``cap``."""
    lags = record.lag_max if record.lag_source == TOKEN_LAG_SOURCE else {}
    if not lags or not record.lag_tokens or max(lags.values()) <= cap:
        return None
    per_step: dict[int, float] = {}  # tokens above the cap
    total = 0.0
    for bucket, series in record.lag_tokens.items():
        total += sum(series.values())
        if int(bucket.removeprefix(">=")) > cap:  # ">=B" counts too: every token >= B > cap
            for step, n in series.items():
                per_step[step] = per_step.get(step, 0.0) + n
    tokens_at = {s: n for s, n in sorted(per_step.items()) if n > 0}
    return OverCap(
        label,
        cap,
        sum(tokens_at.values()) / total if total else 0.0,
        max(lags.values()),
        tokens_at,
        len(lags),
        total / len(lags),
    )
