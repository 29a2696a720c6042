"""Confidence intervals and verdicts of areal_a3po/report/stats.py on constructed inputs."""

from __future__ import annotations

import numpy as np
import pytest

from areal_a3po.report import stats

SEEDS = (1, 2, 3)


def step_times(median: float, noise: float, n: int = 40, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median * (1.0 + noise * rng.standard_normal(n)))


def by_seed(median: float, noise: float = 0.02, offset: int = 0) -> dict[int, list[float]]:
    return {s: step_times(median, noise, seed=s + offset) for s in SEEDS}


def test_ratio_ci_arm_20pct_faster_says_yes():
    base = by_seed(3.0)
    arm = by_seed(2.4, offset=100)
    r = stats.ratio_ci(arm, base)
    assert r.estimate == pytest.approx(0.8, abs=0.02)
    assert r.has_interval and r.low < r.estimate < r.high < 1.0
    assert r.n_seeds == 3 and r.n_samples == 240
    assert stats.speed_verdict(r) == stats.YES
    assert r.verdict("speed") == stats.YES


def test_ratio_ci_identical_arms_within_noise():
    base = by_seed(3.0)
    r = stats.ratio_ci(base, base)
    assert r.estimate == pytest.approx(1.0)
    assert r.low <= 1.0 <= r.high
    assert stats.speed_verdict(r) == stats.WITHIN_NOISE


def test_ratio_ci_arm_slower_says_slower():
    r = stats.ratio_ci(by_seed(3.6, offset=7), by_seed(3.0))
    assert r.low > 1.0
    assert stats.speed_verdict(r) == stats.SLOWER


def test_ratio_ci_seeds_vary_widely_pairing_detects_10pct_speedup():
    # Seeds differ 3x in speed (e.g. machine load); within each seed the arm is 10 % faster.
    base = {s: step_times(float(s), 0.01, seed=s) for s in SEEDS}
    arm = {s: step_times(0.9 * s, 0.01, seed=s + 50) for s in SEEDS}
    paired = stats.ratio_ci(arm, base)
    assert paired.high < 1.0 and "paired" in paired.method
    assert stats.speed_verdict(paired) == stats.YES
    # The same numbers without the pairing (seed ids differ) cannot tell the arms apart.
    unpaired = stats.ratio_ci({s + 10: v for s, v in arm.items()}, base)
    assert "unpaired" in unpaired.method
    assert unpaired.low < 1.0 < unpaired.high
    assert stats.speed_verdict(unpaired) == stats.WITHIN_NOISE


def test_ratio_ci_one_seed_gives_no_interval():
    r = stats.ratio_ci({1: step_times(2.4, 0.02)}, {1: step_times(3.0, 0.02, seed=9)})
    assert r.estimate == pytest.approx(0.8, abs=0.02)
    assert r.low is None and r.high is None and not r.has_interval
    assert r.n_seeds == 1
    assert "no interval can be given" in stats.speed_verdict(r)
    assert "no interval can be given" in str(r)


def test_median_ci_three_seeds_contains_true_median():
    m = stats.median_ci(by_seed(3.0))
    assert m.low < 3.0 < m.high
    assert m.high - m.low < 0.1
    assert m.n_seeds == 3 and m.n_samples == 120
    assert "stratified" in m.method


def test_median_ci_one_seed_gives_no_interval():
    m = stats.median_ci({1: step_times(3.0, 0.02)})
    assert m.estimate == pytest.approx(3.0, abs=0.05)
    assert (m.low, m.high) == (None, None)
    assert "1 seed" in str(m)


def test_median_ci_fixed_rng_is_reproducible():
    data = by_seed(3.0, noise=0.2)
    a, b = stats.median_ci(data), stats.median_ci(data)
    assert (a.low, a.high) == (b.low, b.high)
    c = stats.median_ci(data, seed=1)
    assert (c.low, c.high) != (a.low, a.high)


