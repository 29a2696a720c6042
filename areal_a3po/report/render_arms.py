"""report.md sections over arms: across seeds (intervals, verdicts) and the staleness sweep."""

from __future__ import annotations

from areal_a3po.report import stats
from areal_a3po.report.result import Report
from areal_a3po.report.seeds import STEP, TRAINER, ArmSeeds, interval_text
from areal_a3po.report.sittings import Sitting, sittings, sittings_text
from areal_a3po.report.sweep import LAG_TOLERANCE, sweep_rows
from areal_a3po.report.table import pipe_table

COVERAGE = (
    "What an interval covers: the variation between seeds within this one invocation (one "
    "machine, one session, arms interleaved by seed); not the variation between invocations."
)


def settings_lines(report: Report) -> list[str]:
    """The settings every arm shared beyond its recipe: AReaL overrides, target, margin."""
    out = []
    if report.overrides:
        out.append(
            "AReaL overrides given to every arm: "
            + " ".join(f"`{o}`" for o in report.overrides)
            + "."
        )
    if report.target is not None:
        out.append(f"Target reward (time to target): {report.target:g}.")
    return out


def _seed_values(a: ArmSeeds, get) -> str:
    vals = [(s, get(x)) for s, x in a.per_seed.items()]
    return ", ".join(f"{s}: {'n/a' if v is None else f'{v:.3f}'}" for s, v in vals) or "n/a"


def arms_section(report: Report) -> list[str]:
    """Across seeds: per-seed summaries, ratios and differences vs the baseline, with intervals."""
    if not report.arms:
        return []
    base = report.arms[0].label
    return [f"## Across seeds (baseline arm: {base})", ""] + arms_tables(
        report.arms, report.margin, report.target, sittings(report.records)
    )


def arms_tables(
    arms: list[ArmSeeds],
    margin: float,
    target: float | None,
    parts: list[Sitting] | None = None,
) -> list[str]:
    """The method paragraph and the tables of the across-seeds section (also docs/benchmarks.md).

    ``parts``: the runs' sittings; with more than one, the paragraph lists them and says what the
    intervals then cover instead of calling them one invocation's.
    """
    pct = round(stats.CONFIDENCE * 100)
    out = [
        "The unit is the run. Each seed is summarised first (median trainer compute and step time "
        "per step after the warm-up; reward of record: "
        f"{arms[0].reward_source}); intervals are {pct} % Student-t intervals across seeds, "
        "paired by seed: on per-seed log-ratios for times (shown as the geometric mean ratio), "
        f"on per-seed differences for reward. With fewer than {stats.MIN_SEEDS} paired seeds no "
        "interval is given. Reward verdict: non-inferiority with margin "
        f"{margin:g} ({stats.noninferior_text(margin)!r} when the lower bound is "
        f"above -{margin:g}, {stats.inferior_text(margin)!r} when the upper bound is below "
        f"-{margin:g}, {stats.NO_CLAIM!r} otherwise). {sittings_text(parts or []) or COVERAGE}",
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
                    _seed_values(a, lambda x, m=metric: x.time_s.get(m)),
                    interval_text(a.time.get(metric)),
                    interval_text(ratio) if ratio else "(baseline)",
                    a.verdicts.get(f"faster ({metric})", "") if ratio else "",
                    a.bottleneck if metric == STEP else "",
                ]
            )
    header = [
        "arm", "seeds", "per step", "median per seed (s)", "mean over seeds (s)",
        "ratio vs baseline", "faster", "bounded by",
    ]  # fmt: skip
    out += [pipe_table(header, time_rows, align_right_from=1), ""]
    stage_names = sorted({m for a in arms for m in a.time if m not in (TRAINER, STEP)})
    if stage_names:
        rows = [[a.label] + [interval_text(a.time.get(m)) for m in stage_names] for a in arms]
        out += [pipe_table(["arm"] + [f"{m} (s)" for m in stage_names], rows), ""]
    planned_seeds = [seeds_for_claim(a) for a in arms]
    reward_rows = [
        [
            a.label,
            _seed_values(a, lambda x: x.reward),
            interval_text(a.reward),
            interval_text(a.reward_difference) if a.reward_difference else "(baseline)",
            a.verdicts.get("reward", "") if a.reward_difference else "",
            planned,
        ]
        for a, planned in zip(arms, planned_seeds, strict=True)
    ]
    header = [
        "arm", "reward per seed", "mean over seeds", "difference vs baseline", "reward",
        "seeds a claim would need",
    ]  # fmt: skip
    out += [pipe_table(header, reward_rows), ""]
    planned = [a for a, p in zip(arms, planned_seeds, strict=True) if p not in ("", BELOW_BASELINE)]
    if planned:
        n = planned[0].reward_difference.n_seeds
        low, high = stats.sd_interval_factors(n)
        out += [
            f"Seeds a claim would need (where the verdict is {stats.NO_CLAIM!r} and the "
            "interval holds 0): the seeds at which the interval's lower bound would clear "
            f"-{margin:g} with {round(stats.POWER * 100)} % probability if the arms were equal and the "
            "per-seed differences had the spread seen here (noncentral t). A planning figure: from "
            f"{n} seeds that spread is known only to within {low:.2f} to {high:.2f} times "
            f"itself ({round(stats.CONFIDENCE * 100)} % interval), and the seeds needed go "
            "with its square.",
            "",
        ]
    if target is not None:
        out += _target_rows(arms, target)
    return out


