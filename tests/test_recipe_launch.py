"""Every launch line in every GPU recipe's header, run on CPU as far as AReaL's code goes.

For each line the header's shell variables are substituted ($RECIPE, $ENTRY/$SIF_ENTRY = the
entry script's path, $SHARED = a temporary directory standing in for shared storage) and then:

* every line: the entry module builds its config with the line's overrides (AReaL's
  ``load_expr_config``); AReaL's ``_requires_proxy_workflow`` says the entry's workflow needs no
  proxy workers (those raise NotImplementedError in SPMD mode and under Ray).
* single-controller, local: ``PPOTrainer._init_scheduler`` picks ``LocalScheduler`` (a recording
  stand-in: its workers need GPUs).
* single-controller, Ray / Slurm: tests/recipe_jobs.py drives AReaL's own trainer steps with the
  real ``RayScheduler`` / ``SlurmScheduler`` up to the point where the cluster takes over, so the
  jobs are the ones AReaL computes from the line: the data-service decision, whole-node
  allocation and the sbatch scripts (Slurm), the placement-group bundles (Ray).
* SPMD: AReaL's ``parse_cli_args`` and the launcher's own validation, the legacy allocation, the
  entry path as the launcher uses it (torchrun: a ``.py`` path; Ray: AReaL's ``run_func`` loads
  the file and calls a function in it); Ray and Slurm: the launcher's own ``ray_main`` /
  ``slurm_main`` with the sbatch scripts / placement groups it submits recorded.
* Multi-node lines keep AReaL's files, the model and the hub cache under $SHARED, and the compare
  line's TB matches each line.

Blockers these checks catch (issue 21; each fails on the recipes before that issue): whole-node
Slurm allocation (test_single_controller_slurm_line_allocates_whole_nodes), AReaL's data service
under Ray (test_single_controller_ray_line_starts_no_data_service) and under Slurm
(test_single_controller_slurm_line_runs_only_the_image_interpreter). What stays unverifiable
without GPUs and a cluster is listed in docs/recipes.md ("What was verified where").
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import recipe_jobs
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


# Host memory a line may ask for per GPU (GiB). AReaL's default is 32 (256 GiB for an 8-GPU node,
# the SPMD Slurm launcher adds 10 GiB per node); 40 keeps every node request within 330 GiB,
# which a 512 GB node can give (docs/recipes.md).
MAX_HOST_GIB_PER_GPU = 40


def _cases(*kinds: str):
    return [
        pytest.param(recipe, label, cmd, id=f"{recipe.stem}-{label.split('(')[0].strip()}")
        for recipe in GPU_RECIPES
        for label, cmd in commands(recipe)
        if not kinds or label.split("(")[0].strip() in kinds
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
    order = list(defined)  # each variable is defined before a later one uses it
    for var, value in defined.items():
        for used in re.findall(r"\$([A-Z_]+)", value):
            assert used in order[: order.index(var)], f"{var} uses ${used} before it is defined"
    raw = yaml.safe_load(recipe.read_text())
    spec = raw["actor"]["scheduling_spec"][0]
    assert defined["IMAGE"] == spec["image"] and spec["image"].startswith("/storage/")
    assert defined["SHARED"].startswith("/storage/")  # AReaL binds only /storage into Slurm workers
    assert defined["RECIPE"].startswith("$SHARED/")  # every node reads it
    assert "apptainer exec $IMAGE a3po info" in text
    assert "export HF_HOME=$SHARED/hf" in text  # the hub cache, not the containers' tmpfs
    assert "ray start --head" in text and "ray start --address=" in text
    assert "a3po recipe NAME --out $SHARED/" in text
    assert "flash-attn" in text


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


def _parse(recipe, cmd, shared):
    """(module, script, args, entry module, cfg) of a launch line, as the line runs it."""
    from areal_a3po.entry import entry_path

    tokens = substitute(recipe, cmd, shared)
    assert tokens[:2] == ["python3", "-m"]
    module, name = tokens[2], entry_name(recipe)
    entry = importlib.import_module(f"areal_a3po.entry.{name}")
    if module.startswith("areal_a3po.entry."):
        assert module == entry.__name__
        script, args = None, tokens[3:]
    else:
        assert module in LAUNCHERS and importlib.util.find_spec(module) is not None
        script, args = tokens[3], tokens[4:]
        # AReaL's parse_cli_args drops argv[0] only if it ends with .py; torchrun runs it as a file.
        assert script == entry_path(name) and script.endswith(".py")
    assert args[:2] == ["--config", str(recipe)]
    return module, script, args, entry, entry.load_config(args)


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases())
def test_header_launch_line_builds_with_areal(recipe, label, cmd, shared, monkeypatch):
    from areal.api.alloc_mode import ModelAllocation
    from areal.trainer import rl_trainer

    from areal_a3po.entry import _areal_api

    module, script, args, entry, cfg = _parse(recipe, cmd, shared)
    assert label.startswith("SPMD") == (script is not None)
    multi_node = "local" not in label
    # What the entry script does first, in every mode: its config, with the line's overrides.
    assert cfg.actor.prox_logp_method == recipe.stem.rsplit("_", 1)[1]
    rollout = ModelAllocation.from_str(cfg.rollout.backend, name="rollout")
    actor = ModelAllocation.from_str(cfg.actor.backend, name="actor")
    n_gpus = cfg.cluster.n_nodes * cfg.cluster.n_gpus_per_node
    assert rollout.world_size + actor.world_size == n_gpus
    if multi_node:  # AReaL's files, the model and the hub cache on shared storage
        assert cfg.cluster.fileroot == f"{shared}/experiments"
        assert cfg.cluster.name_resolve.nfs_record_root == f"{shared}/name_resolve"
        assert cfg.actor.path.startswith(f"{shared}/models/")
        assert cfg.tokenizer_path == cfg.actor.path
        for spec in (*cfg.actor.scheduling_spec, *cfg.rollout.scheduling_spec):
            assert spec.env_vars["HF_HOME"] == f"{shared}/hf"
    else:
        assert cfg.cluster.fileroot.startswith("/tmp/")
    if entry.__name__.endswith("math_grpo") and multi_node:
        assert cfg.train_dataset.path.startswith(f"{shared}/")

    # The workflow runs without proxy workers (AReaL raises for those in SPMD and under Ray).
    _areal_api.check_rollout_workflow()
    assert rl_trainer.PPOTrainer._requires_proxy_workflow(None, _areal_api.RLVR_WORKFLOW) is False

    if script is None:
        kind = label.split(",")[1].split("(")[0].strip().lower()
        assert cfg.scheduler.type == kind
        if kind == "local":
            _check_local_scheduler(entry, cfg, monkeypatch)
    else:
        _check_spmd(module, script, args, cfg, rollout, actor)


def _check_local_scheduler(entry, cfg, monkeypatch):
    from areal.infra.data_service.rdataset import RDataset
    from areal.trainer import rl_trainer

    made = []

    class Recorder:  # stand-in: local workers need GPUs
        def __init__(self, exp_config):
            made.append((type(self).__name__, exp_config))

    monkeypatch.setattr(rl_trainer, "LocalScheduler", type("LocalScheduler", (Recorder,), {}))
    rl_trainer.PPOTrainer._init_scheduler(SimpleNamespace(config=cfg))
    assert made == [("LocalScheduler", cfg)]
    train, valid = recipe_jobs.entry_datasets(entry, cfg, monkeypatch)
    assert not isinstance(train, RDataset) and not isinstance(valid, RDataset)


def _check_spmd(module, script, args, cfg, rollout, actor):
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


# ----------------------------------------------------------------------------- submitted jobs


@pytest.fixture(scope="module")
def line_jobs(tmp_path_factory):
    """(recipe, label) -> (cfg, shared, jobs AReaL submits for the line), computed once per line."""
    cache: dict = {}

    def get(recipe, label, cmd):
        if (recipe, label) not in cache:
            shared = tmp_path_factory.mktemp("shared")
            for sub in ("experiments", "name_resolve", "data"):
                (shared / sub).mkdir()
            module, script, args, entry, cfg = _parse(recipe, cmd, shared)
            if script is None:
                jobs = recipe_jobs.single_controller_jobs(entry, cfg)
            else:
                jobs = recipe_jobs.spmd_jobs(module, script, args)
            cache[recipe, label] = (cfg, shared, jobs)
        return cache[recipe, label]

    return get


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases("single-controller, Slurm"))
def test_single_controller_slurm_line_allocates_whole_nodes(recipe, label, cmd, line_jobs):
    """Blocker 1: AReaL's SlurmScheduler refuses a role whose GPUs are not whole nodes."""
    cfg, shared, jobs = line_jobs(recipe, label, cmd)
    per_node = cfg.cluster.n_gpus_per_node
    for role in ("actor", "rollout"):
        assert role in jobs and not jobs[role].error, (role, jobs.get(role))
        script = jobs[role].script
        assert recipe_jobs.sbatch_option(script, "gres") == f"gpu:{per_node}"  # whole nodes
        assert int(recipe_jobs.sbatch_option(script, "ntasks-per-node")) == per_node
        srun = recipe_jobs.srun_command(script)
        spec = cfg.actor.scheduling_spec[0]
        assert "singularity exec" in srun and f" {spec.image} " in srun, srun
        assert "--bind /storage:/storage" in srun  # AReaL's fixed bind: $SHARED under /storage
        assert f"--env HF_HOME={shared}/hf " in srun
        assert f"--nfs-record-root {shared}/name_resolve" in srun
        assert f"--fileroot {shared}/experiments" in srun
    nodes = [int(recipe_jobs.sbatch_option(jobs[r].script, "nodes")) for r in ("actor", "rollout")]
    assert sum(nodes) == cfg.cluster.n_nodes  # the nodes the line names, each one whole


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases("single-controller, Slurm"))
def test_single_controller_slurm_line_runs_only_the_image_interpreter(
    recipe, label, cmd, line_jobs
):
    """Blocker 4: AReaL's data-service guard runs the controller's sys.executable in the image."""
    cfg, _, jobs = line_jobs(recipe, label, cmd)
    assert "data" not in jobs, "AReaL would start its data service (guard: controller's python)"
    assert set(jobs) == {"actor", "rollout"}
    for job in jobs.values():
        assert not job.error, job
        srun = recipe_jobs.srun_command(job.script)
        assert sys.executable not in srun, srun
        # The worker command is the recipe's, run by the image's python3.
        assert (
            "bash -c '" in srun and f"{cfg.actor.scheduling_spec[0].cmd} --experiment-name" in srun
        )


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases("single-controller, Ray"))
def test_single_controller_ray_line_starts_no_data_service(recipe, label, cmd, line_jobs):
    """Blocker 3: AReaL's data service sends HTTP to worker_ports[0], which RayScheduler sets to 0."""
    cfg, _, jobs = line_jobs(recipe, label, cmd)
    assert "data" not in jobs, "AReaL would start its data service under Ray"
    assert set(jobs) == {"actor", "rollout"}
    gpus = [b.get("GPU", 0) for role in ("actor", "rollout") for b in jobs[role].bundles]
    assert sum(gpus) == cfg.cluster.n_nodes * cfg.cluster.n_gpus_per_node and set(gpus) == {1.0}


