"""Intervals across seeds and plain verdicts for ``a3po compare`` (numpy/scipy, no AReaL/torch).

The unit is the run. Each run (one seed of one arm) is first reduced to a few numbers
(:mod:`areal_a3po.report.seeds`: its mean trainer compute, its reward of record, its time to a
target reward); the intervals below are across those per-seed numbers, never across steps, which
are autocorrelated and drift within a run.

* A time ratio arm / baseline: Student-t interval on the per-seed log-ratios
  ``log(arm_s / base_s)`` of the seeds both arms ran (paired), exponentiated: the geometric mean
  ratio. A seed slow for both arms (a loaded machine) cancels out.
* A reward difference arm - baseline: Student-t interval on the per-seed differences (paired).
* An arm's own level: Student-t interval on its per-seed values.

The t-interval is exact for normal per-seed values and close to nominal for the mildly skewed
ones of a run summary at n = 5-10 (``tests/test_report_stats.py`` checks the coverage by
simulation); a percentile bootstrap over 3-5 seeds is not (3 seeds give 10 distinct resamples and
an interval about the range of the values). With fewer than :data:`MIN_SEEDS` paired seeds no
interval is given and the verdict says so.

What an interval covers: the variation between seeds within one invocation (one machine, one
session, arms interleaved). It says nothing about another invocation on another day or machine;
repeat the study to see that.

Benchmarks that repeat one measurement in one process (``benchmarks/bench_trainer.py``) use
:func:`median_ci_repeats` and :func:`repeats_ratio_ci`: a bootstrap over independent repeats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from areal_a3po.report.defaults import CONFIDENCE, MARGIN, MIN_SEEDS

N_RESAMPLES = 10_000  # repeats bootstrap (benchmarks) only
RNG_SEED = 0
_BATCH = 2_000

FASTER = "faster"
SLOWER = "slower"
WITHIN_NOISE = "within noise"
NO_CLAIM = "no claim"


def no_interval_text(n_seeds: int) -> str:
    """The verdict when there are too few seeds for an interval."""
    return (
        f"no interval ({n_seeds} paired seed{'s' if n_seeds != 1 else ''}; "
        f"an interval needs >= {MIN_SEEDS})"
    )


def noninferior_text(margin: float) -> str:
    return f"not worse than baseline by more than {margin:g}"


def inferior_text(margin: float) -> str:
    return f"worse than baseline by more than {margin:g}"


WORSE = "worse than baseline"  # a loss established, its size within the margin or not known


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval (``None`` bounds: no interval)."""

    estimate: float
    low: float | None
    high: float | None
    n_seeds: int
    method: str
    confidence: float = CONFIDENCE

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self.estimate:.4g} ({no_interval_text(self.n_seeds)})"
        pct = round(self.confidence * 100)
        return (
            f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] "
            f"({pct} % CI, {self.n_seeds} seeds, {self.method})"
        )


# ----------------------------------------------------------------------------- input handling


