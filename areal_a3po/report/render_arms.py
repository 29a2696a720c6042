"""The across-seeds tables of arms (intervals, verdicts, seeds a claim needs): report.md and docs."""

from __future__ import annotations

from areal_a3po.report import stats
from areal_a3po.report.seeds import NO_EVAL, STEP, TRAINER, ArmSeeds
from areal_a3po.report.sittings import Sitting, sittings_text
from areal_a3po.report.text import interval_text, pipe_table

COVERAGE = (
    "What an interval covers: the variation between seeds within this one invocation (one "
    "machine, one session, arms interleaved by seed); not the variation between invocations."
)


ONE_SEED = (
    "One seed per arm: the tables above and below are this seed's runs, and nothing in them says "
    "whether a difference would hold on another seed. Intervals and verdicts (faster, reward not "
    f"worse than the baseline's) need at least {stats.MIN_SEEDS} seeds per arm: run the same "
    "command with `--seeds 1,2,3,4,5` (docs/compare.md)."
)


def _seed_values(a: ArmSeeds, get) -> str:
    vals = [(s, get(x)) for s, x in a.per_seed.items()]
    return ", ".join(f"{s}: {'n/a' if v is None else f'{v:.3f}'}" for s, v in vals) or "n/a"


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
    source = arms[0].reward_source + ("" if arms[0].held_out else f" ({NO_EVAL})")
    out = [
        "The unit is the run. Each seed is summarised first (mean trainer compute and step time "
        f"per step after the warm-up; reward of record: {source}); intervals are {pct} % "
        "Student-t intervals across seeds, paired by seed: on per-seed log-ratios for times "
        "(shown as the geometric mean ratio), on per-seed differences for reward. With fewer "
        f"than {stats.MIN_SEEDS} paired seeds no interval is given. {ladder_text(margin)} "
        f"{sittings_text(parts or []) or COVERAGE}",
        "",
    ]
    out += _time_table(arms)
    stage_names = sorted({m for a in arms for m in a.time if m not in (TRAINER, STEP)})
    if stage_names:
        rows = [[a.label] + [interval_text(a.time.get(m)) for m in stage_names] for a in arms]
        out += [pipe_table(["arm"] + [f"{m} (s)" for m in stage_names], rows), ""]
    plans = [planned_seeds(a) for a in arms]
    reward_rows = [
        [
            a.label,
            _seed_values(a, lambda x: x.reward),
            interval_text(a.reward),
            interval_text(a.reward_difference) if a.reward_difference else "(baseline)",
            a.verdicts.get("reward", "") if a.reward_difference else "",
            *(plan or ("", "")),
        ]
        for a, plan in zip(arms, plans, strict=True)
    ]
    header = [
        "arm", f"reward of record per seed ({arms[0].reward_source})", "mean over seeds",
        "difference vs baseline", "reward", *PLAN_COLUMNS,
    ]  # fmt: skip
    out += [pipe_table(header, reward_rows), ""]
    planned = [a for a, p in zip(arms, plans, strict=True) if p is not None]
    if planned:
        out += _planning_paragraph(planned[0].reward_difference.n_seeds, margin)
    if target is not None:
        out += _target_rows(arms, target)
    return out


def _time_table(arms: list[ArmSeeds]) -> list[str]:
    """Trainer compute and step time per arm: per seed, over seeds, ratio and verdict."""
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
        "arm", "seeds", "per step", "per seed (s)", "mean over seeds (s)",
        "ratio vs baseline", "faster", "bounded by",
    ]  # fmt: skip
    return [pipe_table(header, time_rows, align_right_from=1), ""]


def _planning_paragraph(n: int, margin: float) -> list[str]:
    """What the "seeds a claim would need" columns assume, from ``n`` paired seeds."""
    low, high = stats.sd_interval_factors(n)
    return [
        f"Seeds a claim would need (where the verdict is {stats.NO_CLAIM!r}): the seeds at "
        f"which {planning_assumptions(margin)}, if the arms were equal ({PLAN_COLUMNS[0]!r}) "
        f"or if the true difference were the one seen ({PLAN_COLUMNS[1]!r}; {NEVER!r} where "
        f"it is at or below -{margin:g}), the per-seed differences having the spread seen "
        "here (noncentral t). A planning figure: from "
        f"{n} seeds that spread is known only to within {low:.2f} to {high:.2f} times "
        f"itself ({round(stats.CONFIDENCE * 100)} % interval), and the seeds needed go "
        "with its square.",
        "",
    ]


NEVER = "never"
PLAN_COLUMNS = (
    "seeds for a claim, arms equal",
    "seeds for a claim, if the difference seen is true",
)


def ladder_text(margin: float) -> str:
    """The reward verdicts and when each is given (the ladder of :func:`stats.reward_verdict`)."""
    return (
        f"Reward verdict, the first that holds: {stats.noninferior_text(margin)!r} when the "
        f"interval's lower bound is above -{margin:g} (non-inferiority); "
        f"{stats.inferior_text(margin)!r} when its upper bound is below -{margin:g}; "
        f"{stats.WORSE!r} when its upper bound is below 0 (a loss established, its size within "
        f"the margin or not known); {stats.NO_CLAIM!r} otherwise."
    )


def planning_assumptions(margin: float) -> str:
    """What a planned-seeds figure assumes: the interval's level, the power, the spread."""
    pct = round(stats.CONFIDENCE * 100)
    tail = (1 - stats.CONFIDENCE) / 2 * 100
    return (
        f"the two-sided {pct} % interval's lower bound (a one-sided {tail:g} % test) clears "
        f"-{margin:g} with {round(stats.POWER * 100)} % probability"
    )


def _seeds_text(n: int | None) -> str:
    return f"more than {stats.MAX_PLANNED_SEEDS}" if n is None else str(n)


def planned_seeds(a: ArmSeeds) -> tuple[str, str] | None:
    """Where the reward verdict is "no claim": the seeds a claim would need if the arms were
    equal, and if the true difference were the one seen ("never" at or below -margin); else None.
    """
    d = a.reward_difference
    if d is None or a.verdicts.get("reward") != stats.NO_CLAIM:
        return None
    equal = _seeds_text(stats.seeds_for_noninferiority(d, a.margin))
    if d.estimate <= -a.margin:
        return equal, NEVER
    seen = stats.seeds_for_noninferiority(d, a.margin, true_difference=d.estimate)
    return equal, _seeds_text(seen)


def planning_text(a: ArmSeeds) -> str:
    """The planned seeds after a "no claim" verdict, saying what they assume ("" otherwise)."""
    plan = planned_seeds(a)
    if plan is None:
        return ""
    pct = round(stats.CONFIDENCE * 100)
    tail = (1 - stats.CONFIDENCE) / 2 * 100
    return (
        f"planned seeds for one at {round(stats.POWER * 100)} % power, {pct} % two-sided "
        f"({tail:g} % one-sided) interval, spread seen: {plan[0]} if the arms are equal, "
        f"{plan[1]} if the difference seen is true"
    )


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
        f"Time to reward {target:g} (cumulative step time until the reward of record "
        f"({arms[0].reward_source}), taken over the window ending at each step, first reaches "
        "it; seeds that never reached it are left out of the ratio, which pairs only seeds where "
        "both arms reached it):",
        "",
        pipe_table(header, rows),
        "",
    ]