@pytest.mark.parametrize(("recipe", "label", "cmd"), _cases("SPMD, Ray", "SPMD, Slurm"))
def test_spmd_line_jobs_take_whole_nodes_with_the_shared_paths(recipe, label, cmd, line_jobs):
    """AReaL's SPMD launcher submits an SGLang job and a trainer job, whole nodes, all the line's."""
    cfg, shared, jobs = line_jobs(recipe, label, cmd)
    per_node = cfg.cluster.n_gpus_per_node
    assert set(jobs) == {"llm_server", "trainer"}, jobs
    nodes = 0
    for job in jobs.values():
        if job.script:  # Slurm: one sbatch script per job, apptainer with the recipe's image
            n = recipe_jobs.sbatch_option(job.script, "nodes").split("-")[0]
            nodes += int(n)
            assert recipe_jobs.sbatch_option(job.script, "gres") == f"gpu:{per_node}"
            assert f" {cfg.actor.scheduling_spec[0].image} " in job.script
            assert "--bind /storage:/storage" in job.script
            assert f"--env HF_HOME={shared}/hf " in job.script
        else:  # Ray: one bundle per node
            assert all(b["GPU"] == per_node for b in job.bundles), job.bundles
            nodes += len(job.bundles)
    assert nodes == cfg.cluster.n_nodes


