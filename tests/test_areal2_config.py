"""AReaL 2.x support at config time, on whichever AReaL this environment has (1.0.4 or 2.0.x).

The same file runs in both CI legs. AReaL 2.0 checks ``prox_logp_method`` against its
``ProxLogpMethod`` enum in ``PPOActorConfig.__post_init__``; these tests build configs through
AReaL's own ``load_expr_config`` and ``PPOActorConfig`` and check what reaches the user: plugin
providers accepted, AReaL's own methods (``reuse_train_logp`` on 2.x) untouched, unknown names and
options that read pi_prox to no effect refused with the YAML keys named.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from areal_a3po.config import A3POConfigError

ROOT = Path(__file__).resolve().parents[1]
A3PO = ROOT / "recipes" / "gsm8k_grpo_qwen2.5-1.5b_a3po.yaml"


def _areal_methods() -> set[str]:
    from areal.utils.constants import ProxLogpMethod

    return {m.value for m in ProxLogpMethod}


def _actor_fields() -> set[str]:
    from areal.api.cli_args import PPOActorConfig

    return {f.name for f in dataclasses.fields(PPOActorConfig)}


HAS_REUSE = "reuse_train_logp" in _areal_methods()
needs_reuse = pytest.mark.skipif(
    not HAS_REUSE, reason="this AReaL has no prox_logp_method reuse_train_logp (added in 2.0)"
)
needs_cispo = pytest.mark.skipif(
    "use_cispo_loss" not in _actor_fields(),
    reason="this AReaL has no actor.use_cispo_loss (added in 2.0)",
)


def rs_icepop():
    """IcePop: token-level ratio mask with both bounds (AReaL's gsm8k_icepop example)."""
    from areal.api.cli_args import RejectionSamplingConfig

    return RejectionSamplingConfig(
        level="token", action="mask", metric="ratio", upper=5.0, lower=0.2
    )


@pytest.mark.parametrize("method", ["a3po", "a3po-linear", "behave", "current", "hybrid"])
def test_config_plugin_provider_through_areal_loader_accepted(tmp_path, method, load_recipe):
    extra = ["actor.rejection_sampling=null"] if method == "behave" else []  # see below
    cfg = load_recipe(A3PO, tmp_path, f"actor.prox_logp_method={method}", *extra)
    assert cfg.actor.prox_logp_method == method
    assert cfg.actor.should_compute_prox_logp() is (method == "hybrid")  # hybrid: step 0 calibrates


def test_config_unknown_method_refused_by_plugin_naming_key_and_providers(tmp_path, load_recipe):
    with pytest.raises(A3POConfigError, match=r"actor\.prox_logp_method: unknown .* 'a3p0'") as e:
        load_recipe(A3PO, tmp_path, "actor.prox_logp_method=a3p0")
    assert "a3po" in str(e.value) and "current" in str(e.value)


@needs_reuse
def test_config_reuse_train_logp_areal_builtin_untouched(tmp_path, load_recipe):
    from areal_a3po.coupling.config import plugin_selected

    cfg = load_recipe(
        A3PO, tmp_path, "actor.prox_logp_method=reuse_train_logp", "actor.ppo_n_minibatches=4"
    )
    assert cfg.actor.ppo_n_minibatches == 1  # AReaL's own rule (with its warning)
    assert cfg.actor.should_compute_prox_logp() is False
    assert not plugin_selected(cfg.actor)


@pytest.mark.skipif(HAS_REUSE, reason="this AReaL has reuse_train_logp")
def test_config_reuse_train_logp_on_areal_without_it_refused(tmp_path, load_recipe):
    with pytest.raises(A3POConfigError, match="unknown proximal log-prob provider 'reuse_train"):
        load_recipe(A3PO, tmp_path, "actor.prox_logp_method=reuse_train_logp")


def test_config_enum_guard_restores_plugin_name_and_keeps_areal_checks(actor_config):
    """The guard hands AReaL 'recompute' only for the duration of its own __post_init__."""
    cfg = actor_config(prox_logp_method="a3po", ppo_n_minibatches=4)
    assert cfg.prox_logp_method == "a3po"
    assert cfg.ppo_n_minibatches == 4  # the plugin keeps the user's minibatches


# ------------------------------------------------------------------ proximal-reading loss options


@pytest.mark.parametrize("method", ["a3po", "a3po-linear", "current", "hybrid", "a3po-metrics"])
@pytest.mark.parametrize("option", ["rejection_sampling", "m2_threshold"])
def test_config_prox_reading_option_with_real_provider_accepted(method, option, actor_config):
    value = rs_icepop() if option == "rejection_sampling" else 0.04
    cfg = actor_config(prox_logp_method=method, **{option: value})
    assert getattr(cfg, option) == value


@pytest.mark.parametrize(
    ("option", "key"),
    [("rejection_sampling", "actor.rejection_sampling"), ("m2_threshold", "actor.m2_threshold")],
)
def test_config_prox_reading_option_with_behave_refused_naming_keys(option, key, actor_config):
    value = rs_icepop() if option == "rejection_sampling" else 0.04
    with pytest.raises(A3POConfigError) as e:
        actor_config(prox_logp_method="behave", **{option: value})
    msg = str(e.value)
    assert key in msg and "actor.prox_logp_method: behave" in msg


def test_config_behave_rejection_sampling_through_yaml_loader_refused(tmp_path, load_recipe):
    with pytest.raises(A3POConfigError, match=r"actor\.rejection_sampling has no effect"):
        load_recipe(
            A3PO,
            tmp_path,
            "actor.prox_logp_method=behave",
            "+actor.rejection_sampling={level:token,action:mask,metric:ratio,upper:5.0}",
        )


@pytest.mark.parametrize("method", ["a3po", "current", "hybrid", "behave"])
def test_config_sapo_with_plugin_provider_refused_naming_both_keys(method, actor_config):
    with pytest.raises(A3POConfigError) as e:
        actor_config(prox_logp_method=method, use_sapo_loss=True)
    msg = str(e.value)
    assert "actor.use_sapo_loss" in msg and f"actor.prox_logp_method: {method}" in msg


@needs_cispo
@pytest.mark.parametrize("method", ["a3po", "current", "behave"])
def test_config_cispo_with_plugin_provider_accepted(method, actor_config):
    cfg = actor_config(
        prox_logp_method=method, use_cispo_loss=True, eps_clip=1.0, eps_clip_higher=4.0
    )
    assert cfg.use_cispo_loss is True


def test_config_kpop_binary_kl_refused_by_areal_itself():
    """AReaL lists metric 'binary_kl' (KPop) but its own RejectionSamplingConfig rejects it."""
    from areal.api.cli_args import RejectionSamplingConfig

    with pytest.raises(ValueError, match="metric must be one of"):
        RejectionSamplingConfig(level="token", action="mask", metric="binary_kl", upper=0.1)


# ------------------------------------------------------------------ a3po info


@pytest.mark.slow  # 7-15 s (other interpreters, or AReaL 2.x sources unpacked): --quick skips it
def test_info_prints_areal_origin_and_patch_points():
    proc = subprocess.run(
        [sys.executable, "-m", "areal_a3po.cli", "info"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    from importlib import metadata

    assert f"areal {metadata.version('areal')}: supported=True hooked=True" in out
    assert "areal installed from: " in out
    for point in (
        "areal.api.cli_args.PPOActorConfig.__post_init__",
        "areal.trainer.ppo.actor.PPOActor._compute_advantages",
        "areal.trainer.ppo.actor.PPOActorControllerV2.export_stats",
        "areal.trainer.ppo.actor.grpo_loss_fn",
    ):
        assert f"  {point}: " in out, out
    guard = "plugin names pass it as 'recompute'"
    assert (guard in out) is HAS_REUSE  # the enum check in __post_init__ came with 2.0
