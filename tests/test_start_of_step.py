"""``a3po-step`` (proximal anchored at the start of the step) on AReaL's real FSDP actor.

AReaL's recompute evaluates the policy at the start of the step (version V); on PPO minibatch k of
K the trained weights stand at V + k/K. ``a3po-step`` must equal the recompute on minibatch 0 and
pi_behave for lag-0 tokens after it. The ground truth comes from the same run: under
``a3po-metrics`` the loss trains on the recompute and every approximate provider is called on the
same micro-batch (spied here), so the provider and the recompute see the same weights.
"""

from __future__ import annotations

import pytest
import torch

from areal_a3po.config import A3POConfig
from tests import harness as H

P = "ppo_actor/update/compute_logp/"
PROMPT_LEN = 6  # tests/harness.py's batch: 6 prompt tokens, 10 response tokens per sequence


def interrupted(batch: dict[str, torch.Tensor]) -> None:
    """Interrupted generations: row r's first 5 response tokens at V - (r % 3 + 1), the rest at
    V, so every PPO minibatch (one row each with 4 minibatches) has fresh and stale tokens."""
    versions = batch["versions"]
    current = int(versions.max())
    for r in range(versions.shape[0]):
        versions[r, PROMPT_LEN : PROMPT_LEN + 5] = current - (r % 3 + 1)
        versions[r, PROMPT_LEN + 5 :] = current


def check_start_of_step(records: list) -> None:
    """Minibatch 0: prox == the recompute; later minibatches: lag-0 tokens == pi_behave."""
    minibatches = sorted({inp.minibatch for inp, _ in records})
    assert minibatches == [0, 1, 2, 3], minibatches
    n_fresh_later = 0
    for inp, prox in records:
        mask = inp.loss_mask.bool()
        if inp.minibatch == 0:
            torch.testing.assert_close(
                prox[mask], inp.recomputed.float()[mask], rtol=0.0, atol=1e-6
            )
        else:
            fresh = mask & (inp.versions == inp.current_version)
            n_fresh_later += int(fresh.sum())
            torch.testing.assert_close(
                prox[fresh], inp.behave_logp.float()[fresh], rtol=0.0, atol=0.0
            )
    assert n_fresh_later > 0, "no lag-0 token on a later minibatch: the check proved nothing"


def test_a3po_step_one_minibatch_same_update_as_recompute_no_forward(make_actor, ppo_step):
    def step(method: str):
        with make_actor(prox_logp_method=method, ppo_n_minibatches=1) as actor:
            return ppo_step(actor, seed=1, keep_params=True)

    ref, new = step("recompute"), step("a3po-step")
    assert ref.forwards == 1 and new.forwards == 0
    moved = max(float((ref.params_after[n] - p).abs().max()) for n, p in ref.params_before.items())
    assert moved > 1e-4, "the step did not move the parameters, so equality would prove nothing"
    for name, expected in ref.params_after.items():
        torch.testing.assert_close(new.params_after[name], expected, rtol=0, atol=1e-7)
    assert new.stats[f"{P}exact_token_share/avg"] == 1.0
    assert new.stats[f"{P}lag_weight_behave/avg"] == 0.0  # minibatch 0: pi_theta everywhere


@pytest.fixture(scope="module")
def four_minibatch_records(make_actor, ppo_step):
    """One a3po-metrics step with 4 PPO minibatches, interrupted generations; a3po-step and a3po
    called on every micro-batch beside the recompute the loss trains on."""
    options = A3POConfig(eval_providers=["a3po-step", "a3po"])
    with make_actor(prox_logp_method="a3po-metrics", ppo_n_minibatches=4, a3po=options) as actor:
        with H.spying("a3po-step", "a3po") as records:
            step = ppo_step(actor, seed=2, edit_batch=interrupted)
    assert step.recomputed and step.forwards == 1
    return records


def test_a3po_step_four_minibatches_first_equals_recompute_fresh_equals_behave(
    four_minibatch_records,
):
    records = four_minibatch_records["a3po-step"]
    check_start_of_step(records)
    for inp, prox in records:  # stale tokens on later minibatches: strictly between
        stale = inp.loss_mask.bool() & (inp.versions < inp.current_version)
        if inp.minibatch > 0:
            lo = torch.minimum(inp.behave_logp.float(), inp.theta_logp.float())[stale]
            hi = torch.maximum(inp.behave_logp.float(), inp.theta_logp.float())[stale]
            differ = hi > lo
            assert int(differ.sum()) > 0
            assert bool(((prox[stale] > lo) & (prox[stale] < hi))[differ].all())


