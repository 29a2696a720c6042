"""Named bad inputs, each with the error a user gets (and one that must NOT raise).

Tensor cases go through AReaL's own ``areal.trainer.ppo.actor.grpo_loss_fn`` (as patched by the
plugin's import hook); config cases through ``PPOActorConfig`` / ``load_expr_config``.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from areal_a3po.config import A3POConfigError
from areal_a3po.providers import ProxInputError
from tests import harness as H

CURRENT = 4
A3PO_RECIPE = "gsm8k_grpo_qwen2.5-1.5b_a3po.yaml"


def good_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 3:7] = True
    versions = torch.full((2, 8), -1, dtype=torch.int32)
    versions[0, 3:7] = CURRENT - 1
    versions[1, 3:7] = CURRENT - 2
    return {
        "logprobs": -torch.rand(2, 8, generator=g) * 2 * mask,
        "advantages": torch.randn(2, 8, generator=g),
        "loss_mask": mask,
        "versions": versions,
    }


def run_loss(data, theta=None, method="a3po", current_version=CURRENT):
    from areal.trainer.ppo.actor import grpo_loss_fn

    if theta is None:
        theta = (data["logprobs"] - 0.1).clone().requires_grad_(True)
    return grpo_loss_fn(
        theta, torch.zeros_like(theta), data, **H.loss_kwargs(method, current_version)
    )


def test_bad_input_good_batch_baseline_finite_loss():
    loss = run_loss(good_batch())
    assert math.isfinite(float(loss))


def test_bad_input_nan_outside_mask_ignored_loss_and_grad_finite():
    data = good_batch()
    data["logprobs"][:, 0] = float("nan")
    data["logprobs"][:, 7] = float("inf")
    theta = (good_batch()["logprobs"] - 0.1).clone().requires_grad_(True)
    loss = run_loss(data, theta)
    loss.backward()
    assert math.isfinite(float(loss))
    assert bool(torch.isfinite(theta.grad).all())


TENSOR_CASES = {
    "nan_behave_in_mask": (
        lambda d: d["logprobs"].__setitem__((0, 4), float("nan")),
        "non-finite values in logprobs (pi_behave): 1 of 8 loss-mask tokens (first positions [(0, 4)]",
    ),
    "inf_behave_in_mask_two_tokens": (
        lambda d: d["logprobs"].__setitem__((1, slice(3, 5)), float("-inf")),
        "non-finite values in logprobs (pi_behave): 2 of 8",
    ),
    "nan_recompute_in_mask": (
        lambda d: d.__setitem__("prox_logp", torch.where(d["loss_mask"], float("nan"), 0.0)),
        "non-finite values in prox_logp (recompute): 8 of 8",
    ),
    "missing_versions": (
        lambda d: d.pop("versions"),
        "needs per-token 'versions' but the batch has none",
    ),
    "versions_ahead_of_trainer": (
        lambda d: d["versions"].__setitem__((0, 5), CURRENT + 2),
        "versions ahead of the trainer (current_version=4): 1 of 8",
    ),
    "prompt_version_inside_mask": (
        lambda d: d["versions"].__setitem__((1, 6), -1),
        "versions < 0 (prompt tag) inside the loss mask: 1 of 8",
    ),
    "float_versions": (
        lambda d: d.__setitem__("versions", d["versions"].float()),
        "'versions' must be an integer tensor, got torch.float32",
    ),
    "bool_versions": (
        lambda d: d.__setitem__("versions", d["versions"] > 0),
        "'versions' must be an integer tensor, got torch.bool",
    ),
    "versions_wrong_shape": (
        lambda d: d.__setitem__("versions", d["versions"][:, :5]),
        "'versions' has shape (2, 5) but loss_mask has (2, 8)",
    ),
    "integer_behave_logprobs": (
        lambda d: d.__setitem__("logprobs", d["logprobs"].long()),
        "logprobs (pi_behave) must be a floating-point tensor, got torch.int64",
    ),
    "behave_wrong_shape": (
        lambda d: d.__setitem__("logprobs", d["logprobs"][:1]),
        "logprobs (pi_behave) has shape (1, 8) but loss_mask has (2, 8)",
    ),
    "recompute_wrong_shape": (
        lambda d: d.__setitem__("prox_logp", torch.zeros(2, 7)),
        "prox_logp (recompute) has shape (2, 7) but loss_mask has (2, 8)",
    ),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_bad_input_tensor_case_raises_clear_error(case):
    mutate, message = TENSOR_CASES[case]
    data = good_batch()
    mutate(data)
    with pytest.raises(ProxInputError) as e:
        run_loss(data, theta=(good_batch()["logprobs"] - 0.1).requires_grad_(True))
    assert message in str(e.value)


def test_bad_input_integer_theta_raises_clear_error():
    data = good_batch()
    with pytest.raises(
        ProxInputError, match=r"training log-probs \(pi_theta\) must be a floating-point"
    ):
        run_loss(data, theta=torch.zeros(2, 8, dtype=torch.int32))


def test_bad_input_empty_batch_raises_clear_error():
    data = {k: v[:0] for k, v in good_batch().items()}
    with pytest.raises(
        ProxInputError, match=r"Empty micro-batch for provider 'a3po': loss_mask has shape \(0, 8\)"
    ):
        run_loss(data, theta=torch.zeros(0, 8, requires_grad=True))


def test_bad_input_missing_current_version_raises_clear_error():
    with pytest.raises(ProxInputError, match="current_version must be an int"):
        run_loss(good_batch(), current_version=None)


def test_bad_input_negative_current_version_raises_clear_error():
    with pytest.raises(ProxInputError, match="current_version must be >= 0, got -1"):
        run_loss(good_batch(), current_version=-1)


def test_bad_input_a3po_metrics_without_recompute_says_controller_skipped():
    with pytest.raises(ProxInputError, match="The controller skipped compute_logp"):
        run_loss(good_batch(), method="a3po-metrics")


# ----------------------------------------------------------------------------- config cases


ACTOR_BASE = dict(experiment_name="e", trial_name="t", backend="fsdp:d1", use_decoupled_loss=True)
ACTOR_CASES = {  # PPOActorConfig fields over ACTOR_BASE -> the error's text
    "unknown_provider": (
        {"prox_logp_method": "a3p0"},
        "actor.prox_logp_method: unknown proximal log-prob provider 'a3p0'. Registered providers: "
        "a3po, a3po-linear",
    ),
    "a3po_without_decoupled_loss": (
        {"prox_logp_method": "a3po", "use_decoupled_loss": False},
        "actor.use_decoupled_loss is false",
    ),
}
# actor.a3po.<key> = <value> -> the error's text after its opening "actor.a3po.<key>"
A3PO_CASES = {
    "negative_anchor_offset": ("anchor_offset", -1.0, " must be a finite number >= 0.0, got -1.0"),
    "nan_anchor_offset": ("anchor_offset", float("nan"), " must be a finite"),
    "string_anchor_offset": ("anchor_offset", "one", " must be a number"),
    "zero_staleness_bins": ("staleness_bins", 0, " must be in [1, 64], got 0"),
    "float_staleness_bins": ("staleness_bins", 2.5, " must be an integer"),
    "unknown_loss": ("loss", "ppo2", ": unknown actor loss 'ppo2'. Registered losses: ppo"),
    "unknown_eval_provider": (
        "eval_providers",
        ["a3po", "nope"],
        ": unknown proximal log-prob provider 'nope'",
    ),
    "non_approximate_eval_provider": (
        "eval_providers",
        ["recompute"],
        " lists 'recompute', which is not an approximate provider",
    ),
    "fallback_not_approximate": (
        "fallback",
        "recompute",
        ": 'recompute' cannot stand in for the recompute",
    ),
    "fallback_composite": ("fallback", "current", ": 'current' cannot stand in for the recompute"),
    "fallback_unknown": ("fallback", "a3po-lin", ": unknown proximal log-prob provider 'a3po-lin'"),
    "zero_calibration_interval": ("calibration_interval", 0, " must be an integer >= 1, got 0"),
    "negative_error_threshold": ("error_threshold", -0.1, " must be a finite number >= 0.0"),
    "unknown_error_metric": (
        "error_metric",
        "mse",
        " must be one of ['abs_error', 'importance_weight_abs_error']",
    ),
    "non_bool_validate_inputs": ("validate_inputs", "yes", " must be true or false"),
}


@pytest.mark.parametrize("case", sorted([*ACTOR_CASES, *A3PO_CASES]))
def test_bad_input_config_case_raises_error_naming_key(case):
    from areal.api.cli_args import PPOActorConfig

    from areal_a3po.config import A3POConfig

    if case in ACTOR_CASES:
        fields, message = ACTOR_CASES[case]
        build = functools.partial(PPOActorConfig, **{**ACTOR_BASE, **fields})
    else:
        key, value, rest = A3PO_CASES[case]
        build, message = functools.partial(A3POConfig, **{key: value}), f"actor.a3po.{key}{rest}"
    with pytest.raises(A3POConfigError) as e:
        build()
    assert message in str(e.value)


def test_bad_input_yaml_unknown_a3po_key_names_key(tmp_path, load_recipe, recipes_dir):
    from omegaconf.errors import ConfigKeyError

    with pytest.raises(ConfigKeyError, match="anchor_ofset"):
        load_recipe(recipes_dir / A3PO_RECIPE, tmp_path, "+actor.a3po.anchor_ofset=2")


def test_bad_input_yaml_negative_anchor_names_key(tmp_path, load_recipe, recipes_dir):
    with pytest.raises(Exception, match=r"actor\.a3po\.anchor_offset must be a finite number >= 0"):
        load_recipe(recipes_dir / A3PO_RECIPE, tmp_path, "actor.a3po.anchor_offset=-2")
