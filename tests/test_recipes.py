"""Every recipe in recipes/ through AReaL's own config loader, and the launch commands in its header.

* Each recipe loads with ``load_expr_config(argv, GRPOConfig)`` (``tests.test_yaml_switch.load``)
  and passes the plugin's validation.
* The twins of a pair (``*_recompute.yaml`` / ``*_a3po.yaml``) differ, once loaded and flattened
  with ``dataclasses.asdict``, in exactly ``actor.prox_logp_method`` and the keys derived from
  ``trial_name``; as text, only in the ``trial_name`` line and the marked proximal-policy block.
  Both hold at every point of the staleness sweep documented in the headers.
* Every launch command in a header parses: the trainer side with ``load_expr_config``, the SPMD
  launchers' side with AReaL's ``parse_cli_args`` and the launchers' own config validation.
* The DAPO-Math conversion in docs/recipes.md writes the format ``boba_grpo.py`` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.test_yaml_switch import load

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TWINS = ("recompute", "a3po")
PAIRS = sorted(
    {p.name.rsplit("_", 1)[0] for p in RECIPES if p.stem.endswith(tuple(f"_{t}" for t in TWINS))}
)
SWEEP = (2, 4, 8)

# The loaded configs of a pair differ in exactly these flattened keys (docs/recipes.md).
TRIAL_DERIVED = {
    "trial_name",
    "rollout.trial_name",
    "actor.trial_name",
    "saver.trial_name",
    "recover.trial_name",
    "evaluator.trial_name",
    "stats_logger.trial_name",
    "stats_logger.tensorboard.path",
}
PAIR_DIFF = {"actor.prox_logp_method"} | TRIAL_DERIVED
BLOCK_START = "# --- proximal policy"
BLOCK_END = "# -----"

COMMAND_RE = re.compile(r"^#\s+(?P<label>(?:single-controller|SPMD)[^:]*):\s+(?P<cmd>python3 .+)$")
LAUNCHERS = {
    "areal.infra.launcher.local": "validate_config_for_launcher",
    "areal.infra.launcher.ray": "validate_config_for_distributed_launcher",
    "areal.infra.launcher.slurm": "validate_config_for_distributed_launcher",
}


def header(recipe: Path) -> list[str]:
    lines = recipe.read_text().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]


def twin(pair: str, which: str) -> Path:
    return ROOT / "recipes" / f"{pair}_{which}.yaml"


def commands(recipe: Path) -> list[tuple[str, str]]:
    return [(m["label"], m["cmd"]) for line in header(recipe) if (m := COMMAND_RE.match(line))]


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
def loaded(tmp_path_factory):
    """load(recipe, *overrides) under one shared fileroot, cached (the configs are only read)."""
    root = tmp_path_factory.mktemp("recipes")
    cache: dict = {}

    def get(recipe: Path, *overrides: str):
        key = (str(recipe), overrides)
        if key not in cache:
            cache[key] = load(recipe, root, *overrides)
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
    assert sorted(RECIPES) == sorted(twin(p, t) for p in PAIRS for t in TWINS)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_with_areal_and_passes_plugin_validation(recipe, loaded):
    from areal_a3po import registry
    from areal_a3po.config import A3POConfig, validate_actor

    cfg = loaded(recipe)
    which = recipe.stem.rsplit("_", 1)[1]
    assert cfg.actor.prox_logp_method == which
    assert cfg.trial_name == which
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
    assert cfg.trial_name == f"{recipe.stem.rsplit('_', 1)[1]}_s{staleness}"
    assert cfg.stats_logger.tensorboard.path.endswith(f"/{cfg.trial_name}")
    assert cfg.actor.prox_logp_method == recipe.stem.rsplit("_", 1)[1]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
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
    assert differing == PAIR_DIFF
    assert (flat_base["actor.prox_logp_method"], flat_a3po["actor.prox_logp_method"]) == TWINS
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
    assert any("prox_logp_method: recompute" in line for line in blocks[0])
    assert any("prox_logp_method: a3po" in line for line in blocks[1])


# ----------------------------------------------------------------------------- header commands


def _command_cases():
    cases = []
    for recipe in RECIPES:
        for label, cmd in commands(recipe):
            cases.append(pytest.param(recipe, label, cmd, id=f"{recipe.stem}-{label}"))
    return cases


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_header_names_every_launcher(recipe):
    found = commands(recipe)
    labels = [label.split("(")[0].strip() for label, _ in found]
    assert labels == [
        "single-controller, local",
        "single-controller, Ray",
        "single-controller, Slurm",
        "SPMD, local",
        "SPMD, Ray",
        "SPMD, Slurm",
    ]
    entry = next(line for line in header(recipe) if "Entry script:" in line)
    script = re.search(r"(examples/\S+\.py)", entry).group(1)
    for _, cmd in found:
        assert script in shlex.split(cmd), cmd


@pytest.mark.parametrize(("recipe", "label", "cmd"), _command_cases())
def test_header_launch_command_parses_with_areal(recipe, label, cmd, loaded, tmp_path):
    from areal.api.alloc_mode import ModelAllocation, _AllocationMode
    from areal.api.cli_args import ClusterSpecConfig, parse_cli_args, to_structured_cfg
    from areal.infra.utils import launcher as launcher_utils

    tokens = shlex.split(cmd.replace("$RECIPE", str(recipe)))
    assert tokens[0] == "python3"
    module = None
    if tokens[1] == "-m":
        module, tokens = tokens[2], tokens[3:]
        assert module in LAUNCHERS, module
        assert importlib.util.find_spec(module) is not None, module
    else:
        tokens = tokens[1:]
    script, args = tokens[0], tokens[1:]
    assert script.endswith(".py") and args[:2] == ["--config", str(recipe)]
    overrides = tuple(args[2:])

    # The trainer script parses exactly these arguments with load_expr_config (both modes).
    cfg = loaded(recipe, *overrides)
    rollout = ModelAllocation.from_str(cfg.rollout.backend, name="rollout")
    actor = ModelAllocation.from_str(cfg.actor.backend, name="actor")
    assert (
        rollout.world_size + actor.world_size == cfg.cluster.n_nodes * cfg.cluster.n_gpus_per_node
    )

    if module is None:
        assert label.startswith("single-controller")
        assert cfg.scheduler.type == label.split(",")[1].strip().lower()
        return

    # SPMD: what areal.infra.launcher.{local,ray,slurm}.main does before launching anything.
    assert label.startswith("SPMD") and cfg.scheduler.type is None
    record_root = tmp_path / "name_resolve"
    record_root.mkdir()
    config, _ = parse_cli_args(
        [
            script,
            "--config",
            str(recipe),
            *overrides,
            f"cluster.fileroot={tmp_path}",
            f"cluster.name_resolve.nfs_record_root={record_root}",
        ]
    )
    config.cluster = to_structured_cfg(config.cluster, ClusterSpecConfig)
    getattr(launcher_utils, LAUNCHERS[module])(config)
    legacy = _AllocationMode.from_str(config.allocation_mode)
    assert legacy.gen_backend == rollout.backend
    assert (legacy.gen.world_size, legacy.train.world_size) == (
        rollout.world_size,
        actor.world_size,
    )
    if module != "areal.infra.launcher.local":  # node-granular: >= 1 node left for training
        assert config.cluster.n_nodes - legacy.gen.world_size // config.cluster.n_gpus_per_node >= 1


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_header_compare_command_points_at_the_twins_tensorboard_dirs(recipe):
    raw = yaml.safe_load(recipe.read_text())
    text = "\n".join(header(recipe))
    tb = re.search(r"TB=(\S+?):?$", text, re.MULTILINE).group(1)
    assert tb == f"{raw['cluster']['fileroot']}/tensorboard/{raw['experiment_name']}"
    assert raw["stats_logger"]["tensorboard"]["path"] == (
        "${cluster.fileroot}/tensorboard/${experiment_name}/${trial_name}"
    )
    assert f"a3po compare $TB/{TWINS[0]} $TB/{TWINS[1]} --out DIR" in text


# ----------------------------------------------------------------------------- DAPO-Math data


def test_docs_dapo_conversion_writes_what_boba_grpo_reads(tmp_path, monkeypatch):
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
    # examples/math/boba_grpo.py: load_dataset(path="json", split="train", data_files=path),
    # then data["prompt"] (a string) and the reward's `solutions` keyword (a list).
    loaded = real_load(path="json", split="train", data_files=str(out))
    assert loaded.num_rows == 3
    assert loaded[0] == {"prompt": "Solve problem 0.", "solutions": ["10"]}
    assert sorted(r["solutions"][0] for r in loaded) == ["10", "11", "12"]
