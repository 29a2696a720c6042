"""Confidence intervals and plain verdicts for ``a3po compare`` (pure numpy/scipy, no AReaL/torch).

Every interval is a percentile bootstrap from :func:`scipy.stats.bootstrap` with a fixed random
generator, so a report is reproducible. Inputs are keyed by seed: ``{seed: [value per step]}`` for
per-step metrics (step time, trainer compute, stage times) and ``{seed: value}`` for per-run
summaries (reward of the last N steps). With fewer than two seeds no interval is given: ``low``
and ``high`` are ``None`` and the verdict says so, instead of a bare number that looks certain.

Coverage caveat: with 3 seeds a bootstrap over seeds has only 10 distinct resamples, and its
percentile interval is roughly the range of the per-seed values (nominal 95 %, real coverage
lower). "within noise" is then the honest reading of an interval that touches the null value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
RNG_SEED = 0
_BATCH = 2_000  # resamples per vectorised call: bounds memory on long runs

YES = "yes"
SLOWER = "slower"
HIGHER = "higher"
LOWER = "lower"
WITHIN_NOISE = "within noise"


def no_interval_text(n_seeds: int) -> str:
    """The verdict when there are too few seeds for an interval."""
    return f"no interval can be given ({n_seeds} seed{'s' if n_seeds != 1 else ''}; need >= 2)"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval (``None`` bounds: no interval)."""

    estimate: float
    low: float | None
    high: float | None
    n_seeds: int
    n_samples: int
    method: str
    confidence: float = CONFIDENCE

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def verdict(self, kind: Literal["speed", "reward"]) -> str:
        """``speed``: this is a time ratio arm/baseline; ``reward``: a difference arm - baseline."""
        if kind == "speed":
            return speed_verdict(self)
        if kind == "reward":
            return reward_verdict(self)
        raise ValueError(f"verdict kind must be 'speed' or 'reward', got {kind!r}")

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self.estimate:.4g} ({no_interval_text(self.n_seeds)})"
        pct = round(self.confidence * 100)
        return (
            f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] "
            f"({pct} % CI, {self.n_seeds} seeds, {self.n_samples} samples)"
        )


# ----------------------------------------------------------------------------- input handling


