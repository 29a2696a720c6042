"""Arms across seeds: medians and 95 % bootstrap intervals, ratios and differences vs the baseline.

An *arm* is one label (a provider) run with several seeds, one run directory per seed. For each
arm, from every (seed, step) after the warm-up:

* trainer compute per step = ``recompute_logp`` + ``train_step`` (the method's own effect: what
  the recompute forward costs, or what the provider adds inside the loss), first;
* step time (end to end) and each named stage, with the side that bounds the step time;
* reward: the mean of the last N steps per seed, then the mean across seeds.

Intervals and verdicts come from :mod:`areal_a3po.report.stats` (scipy's bootstrap). With one
seed no interval is given, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from areal_a3po.report import areal_keys as ak
from areal_a3po.report import stats
from areal_a3po.report.load import RunData, step_total
from areal_a3po.report.summarise import resolve_warmup

TRAINER = "trainer_compute"
STEP = "step_time"
STAGES = (ak.TIME_ROLLOUT, ak.TIME_RECOMPUTE, ak.TIME_TRAIN, ak.TIME_UPDATE)
# The step is bounded by the generator when the trainer waits this share of it for rollouts.
GENERATOR_BOUND_SHARE = 0.10


@dataclass(frozen=True)
class ArmSeeds:
    """One arm over its seeds (intervals from ``stats``; ``vs_baseline`` None for the baseline)."""

    label: str
    seeds: list[int]
    warmup: int
    time: dict[str, stats.Interval]  # trainer_compute, step_time, and each logged stage
    reward: stats.Interval | None  # mean over seeds of the last-N mean reward
    reward_per_seed: dict[int, float] = field(default_factory=dict)
    ratio: dict[str, stats.Interval] = field(default_factory=dict)  # arm / baseline per time
    reward_difference: stats.Interval | None = None  # arm - baseline
    bottleneck: str = ""

    @property
    def verdicts(self) -> dict[str, str]:
        out = {f"faster ({k})": stats.speed_verdict(v) for k, v in self.ratio.items()}
        if self.reward_difference is not None:
            out["reward"] = stats.reward_verdict(self.reward_difference)
        return out


def _per_step(data: RunData, warmup: int | None) -> dict[str, list[float]]:
    """Per time metric, the values of the steps after the warm-up (a missing stage counts 0 s)."""
    steps = list(data.step_times().values())
    steps = steps[resolve_warmup(len(steps), warmup) :]
    out: dict[str, list[float]] = {
        TRAINER: [s.get(ak.TIME_RECOMPUTE, 0.0) + s.get(ak.TIME_TRAIN, 0.0) for s in steps],
        STEP: [step_total(s) for s in steps],
    }
    logged = {name for s in steps for name in s}
    for stage in STAGES:
        if stage in logged:
            out[stage] = [s.get(stage, 0.0) for s in steps]
    return out


def _reward_series(data: RunData) -> list[float]:
    tag = data.find(ak.REWARD_KEYS)
    return [v for _, v in sorted(data.scalars[tag].items())] if tag else []


def _bottleneck(time: Mapping[str, stats.Interval]) -> str:
    rollout, step = time.get(ak.TIME_ROLLOUT), time[STEP]
    if rollout is None or step.estimate <= 0:
        return "unknown (no rollout stage logged)"
    share = rollout.estimate / step.estimate
    if share >= GENERATOR_BOUND_SHARE:
        return f"generator: the trainer waits {share:.0%} of the step for rollouts"
    return f"trainer: rollouts wait at the staleness cap (trainer waits {share:.0%} for them)"


def summarize_arms(
    arms: Mapping[str, Mapping[int, RunData]], warmup: int | None, last_n: int
) -> list[ArmSeeds]:
    """One :class:`ArmSeeds` per arm, in the given order; the first arm is the baseline."""
    per_arm: dict[str, dict[str, dict[int, list[float]]]] = {}
    rewards: dict[str, dict[int, float]] = {}
    for label, by_seed in arms.items():
        series: dict[str, dict[int, list[float]]] = {}
        for seed, data in sorted(by_seed.items()):
            for metric, values in _per_step(data, warmup).items():
                if values:
                    series.setdefault(metric, {})[seed] = values
        per_arm[label] = series
        reward_series = {s: _reward_series(d) for s, d in by_seed.items()}
        reward_series = {s: v for s, v in reward_series.items() if v}
        rewards[label] = stats.last_n_mean(reward_series, last_n) if reward_series else {}

    base = next(iter(arms))
    out = []
    for label, series in per_arm.items():
        time = {m: stats.median_ci(v) for m, v in series.items() if len(v) == len(arms[label])}
        ratio: dict[str, stats.Interval] = {}
        diff = None
        if label != base:
            for m in (TRAINER, STEP):
                if m in series and m in per_arm[base]:
                    ratio[m] = stats.ratio_ci(series[m], per_arm[base][m])
            if rewards[label] and rewards[base]:
                diff = stats.difference_ci(rewards[label], rewards[base])
        out.append(
            ArmSeeds(
                label=label,
                seeds=sorted(arms[label]),
                warmup=resolve_warmup(
                    min(len(d.step_times()) for d in arms[label].values()), warmup
                ),
                time=time,
                reward=stats.mean_ci_across_seeds(rewards[label]) if rewards[label] else None,
                reward_per_seed=rewards[label],
                ratio=ratio,
                reward_difference=diff,
                bottleneck=_bottleneck(time) if STEP in time else "unknown (no timeperf/* tags)",
            )
        )
    return out


def interval_text(iv: stats.Interval | None, digits: int = 3) -> str:
    """``est [low, high]``, or the estimate with the reason no interval is given."""
    if iv is None:
        return "n/a"
    if not iv.has_interval:
        return f"{iv.estimate:.{digits}f} (no interval: {iv.n_seeds} seed)"
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def group_runs(
    labels: Sequence[str], seeds: Sequence[int], datas: Sequence[RunData]
) -> dict[str, dict[int, RunData]]:
    """Runs -> arms: runs with the same label are one arm, told apart by seed."""
    arms: dict[str, dict[int, RunData]] = {}
    for label, seed, data in zip(labels, seeds, datas, strict=True):
        if seed in arms.setdefault(label, {}):
            raise ValueError(f"two runs of arm '{label}' have seed {seed}; give each run its seed")
        arms[label][seed] = data
    return arms