BELOW_BASELINE = "n/a: below the baseline (interval under 0)"


def seeds_for_claim(a: ArmSeeds) -> str:
    """The seeds a reward claim would need where the verdict is "no claim" (else "")."""
    if a.reward_difference is None or a.verdicts.get("reward") != stats.NO_CLAIM:
        return ""
    if a.reward_difference.high < 0.0:
        return BELOW_BASELINE
    n = stats.seeds_for_noninferiority(a.reward_difference, a.margin)
    return f"more than {stats.MAX_PLANNED_SEEDS}" if n is None else str(n)


def _target_rows(arms: list[ArmSeeds], target: float) -> list[str]:
    rows = [
        [
            a.label,
            f"{a.reached}/{len(a.seeds)}",
            _seed_values(a, lambda x: x.time_to_target_s),
            interval_text(a.time_to_target),
            "(baseline)"
            if i == 0
            else interval_text(a.time_to_target_ratio)
            if a.time_to_target_ratio
            else "n/a (no seed reached it in both arms)",
            a.verdicts.get("time to target", ""),
        ]
        for i, a in enumerate(arms)
    ]
    header = [
        "arm",
        "reached",
        "per seed (s)",
        "mean over seeds (s)",
        "ratio vs baseline",
        "faster",
    ]
    return [
        f"Time to reward {target:g} (cumulative step time until the reward of record first "
        "reaches it; seeds that never reached it are left out of the ratio, which pairs only "
        "seeds where both arms reached it):",
        "",
        pipe_table(header, rows),
        "",
    ]


def sweep_section(report: Report) -> list[str]:
    if report.sweep is None:
        return []
    header, rows = sweep_rows(report.sweep, interval_text)
    return [
        f"## Staleness sweep (each provider vs {report.sweep.baseline} at the same staleness)",
        "",
        "Per cell: step-time and trainer-compute (recompute + train) ratios vs the baseline "
        "provider [95 % CI, across seeds], reward of record (mean over seeds) [95 % CI], and the "
        "token lag the arm trained on (mean over steps and seeds, and its max). Arms of one row "
        f"compare only if their lags match: a lag spread above {LAG_TOLERANCE} versions is "
        "flagged.",
        "",
        pipe_table(header, rows, align_right_from=len(header)),
        "",
    ]
