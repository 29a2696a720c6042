"""Every recipe in recipes/ through AReaL's own config loader, and the launch commands in its header.

* Each recipe loads with ``load_expr_config(argv, GRPOConfig)`` (``tests.test_yaml_switch.load``)
  and passes the plugin's validation.
* The twins of every pair (``*_recompute.yaml`` / ``*_a3po.yaml``, any pair in recipes/) differ,
  once loaded and flattened with ``dataclasses.asdict``, in exactly ``actor.prox_logp_method`` and
  the keys derived from ``trial_name``; as text, only in the ``trial_name`` line and the marked
  proximal-policy block. Both hold at every point of the staleness sweep documented in the headers.
* GPU recipes (``cluster.n_gpus_per_node > 0``): every launch line in the header is run as far as
  CPU allows (tests/test_recipe_launch.py), and the header's deviation table matches the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path

import pytest
import yaml

from tests.recipe_headers import (
    GPU_RECIPES,
    PAIRS,
    RECIPES,
    ROOT,
    TWINS,
    header,
    twin,
    twin_methods,
)


def trial_of(method: str) -> str:
    """A twin's trial_name: its method, with '_' for '-' (AReaL: trial_name has no '-')."""
    return method.replace("-", "_")


SWEEP = (2, 4, 8)

# The loaded configs of a pair differ in exactly these flattened keys (docs/recipes.md): the
# proximal method, every ``trial_name`` (top level and each section's copy), and the tensorboard
# path, which ends in the trial name.
TRIAL_DERIVED_EXTRA = {"stats_logger.tensorboard.path"}


def trial_derived(keys) -> set[str]:
    return {k for k in keys if k == "trial_name" or k.endswith(".trial_name")} | (
        TRIAL_DERIVED_EXTRA & set(keys)
    )


BLOCK_START = "# --- proximal policy"
BLOCK_END = "# -----"


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if value else {prefix: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out if value else {prefix: []}
    return {prefix: value}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, load_recipe):
    """load_recipe(recipe, *overrides) under one shared fileroot, cached (configs are only read)."""
    root = tmp_path_factory.mktemp("recipes")
    cache: dict = {}

    def get(recipe: Path, *overrides: str):
        key = (str(recipe), overrides)
        if key not in cache:
            cache[key] = load_recipe(recipe, root, *overrides)
        return cache[key]

    return get


def sweep_overrides(recipe: Path, staleness: int | None) -> tuple[str, ...]:
    if staleness is None:
        return ()
    trial = yaml.safe_load(recipe.read_text())["trial_name"]
    return (f"rollout.max_head_offpolicyness={staleness}", f"trial_name={trial}_s{staleness}")


# ----------------------------------------------------------------------------- single recipes


def test_recipes_come_in_twin_pairs():
    assert len(PAIRS) >= 2, PAIRS
    assert len(GPU_RECIPES) >= 4, GPU_RECIPES
    assert sorted(RECIPES) == sorted(twin(p, t) for p in PAIRS for t in TWINS)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_with_areal_and_passes_plugin_validation(recipe, loaded):
    from areal_a3po import registry
    from areal_a3po.config import A3POConfig, validate_actor

    cfg = loaded(recipe)
    pair, which = recipe.stem.rsplit("_", 1)
    method = dict(zip(TWINS, twin_methods(pair), strict=True))[which]
    assert cfg.actor.prox_logp_method == method
    assert cfg.trial_name == trial_of(method)  # the run's logs are named by what it ran
    assert cfg.actor.use_decoupled_loss is True
    assert cfg.actor.disable_dropout is True
    assert isinstance(cfg.actor.a3po, A3POConfig)
    validate_actor(cfg.actor.prox_logp_method, cfg.actor.use_decoupled_loss, cfg.actor.a3po)
    provider = registry.get_provider(cfg.actor.prox_logp_method)
    assert cfg.actor.should_compute_prox_logp() is provider.needs_recompute
    assert cfg.stats_logger.tensorboard.path.endswith(f"/{cfg.experiment_name}/{cfg.trial_name}")
    assert "_" not in cfg.experiment_name  # AReaL: experiment_name has no '_'
    assert "-" not in cfg.trial_name  # AReaL: trial_name has no '-'


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("staleness", SWEEP)
def test_staleness_sweep_override_loads_and_sets_value(recipe, staleness, loaded):
    cfg = loaded(recipe, *sweep_overrides(recipe, staleness))
    assert cfg.rollout.max_head_offpolicyness == staleness
    pair, which = recipe.stem.rsplit("_", 1)
    method = dict(zip(TWINS, twin_methods(pair), strict=True))[which]
    assert cfg.trial_name == f"{trial_of(method)}_s{staleness}"
    assert cfg.stats_logger.tensorboard.path.endswith(f"/{cfg.trial_name}")
    assert cfg.actor.prox_logp_method == method


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_header_documents_the_staleness_sweep(recipe):
    text = "\n".join(header(recipe))
    assert f"S in {' '.join(map(str, SWEEP))}" in text
    assert "rollout.max_head_offpolicyness=S trial_name=<this file's trial_name>_sS" in text