@pytest.mark.parametrize(
    ("recipe", "label", "cmd"),
    _cases("single-controller, Ray", "single-controller, Slurm", "SPMD, Ray", "SPMD, Slurm"),
)
def test_launch_line_host_memory_fits_its_nodes(recipe, label, cmd, line_jobs):
    """Per node, the host memory AReaL asks Slurm / Ray for stays within MAX_HOST_GIB_PER_GPU."""
    cfg, _, jobs = line_jobs(recipe, label, cmd)
    per_node = cfg.cluster.n_gpus_per_node
    limit_gib = MAX_HOST_GIB_PER_GPU * per_node + 10  # per node; the SPMD Slurm launcher adds 10
    assert jobs, jobs
    for job in jobs.values():
        assert not job.error, job
        if job.script:
            mib = recipe_jobs.mem_mib(recipe_jobs.sbatch_option(job.script, "mem"))
            assert mib <= limit_gib * 1024, (job.role, mib)
        else:  # Ray: a bundle is one worker's (single-controller) or one node's (SPMD) share
            for bundle in job.bundles:
                gpus = max(bundle.get("GPU", 0), 1)
                gib = bundle["memory"] / recipe_jobs.GIB
                assert gib <= MAX_HOST_GIB_PER_GPU * gpus + 10, (job.role, bundle)


# ----------------------------------------------------------------------------- docs


def test_docs_verified_where_table_rows_are_the_launch_lines_and_their_tests():
    """docs/recipes.md's "What was verified where": one row per launch line, citing tests that
    run on that line (test_docs.py checks that the cited tests exist)."""
    from tests.recipe_headers import ROOT

    text = (ROOT / "docs" / "recipes.md").read_text()
    section = text.split("## What was verified where", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    labels = [row[0].lstrip("| ").split("(")[0].strip() for row in rows]
    assert labels == LABELS
    module = sys.modules[__name__]
    for label, row in zip(labels, rows, strict=True):
        cited = re.findall(r"test_recipe_launch\.py::(test_\w+)", row[2])
        assert cited, row
        for name in cited:
            (mark,) = [m for m in getattr(module, name).pytestmark if m.name == "parametrize"]
            covered = {p.values[1].split("(")[0].strip() for p in mark.args[1]}
            assert label in covered, (label, name, covered)
