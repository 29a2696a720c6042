"""Arms across seeds: one summary per run, then intervals across seeds against the baseline arm.

An *arm* is one label (a provider at one setting) run with several seeds, one run per seed. The
unit is the run: each seed is reduced to

* its **trainer compute** per step (``recompute_logp`` + ``train_step``, the method's own cost)
  and its **step time**: means over the steps after the warm-up;
* its **reward of record**: the mean of its last :data:`LAST_EVALS` held-out (eval) rewards
  when the run evaluated, else the mean training reward of its last N steps (every table names
  which, :func:`held_out_source` / :func:`train_source`). Not the final evaluation alone: one
  evaluation is a volatile snapshot, its variance across a run's evaluations on SmolLM2's
  held-out prompts a few times the binomial variance (docs/compare.md, "Across seeds", has the
  measurement);
* its **time to target**: cumulative step time until the reward of record, taken at each step
  over the window up to it (the last :data:`LAST_EVALS` evaluations, or the last N steps), first
  reaches a stated target.

Intervals are across these per-seed numbers (:mod:`areal_a3po.report.stats`: paired t-intervals
on log-ratios for times, on differences for reward). Steps are for plots only. The reward claim is
non-inferiority against the baseline with a stated margin. Inputs are :class:`RunRecord` (the
kept data), so the docs' tables are rebuilt from kept records exactly as ``a3po compare`` builds
them from tensorboard logs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from areal_a3po.report import areal_keys as ak
from areal_a3po.report import stats
from areal_a3po.report.defaults import LAST_EVALS
from areal_a3po.report.load import step_total
from areal_a3po.report.record import RunRecord
from areal_a3po.report.summarise import resolve_warmup, summarize_timing

TRAINER = "trainer_compute"
STEP = "step_time"
NO_EVAL = "no held-out evaluation logged"
# The step is bounded by the generator when the trainer waits this share of it for rollouts.
GENERATOR_BOUND_SHARE = 0.10


def held_out_source(last_evals: int = LAST_EVALS, fewest: int | None = None) -> str:
    """The held-out reward of record's name; ``fewest``: the fewest evaluations a run logged."""
    text = f"held-out reward, mean of the last {last_evals} evaluations"
    if fewest is not None and fewest < last_evals:
        text += f" (all of a run's where it has fewer; the fewest: {fewest})"
    return text


def train_source(last_n: int) -> str:
    """The training reward of record's name (the mean of the last ``last_n`` steps)."""
    return f"training reward, mean of the last {last_n} steps"


@dataclass(frozen=True)
class SeedSummary:
    """One run reduced to the numbers compared across seeds."""

    seed: int
    steps_used: int
    time_s: dict[str, float]  # trainer_compute, step_time, each logged stage: mean per step
    reward: float | None  # reward of record
    time_to_target_s: float | None  # None: no target, or not reached


@dataclass(frozen=True)
class ArmSeeds:
    """One arm over its seeds (``ratio`` etc. empty/None for the baseline arm)."""

    label: str
    seeds: list[int]
    warmup: int
    per_seed: dict[int, SeedSummary]
    reward_source: str  # the reward of record's name: held_out_source() or train_source()
    time: dict[str, stats.Interval]  # mean over seeds of the per-seed means
    reward: stats.Interval | None
    margin: float = stats.MARGIN
    target: float | None = None
    ratio: dict[str, stats.Interval] = field(default_factory=dict)  # arm / baseline
    reward_difference: stats.Interval | None = None  # arm - baseline
    time_to_target: stats.Interval | None = None  # over the seeds that reached the target
    time_to_target_ratio: stats.Interval | None = None
    bottleneck: str = ""
    held_out: bool = False  # the reward of record is held-out (else training: no evaluation)

    @property
    def reached(self) -> int:
        return sum(1 for s in self.per_seed.values() if s.time_to_target_s is not None)

    @property
    def verdicts(self) -> dict[str, str]:
        out = {f"faster ({k})": stats.speed_verdict(v) for k, v in self.ratio.items()}
        if self.reward_difference is not None:
            out["reward"] = stats.reward_verdict(self.reward_difference, self.margin)
        if self.time_to_target_ratio is not None:
            out["time to target"] = stats.speed_verdict(self.time_to_target_ratio)
        return out