def _clean(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{what}: no values.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: {int((~np.isfinite(arr)).sum())} non-finite values (NaN/inf).")
    return arr


def _per_seed(per_seed: Mapping[int, float], what: str) -> dict[int, float]:
    if not per_seed:
        raise ValueError(f"{what}: no seeds given.")
    out = {s: float(v) for s, v in sorted(per_seed.items())}
    bad = [s for s, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: non-finite value for seed(s) {bad}.")
    return out


def _paired(
    arm: Mapping[int, float], base: Mapping[int, float], what: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Values of the seeds both ran (sorted by seed) and a note naming any seed left out."""
    a, b = _per_seed(arm, f"{what}, arm"), _per_seed(base, f"{what}, baseline")
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(
            f"{what}: the arms share no seed (arm {sorted(arm)}, base {sorted(base)})."
        )
    left = sorted(set(a) ^ set(b))
    note = f"; seeds {left} ran in one arm only, left out" if left else ""
    return np.array([a[s] for s in common]), np.array([b[s] for s in common]), note


def _t_bounds(x: np.ndarray, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean of ``x`` (``x.size >= 2``)."""
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    if sem == 0.0:
        return mean, mean
    low, high = _st.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _t_interval(x: np.ndarray, method: str, confidence: float, *, log: bool = False) -> Interval:
    """The mean of ``x`` with its t-interval, none under :data:`MIN_SEEDS` values; ``log``: ``x``
    are log-ratios, the estimate and bounds given back exponentiated."""
    estimate = float(np.exp(x.mean())) if log else float(x.mean())
    if x.size < MIN_SEEDS:
        return Interval(estimate, None, None, int(x.size), method, confidence)
    low, high = _t_bounds(x, confidence)
    if log:
        low, high = math.exp(low), math.exp(high)
    return Interval(estimate, low, high, int(x.size), method, confidence)


# ----------------------------------------------------------------------------- across seeds


def mean_ci(
    per_seed: Mapping[int, float], *, confidence: float = CONFIDENCE, what: str = "value"
) -> Interval:
    """Mean over seeds of one value per seed, with its t-interval (an arm's own level)."""
    vals = np.array(list(_per_seed(per_seed, what).values()))
    return _t_interval(vals, "t-interval over seeds", confidence)


def ratio_ci(
    arm: Mapping[int, float], base: Mapping[int, float], *, confidence: float = CONFIDENCE
) -> Interval:
    """Arm / baseline time ratio: geometric mean of per-seed ratios, t-interval on log-ratios.

    Inputs are one positive number per seed (e.g. a run's mean trainer compute per step).
    """
    a, b, note = _paired(arm, base, "ratio")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("ratio: per-seed times must be > 0 seconds.")
    method = "paired t-interval on per-seed log-ratios" + note
    return _t_interval(np.log(a / b), method, confidence, log=True)


def difference_ci(
    arm: Mapping[int, float], base: Mapping[int, float], *, confidence: float = CONFIDENCE
) -> Interval:
    """Arm - baseline: mean of per-seed differences, t-interval (paired by seed)."""
    a, b, note = _paired(arm, base, "difference")
    method = "paired t-interval on per-seed differences" + note
    return _t_interval(a - b, method, confidence)


# ----------------------------------------------------------------------------- verdicts


def speed_verdict(ratio: Interval) -> str:
    """For a time ratio arm/baseline: ``faster`` only if the whole CI is below 1."""
    if not ratio.has_interval:
        return no_interval_text(ratio.n_seeds)
    if ratio.high < 1.0:
        return FASTER
    if ratio.low > 1.0:
        return SLOWER
    return WITHIN_NOISE


def reward_verdict(difference: Interval, margin: float = MARGIN) -> str:
    """The reward verdict of a difference arm - baseline, against a margin ``margin`` (> 0).

    The ladder, first match wins:

    1. lower bound above -margin: "not worse than baseline by more than <margin>"
       (non-inferiority);
    2. upper bound below -margin: "worse than baseline by more than <margin>" (the whole
       interval beyond the margin: inferiority established);
    3. upper bound below 0: "worse than baseline" (a loss established; whether it is within the
       margin is not known at this n);
    4. otherwise "no claim" (the interval holds both -margin and 0: nothing established).
    """
    if margin <= 0:
        raise ValueError(f"the non-inferiority margin must be > 0, got {margin}")
    if not difference.has_interval:
        return no_interval_text(difference.n_seeds)
    if difference.low > -margin:
        return noninferior_text(margin)
    if difference.high < -margin:
        return inferior_text(margin)
    if difference.high < 0.0:
        return WORSE
    return NO_CLAIM


POWER = 0.8  # planning: chance that the interval clears the margin at the planned seeds
MAX_PLANNED_SEEDS = 1000


def planning_sd(difference: Interval) -> float:
    """The sd of the per-seed differences that a t-interval implies (its half-width, unscaled)."""
    crit = float(_st.t.ppf(0.5 + difference.confidence / 2, difference.n_seeds - 1))
    return (difference.high - difference.low) / 2 * math.sqrt(difference.n_seeds) / crit


def seeds_for_noninferiority(
    difference: Interval,
    margin: float = MARGIN,
    *,
    power: float = POWER,
    true_difference: float = 0.0,
) -> int | None:
    """Seeds a non-inferiority claim would need, planned from this interval's spread.

    The smallest n at which the paired two-sided t-interval (at the interval's confidence, so a
    one-sided (1 - confidence) / 2 test against ``-margin``) has its lower bound above
    ``-margin`` with probability ``power``, if the true difference were ``true_difference`` (0:
    the arms equal; the interval's estimate: the difference seen) and the per-seed differences
    had the standard deviation this interval implies. Under those assumptions ``(mean + margin)
    / (s / sqrt(n))`` has a noncentral t distribution (df n - 1, noncentrality ``(true_difference
    + margin) sqrt(n) / sd``). A planning figure: the sd is itself estimated from few seeds
    (:func:`sd_interval_factors`), and n goes with its square. None without an interval, when
    ``true_difference <= -margin`` (no n gives the claim power above the test's level: never), or
    above :data:`MAX_PLANNED_SEEDS`.
    """
    if not difference.has_interval or true_difference <= -margin:
        return None
    sd = planning_sd(difference)
    if sd == 0.0:
        return MIN_SEEDS
    for n in range(MIN_SEEDS, MAX_PLANNED_SEEDS + 1):
        crit = float(_st.t.ppf(0.5 + difference.confidence / 2, n - 1))
        nc = (true_difference + margin) * math.sqrt(n) / sd
        if float(_st.nct.sf(crit, n - 1, nc)) >= power:
            return n
    return None


def sd_interval_factors(n_seeds: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The interval of a normal sd estimated from ``n_seeds`` values, as factors of the estimate."""
    df = n_seeds - 1
    tail = (1 - confidence) / 2
    low = math.sqrt(df / float(_st.chi2.ppf(1 - tail, df)))
    return low, math.sqrt(df / float(_st.chi2.ppf(tail, df)))


# ----------------------------------------------------------------------------- benchmarks


def _bootstrap(data, statistic, paired: bool, n_resamples: int, confidence: float, seed: int):
    res = _st.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        batch=_BATCH,
        vectorized=True,
        paired=paired,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def median_ci_repeats(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Median of independent repeats in one process (a benchmark), percentile bootstrap.

    Not for the steps of an RL run (autocorrelated) nor for seeds (use :func:`mean_ci`).
    """
    arr = _clean(values, "repeats")
    method = "bootstrap over independent repeats, percentile"
    if arr.size < 2:
        return Interval(float(arr[0]), None, None, 1, method, confidence)
    low, high = _bootstrap(
        (arr,), lambda x, axis=-1: np.median(x, axis=axis), False, n_resamples, confidence, seed
    )
    return Interval(float(np.median(arr)), low, high, int(arr.size), method, confidence)


def repeats_ratio_ci(
    arm_by_round: Mapping[int, Sequence[float]],
    base_by_round: Mapping[int, Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Benchmark rounds: ratio of mean per-round medians, rounds resampled paired (bootstrap)."""
    arm = {r: float(np.median(_clean(v, f"arm, round {r}"))) for r, v in arm_by_round.items()}
    base = {r: float(np.median(_clean(v, f"base, round {r}"))) for r, v in base_by_round.items()}
    if set(arm) != set(base) or not arm:
        raise ValueError(f"rounds differ: arm {sorted(arm)} vs baseline {sorted(base)}")
    a = np.array([arm[r] for r in sorted(arm)])
    b = np.array([base[r] for r in sorted(arm)])
    method = "ratio of mean per-round medians; bootstrap paired by round, percentile"
    estimate = float(a.mean() / b.mean())
    if a.size < 2:
        return Interval(estimate, None, None, int(a.size), method, confidence)

    def stat(x, y, axis=-1):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    low, high = _bootstrap((a, b), stat, True, n_resamples, confidence, seed)
    return Interval(estimate, low, high, int(a.size), method, confidence)
