"""report.md sections over arms: across seeds (intervals, verdicts) and the staleness sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from areal_a3po.report.table import pipe_table

if TYPE_CHECKING:
    from areal_a3po.report.build import Report


def arms_section(report: Report) -> list[str]:
    """Across seeds: median [95 % CI] over (seed, step), ratios and differences vs the baseline."""
    from areal_a3po.report.seeds import STEP, TRAINER, interval_text

    arms = report.arms
    if not arms:
        return []
    base = arms[0].label
    n = max(len(a.seeds) for a in arms)
    out = [
        f"## Across seeds (baseline arm: {base})",
        "",
        "Median and 95 % bootstrap interval over (seed, step) after the warm-up; ratios are "
        "arm / baseline from paired resampling by seed; reward is the mean of the last "
        f"{report.last_n} steps per seed, then the mean over seeds."
        + ("" if n > 1 else " With one seed per arm no interval can be given."),
        "",
    ]
    time_rows = []
    for a in arms:
        for metric, name in ((TRAINER, "trainer compute"), (STEP, "step time")):
            ratio = a.ratio.get(metric)
            time_rows.append(
                [
                    a.label,
                    str(len(a.seeds)),
                    name,
                    interval_text(a.time.get(metric)),
                    interval_text(ratio) if ratio else "(baseline)",
                    a.verdicts.get(f"faster ({metric})", "") if ratio else "",
                    a.bottleneck if metric == STEP else "",
                ]
            )
    header = ["arm", "seeds", "per step", "median (s)", "ratio vs baseline", "faster", "bounded by"]
    out += [pipe_table(header, time_rows, align_right_from=1), ""]
    stage_names = sorted({m for a in arms for m in a.time if m not in (TRAINER, STEP)})
    if stage_names:
        rows = [[a.label] + [interval_text(a.time.get(m)) for m in stage_names] for a in arms]
        out += [pipe_table(["arm"] + [f"{m} (s)" for m in stage_names], rows), ""]
    reward_rows = [
        [
            a.label,
            ", ".join(f"{s}: {v:.3f}" for s, v in a.reward_per_seed.items()) or "n/a",
            interval_text(a.reward),
            interval_text(a.reward_difference) if a.reward_difference else "(baseline)",
            a.verdicts.get("reward", "") if a.reward_difference else "",
        ]
        for a in arms
    ]
    header = [
        "arm",
        "last-N reward per seed",
        "mean over seeds",
        "difference vs baseline",
        "reward",
    ]
    return out + [pipe_table(header, reward_rows), ""]


def sweep_section(report: Report) -> list[str]:
    from areal_a3po.report.seeds import interval_text
    from areal_a3po.report.sweep import LAG_TOLERANCE, sweep_rows

    if report.sweep is None:
        return []
    header, rows = sweep_rows(report.sweep, interval_text)
    return [
        f"## Staleness sweep (each provider vs {report.sweep.baseline} at the same staleness)",
        "",
        "Per cell: step-time and trainer-compute (recompute + train) ratios vs the baseline "
        "provider [95 % CI], reward (last-N mean over seeds) [95 % CI], and the token lag the "
        "arm trained on (mean over steps and seeds, and its max). Arms of one row compare only "
        f"if their lags match: a lag spread above {LAG_TOLERANCE} versions is flagged.",
        "",
        pipe_table(header, rows, align_right_from=len(header)),
        "",
    ]