# ----------------------------------------------------------------------------- one run


def _trailing_mean(series: Mapping[int, float], n: int) -> dict[int, float]:
    """Step -> the mean of the series' last ``n`` points up to it (fewer at the start)."""
    steps = sorted(series)
    return {
        s: statistics.fmean(series[t] for t in steps[max(0, i - n + 1) : i + 1])
        for i, s in enumerate(steps)
    }


def window_mean(series: Mapping[int, float], window: int) -> float | None:
    """A run's reward of record: the mean of the series' last ``window`` points (by step)."""
    return statistics.fmean(series[s] for s in sorted(series)[-window:]) if series else None


def summarize_seed(
    rec: RunRecord,
    warmup: int | None,
    last_n: int,
    target: float | None,
    held_out: bool,
    last_evals: int = LAST_EVALS,
) -> SeedSummary:
    """Step times (:func:`summarize_timing`, the run's one reduction), reward of record, time to
    target.

    Reward of record: the mean of the last ``last_evals`` held-out evaluations (``held_out``),
    else of the last ``last_n`` training rewards; time to target: the first step where that mean,
    over the window ending there, reaches ``target``.
    """
    per_step = rec.step_times()
    timing = summarize_timing(per_step, warmup)
    time: dict[str, float] = {}
    if timing.steps_used:
        time[TRAINER] = timing.trainer_compute_s
        time[STEP] = timing.step_time_s
        time.update({s: timing.parts_s[s] for s in ak.NAMED_TIME_PARTS if s in rec.stages})
    series, window = (rec.eval_reward, last_evals) if held_out else (rec.reward, last_n)
    reward = window_mean(series, window)
    ttt = None
    if target is not None and series and per_step:
        smooth = _trailing_mean(series, window)
        hit = next((s for s in sorted(smooth) if smooth[s] >= target), None)
        if hit is not None:
            ttt = sum(step_total(v) for s, v in per_step.items() if s <= hit)
    return SeedSummary(rec.seed, timing.steps_used, time, reward, ttt)


# ----------------------------------------------------------------------------- arms


def _bottleneck(time: Mapping[str, stats.Interval]) -> str:
    rollout, step = time.get(ak.TIME_ROLLOUT), time.get(STEP)
    if step is None:
        return "unknown (no timeperf/* tags)"
    if rollout is None or step.estimate <= 0:
        return "unknown (no rollout stage logged)"
    share = rollout.estimate / step.estimate
    if share >= GENERATOR_BOUND_SHARE:
        return f"generator: the trainer waits {share:.0%} of the step for rollouts"
    return f"trainer: rollouts wait at the staleness cap (trainer waits {share:.0%} for them)"


def _col(per_seed: Mapping[int, SeedSummary], get) -> dict[int, float]:
    return {s: v for s, x in per_seed.items() if (v := get(x)) is not None}


def summarize_arms(
    arms: Mapping[str, Mapping[int, RunRecord]],
    warmup: int | None,
    last_n: int,
    *,
    target: float | None = None,
    margin: float = stats.MARGIN,
    last_evals: int = LAST_EVALS,
) -> list[ArmSeeds]:
    """One :class:`ArmSeeds` per arm, in the given order; the first arm is the baseline.

    The reward of record is the held-out reward (the mean of the last ``last_evals``
    evaluations) when every run logged one, else the training reward (last-``last_n`` mean) for
    all, so that arms always compare like with like.
    """
    if margin <= 0:
        raise ValueError(f"the non-inferiority margin must be > 0, got {margin}")
    if last_evals < 1:
        raise ValueError(f"last_evals must be >= 1, got {last_evals}")
    runs = [r for by_seed in arms.values() for r in by_seed.values()]
    held_out = all(r.eval_reward for r in runs)
    source = (
        held_out_source(last_evals, min(len(r.eval_reward) for r in runs))
        if held_out and runs
        else train_source(last_n)
    )
    summaries = {
        label: {
            s: summarize_seed(r, warmup, last_n, target, held_out, last_evals)
            for s, r in sorted(bs.items())
        }
        for label, bs in arms.items()
    }
    base = next(iter(arms))
    common = {"source": source, "held_out": held_out, "margin": margin, "target": target}
    return [
        _arm(label, per_seed, None if label == base else summaries[base], arms[label], warmup,
             **common)
        for label, per_seed in summaries.items()
    ]  # fmt: skip


