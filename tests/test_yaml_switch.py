"""The one-line YAML switch, end to end through AReaL's own ``load_expr_config``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
A3PO = RECIPES / "gsm8k_grpo_qwen2.5-1.5b_a3po.yaml"
RECOMPUTE = RECIPES / "gsm8k_grpo_qwen2.5-1.5b_recompute.yaml"


def test_yaml_a3po_recipe_loaded_provider_selected_and_recompute_skipped(tmp_path, load_recipe):
    from areal_a3po.config import A3POConfig

    cfg = load_recipe(A3PO, tmp_path)
    assert cfg.actor.prox_logp_method == "a3po"
    assert isinstance(cfg.actor.a3po, A3POConfig)
    assert cfg.actor.a3po.anchor_offset == 1.0
    assert cfg.actor.should_compute_prox_logp() is False


def test_yaml_recompute_recipe_loaded_recompute_runs(tmp_path, load_recipe):
    cfg = load_recipe(RECOMPUTE, tmp_path)
    assert cfg.actor.prox_logp_method == "recompute"
    assert cfg.actor.should_compute_prox_logp() is True


@pytest.mark.parametrize(
    ("method", "recompute"),
    [
        ("a3po", False),
        ("a3po-linear", False),
        ("behave", False),
        ("a3po-metrics", True),
        ("recompute", True),
        ("loglinear", False),
        ("metrics", True),
    ],
)
def test_yaml_override_each_provider_recompute_decision_matches_provider(
    tmp_path, load_recipe, method, recompute
):
    # The recipe's rejection_sampling cannot act with behave (pi_prox = pi_behave): refused there.
    extra = ["actor.rejection_sampling=null"] if method == "behave" else []
    cfg = load_recipe(A3PO, tmp_path, f"actor.prox_logp_method={method}", *extra)
    assert cfg.actor.should_compute_prox_logp() is recompute


def test_yaml_anchor_offset_override_reaches_actor_config(tmp_path, load_recipe):
    cfg = load_recipe(
        A3PO, tmp_path, "actor.a3po.anchor_offset=2.5", "+actor.a3po.staleness_bins=4"
    )
    assert cfg.actor.a3po.anchor_offset == 2.5
    assert cfg.actor.a3po.staleness_bins == 4


def test_yaml_saved_config_contains_a3po_section_and_reloads(tmp_path, load_recipe):
    from areal.utils.stats_logger import StatsLogger

    cfg = load_recipe(A3PO, tmp_path, "actor.a3po.anchor_offset=3")
    saved = Path(StatsLogger.get_log_path(cfg.stats_logger)) / "config.yaml"
    data = yaml.safe_load(saved.read_text())
    assert data["actor"]["prox_logp_method"] == "a3po"
    assert data["actor"]["a3po"]["anchor_offset"] == 3.0
    reloaded = load_recipe(saved, tmp_path / "again")
    assert reloaded.actor.a3po.anchor_offset == 3.0


def test_yaml_actor_config_rpc_round_trip_keeps_options(tmp_path, load_recipe):
    from areal.infra.rpc.serialization import deserialize_value, serialize_value

    cfg = load_recipe(A3PO, tmp_path, "actor.a3po.anchor_offset=2")
    back = deserialize_value(serialize_value(cfg.actor))
    assert type(back) is type(cfg.actor)
    assert back.a3po.anchor_offset == 2.0
    assert back.should_compute_prox_logp() is False
