"""Intervals across seeds and verdicts of areal_a3po/report/stats.py on constructed inputs.

The unit is the run: every input here is one number per seed (a run's median trainer compute, its
reward of record). Coverage and power are checked by simulating many small studies (seeded, so
the tests are deterministic) and comparing with the nominal level within a binomial tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from areal_a3po.report import stats

pytestmark = pytest.mark.version_independent  # leg 1 only (scripts/test.sh)

SEEDS5 = (1, 2, 3, 4, 5)
# Per-seed trainer compute of a baseline arm: seeds differ a lot (machine load, sequence lengths).
BASE5 = {1: 2.10, 2: 2.95, 3: 1.62, 4: 2.40, 5: 3.30}
N_STUDIES = 1000


def _accept_range(p: float, n: int = N_STUDIES, level: float = 0.999) -> tuple[float, float]:
    """Share of ``n`` studies that a true rate ``p`` gives with probability ``level``."""
    lo, hi = st.binom.interval(level, n, p)
    return lo / n, hi / n


# ----------------------------------------------------------------------------- constructed


def test_ratio_true_10pct_saving_five_seeds_says_faster():
    wiggle = (1.01, 0.99, 1.005, 0.995, 1.0)  # 1 % run-to-run noise on top of the seed effect
    arm = {s: 0.9 * BASE5[s] * w for s, w in zip(SEEDS5, wiggle, strict=True)}
    r = stats.ratio_ci(arm, BASE5)
    assert r.n_seeds == 5 and r.has_interval
    assert r.high < 1.0 and r.low < 0.9 < r.high
    torch_close(r.estimate, 0.9, 0.005)
    assert stats.speed_verdict(r) == stats.FASTER


def test_ratio_and_difference_identical_arms_within_noise_and_noninferior():
    wiggle = (1.02, 0.98, 1.01, 0.99, 1.0)  # the same arm run twice: symmetric run noise
    arm = {s: BASE5[s] * w for s, w in zip(SEEDS5, wiggle, strict=True)}
    r = stats.ratio_ci(arm, BASE5)
    assert r.low < 1.0 < r.high
    assert stats.speed_verdict(r) == stats.WITHIN_NOISE
    base_rw = {1: 0.41, 2: 0.55, 3: 0.38, 4: 0.60, 5: 0.47}
    shifts = (0.01, -0.01, 0.02, -0.02, 0.0)
    arm_rw = {s: v + d for (s, v), d in zip(base_rw.items(), shifts, strict=True)}
    d = stats.difference_ci(arm_rw, base_rw)
    assert d.low < 0.0 < d.high and d.low > -stats.MARGIN
    assert stats.reward_verdict(d) == stats.noninferior_text(stats.MARGIN)
    assert stats.reward_verdict(d).startswith("not worse than baseline by more than 0.05")


def test_difference_wide_interval_below_margin_says_no_claim():
    # The old 3-seed study's per-seed reward differences: the t-interval is about [-0.42, 0.11].
    d = stats.difference_ci({1: 0.441, 2: 0.472, 3: 0.229}, {1: 0.503, 2: 0.597, 3: 0.498})
    torch_close(d.low, -0.42, 0.01)
    torch_close(d.high, 0.11, 0.01)
    assert stats.reward_verdict(d) == stats.NO_CLAIM
    assert stats.reward_verdict(d, margin=0.5) == stats.noninferior_text(0.5)


def test_difference_whole_interval_beyond_margin_says_worse():
    # tiny-mb4's a3po against recompute (per-seed last-5 rewards): about [-0.40, -0.21]
    arm = {1: 0.256, 2: 0.242, 3: 0.283, 4: 0.170, 5: 0.247}
    base = {1: 0.502, 2: 0.666, 3: 0.594, 4: 0.469, 5: 0.477}
    d = stats.difference_ci(arm, base)
    assert d.high < -0.05
    assert (
        stats.reward_verdict(d)
        == stats.inferior_text(0.05)
        == "worse than baseline by more than 0.05"
    )
    # straddles -0.3 but wholly below 0: a loss established, its size against 0.3 not known
    assert stats.reward_verdict(d, margin=0.3) == stats.WORSE == "worse than baseline"


def _iv(low: float, high: float) -> stats.Interval:
    return stats.Interval((low + high) / 2, low, high, 5, "constructed")


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.04, -0.01, "not worse than baseline by more than 0.05"),  # the first rung wins
        (-0.20, -0.06, "worse than baseline by more than 0.05"),
        (-0.20, -0.01, "worse than baseline"),  # below 0, holds -0.05: a loss, size unknown
        (-0.20, 0.0, "no claim"),  # touches 0: no loss established
        (-0.20, 0.05, "no claim"),
    ],
)
def test_reward_verdict_interval_wholly_below_zero_says_worse_than_baseline(low, high, expected):
    """The ladder: lower bound > -margin, upper < -margin, upper < 0, else no claim."""
    assert stats.reward_verdict(_iv(low, high), 0.05) == expected


def test_two_seeds_refuse_an_interval_with_a_clear_line():
    r = stats.ratio_ci({1: 1.8, 2: 1.9}, {1: 2.0, 2: 2.1})
    assert r.n_seeds == 2 and not r.has_interval and r.low is None
    assert stats.speed_verdict(r) == "no interval (2 paired seeds; an interval needs >= 3)"
    d = stats.difference_ci({1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.5})
    assert "an interval needs >= 3" in stats.reward_verdict(d)
    assert not stats.mean_ci({1: 0.5, 2: 0.6}).has_interval
    assert "no interval" in str(r)


def test_ratio_pairs_only_common_seeds_and_says_so():
    arm = {s: 0.9 * v for s, v in BASE5.items()} | {9: 5.0}
    r = stats.ratio_ci(arm, BASE5)
    assert r.n_seeds == 5 and "seeds [9] ran in one arm only" in r.method
    with pytest.raises(ValueError, match="share no seed"):
        stats.ratio_ci({7: 1.0}, {1: 1.0})


def test_bad_inputs_raise_naming_the_problem():
    with pytest.raises(ValueError, match="no seeds"):
        stats.ratio_ci({}, {1: 1.0})
    with pytest.raises(ValueError, match=r"non-finite value for seed\(s\) \[2\]"):
        stats.difference_ci({1: 0.1, 2: float("nan")}, {1: 0.1, 2: 0.2})
    with pytest.raises(ValueError, match="> 0 seconds"):
        stats.ratio_ci({1: 0.0, 2: 1.0, 3: 1.0}, {1: 1.0, 2: 1.0, 3: 1.0})
    with pytest.raises(ValueError, match="margin must be > 0"):
        stats.reward_verdict(stats.difference_ci({1: 0.1}, {1: 0.1}), margin=0.0)


def test_mean_ci_is_students_t_interval():
    vals = {1: 0.42, 2: 0.65, 3: 0.55, 4: 0.50}
    m = stats.mean_ci(vals)
    x = np.array(list(vals.values()))
    lo, hi = st.t.interval(0.95, df=3, loc=x.mean(), scale=st.sem(x))
    torch_close(m.low, lo, 1e-12)
    torch_close(m.high, hi, 1e-12)


# ----------------------------------------------------------------------------- by simulation


def _studies(n_seeds: int, true_ratio: float, run_sd: float, seed: int) -> list[tuple[dict, dict]]:
    """Simulated paired studies: seed effects (log sd 0.3) shared by both arms, run noise apart."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_STUDIES):
        level = 2.0 * np.exp(0.3 * rng.standard_normal(n_seeds))
        base = level * np.exp(run_sd * rng.standard_normal(n_seeds))
        arm = true_ratio * level * np.exp(run_sd * rng.standard_normal(n_seeds))
        out.append((dict(enumerate(arm)), dict(enumerate(base))))
    return out


