"""What AReaL would submit for a recipe's launch line: driven through AReaL's own code on CPU.

Each function runs AReaL's real code path from the loaded config to the point where a cluster
would take over, and records what AReaL hands over there:

* single-controller (``scheduler.type`` slurm / ray): AReaL's ``PPOTrainer._init_scheduler`` builds
  the real scheduler; then the trainer's own steps create each role's workers in the trainer's
  order: the data service (``DataController``, only if the entry's datasets are AReaL's
  ``RDataset``: AReaL's own start-up decision), the actor (``TrainController.initialize``) and the
  rollout servers (``PPOTrainer._init_rollout``). Each reaches ``scheduler.create_workers`` with the
  job AReaL computed. Slurm: the sbatch script AReaL wrote is recorded where ``sbatch`` would run.
  Ray: the placement-group bundles AReaL asked for are recorded where Ray would place them.
* SPMD (``areal.infra.launcher.slurm`` / ``.ray``): the launcher's own ``slurm_main`` / ``ray_main``
  with ``sys.argv`` as the line gives it; every sbatch script / placement group it submits.

Stand-ins, all for what cannot run on a CPU machine without a cluster, and nothing else:
``sbatch``/``squeue`` (Slurm), ``ray.util.placement_group``/``ray.get``/task submission (a Ray
cluster), Ray's device detection (``ray_resource_type`` -> "GPU": there is no GPU here),
``SGLangConfig.build_args`` (the SGLang package is not installed on CPU; its arguments go to the
servers only, after the workers exist), the launchers' wait for SGLang server addresses, the hub
download of GSM8K and the DAPO-Math JSONL file (no network / data here).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

GIB = 1024**3


class Submitted(Exception):
    """Raised where a cluster would take over: AReaL got as far as submitting this role."""


@dataclass
class Job:
    role: str
    script: str = ""  # Slurm: the sbatch script AReaL wrote
    bundles: list[dict] = field(default_factory=list)  # Ray: the placement-group bundles
    error: str = ""  # AReaL refused the job before submitting it (the message)


def entry_datasets(entry: Any, cfg: Any, mp: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The entry script's ``build_datasets`` in single-controller mode (hub / file stand-ins)."""
    import areal.dataset as areal_dataset

    from areal_a3po.entry import math_task

    mp.delenv("AREAL_SPMD_MODE", raising=False)
    mp.setattr(areal_dataset, "_get_custom_dataset", lambda **kw: ["row"])  # hub download
    mp.setattr(math_task, "load_jsonl_dataset", lambda *a, **kw: ["row"])  # the JSONL file
    return entry.build_datasets(cfg, None)


def single_controller_jobs(entry: Any, cfg: Any) -> dict[str, Job]:
    """role -> what AReaL submitted for it, for ``cfg.scheduler.type`` slurm or ray."""
    from areal.api.alloc_mode import ModelAllocation
    from areal.api.cli_args import SGLangConfig
    from areal.engine import FSDPPPOActor
    from areal.infra.data_service import DataController
    from areal.infra.data_service.controller.config import DataServiceConfig
    from areal.infra.data_service.rdataset import RDataset
    from areal.trainer import rl_trainer

    jobs: dict[str, Job] = {}
    with pytest.MonkeyPatch.context() as mp:
        _stand_in_cluster(cfg.scheduler.type, mp, jobs)
        mp.setattr(SGLangConfig, "build_args", staticmethod(lambda **kw: {}))  # no SGLang on CPU
        train, _ = entry_datasets(entry, cfg, mp)
        scheduler = rl_trainer.PPOTrainer._init_scheduler(SimpleNamespace(config=cfg))
        trainer = SimpleNamespace(
            config=cfg,
            scheduler=scheduler,
            actor_alloc=ModelAllocation.from_str(cfg.actor.backend, name="actor"),
            rollout_alloc=ModelAllocation.from_str(cfg.rollout.backend, name="rollout"),
        )

        def data():  # PPOTrainer.__init__: the data service starts iff the dataset is an RDataset
            if isinstance(train, RDataset):
                ds_cfg = DataServiceConfig.from_dataset_config(cfg.train_dataset, seed=cfg.seed)
                controller = DataController(ds_cfg, scheduler)
                controller.initialize(role="data", num_dataset_workers=ds_cfg.num_workers)
                controller._ensure_initialized()

        steps = {
            "data": data,
            "actor": lambda: FSDPPPOActor.as_controller(cfg.actor, scheduler).initialize(
                role="actor", ft_spec=None
            ),
            "rollout": lambda: rl_trainer.PPOTrainer._init_rollout(trainer, cfg.rollout),
        }
        for role, step in steps.items():
            try:
                step()
            except Submitted:
                continue
            except (ValueError, RuntimeError) as exc:  # AReaL refused before submitting
                jobs.setdefault(role, Job(role)).error = f"{type(exc).__name__}: {exc}"
    return jobs