def test_median_ci_stratified_keeps_each_seed_in_every_resample():
    # Seed 1 all 1.0, seed 2 all 3.0, seed 3 all 2.0: the pooled median is 2.0 whatever steps are
    # drawn within a seed, so a stratified bootstrap has a zero-width interval.
    m = stats.median_ci({1: [1.0] * 5, 2: [3.0] * 5, 3: [2.0] * 5})
    assert (m.estimate, m.low, m.high) == (2.0, 2.0, 2.0)


def test_median_ci_repeats_independent_repeats_bound_median():
    m = stats.median_ci_repeats(step_times(0.5, 0.05, n=15))
    assert m.low < 0.5 < m.high and m.n_samples == 15


def test_difference_ci_reward_higher_lower_within_noise():
    base = {1: 0.50, 2: 0.55, 3: 0.45, 4: 0.52}
    higher = stats.difference_ci({s: v + 0.1 for s, v in base.items()}, base)
    assert higher.estimate == pytest.approx(0.1)
    assert stats.reward_verdict(higher) == stats.HIGHER
    lower = stats.difference_ci({s: v - 0.1 for s, v in base.items()}, base)
    assert stats.reward_verdict(lower) == stats.LOWER
    noisy = stats.difference_ci({1: 0.60, 2: 0.45, 3: 0.50, 4: 0.49}, base)
    assert noisy.low < 0.0 < noisy.high
    assert stats.reward_verdict(noisy) == stats.WITHIN_NOISE
    assert noisy.verdict("reward") == stats.WITHIN_NOISE


def test_difference_ci_pairing_by_seed_detects_small_consistent_gain():
    # Rewards differ a lot between seeds; the arm is +0.03 on every seed.
    base = {1: 0.20, 2: 0.50, 3: 0.80}
    arm = {s: v + 0.03 for s, v in base.items()}
    paired = stats.difference_ci(arm, base)
    assert paired.low == pytest.approx(0.03) and paired.high == pytest.approx(0.03)
    assert stats.reward_verdict(paired) == stats.HIGHER
    unpaired = stats.difference_ci({s + 10: v for s, v in arm.items()}, base)
    assert "unpaired" in unpaired.method
    assert stats.reward_verdict(unpaired) == stats.WITHIN_NOISE


def test_difference_ci_one_seed_gives_no_interval():
    d = stats.difference_ci({1: 0.65}, {1: 0.42})
    assert d.estimate == pytest.approx(0.23)
    assert not d.has_interval
    assert "no interval can be given" in stats.reward_verdict(d)


def test_mean_ci_across_seeds_brackets_mean():
    m = stats.mean_ci_across_seeds({1: 0.42, 2: 0.65, 3: 0.55})
    assert m.estimate == pytest.approx(0.54)
    # Three seeds: the percentile interval is about the range of the values (module docstring).
    assert m.low == pytest.approx(0.42) and m.high == pytest.approx(0.65)
    one = stats.mean_ci_across_seeds({1: 0.5})
    assert not one.has_interval


def test_last_n_mean_after_warmup_uses_tail_per_seed():
    rewards = {1: [0.0, 0.0, 0.4, 0.6], 2: [1.0, 0.2, 0.2, 0.4]}
    assert stats.last_n_mean(rewards, 2) == {1: pytest.approx(0.5), 2: pytest.approx(0.3)}
    assert stats.drop_warmup(rewards, 3) == {1: [0.6], 2: [0.4]}


def test_drop_warmup_longer_than_run_raises_naming_seed():
    with pytest.raises(ValueError, match=r"seed\(s\) \[2\].*warm-up of 3"):
        stats.drop_warmup({1: [1.0] * 5, 2: [1.0] * 3}, 3)


def test_median_ci_non_finite_step_time_raises_naming_seed():
    with pytest.raises(ValueError, match="seed 2: 1 non-finite"):
        stats.median_ci({1: [1.0, 2.0], 2: [1.0, float("nan")]})


def test_ratio_ci_no_seeds_raises():
    with pytest.raises(ValueError, match="no seeds"):
        stats.ratio_ci({}, {1: [1.0]})


def test_interval_verdict_unknown_kind_raises():
    with pytest.raises(ValueError, match="'speed' or 'reward'"):
        stats.mean_ci_across_seeds({1: 1.0, 2: 2.0}).verdict("memory")