@pytest.mark.parametrize("n_seeds", [5, 10])
def test_ratio_interval_coverage_by_simulation_is_nominal(n_seeds):
    covered = sum(
        (r := stats.ratio_ci(a, b)).low <= 0.9 <= r.high
        for a, b in _studies(n_seeds, 0.9, 0.05, seed=n_seeds)
    )
    lo, hi = _accept_range(stats.CONFIDENCE)
    assert lo <= covered / N_STUDIES <= hi, (
        f"coverage {covered / N_STUDIES:.3f} not in [{lo}, {hi}]"
    )


def test_difference_interval_coverage_by_simulation_with_skewed_rewards():
    """Rewards in [0, 1] with a skewed (beta) seed effect: coverage still nominal at n = 5."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(N_STUDIES):
        level = rng.beta(2.0, 5.0, size=5)
        base = np.clip(level + 0.03 * rng.standard_normal(5), 0, 1)
        arm = np.clip(level - 0.02 + 0.03 * rng.standard_normal(5), 0, 1)
        true = np.mean(np.clip(level - 0.02, 0, 1) - level)  # clipping is rare here
        d = stats.difference_ci(dict(enumerate(arm)), dict(enumerate(base)))
        covered += d.low <= true <= d.high
    lo, hi = _accept_range(stats.CONFIDENCE, level=0.9999)
    assert lo <= covered / N_STUDIES <= hi, covered / N_STUDIES


def test_ten_pct_saving_detected_at_five_seeds_in_most_studies():
    studies = _studies(5, 0.9, 0.03, seed=11)
    detected = sum(stats.speed_verdict(stats.ratio_ci(a, b)) == stats.FASTER for a, b in studies)
    assert detected / N_STUDIES >= 0.95
    same = _studies(5, 1.0, 0.03, seed=12)
    false_alarm = sum(
        stats.speed_verdict(stats.ratio_ci(a, b)) != stats.WITHIN_NOISE for a, b in same
    )
    assert false_alarm / N_STUDIES <= _accept_range(1 - stats.CONFIDENCE)[1]


def _claims_share(n_seeds: int, sd: float, margin: float, seed: int, true: float = 0.0) -> float:
    """Share of N_STUDIES simulated studies (true difference ``true``; 0: equal arms) whose reward
    verdict is non-inferior."""
    rng = np.random.default_rng(seed)
    claims = 0
    for _ in range(N_STUDIES):
        base = rng.uniform(0.2, 0.6, size=n_seeds)  # seeds differ; the arms by ``true``
        arm = base + true + sd * rng.standard_normal(n_seeds)
        d = stats.difference_ci(dict(enumerate(arm)), dict(enumerate(base)))
        claims += stats.reward_verdict(d, margin) == stats.noninferior_text(margin)
    return claims / N_STUDIES


def test_seeds_for_noninferiority_planned_n_gives_the_claim_in_power_share_of_equal_studies():
    """From a 5-seed interval with spread 0.1, the planned n; simulated studies of that n claim
    non-inferiority in about POWER of them, one seed fewer in fewer."""
    diffs = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])
    diffs *= 0.1 / diffs.std(ddof=1)  # per-seed differences with sd exactly 0.1
    base = {s: 0.5 for s in SEEDS5}
    d = stats.difference_ci({s: 0.5 + x for s, x in zip(SEEDS5, diffs, strict=True)}, base)
    n = stats.seeds_for_noninferiority(d, 0.05)
    assert n == 34  # (1.96 + 0.84)^2 (0.1 / 0.05)^2 = 31.4 by the normal approximation; t adds
    lo, hi = _accept_range(stats.POWER)
    assert lo <= _claims_share(n, 0.1, 0.05, seed=21) <= hi
    before = st.nct.sf(st.t.ppf(0.975, n - 2), n - 2, 0.05 * np.sqrt(n - 1) / 0.1)
    assert before < stats.POWER  # the smallest such n
    assert stats.seeds_for_noninferiority(stats.difference_ci(base, base), 0.05) == 3
    assert stats.seeds_for_noninferiority(stats.difference_ci({1: 0.4}, {1: 0.5})) is None
    tiny_margin = stats.seeds_for_noninferiority(d, 0.001)
    assert tiny_margin is None  # beyond MAX_PLANNED_SEEDS


@pytest.mark.parametrize("true", [-0.02, 0.02])
def test_seeds_for_noninferiority_at_observed_difference_gives_claim_in_power_share(true):
    """Planned at a true difference other than 0 (the one seen): simulated studies of that n, with
    that difference and the spread, claim non-inferiority in about POWER of them (binomial
    tolerance at 99.9 %); one seed fewer has less than POWER; the figure moves the right way
    against the equal-arms one; and at or below -margin no n gives the claim ("never": None)."""
    diffs = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])
    diffs *= 0.1 / diffs.std(ddof=1)  # per-seed differences with sd exactly 0.1
    base = {s: 0.5 for s in SEEDS5}
    d = stats.difference_ci({s: 0.5 + x for s, x in zip(SEEDS5, diffs, strict=True)}, base)
    equal = stats.seeds_for_noninferiority(d, 0.05)
    n = stats.seeds_for_noninferiority(d, 0.05, true_difference=true)
    # the normal approximation (1.96 + 0.84)^2 (0.1 / (true + 0.05))^2: 87 and 16; t adds a few
    assert (n > equal and 87 <= n <= 92) if true < 0 else (n < equal and 16 <= n <= 20)
    lo, hi = _accept_range(stats.POWER)
    share = _claims_share(n, 0.1, 0.05, seed=31, true=true)
    assert lo <= share <= hi, f"planned {n}: claims in {share:.3f}, not in [{lo}, {hi}]"
    nc_before = (true + 0.05) * np.sqrt(n - 1) / 0.1
    assert st.nct.sf(st.t.ppf(0.975, n - 2), n - 2, nc_before) < stats.POWER  # the smallest n
    for never in (-0.05, -0.08):
        assert stats.seeds_for_noninferiority(d, 0.05, true_difference=never) is None


def test_sd_interval_factors_cover_the_true_sd_by_simulation():
    rng = np.random.default_rng(23)
    low, high = stats.sd_interval_factors(5)
    np.testing.assert_allclose((low, high), (0.599, 2.874), atol=1e-3)
    s = rng.standard_normal((N_STUDIES, 5)).std(axis=1, ddof=1)  # true sd 1
    covered = np.mean((s * low <= 1.0) & (1.0 <= s * high))
    lo, hi = _accept_range(stats.CONFIDENCE)
    assert lo <= covered <= hi


# ----------------------------------------------------------------------------- benchmarks


def test_median_ci_repeats_independent_repeats_bound_median():
    rng = np.random.default_rng(0)
    m = stats.median_ci_repeats(list(0.5 * (1.0 + 0.05 * rng.standard_normal(15))))
    assert m.low < 0.5 < m.high and m.n_seeds == 15


def test_repeats_ratio_ci_rounds_paired():
    arm = {r: [0.8 + 0.01 * r, 0.81] for r in range(6)}
    base = {r: [1.0 + 0.01 * r, 1.01] for r in range(6)}
    r = stats.repeats_ratio_ci(arm, base)
    assert r.has_interval and r.high < 1.0
    with pytest.raises(ValueError, match="rounds differ"):
        stats.repeats_ratio_ci(arm, {0: [1.0]})


def torch_close(actual: float, expected: float, atol: float) -> None:
    import torch

    torch.testing.assert_close(float(actual), float(expected), rtol=0.0, atol=atol)
