"""Embedded default's pieces: task reward, tokenizer, tiny-model cache, the entry script's checks.

The end-to-end run (recipe header line -> AReaL's local scheduler -> report) is in
tests/test_launcher_local.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from areal_a3po.testbeds.tiny import task
from tests import harness as H

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ fast unit checks


def test_reward_counts_successor_transitions():
    ids = [task.token_id(c) for c in "fgh"]
    perfect = [task.token_id(c) for c in task.continuation(5 + 3, task.MAX_NEW_TOKENS)]  # "abcd..."
    assert task.score(ids, perfect) == 1.0
    # one wrong letter breaks two transitions; the rest still counts (local rule)
    broken = list(perfect)
    broken[5] = task.token_id("a") if perfect[5] != task.token_id("a") else task.token_id("b")
    assert task.score(ids, broken) == (task.MAX_NEW_TOKENS - 2) / task.MAX_NEW_TOKENS
    # <eos> (id 1) ends the completion; nothing after it counts
    assert task.score(ids, perfect[:4] + [1] + perfect[5:]) == 4 / task.MAX_NEW_TOKENS
    assert task.score(ids, []) == 0.0
    assert task.reward_fn("fgh", "", ids, perfect, query="fgh", answer="x") == 1.0


def test_tokenizer_is_identical_for_auto_and_fast_classes(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from areal_a3po.testbeds.tiny.model import TinyModelSpec, build_model_dir

    d = build_model_dir(str(tmp_path / "m"), list(task.VOCAB), seed=1)
    auto = AutoTokenizer.from_pretrained(d)  # a Qwen2 config makes this a Qwen2Tokenizer
    fast = PreTrainedTokenizerFast.from_pretrained(d)
    for text in ("abc", "fgh", "habcdefg"):
        expected = [task.token_id(c) for c in text]
        assert task.get_input_ids(text, auto) == expected
        assert task.get_input_ids(text, fast) == expected
        assert auto.decode(expected) == text
    assert len(auto) == len(fast) == len(task.VOCAB) + 2
    assert (auto.pad_token_id, auto.eos_token_id) == (0, 1)
    assert TinyModelSpec().head_dim >= 32  # vLLM CPU attention


def test_model_cache_reuses_same_seed_and_rebuilds_other_seed(tmp_path):
    from safetensors.torch import load_file

    from areal_a3po.testbeds.tiny.model import build_model_dir

    d = str(tmp_path / "m")
    assert build_model_dir(d, list(task.VOCAB), seed=1) == d
    weights = tmp_path / "m" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    build_model_dir(d, list(task.VOCAB), seed=1)
    assert weights.stat().st_mtime_ns == mtime  # cached
    first = load_file(str(weights))
    build_model_dir(d, list(task.VOCAB), seed=2)  # our own build, other seed: rebuilt in place
    second = load_file(str(weights))
    assert any(not (first[k] == second[k]).all() for k in first)
    build_model_dir(str(tmp_path / "again"), list(task.VOCAB), seed=1)
    for k, v in load_file(str(tmp_path / "again" / "model.safetensors")).items():
        torch.testing.assert_close(v, first[k], rtol=0, atol=0)  # deterministic from the seed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny-build-")]


def test_model_cache_foreign_non_empty_dir_raises_naming_it(tmp_path):
    from areal_a3po.testbeds.tiny.model import build_model_dir

    (tmp_path / "real-model").mkdir()
    (tmp_path / "real-model" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="real-model.*actor.path"):
        build_model_dir(str(tmp_path / "real-model"), list(task.VOCAB), seed=1)
    assert (tmp_path / "real-model" / "config.json").read_text() == "{}"


@pytest.fixture(scope="module")
def recipe_config(tmp_path_factory):
    from areal.api.cli_args import GRPOConfig, load_expr_config

    root = tmp_path_factory.mktemp("cfg")

    def load(*overrides: str):
        recipe = REPO / "recipes" / "cpu_tiny_a3po.yaml"
        argv = ["--config", str(recipe), f"cluster.fileroot={root}", *overrides]
        return load_expr_config(argv, GRPOConfig)[0]

    return load, root


def test_recipe_fileroot_override_moves_model_logs_and_name_records(recipe_config):
    from areal_a3po.testbeds.tiny.train import check_task_consistency

    load, root = recipe_config
    cfg = load("seed=3")
    assert cfg.actor.path == f"{root}/models/tiny-seed3" == cfg.tokenizer_path == cfg.vllm.model
    assert cfg.cluster.name_resolve.nfs_record_root == f"{root}/name_resolve"
    assert cfg.stats_logger.tensorboard.path == f"{root}/tensorboard/a3po-cpu-tiny/a3po_step"
    check_task_consistency(cfg)
    for spec in (*cfg.actor.scheduling_spec, *cfg.rollout.scheduling_spec):
        assert spec.gpu == 0 and "--host 127.0.0.1" in spec.cmd
        assert spec.env_vars["AREAL_A3PO_LOOPBACK"] == "1"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("gconfig.max_new_tokens=8", "gconfig.max_new_tokens=8"),
        ("actor.mb_spec.max_tokens_per_mb=64", "actor.mb_spec.max_tokens_per_mb=64"),
    ],
)
def test_entry_script_config_not_matching_task_raises_naming_key(recipe_config, override, key):
    from areal_a3po.testbeds.tiny.train import check_task_consistency

    with pytest.raises(ValueError, match=re.escape(key)):
        check_task_consistency(recipe_config[0](override))


def test_entry_script_checks_eval_gconfig_only_with_an_evaluation_set(recipe_config):
    from areal_a3po.testbeds.tiny.train import check_task_consistency

    load, short = recipe_config[0], "+eval_gconfig={max_new_tokens:8}"
    check_task_consistency(load(short))  # the recipe has no valid_dataset: AReaL never reads it
    check_task_consistency(load(*H.TINY_EVALUATION))
    with pytest.raises(ValueError, match=re.escape("eval_gconfig.max_new_tokens=8")):
        check_task_consistency(load(H.TINY_VALID_DATASET, short))


def test_tiny_workflow_drops_stop_tokens_so_every_completion_is_max_length(tmp_path):
    """AReaL's RLVRWorkflow stops at <pad>/<eos>; the tiny testbed's keeps generating, so every
    sequence is task.MAX_SEQ_LEN tokens (one per 19-token micro-batch in every pass)."""
    from areal.api.cli_args import GenerationHyperparameters
    from areal.workflow.rlvr import RLVRWorkflow

    from areal_a3po.testbeds.tiny import model, task
    from areal_a3po.testbeds.tiny.workflow import FixedLengthRLVRWorkflow

    path = model.build_model_dir(str(tmp_path / "tiny"), list(task.VOCAB), seed=1)
    kwargs = dict(
        reward_fn=f"{task.__name__}.reward_fn",
        gconfig=GenerationHyperparameters(n_samples=2, max_new_tokens=task.MAX_NEW_TOKENS),
        tokenizer=path,
        enable_thinking=False,
    )
    areal = RLVRWorkflow(**kwargs).gconfig
    ours = FixedLengthRLVRWorkflow(**kwargs).gconfig
    assert sorted(areal.stop_token_ids) == [0, 1] and not areal.ignore_eos  # AReaL: pad, eos
    assert ours.stop_token_ids == [] and ours.ignore_eos
    assert ours.max_new_tokens + task.PROMPT_LEN == task.MAX_SEQ_LEN


@pytest.mark.version_independent
def test_arm_labels_of_every_provider_in_a_sweep_are_valid():
    """Every registered provider runs as an arm (labels name directories and AReaL trials);
    a label that cannot is refused with the characters it may use."""
    from areal_a3po import registry
    from areal_a3po.compare.arms import arm_plan
    from areal_a3po.compare.runner import check_label

    plan = arm_plan(sorted(registry.providers()), [1, 2], [2, 4])
    assert {label for *_, label in plan} >= {"a3po-step_s2_seed1", "a3po-linear_s4_seed2"}
    for *_, label in plan:
        check_label(label)
    for bad in ("model", "a/b", "-a3po", "a b"):
        with pytest.raises(ValueError, match="letters, digits"):
            check_label(bad)


@pytest.mark.version_independent
@pytest.mark.parametrize("name", ["tiny", "smollm2"])
def test_testbed_record_names_its_twins_entry_script_and_times(name):
    """Each testbed's record names the entry script its twins' header lines run (a module that
    exists, in the testbed's folder) and a time for every pace."""
    import importlib.util

    from areal_a3po import testbeds
    from areal_a3po.compare import runner
    from areal_a3po.testbeds import pacing

    bed = testbeds.get(name)
    assert bed.entry_module.startswith(f"areal_a3po.testbeds.{name}.")
    assert importlib.util.find_spec(bed.entry_module) is not None
    for twin in ("recompute", "a3po"):
        line = runner.header_command(runner.recipe_path(twin, name))
        assert line == f"python3 -m {bed.entry_module} --config $RECIPE scheduler.type=local"
    assert set(bed.expected_step_s) == set(pacing.MODES)
    assert bed.arm_limit_s(10) > bed.expected_s(10, pacing.CAP) > bed.expected_s(0, pacing.FREE)


@pytest.mark.version_independent
def test_cli_testbed_choices_and_step_times_come_from_the_records(capsys):
    from areal_a3po import cli, testbeds

    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--testbed {" + ",".join(testbeds.TESTBEDS) + "}" in text
    for bed in testbeds.TESTBEDS.values():
        assert f"'{bed.name}' = recipes/{bed.recipe_prefix}_*.yaml" in text
        assert f"~{bed.expected_step_s['free']:g} s per step" in text
    with pytest.raises(SystemExit):
        cli.main(["compare", "--testbed", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err