# ----------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("staleness", (None, *SWEEP))
def test_pair_loaded_configs_differ_exactly_in_documented_keys(pair, staleness, loaded):
    base, a3po = (twin(pair, t) for t in TWINS)
    cfg_base = loaded(base, *sweep_overrides(base, staleness))
    cfg_a3po = loaded(a3po, *sweep_overrides(a3po, staleness))
    flat_base = flatten(dataclasses.asdict(cfg_base))
    flat_a3po = flatten(dataclasses.asdict(cfg_a3po))
    missing = object()
    differing = {
        k
        for k in flat_base.keys() | flat_a3po.keys()
        if flat_base.get(k, missing) != flat_a3po.get(k, missing)
    }
    assert differing == {"actor.prox_logp_method"} | trial_derived(flat_base)
    assert "actor.trial_name" in differing and TRIAL_DERIVED_EXTRA <= differing
    methods = (flat_base["actor.prox_logp_method"], flat_a3po["actor.prox_logp_method"])
    assert methods == twin_methods(pair)
    assert cfg_base.actor.should_compute_prox_logp() is True
    assert cfg_a3po.actor.should_compute_prox_logp() is False


@pytest.mark.parametrize("pair", PAIRS)
def test_pair_files_differ_only_in_trial_name_and_proximal_block(pair):
    texts = [twin(pair, t).read_text().splitlines() for t in TWINS]

    def allowed_lines(lines: list[str]) -> set[int]:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(BLOCK_START))
        end = next(
            i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(BLOCK_END)
        )
        block = set(range(start + 1, end))
        return block | {i for i, line in enumerate(lines) if line.startswith("trial_name:")}

    allowed = [allowed_lines(lines) for lines in texts]
    matcher = difflib.SequenceMatcher(a=texts[0], b=texts[1], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        assert set(range(i1, i2)) <= allowed[0], texts[0][i1:i2]
        assert set(range(j1, j2)) <= allowed[1], texts[1][j1:j2]
    blocks = [[texts[k][i] for i in sorted(allowed[k])] for k in range(2)]
    for lines, method in zip(blocks, twin_methods(pair), strict=True):
        assert any(line.strip() == f"prox_logp_method: {method}" for line in lines), lines


# ----------------------------------------------------------------------------- deviation table

DEVIATION_RE = re.compile(
    r"^#\s+~ (?P<key>[\w.\[\]]+): (?P<example>.+?) -> (?P<recipe>.+?)  \((?P<why>.+)\)$"
)
UNSET = object()


def deviations(recipe: Path) -> list[dict]:
    return [m.groupdict() for line in header(recipe) if (m := DEVIATION_RE.match(line))]


def raw_value(raw: dict, key: str):
    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("["):
            node = node[int(part[1:-1])]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return UNSET
    return node


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_header_deviation_table_matches_the_file(recipe):
    """Each row ``~ KEY: EXAMPLE -> RECIPE  (REASON)``: the file holds RECIPE (one of ``A | B``) at
    KEY, and RECIPE differs from the example's value. That the table lists *every* difference from
    AReaL's example was checked against AReaL's repository (not stored here): docs/recipes.md."""
    raw = yaml.safe_load(recipe.read_text())
    rows = deviations(recipe)
    assert len(rows) >= 5, rows
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys)), keys
    which = recipe.stem.rsplit("_", 1)[1]
    for row in rows:
        value = raw_value(raw, row["key"])
        allowed = [yaml.safe_load(v) for v in row["recipe"].split(" | ")]
        if row["key"].startswith("actor.a3po."):  # "a3po twin only"
            assert "a3po twin only" in row["why"]
            assert (value is UNSET) == (which == "recompute"), row
            if which == "recompute":
                continue
        assert value in allowed, (row, value)
        assert row["example"] != row["recipe"] and row["why"].strip(), row
    assert {"trial_name", "actor.prox_logp_method", "stats_logger.tensorboard.path"} <= set(keys)


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_proximal_block_holds_only_the_twin_switch(recipe):
    lines = recipe.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(BLOCK_START))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(BLOCK_END))
    keys = {line.split(":")[0].strip() for line in lines[start + 1 : end]}
    assert keys <= {"prox_logp_method", "a3po", "anchor_offset"}, keys
    assert "recompute_logprob: true" in recipe.read_text()  # AReaL's value, outside the block


