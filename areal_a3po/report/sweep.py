"""The staleness study: providers x staleness points, each against the recompute at the same point.

Rows are staleness points (``rollout.max_head_offpolicyness``), columns providers. A cell holds the
arm's step-time and trainer-compute ratios vs the baseline provider at the same staleness, its
reward of record (mean over seeds), and the token lag it actually trained on
(``ppo_actor/a3po/token_lag``, mean over steps and seeds, and its max): arms are only comparable
where their effective lags match, which the table lets a reader check against the stated
tolerance.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from areal_a3po.report import stats
from areal_a3po.report.record import RunRecord
from areal_a3po.report.seeds import STEP, TRAINER, ArmSeeds, summarize_arms

LAG_TOLERANCE = 0.5  # versions: arms of one staleness point whose mean lags differ more are flagged


@dataclass(frozen=True)
class SweepCell:
    provider: str
    staleness: int
    arm: ArmSeeds  # ratios and differences against the baseline provider at this staleness
    token_lag_mean: float | None
    token_lag_max: float | None


@dataclass(frozen=True)
class Sweep:
    baseline: str
    providers: list[str]
    points: list[int]
    cells: dict[int, dict[str, SweepCell]]  # staleness -> provider -> cell

    def lag_spread(self, point: int) -> float | None:
        """Largest difference of mean token lag between the arms of one staleness point."""
        lags = [c.token_lag_mean for c in self.cells[point].values()]
        lags = [x for x in lags if x is not None]
        return max(lags) - min(lags) if len(lags) > 1 else None


def _lag(by_seed: Mapping[int, RunRecord]) -> tuple[float | None, float | None]:
    """Mean over runs of the run's mean per-step lag, and the largest per-step max."""
    avgs = [statistics.fmean(r.lag_avg.values()) for r in by_seed.values() if r.lag_avg]
    maxs = [max(r.lag_max.values()) for r in by_seed.values() if r.lag_max]
    return (statistics.fmean(avgs) if avgs else None, max(maxs) if maxs else None)


def summarize_sweep(
    arms: Mapping[str, Mapping[int, RunRecord]],
    points: Mapping[str, tuple[str, int]],
    baseline: str,
    warmup: int | None,
    last_n: int,
    *,
    target: float | None = None,
    margin: float = stats.MARGIN,
) -> Sweep | None:
    """``points``: arm label -> (provider, staleness). None unless several staleness points."""
    stalenesses = sorted({k for _, k in points.values()})
    if len(stalenesses) < 2:
        return None
    providers = list(dict.fromkeys(p for p, _ in points.values()))
    providers = [baseline] + [p for p in providers if p != baseline]
    cells: dict[int, dict[str, SweepCell]] = {}
    for k in stalenesses:
        labels = {p: lbl for lbl, (p, kk) in points.items() if kk == k}
        if baseline not in labels:
            raise ValueError(f"staleness {k}: no '{baseline}' arm to compare against")
        ordered = [labels[p] for p in providers if p in labels]
        summaries = summarize_arms(
            {lbl: arms[lbl] for lbl in ordered}, warmup, last_n, target=target, margin=margin
        )
        cells[k] = {
            points[s.label][0]: SweepCell(points[s.label][0], k, s, *_lag(arms[s.label]))
            for s in summaries
        }
    return Sweep(baseline, providers, stalenesses, cells)


def sweep_rows(sweep: Sweep, text: Callable[[Any], str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Markdown table (``text`` formats an interval)."""
    header = ["staleness", *sweep.providers, "lag spread"]
    rows = []
    for k in sweep.points:
        row = [str(k)]
        for p in sweep.providers:
            cell = sweep.cells[k].get(p)
            if cell is None:
                row.append("not run")
                continue
            ratios = [cell.arm.ratio.get(m) for m in (STEP, TRAINER)]
            step, trainer = ("1 (baseline)" if r is None else text(r) for r in ratios)
            lag = "n/a" if cell.token_lag_mean is None else f"{cell.token_lag_mean:.2f}"
            lag_max = "" if cell.token_lag_max is None else f" (max {cell.token_lag_max:g})"
            row.append(
                f"step time {step}<br>trainer {trainer}<br>"
                f"reward {text(cell.arm.reward)}<br>lag {lag}{lag_max}"
            )
        spread = sweep.lag_spread(k)
        flag = "" if spread is None or spread <= LAG_TOLERANCE else " (over tolerance)"
        row.append("n/a" if spread is None else f"{spread:.2f}{flag}")
        rows.append(row)
    return header, rows


def final_rewards(sweep: Sweep) -> dict[str, list[tuple[int, ArmSeeds]]]:
    """Per provider, (staleness, arm) in staleness order: the data of the reward-vs-staleness plot."""
    out: dict[str, list[tuple[int, ArmSeeds]]] = {}
    for k in sweep.points:
        for p, cell in sweep.cells[k].items():
            out.setdefault(p, []).append((k, cell.arm))
    return out


def points_from_runs(
    labels: Sequence[str], points: Sequence[tuple[str, int]]
) -> dict[str, tuple[str, int]]:
    """Arm label -> (provider, staleness), checking that each label names one point."""
    out: dict[str, tuple[str, int]] = {}
    for lbl, point in zip(labels, points, strict=True):
        if out.setdefault(lbl, point) != point:
            raise ValueError(f"arm '{lbl}' is given two sweep points: {out[lbl]} and {point}")
    return out