def _clean(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{what}: no values (after warm-up); run more steps or lower the warm-up.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: {int((~np.isfinite(arr)).sum())} non-finite values (NaN/inf).")
    return arr


def _by_seed(values_by_seed: Mapping[int, Sequence[float]], what: str) -> dict[int, np.ndarray]:
    if not values_by_seed:
        raise ValueError(f"{what}: no seeds given.")
    return {s: _clean(v, f"{what}, seed {s}") for s, v in sorted(values_by_seed.items())}


def _per_seed(per_seed: Mapping[int, float], what: str) -> dict[int, float]:
    if not per_seed:
        raise ValueError(f"{what}: no seeds given.")
    out = {s: float(v) for s, v in sorted(per_seed.items())}
    bad = [s for s, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: non-finite value for seed(s) {bad}.")
    return out


def drop_warmup(
    values_by_seed: Mapping[int, Sequence[float]], warmup: int
) -> dict[int, list[float]]:
    """The steps after the first ``warmup`` of every seed (raises if a seed has none left)."""
    if warmup < 0:
        raise ValueError(f"warm-up must be >= 0 steps, got {warmup}.")
    out = {s: list(v)[warmup:] for s, v in values_by_seed.items()}
    empty = [s for s, v in out.items() if not v]
    if empty:
        raise ValueError(
            f"seed(s) {empty} have no step after a warm-up of {warmup}: run more steps or lower "
            "the warm-up."
        )
    return out


def last_n_mean(values_by_seed: Mapping[int, Sequence[float]], n: int) -> dict[int, float]:
    """Per seed, the mean of its last ``n`` values (e.g. the reward at the end of training)."""
    if n < 1:
        raise ValueError(f"last-N must be >= 1, got {n}.")
    return {s: float(np.mean(v[-n:])) for s, v in _by_seed(values_by_seed, "last-N mean").items()}


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


# ----------------------------------------------------------------------------- intervals


def median_ci(
    values_by_seed: Mapping[int, Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Median over all (seed, step) values and its stratified bootstrap interval.

    Method: seeds are strata; every resample redraws each seed's steps with replacement, keeping
    each seed's step count, and takes the median of the pooled values (the stratified bootstrap
    of rliable, run by ``scipy.stats.bootstrap`` with one sample per seed, ``paired=False``).
    It treats steps within a seed as exchangeable; drift between steps is not modelled. The
    spread between seeds enters through :func:`ratio_ci`, which resamples seeds.
    """
    data = _by_seed(values_by_seed, "median")
    pooled = np.concatenate(list(data.values()))
    n_seeds = len(data)
    method = "stratified bootstrap (steps resampled within seed), percentile"
    if n_seeds < 2:
        return Interval(float(np.median(pooled)), None, None, n_seeds, pooled.size, method)
    short = [s for s, v in data.items() if v.size < 2]
    if short:
        raise ValueError(f"median: seed(s) {short} have a single step; need >= 2 per seed.")

    def stat(*samples, axis=-1):
        return np.median(np.concatenate(samples, axis=axis), axis=axis)

    low, high = _bootstrap(tuple(data.values()), stat, False, n_resamples, confidence, seed)
    return Interval(float(np.median(pooled)), low, high, n_seeds, pooled.size, method, confidence)


def median_ci_repeats(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Median of independent repeats in one process (a benchmark), with its bootstrap interval.

    Not for the steps of an RL run: those are grouped by seed (use :func:`median_ci`).
    """
    arr = _clean(values, "repeats")
    method = "bootstrap over independent repeats, percentile"
    if arr.size < 2:
        return Interval(float(arr[0]), None, None, 1, 1, method, confidence)
    low, high = _bootstrap(
        (arr,), lambda x, axis=-1: np.median(x, axis=axis), False, n_resamples, confidence, seed
    )
    return Interval(float(np.median(arr)), low, high, 1, arr.size, method, confidence)


def _pairing(arm: Mapping[int, object], base: Mapping[int, object]) -> bool:
    return set(arm) == set(base)


def ratio_ci(
    arm_by_seed: Mapping[int, Sequence[float]],
    base_by_seed: Mapping[int, Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Arm / baseline time ratio: mean of per-seed medians over mean of per-seed medians.

    When both arms ran the same seeds, seeds are resampled *paired* (one draw of seeds for both
    arms), so a seed that is slow for both (a loaded machine, longer sequences) cancels out.
    Otherwise the two arms' seeds are resampled independently and ``method`` says so.
    """
    arm = {s: float(np.median(v)) for s, v in _by_seed(arm_by_seed, "ratio, arm").items()}
    base = {s: float(np.median(v)) for s, v in _by_seed(base_by_seed, "ratio, baseline").items()}
    if any(v <= 0 for v in base.values()):
        raise ValueError("ratio: baseline medians must be > 0 (times in seconds).")
    paired = _pairing(arm, base)
    a = np.array([arm[s] for s in sorted(arm)])
    b = np.array([base[s] for s in sorted(base)])
    n_samples = sum(len(v) for v in arm_by_seed.values()) + sum(
        len(v) for v in base_by_seed.values()
    )
    estimate = float(a.mean() / b.mean())
    n_seeds = min(a.size, b.size)
    method = _design("ratio of mean per-seed medians", paired, arm, base)
    if n_seeds < 2:
        return Interval(estimate, None, None, n_seeds, n_samples, method, confidence)

    def stat(x, y, axis=-1):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    low, high = _bootstrap((a, b), stat, paired, n_resamples, confidence, seed)
    return Interval(estimate, low, high, n_seeds, n_samples, method, confidence)


def mean_ci_across_seeds(
    per_seed_values: Mapping[int, float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Mean over seeds of one value per seed (e.g. :func:`last_n_mean` reward), bootstrap CI."""
    vals = np.array(list(_per_seed(per_seed_values, "mean across seeds").values()))
    method = "bootstrap over seeds, percentile"
    if vals.size < 2:
        return Interval(float(vals.mean()), None, None, vals.size, vals.size, method, confidence)
    low, high = _bootstrap(
        (vals,), lambda x, axis=-1: np.mean(x, axis=axis), False, n_resamples, confidence, seed
    )
    return Interval(float(vals.mean()), low, high, vals.size, vals.size, method, confidence)


def difference_ci(
    arm_per_seed: Mapping[int, float],
    base_per_seed: Mapping[int, float],
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> Interval:
    """Mean over seeds of arm minus mean of baseline; paired by seed when the seed sets match."""
    arm = _per_seed(arm_per_seed, "difference, arm")
    base = _per_seed(base_per_seed, "difference, baseline")
    paired = _pairing(arm, base)
    a, b = np.array(list(arm.values())), np.array(list(base.values()))
    estimate = float(a.mean() - b.mean())
    n_seeds = min(a.size, b.size)
    method = _design("difference of means over seeds", paired, arm, base)
    if n_seeds < 2:
        return Interval(estimate, None, None, n_seeds, a.size + b.size, method, confidence)

    def stat(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    low, high = _bootstrap((a, b), stat, paired, n_resamples, confidence, seed)
    return Interval(estimate, low, high, n_seeds, a.size + b.size, method, confidence)


def _design(what: str, paired: bool, arm: Mapping[int, object], base: Mapping[int, object]) -> str:
    if paired:
        return f"{what}; bootstrap paired by seed, percentile"
    return (
        f"{what}; bootstrap unpaired (seeds differ: arm {sorted(arm)} vs baseline "
        f"{sorted(base)}), percentile"
    )


# ----------------------------------------------------------------------------- verdicts


def speed_verdict(ratio: Interval) -> str:
    """For a time ratio arm/baseline: ``yes`` (faster) only if the whole CI is below 1."""
    if not ratio.has_interval:
        return no_interval_text(ratio.n_seeds)
    if ratio.high < 1.0:
        return YES
    if ratio.low > 1.0:
        return SLOWER
    return WITHIN_NOISE


def reward_verdict(difference: Interval) -> str:
    """For a reward difference arm - baseline: ``higher``/``lower`` only if the CI excludes 0."""
    if not difference.has_interval:
        return no_interval_text(difference.n_seeds)
    if difference.low > 0.0:
        return HIGHER
    if difference.high < 0.0:
        return LOWER
    return WITHIN_NOISE