def _arm(
    label: str,
    per_seed: dict[int, SeedSummary],
    b: dict[int, SeedSummary] | None,
    records: Mapping[int, RunRecord],
    warmup: int | None,
    *,
    source: str,
    held_out: bool,
    margin: float,
    target: float | None,
) -> ArmSeeds:
    """One arm's intervals, and against the baseline arm's per-seed summaries ``b`` (None: it is
    the baseline)."""
    metrics = sorted({m for x in per_seed.values() for m in x.time_s})
    time = {m: stats.mean_ci(_col(per_seed, lambda x, m=m: x.time_s.get(m))) for m in metrics}
    rewards = _col(per_seed, lambda x: x.reward)
    ttt = _col(per_seed, lambda x: x.time_to_target_s)
    ratio: dict[str, stats.Interval] = {}
    diff = ttt_ratio = None
    if b is not None:
        for m in (TRAINER, STEP):
            arm_m, base_m = (_col(d, lambda x, m=m: x.time_s.get(m)) for d in (per_seed, b))
            if set(arm_m) & set(base_m):
                ratio[m] = stats.ratio_ci(arm_m, base_m)
        base_r = _col(b, lambda x: x.reward)
        if set(rewards) & set(base_r):
            diff = stats.difference_ci(rewards, base_r)
        base_t = _col(b, lambda x: x.time_to_target_s)
        if set(ttt) & set(base_t):
            ttt_ratio = stats.ratio_ci(ttt, base_t)
    steps = [len(r.step_times()) for r in records.values()]
    return ArmSeeds(
        label=label,
        seeds=sorted(per_seed),
        warmup=resolve_warmup(min(steps), warmup) if steps else 0,
        per_seed=per_seed,
        reward_source=source,
        time=time,
        reward=stats.mean_ci(rewards, what="reward") if rewards else None,
        margin=margin,
        target=target,
        ratio=ratio,
        reward_difference=diff,
        time_to_target=stats.mean_ci(ttt, what="time to target") if ttt else None,
        time_to_target_ratio=ttt_ratio,
        bottleneck=_bottleneck(time),
        held_out=held_out,
    )


def group_records(records: Iterable[RunRecord]) -> dict[str, dict[int, RunRecord]]:
    """Records -> arms (in order of first appearance): one arm per label, told apart by seed."""
    arms: dict[str, dict[int, RunRecord]] = {}
    for rec in records:
        if rec.seed in arms.setdefault(rec.arm, {}):
            raise ValueError(
                f"two runs of arm '{rec.arm}' have seed {rec.seed}; give each its seed"
            )
        arms[rec.arm][rec.seed] = rec
    return arms


def recommend(arms: list[ArmSeeds]) -> str | None:
    """The arm the data support over the baseline (the first): its reward interval's lower bound
    above -margin (non-inferior) and its trainer-compute ratio's upper bound below 1 (faster);
    of those, the lowest ratio. None when no arm qualifies or there is no interval."""

    def qualifies(a: ArmSeeds) -> bool:
        d, r = a.reward_difference, a.ratio.get(TRAINER)
        return bool(d and r and d.has_interval and r.has_interval)

    ok = [
        a for a in arms[1:]
        if qualifies(a) and a.reward_difference.low > -a.margin and a.ratio[TRAINER].high < 1.0
    ]  # fmt: skip
    return min(ok, key=lambda a: a.ratio[TRAINER].estimate).label if ok else None