def _stand_in_cluster(kind: str, mp: pytest.MonkeyPatch, jobs: dict[str, Job]) -> None:
    if kind == "slurm":
        from areal.infra.scheduler import slurm as slurm_scheduler

        def sbatch(cmd, *args, **kwargs):  # Slurm stand-in: record the script, stop there
            assert cmd[0] == "sbatch", cmd
            role = Path(cmd[1]).stem
            jobs[_role(role)] = Job(_role(role), script=Path(cmd[1]).read_text())
            raise Submitted(role)

        fake = SimpleNamespace(
            check_output=sbatch, CalledProcessError=subprocess.CalledProcessError
        )
        mp.setattr(slurm_scheduler, "subprocess", fake)
    elif kind == "ray":
        from areal.infra.scheduler import ray as ray_scheduler
        from areal.infra.utils import ray_placement_group as rpg

        def place(role, bundles, timeout):  # Ray stand-in: record each group's bundles
            jobs.setdefault(_role(role), Job(_role(role))).bundles.extend(bundles)
            return SimpleNamespace(role=role)

        def placed(group, placement_group_bundle_index):  # all groups asked for: stop there
            raise Submitted(group.role)

        mp.setattr(rpg, "_create_placement_group", place)
        mp.setattr(ray_scheduler, "get_placement_group_master_ip_and_port", placed)
        mp.setattr(rpg, "ray_resource_type", lambda: "GPU")  # the nodes have GPUs; this one not
    else:
        raise ValueError(f"no cluster stand-in for scheduler.type={kind!r}")


def _role(name: str) -> str:
    """AReaL's role names: ``data-data`` (the data service's guard), ``actor``, ``rollout``."""
    return "data" if name.startswith("data") else name


def spmd_jobs(module: str, script: str, args: list[str]) -> dict[str, Job]:
    """job name -> what AReaL's SPMD launcher ``module`` submitted (``llm_server``, ``trainer``)."""
    import importlib

    from areal.api.cli_args import parse_cli_args

    launcher = importlib.import_module(module)
    jobs: dict[str, Job] = {}
    config, _ = parse_cli_args([script, *args])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", [f"{module}.py", script, *args])
        servers = ["10.0.0.1:30000"] * 64  # the SGLang servers' addresses (none start here)
        mp.setattr(launcher, "wait_llm_server_addrs", lambda *a, **kw: servers[: a[2]])
        if module.endswith(".slurm"):
            n = iter(range(100, 200))

            def sbatch(cmd, *a, **kw):  # Slurm stand-in: record the script, accept it
                name = Path(cmd[1]).stem
                jobs[name] = Job(name, script=Path(cmd[1]).read_text())
                return f"Submitted batch job {next(n)}".encode()

            fake = SimpleNamespace(check_output=sbatch, CalledProcessError=Exception)
            mp.setattr(launcher, "subprocess", fake)
            mp.setattr(launcher.SlurmLauncher, "_update_all", lambda self: None)  # squeue
            mp.setattr(launcher.SlurmLauncher, "wait", lambda self, **kw: None)
            launcher.slurm_main(config)
        else:
            groups: list[list[dict]] = []

            def placement_group(bundles, strategy):  # Ray stand-in: record the bundles
                groups.append(list(bundles))
                return SimpleNamespace(ready=lambda: None)

            fake_ray = SimpleNamespace(
                util=SimpleNamespace(placement_group=placement_group),
                get=lambda *a, **kw: None,
                exceptions=launcher.ray.exceptions,
            )
            mp.setattr(launcher, "ray", fake_ray)
            mp.setattr(launcher, "RAY_LAUNCHER", None)
            mp.setattr(
                launcher, "get_placement_group_master_ip_and_port", lambda *a, **k: ("10.0.0.1", 1)
            )
            mp.setattr(launcher.RayLauncher, "submit", lambda self, job_name, **kw: job_name)
            mp.setattr(launcher.RayLauncher, "wait", lambda self, **kw: None)
            launcher.ray_main(config)
            for name, bundles in zip(("llm_server", "trainer"), groups, strict=True):
                jobs[name] = Job(name, bundles=bundles)
    return jobs


# ----------------------------------------------------------------------------- reading jobs


def sbatch_option(script: str, name: str) -> str:
    m = re.search(rf"^#SBATCH --{name}=(\S+)$", script, re.MULTILINE)
    assert m, (name, script[:800])
    return m.group(1)


def mem_mib(value: str) -> int:
    assert value.endswith("M"), value
    return int(value[:-1])


def srun_command(script: str) -> str:
    """The single-controller sbatch script's srun command (its ``bash -c`` spans lines)."""
    return script[script.index("srun --") :]