def test_anchor_one_version_off_fails_the_start_of_step_check(four_minibatch_records):
    """Negative controls: the same check rejects an anchor one version off, either way."""
    from areal_a3po import approx

    # The paper's a3po: v_prox = v_theta - 1, so minibatch 0's lag-1 tokens get pi_behave.
    with pytest.raises(AssertionError):
        check_start_of_step(four_minibatch_records["a3po"])
    # a3po-step's formula with v_prox = V - 1: fresh tokens on later minibatches leave pi_behave.
    shifted = []
    for inp, _ in four_minibatch_records["a3po-step"]:
        f = inp.minibatch / inp.n_minibatches
        w = approx.start_of_step_weight(inp.versions, inp.current_version + 1, f)
        shifted.append((inp, approx.interpolate_log(inp.behave_logp, inp.theta_logp, w)))
    with pytest.raises(AssertionError):
        check_start_of_step(shifted)


def test_a3po_step_trained_four_minibatches_logs_the_weights_it_used(make_actor, ppo_step):
    with make_actor(prox_logp_method="a3po-step", ppo_n_minibatches=4) as actor:
        with H.spying("a3po-step") as records:
            step = ppo_step(actor, seed=3, edit_batch=interrupted)
    assert step.forwards == 0
    weights, tokens = [], 0
    for inp, _ in records["a3po-step"]:
        mask = inp.loss_mask.bool()
        f = inp.minibatch / inp.n_minibatches
        d = (inp.current_version - inp.versions).float()
        weights.append(torch.where(mask, f / (d + f).clamp(min=1e-30) * (d + f > 0), 0.0).sum())
        tokens += int(mask.sum())
    expected = float(torch.stack(weights).sum()) / tokens
    torch.testing.assert_close(step.stats[f"{P}lag_weight_behave/avg"], expected, rtol=0, atol=1e-6)
    assert step.stats[f"{P}exact_token_share/avg"] == pytest.approx(0.25, abs=1e-7)


def _inputs(minibatch: int, n_minibatches: int = 4, fallback: str = "a3po-step"):
    from areal_a3po.api import ProxInputs

    g = torch.Generator().manual_seed(minibatch)
    versions = torch.tensor([[-1, -1, 5, 4, 3, 2, 5, 1]], dtype=torch.int32)
    return ProxInputs(
        behave_logp=-torch.rand(1, 8, generator=g) * 3,
        theta_logp=-torch.rand(1, 8, generator=g) * 3,
        loss_mask=versions >= 0,
        versions=versions,
        current_version=5,
        minibatch=minibatch,
        n_minibatches=n_minibatches,
        options=A3POConfig(fallback=fallback),
    )


@pytest.mark.parametrize("minibatch", [0, 1, 3])
def test_current_with_a3po_step_fallback_any_minibatch_equals_a3po_step(minibatch):
    from areal_a3po import registry

    inp = _inputs(minibatch)
    step = registry.get_provider("a3po-step").compute(inp)
    current = registry.get_provider("current").compute(_inputs(minibatch))
    mask = inp.loss_mask  # prompt positions never reach the loss
    torch.testing.assert_close(current[mask], step[mask], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("trained", "minibatch", "expected"),
    [
        ("a3po-step", 2, [1, 1, 1.0, 0.5 / 1.5, 0.5 / 2.5, 0.5 / 3.5, 1.0, 0.5 / 4.5]),
        ("a3po", 2, [1, 1, 1.0, 1.0, 0.5, 1 / 3, 1.0, 0.25]),
        ("current", 0, [1, 1, 0, 0, 0, 0, 0, 0]),
        ("behave", 1, [1.0] * 8),
    ],
)
def test_logged_lag_weight_is_the_trained_providers_not_a_scored_ones(trained, minibatch, expected):
    from areal_a3po import providers, registry

    inp = _inputs(minibatch)
    registry.get_provider(trained).compute(inp)  # the loss's provider runs first
    for scored in ("a3po", "a3po-linear", "a3po-step", "behave"):  # then a3po-metrics' scoring
        registry.get_provider(scored).compute(inp)
    weight = providers.lag_weight(inp)
    expected = torch.tensor([expected], dtype=torch.float32)
    torch.testing.assert_close(weight, expected, rtol=1e-6, atol=1e-7)


def test_logged_lag_weight_recompute_trained_is_the_papers_for_reference():
    from areal_a3po import approx, providers, registry

    inp = _inputs(1)
    object.__setattr__(inp, "recomputed", inp.theta_logp.clone())  # frozen dataclass
    registry.get_provider("a3po-metrics").compute(inp)
    registry.get_provider("a3po-step").compute(inp)  # scored after: must not claim the weight
    expected = approx.lag_weight(inp.versions, inp.current_version, 1.0)
    torch.testing.assert_close(providers.lag_weight(inp), expected, rtol=0, atol=0)
