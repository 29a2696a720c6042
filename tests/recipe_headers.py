"""The recipes and what their headers say (plain helpers for the recipe tests, no fixtures)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# A3PO_TEST_RECIPES_DIR: run the recipe tests on other copies (e.g. `git show HEAD:recipes/...`).
RECIPES_DIR = Path(os.environ.get("A3PO_TEST_RECIPES_DIR") or ROOT / "recipes")
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
TWINS = ("recompute", "a3po")
PAIRS = sorted(
    {p.name.rsplit("_", 1)[0] for p in RECIPES if p.stem.endswith(tuple(f"_{t}" for t in TWINS))}
)
COMMAND_RE = re.compile(r"^#\s+(?P<label>(?:single-controller|SPMD)[^:]*):\s+(?P<cmd>python3 .+)$")
LAUNCHERS = {
    "areal.infra.launcher.local": "validate_config_for_launcher",
    "areal.infra.launcher.ray": "validate_config_for_distributed_launcher",
    "areal.infra.launcher.slurm": "validate_config_for_distributed_launcher",
}


GPU_RECIPES = [p for p in RECIPES if yaml.safe_load(p.read_text())["cluster"]["n_gpus_per_node"]]


def twin_methods(pair: str) -> tuple[str, str]:
    """(baseline, A-3PO twin) ``actor.prox_logp_method`` of a pair: the CPU twins run the embedded
    default's A-3PO arm (``a3po-step``, the recommended switch), the GPU pairs the paper's ``a3po``.
    """
    from areal_a3po.compare.arms import BASELINE_PROVIDER, TWIN_PROVIDER

    cpu = twin(pair, TWINS[1]) not in GPU_RECIPES
    return BASELINE_PROVIDER, TWIN_PROVIDER if cpu else "a3po"


def header(recipe: Path) -> list[str]:
    lines = recipe.read_text().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]


def twin(pair: str, which: str) -> Path:
    return RECIPES_DIR / f"{pair}_{which}.yaml"


def commands(recipe: Path) -> list[tuple[str, str]]:
    return [(m["label"], m["cmd"]) for line in header(recipe) if (m := COMMAND_RE.match(line))]