# ----------------------------------------------------------------------------- DAPO-Math data


def test_docs_dapo_conversion_writes_what_the_math_entry_reads(tmp_path, monkeypatch):
    import datasets

    doc = (ROOT / "docs" / "recipes.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.DOTALL).group(1)
    default_out = re.search(r'out = "([^"]+)"', code).group(1)
    dapo = [p for p in RECIPES if p.name.startswith("dapo_math_")]
    assert dapo and all(
        yaml.safe_load(p.read_text())["train_dataset"]["path"] == default_out for p in dapo
    )

    def row(i: int) -> dict:  # BytedTsinghua-SIA/DAPO-Math-17k's schema
        return {
            "data_source": "math_dapo",
            "prompt": [{"content": f"Solve problem {i}.", "role": "user"}],
            "ability": "MATH",
            "reward_model": {"ground_truth": str(10 + i), "style": "rule-lean"},
            "extra_info": {"index": str(i)},
        }

    fake = datasets.Dataset.from_list([row(i % 3) for i in range(7)])  # repeated problems
    real_load = datasets.load_dataset
    calls = []

    def fake_load(path, split=None, **kwargs):
        calls.append(path)
        return fake

    out = tmp_path / "data" / "dapo.jsonl"
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    exec(compile(code.replace(default_out, str(out)), "docs/recipes.md", "exec"), {})
    assert calls == ["BytedTsinghua-SIA/DAPO-Math-17k"]
    # boba_grpo.py's format, read by the recipes' entry script (areal_a3po.entry.math_task).
    monkeypatch.setattr(datasets, "load_dataset", real_load)
    from areal_a3po.entry.math_task import load_jsonl_dataset

    class Words:  # token count = word count; the entry's length filter only needs encode()
        def encode(self, text):
            return text.split()

    loaded = load_jsonl_dataset(str(out), Words())
    assert loaded.num_rows == 3
    assert loaded[0] == {
        "messages": [{"role": "user", "content": "Solve problem 0."}],
        "solutions": ["10"],
    }
    assert sorted(r["solutions"][0] for r in loaded) == ["10", "11", "12"]


# ----------------------------------------------------------------------------- settings


def test_gsm8k_minibatch_pairs_differ_only_in_ppo_minibatches(loaded):
    """The 4-minibatch GSM8K pair is the one-minibatch pair with ppo_n_minibatches 4 (own logs)."""
    mb1, mb4 = "gsm8k_grpo_qwen2.5-1.5b", "gsm8k_grpo_qwen2.5-1.5b-mb4"
    assert {mb1, mb4} <= set(PAIRS)
    for which in TWINS:
        one = flatten(dataclasses.asdict(loaded(twin(mb1, which))))
        four = flatten(dataclasses.asdict(loaded(twin(mb4, which))))
        missing = object()
        differing = {k for k in one.keys() | four.keys() if one.get(k, missing) != four.get(k)}
        named = {k for k in one if k == "experiment_name" or k.endswith(".experiment_name")}
        assert differing == {"actor.ppo_n_minibatches", "stats_logger.tensorboard.path"} | named
        assert (one["actor.ppo_n_minibatches"], four["actor.ppo_n_minibatches"]) == (1, 4)
    text = "\n".join(header(twin(mb1, "a3po")))
    assert "clip never" in text and f"{mb4}_{{recompute,a3po}}.yaml" in text


def test_dapo_overlong_penalty_has_dapos_relative_strength(loaded):
    """AReaL adds the overlong penalty to the 0/1 reward before reward_bias/reward_scaling; at the
    longest completion it must cost half the reward span, as DAPO's -1 on its -1..1 reward."""
    import torch
    from areal.utils.functional import reward_overlong_penalty

    for recipe in (p for p in GPU_RECIPES if p.name.startswith("dapo_math_")):
        actor = loaded(recipe).actor
        assert actor.overlong_reward_penalty
        longest = actor.max_new_tokens
        data = {
            "rewards": torch.tensor([0.0, 1.0, 0.0], dtype=torch.float32),  # wrong, right, wrong
            "input_ids": torch.zeros(3, 1, dtype=torch.long),
            "loss_mask": torch.zeros(3, longest, dtype=torch.bool),
        }
        data["loss_mask"][2, :] = True  # the third completion runs to max_new_tokens
        penalised = reward_overlong_penalty(
            data,
            overlong_tokens=actor.overlong_tokens,
            overlong_penalty_factor=actor.overlong_penalty_factor,
            max_response_length=longest,
        )["rewards"]
        scaled = (penalised + actor.reward_bias) * actor.reward_scaling  # as AReaL's actor does
        span = scaled[1] - scaled[0]
        torch.testing.assert_close((scaled[0] - scaled[2]) / span, torch.tensor(0.5))


REUSE_ARM_RE = re.compile(r"^#\s+append\s+(actor\.prox_logp_method=reuse_train_logp .+)$")


def test_gsm8k_one_minibatch_reuse_train_logp_arm_loads_on_areal2_refused_on_1_0(loaded):
    """The one-minibatch GSM8K headers' third arm (AReaL 2.x's exact, free ``reuse_train_logp``):
    its override line, read from the header, loads with AReaL's loader where AReaL has the method
    (the recompute twin's config but the method and the trial name) and is refused by name on
    areal 1.0.4, which the headers and docs/recipes.md say has no such method."""
    from areal.utils.constants import ProxLogpMethod

    from areal_a3po.config import A3POConfigError
    from areal_a3po.coupling.config import plugin_selected

    base = twin("gsm8k_grpo_qwen2.5-1.5b", "recompute")
    lines = [m[1] for line in header(base) if (m := REUSE_ARM_RE.match(line))]
    assert len(lines) == 1, lines
    assert header(base) == header(twin("gsm8k_grpo_qwen2.5-1.5b", "a3po"))  # both twins say it
    overrides = tuple(lines[0].split())
    said = "areal 1.0.4 has no reuse_train_logp"
    assert said in " ".join(x.lstrip("# ") for x in header(base))
    assert said in " ".join((ROOT / "docs" / "recipes.md").read_text().split())
    if "reuse_train_logp" not in {m.value for m in ProxLogpMethod}:  # areal 1.0.4
        with pytest.raises(A3POConfigError, match="unknown proximal log-prob provider 'reuse_tr"):
            loaded(base, *overrides)
        return
    cfg = loaded(base, *overrides)
    assert cfg.actor.prox_logp_method == "reuse_train_logp" and cfg.trial_name == "reuse"
    assert cfg.actor.ppo_n_minibatches == 1
    assert cfg.actor.should_compute_prox_logp() is False  # AReaL skips the forward
    assert not plugin_selected(cfg.actor)  # AReaL's own method: the plugin's loss is not used
    flat = flatten(dataclasses.asdict(cfg))
    flat_base = flatten(dataclasses.asdict(loaded(base)))
    differing = {k for k in flat_base if flat_base[k] != flat.get(k)}
    assert differing == {"actor.prox_logp_method"} | trial_derived(flat_base)
