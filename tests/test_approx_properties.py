"""Property tests of the A-3PO math (areal_a3po.approx), no AReaL involved."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from areal_a3po import approx

settings.register_profile("a3po", max_examples=200, deadline=None, derandomize=True)
settings.load_profile("a3po")

pytestmark = pytest.mark.version_independent  # leg 1 only (scripts/test.sh)

N = 16


@st.composite
def batches(draw, low: float = -30.0):
    """behave/theta log-probs, versions (some prompt tokens), trainer version, anchor offset."""
    current = draw(st.integers(min_value=0, max_value=50))
    logp = st.floats(min_value=low, max_value=0.0, allow_nan=False, width=32)
    behave = torch.tensor(draw(st.lists(logp, min_size=N, max_size=N)), dtype=torch.float32)
    theta = torch.tensor(draw(st.lists(logp, min_size=N, max_size=N)), dtype=torch.float32)
    versions = torch.tensor(
        draw(st.lists(st.integers(min_value=-1, max_value=current), min_size=N, max_size=N)),
        dtype=torch.int32,
    )
    k = draw(st.floats(min_value=0.0, max_value=8.0, allow_nan=False))
    return behave, theta, versions, current, k


def _prox(fn, behave, theta, versions, current, k):
    w = approx.behave_weight(approx.staleness(versions, current), k)
    return fn(behave, theta, w), w


@given(batches())
def test_interpolation_any_tokens_lies_between_behave_and_theta(b):
    behave, theta, versions, current, k = b
    for fn in (approx.interpolate_log, approx.interpolate_prob):
        prox, _ = _prox(fn, behave, theta, versions, current, k)
        assert bool((prox >= torch.minimum(behave, theta)).all())
        assert bool((prox <= torch.maximum(behave, theta)).all())


@given(batches())
def test_behave_weight_any_lag_in_unit_interval(b):
    _, _, versions, current, k = b
    w = approx.behave_weight(approx.staleness(versions, current), k)
    assert w.dtype == torch.float32
    assert bool(((w >= 0) & (w <= 1)).all())


@given(batches())
def test_a3po_lag_one_paper_anchor_gives_behave(b):
    behave, theta, _, current, _ = b
    versions = torch.full((N,), max(current - 1, 0), dtype=torch.int32)
    current = max(current, 1)
    for fn in (approx.interpolate_log, approx.interpolate_prob):
        prox, _ = _prox(fn, behave, theta, versions, current, 1.0)
        torch.testing.assert_close(prox, behave, rtol=0.0, atol=0.0)


@given(batches())
def test_a3po_lag_zero_any_anchor_gives_behave(b):
    behave, theta, _, current, k = b
    versions = torch.full((N,), current, dtype=torch.int32)
    prox, _ = _prox(approx.interpolate_log, behave, theta, versions, current, k)
    torch.testing.assert_close(prox, behave, rtol=0.0, atol=0.0)


@given(batches())
def test_a3po_anchor_zero_stale_tokens_gives_theta(b):
    behave, theta, _, current, _ = b
    current = current + 1
    versions = torch.zeros(N, dtype=torch.int32)  # lag = current >= 1
    for fn in (approx.interpolate_log, approx.interpolate_prob):
        prox, _ = _prox(fn, behave, theta, versions, current, 0.0)
        torch.testing.assert_close(prox, theta, rtol=0.0, atol=0.0)


@given(batches(), st.integers(min_value=1, max_value=6))
def test_a3po_paper_formula_matches_closed_form(b, lag):
    behave, theta, _, current, _ = b
    current = current + lag
    versions = torch.full((N,), current - lag, dtype=torch.int32)
    prox, _ = _prox(approx.interpolate_log, behave, theta, versions, current, 1.0)
    # log pi_prox = (1/d) log pi_behave + (1 - 1/d) log pi_theta
    expected = behave.double() / lag + (1 - 1 / lag) * theta.double()
    torch.testing.assert_close(prox.double(), expected, rtol=1e-5, atol=1e-4)


@given(batches())
def test_a3po_large_lag_approaches_theta(b):
    behave, theta, _, _, _ = b
    current = 10**6
    versions = torch.zeros(N, dtype=torch.int32)
    prox, _ = _prox(approx.interpolate_log, behave, theta, versions, current, 1.0)
    torch.testing.assert_close(prox, theta, rtol=0.0, atol=1e-4)


@given(batches())
def test_interpolation_prompt_tokens_untouched(b):
    behave, theta, versions, current, k = b
    versions[::3] = approx.PROMPT_VERSION
    prompt = versions < 0
    for fn in (approx.interpolate_log, approx.interpolate_prob):
        prox, w = _prox(fn, behave, theta, versions, current, k)
        torch.testing.assert_close(prox[prompt], behave[prompt], rtol=0.0, atol=0.0)
        torch.testing.assert_close(w[prompt], torch.ones_like(w[prompt]), rtol=0.0, atol=0.0)


@given(batches(low=-1e4))
def test_interpolate_prob_logprobs_down_to_minus_1e4_finite(b):
    behave, theta, versions, current, k = b
    prox, _ = _prox(approx.interpolate_prob, behave, theta, versions, current, k)
    assert bool(torch.isfinite(prox).all())


def test_interpolate_prob_tiny_probabilities_stable_not_epsilon_floored():
    # p_behave = e^-1e4, p_theta = e^-2e4, w = 1/2: log(0.5 e^-1e4 + 0.5 e^-2e4) = -1e4 + log 0.5
    behave = torch.tensor([-1e4], dtype=torch.float32)
    theta = torch.tensor([-2e4], dtype=torch.float32)
    prox = approx.interpolate_prob(behave, theta, torch.tensor([0.5]))
    torch.testing.assert_close(
        prox, torch.tensor([-1e4 + torch.log(torch.tensor(0.5)).item()]), rtol=1e-6, atol=1e-2
    )


def test_interpolate_prob_half_weight_matches_arithmetic_mean():
    behave = torch.log(torch.tensor([0.5, 0.9], dtype=torch.float32))
    theta = torch.log(torch.tensor([0.25, 0.1], dtype=torch.float32))
    prox = approx.interpolate_prob(behave, theta, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(prox, torch.log(torch.tensor([0.375, 0.5])), rtol=1e-6, atol=1e-6)


def test_interpolation_inputs_with_grad_output_detached_float32():
    behave = torch.tensor([-1.0, -2.0], dtype=torch.bfloat16, requires_grad=True)
    theta = torch.tensor([-1.5, -0.5], dtype=torch.float32, requires_grad=True)
    w = torch.tensor([0.25, 0.75])
    for fn in (approx.interpolate_log, approx.interpolate_prob):
        out = fn(behave, theta, w)
        assert out.dtype == torch.float32
        assert not out.requires_grad


def test_staleness_int_versions_int64_lag_prompt_zero():
    lag = approx.staleness(torch.tensor([-1, 0, 3, 5], dtype=torch.int32), 5)
    assert lag.dtype == torch.int64
    torch.testing.assert_close(lag, torch.tensor([0, 5, 2, 0]), rtol=0, atol=0)


@given(batches())
def test_lag_weight_fused_equals_staleness_then_behave_weight(b):
    _, _, versions, current, k = b
    fused = approx.lag_weight(versions, current, k)
    composed = approx.behave_weight(approx.staleness(versions, current), k)
    torch.testing.assert_close(fused, composed, rtol=0.0, atol=0.0)


# ---------------------------------------------- anchored at the start of the step (a3po-step)
progress = st.sampled_from([k / n for n in (1, 2, 3, 4, 8) for k in range(n)])  # k/K, k < K


@given(batches(), progress)
def test_start_of_step_weight_any_minibatch_in_unit_interval_prompt_one(b, f):
    _, _, versions, current, _ = b
    w = approx.start_of_step_weight(versions, current, f)
    assert w.dtype == torch.float32
    assert bool(((w >= 0) & (w <= 1)).all())
    prompt = versions < 0
    torch.testing.assert_close(w[prompt], torch.ones_like(w[prompt]), rtol=0.0, atol=0.0)


@given(batches())
def test_start_of_step_minibatch_zero_any_lag_gives_theta(b):
    behave, theta, versions, current, _ = b
    gen = versions >= 0
    prox = approx.interpolate_log(
        behave, theta, approx.start_of_step_weight(versions, current, 0.0)
    )
    torch.testing.assert_close(prox[gen], theta[gen], rtol=0.0, atol=0.0)


@given(batches(), progress.filter(lambda f: f > 0))
def test_start_of_step_lag_zero_later_minibatch_gives_behave(b, f):
    behave, theta, _, current, _ = b
    versions = torch.full((N,), current, dtype=torch.int32)
    prox = approx.interpolate_log(behave, theta, approx.start_of_step_weight(versions, current, f))
    torch.testing.assert_close(prox, behave, rtol=0.0, atol=0.0)


@given(batches(), progress.filter(lambda f: f > 0), st.integers(min_value=1, max_value=8))
def test_start_of_step_stale_later_minibatch_strictly_between_closed_form(b, f, lag):
    behave, theta, _, current, _ = b
    current = current + lag
    versions = torch.full((N,), current - lag, dtype=torch.int32)
    w = approx.start_of_step_weight(versions, current, f)
    assert bool(((w > 0) & (w < 1)).all())
    # w = (v_theta - v_prox) / (v_theta - v_behave), v_theta = V + f, v_prox = V
    expected = torch.full((N,), f / (lag + f), dtype=torch.float64)
    torch.testing.assert_close(w.double(), expected, rtol=1e-6, atol=0.0)
    prox = approx.interpolate_log(behave, theta, w)
    torch.testing.assert_close(
        prox.double(),
        expected * behave.double() + (1 - expected) * theta.double(),
        rtol=1e-5,
        atol=1e-4,
    )


@given(batches(), progress.filter(lambda f: f > 0))
def test_start_of_step_weight_matches_version_formula_exactly_rational(b, f):
    """w = (v_theta - v_prox) / (v_theta - v_behave), v_theta = V + f, v_prox = V, in rationals."""
    from fractions import Fraction

    _, _, versions, current, _ = b
    f_q = Fraction(f).limit_denominator(8)
    expected = [
        float((current + f_q - current) / (current + f_q - v)) if v >= 0 else 1.0
        for v in versions.tolist()
    ]
    step = approx.start_of_step_weight(versions, current, f)
    torch.testing.assert_close(step, torch.tensor(expected), rtol=1e-6, atol=0.0)


@given(batches(), progress, progress)
def test_start_of_step_weight_monotone_in_progress_and_lag(b, f1, f2):
    _, _, versions, current, _ = b
    lo, hi = sorted((f1, f2))
    w_lo = approx.start_of_step_weight(versions, current, lo)
    w_hi = approx.start_of_step_weight(versions, current, hi)
    assert bool((w_lo <= w_hi).all())  # later minibatch: theta moved further from V
    older = torch.where(versions > 0, versions - 1, versions)
    assert bool((approx.start_of_step_weight(older, current, hi) <= w_hi).all())


@given(batches(), progress)
def test_start_of_step_interrupted_generation_per_token_weights(b, f):
    """Versions change within a sequence (an interrupted generation): each token its own lag."""
    _, _, versions, current, _ = b
    w = approx.start_of_step_weight(versions, current, f)
    for i in range(N):
        alone = approx.start_of_step_weight(versions[i : i + 1], current, f)
        torch.testing.assert_close(w[i : i + 1], alone, rtol=0.0, atol=0.0)
