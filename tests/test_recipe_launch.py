"""Every launch line in every GPU recipe's header, run on CPU as far as AReaL allows without a GPU.

For each line the header's shell variables are substituted ($RECIPE, $ENTRY/$SIF_ENTRY = the
entry script's path, $SHARED = a temporary directory standing in for shared storage) and then:

* single-controller (``python3 -m areal_a3po.entry.NAME ...``): the entry module builds its config
  with the line's overrides (AReaL's ``load_expr_config``); AReaL's ``PPOTrainer._init_scheduler``
  picks the scheduler of the label (Slurm: the real ``SlurmScheduler``, whose sbatch script for
  the actor workers is generated and read; local and Ray: recording stand-ins, as their workers
  need GPUs / a Ray cluster); AReaL's ``_requires_proxy_workflow`` says the entry's workflow needs
  no proxy workers (those raise NotImplementedError in SPMD mode and under Ray).
* SPMD (``python3 -m areal.infra.launcher.X $ENTRY ...``): AReaL's ``parse_cli_args`` and the
  launcher's own config validation, the legacy allocation, the entry path as the launcher uses it
  (torchrun: a ``.py`` path; Ray: AReaL's ``run_func`` loads the file and calls a function in it),
  and for Slurm the container spec the launcher reads.
* Multi-node lines keep AReaL's files under $SHARED, and the compare line's TB matches each line.

What stays unverifiable without GPUs (and a cluster) is listed in docs/recipes.md.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.recipe_headers import GPU_RECIPES, LAUNCHERS, commands, header

LABELS = [
    "single-controller, local",
    "single-controller, Ray",
    "single-controller, Slurm",
    "SPMD, local",
    "SPMD, Ray",
    "SPMD, Slurm",
]
VAR_RE = re.compile(r"^#\s+(?P<name>[A-Z_]+)=(?P<value>\$\([^)]*\)|\S+)")


def header_vars(recipe: Path) -> dict[str, str]:
    """``NAME=value`` definitions of the header (a ``$(...)`` or up to the first space)."""
    out = {}
    for line in header(recipe):
        if m := VAR_RE.match(line):
            out[m["name"]] = m["value"]
    return out


def entry_name(recipe: Path) -> str:
    found = {
        m.group(1)
        for _, cmd in commands(recipe)
        for m in [re.search(r"-m areal_a3po\.entry\.(\w+) ", cmd)]
        if m
    }
    assert len(found) == 1, found
    return found.pop()


def _cases():
    return [
        pytest.param(recipe, label, cmd, id=f"{recipe.stem}-{label.split('(')[0].strip()}")
        for recipe in GPU_RECIPES
        for label, cmd in commands(recipe)
    ]


@pytest.fixture()
def shared(tmp_path):
    root = tmp_path / "shared"
    for sub in ("experiments", "name_resolve", "data"):
        (root / sub).mkdir(parents=True)
    return root


def substitute(recipe: Path, cmd: str, shared: Path) -> list[str]:
    from areal_a3po.entry import entry_path

    path = entry_path(entry_name(recipe))
    values = {"RECIPE": str(recipe), "SHARED": str(shared), "ENTRY": path, "SIF_ENTRY": path}
    text = re.sub(r"\$([A-Z_]+)", lambda m: values[m.group(1)], cmd)
    return shlex.split(text)


# ----------------------------------------------------------------------------- header shape


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_header_launch_lines_cover_every_mode_with_the_packaged_entry(recipe):
    import yaml

    from areal_a3po.entry import ENTRIES

    labels = [label.split("(")[0].strip() for label, _ in commands(recipe)]
    assert labels == LABELS
    name = entry_name(recipe)
    assert name in ENTRIES
    text = "\n".join(header(recipe))
    assert f"Entry script: areal_a3po/entry/{name}.py" in text
    assert "examples/" not in " ".join(cmd for _, cmd in commands(recipe))  # no AReaL checkout
    defined = header_vars(recipe)
    assert defined["ENTRY"] == f"$(python3 -m areal_a3po.entry {name})"
    assert defined["SIF_ENTRY"] == f"$(apptainer exec $IMAGE python3 -m areal_a3po.entry {name})"
    raw = yaml.safe_load(recipe.read_text())
    spec = raw["actor"]["scheduling_spec"][0]
    assert defined["IMAGE"] == spec["image"] and spec["image"].startswith("/storage/")
    assert defined["SHARED"].startswith("/storage/")  # AReaL binds only /storage into Slurm workers
    assert "apptainer exec $IMAGE a3po info" in text


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_header_compare_tb_matches_every_launch_line(recipe):
    import yaml

    raw = yaml.safe_load(recipe.read_text())
    text = "\n".join(header(recipe))
    tbs = set(re.findall(r"^#\s+TB=(\S+)", text, re.MULTILINE))
    for label, cmd in commands(recipe):
        fileroot = raw["cluster"]["fileroot"]
        for token in shlex.split(cmd):
            if token.startswith("cluster.fileroot="):
                fileroot = token.split("=", 1)[1]
        assert f"{fileroot}/tensorboard/{raw['experiment_name']}" in tbs, (label, tbs)
    assert raw["stats_logger"]["tensorboard"]["path"] == (
        "${cluster.fileroot}/tensorboard/${experiment_name}/${trial_name}"
    )
    assert "a3po compare $TB/recompute $TB/a3po --out DIR" in text


# ----------------------------------------------------------------------------- each launch line


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases())
def test_header_launch_line_builds_with_areal(recipe, label, cmd, shared, monkeypatch):
    from areal.api.alloc_mode import ModelAllocation
    from areal.trainer import rl_trainer

    from areal_a3po.entry import _areal_api, entry_path

    tokens = substitute(recipe, cmd, shared)
    assert tokens[:2] == ["python3", "-m"]
    module = tokens[2]
    multi_node = "local" not in label
    name = entry_name(recipe)
    entry = importlib.import_module(f"areal_a3po.entry.{name}")

    if module.startswith("areal_a3po.entry."):
        assert label.startswith("single-controller") and module == entry.__name__
        args = tokens[3:]
    else:
        assert label.startswith("SPMD") and module in LAUNCHERS
        assert importlib.util.find_spec(module) is not None
        script, args = tokens[3], tokens[4:]
        # AReaL's parse_cli_args drops argv[0] only if it ends with .py; torchrun runs it as a file.
        assert script == entry_path(name) and script.endswith(".py")
    assert args[:2] == ["--config", str(recipe)]

    # What the entry script does first, in every mode: its config, with the line's overrides.
    cfg = entry.load_config(args)
    assert cfg.actor.prox_logp_method == recipe.stem.rsplit("_", 1)[1]
    rollout = ModelAllocation.from_str(cfg.rollout.backend, name="rollout")
    actor = ModelAllocation.from_str(cfg.actor.backend, name="actor")
    n_gpus = cfg.cluster.n_nodes * cfg.cluster.n_gpus_per_node
    assert rollout.world_size + actor.world_size == n_gpus
    if multi_node:
        assert cfg.cluster.fileroot == f"{shared}/experiments"
        assert cfg.cluster.name_resolve.nfs_record_root == f"{shared}/name_resolve"
    else:
        assert cfg.cluster.fileroot.startswith("/tmp/")
    if name == "math_grpo" and multi_node:
        assert cfg.train_dataset.path.startswith(f"{shared}/")

    # The workflow runs without proxy workers (AReaL raises for those in SPMD and under Ray).
    _areal_api.check_rollout_workflow()
    assert rl_trainer.PPOTrainer._requires_proxy_workflow(None, _areal_api.RLVR_WORKFLOW) is False

    if label.startswith("single-controller"):
        _check_single_controller(label, cfg, shared, monkeypatch)
    else:
        _check_spmd(module, script, args, cfg, rollout, actor, shared)


def _check_single_controller(label, cfg, shared, monkeypatch):
    from areal.trainer import rl_trainer

    kind = label.split(",")[1].strip().lower()
    assert cfg.scheduler.type == kind
    made = []

    class Recorder:  # stand-in: local workers need GPUs, Ray workers a Ray cluster
        def __init__(self, exp_config):
            made.append((type(self).__name__, exp_config))

    if kind != "slurm":
        for cls in ("LocalScheduler", "RayScheduler"):
            monkeypatch.setattr(rl_trainer, cls, type(cls, (Recorder,), {}))
    scheduler = rl_trainer.PPOTrainer._init_scheduler(SimpleNamespace(config=cfg))
    if kind != "slurm":
        assert made == [({"local": "LocalScheduler", "ray": "RayScheduler"}[kind], cfg)]
        return
    # The real SlurmScheduler (shared paths must exist) and the sbatch script of the actor workers.
    from areal.infra.scheduler.slurm import SlurmScheduler

    assert isinstance(scheduler, SlurmScheduler)
    spec = cfg.actor.scheduling_spec[0]
    script = scheduler._generate_sbatch_script(
        role="actor",
        replicas=4,
        nodes=1,
        total_gpus=cfg.cluster.n_gpus_per_node,
        cpus_per_task=spec.cpu,
        mem_per_task=spec.mem * 1024,
        schedulings=cfg.actor.scheduling_spec,
        nodelist=None,
        exclude=None,
    )
    srun = script[script.index("srun --") :]  # the srun command (its bash -c spans lines)
    assert "singularity exec" in srun and f" {spec.image} " in srun, srun
    assert "--bind /storage:/storage" in srun  # AReaL's fixed bind: $SHARED must be under /storage
    assert "python3 -m areal.infra.rpc.rpc_server" in srun
    assert f"--nfs-record-root {shared}/name_resolve" in srun
    assert f"--fileroot {shared}/experiments" in srun
    # Every other worker the controller may start under Slurm uses the same image: rollout
    # servers, and the data-service workers AReaL starts for its own dataset loader.
    assert cfg.rollout.scheduling_spec[0].image == spec.image
    for ds in (cfg.train_dataset, cfg.valid_dataset):
        if ds is not None and ds.scheduling_spec is not None and ds.path == "openai/gsm8k":
            assert ds.scheduling_spec.image == spec.image, ds


def _check_spmd(module, script, args, cfg, rollout, actor, shared):
    from areal.api.alloc_mode import _AllocationMode
    from areal.api.cli_args import ClusterSpecConfig, parse_cli_args, to_structured_cfg
    from areal.infra.utils import launcher as launcher_utils

    # What areal.infra.launcher.{local,ray,slurm}.main does before launching anything.
    assert cfg.scheduler.type is None
    config, _ = parse_cli_args([script, *args])
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
    if module == "areal.infra.launcher.ray":
        # AReaL's Ray launcher loads the entry file by path and calls a function of it with the
        # argument list (``main(argv)`` in a real run; ``load_config`` here, the same first step).
        from areal.infra.launcher.ray import DEFAULT_MAIN_FUNC_NAME, run_func

        assert DEFAULT_MAIN_FUNC_NAME == "main"
        loaded = run_func(script, "load_config", list(args))
        assert loaded.cluster.fileroot == cfg.cluster.fileroot
        module_name = script.replace("/", "_").replace(".", "_")
        assert callable(getattr(sys.modules[module_name], DEFAULT_MAIN_FUNC_NAME))
    if module == "areal.infra.launcher.slurm":
        from areal.infra.utils.launcher import get_scheduling_spec

        spec = get_scheduling_spec(config.actor)
        assert spec.container_type == "apptainer" and spec.mount == "/storage:/storage"
        assert spec.image == cfg.actor.scheduling_spec[0].image
        # The bare-metal form documented in the header parses to container_type none.
        bare, _ = parse_cli_args([script, *args, "actor.scheduling_spec.0.container_type=none"])
        assert get_scheduling_spec(bare.actor).container_type == "none"
