"""What one arm runs: its recipe twin's header line, the overrides, the environment, the dirs.

Each arm runs the launch line in the header of ``recipes/cpu_<testbed>_<twin>.yaml``
(``single-controller, local``: ``python3 -m areal_a3po.testbeds.tiny.train --config $RECIPE
scheduler.type=local``) with AReaL overrides appended, as bash runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from areal_a3po import recipes, testbeds
from areal_a3po.compare.arms import Arm, arm_overrides
from areal_a3po.testbeds import pacing

LAUNCH_LABEL = "single-controller, local"
LAUNCH_LABELS = {
    "local": LAUNCH_LABEL,
    "ray": "single-controller, Ray",
}  # header line per scheduler

_HEADER_LINE_RE = re.compile(r"^#\s+(?P<label>[^:]+):\s+(?P<cmd>python3 .+)$")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # provider names have dashes


def recipe_path(twin: str, testbed: str = testbeds.DEFAULT_TESTBED) -> Path:
    """``cpu_<testbed>_<twin>.yaml`` (``twin``: recompute or a3po), shipped in the package.

    The same file from a wheel (``areal_a3po/_recipes/``) and a checkout (``recipes/``):
    :mod:`areal_a3po.recipes`; a missing one raises its one-line ``RecipeError``.
    """
    return recipes.recipe_path(f"{testbeds.get(testbed).recipe_prefix}_{twin}")


def header_command(recipe: Path, label: str = LAUNCH_LABEL) -> str:
    """The launch line labelled ``label`` in the recipe's header comment, as written."""
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = _HEADER_LINE_RE.match(line)
        if m and m["label"].strip() == label:
            return m["cmd"].strip()
    raise ValueError(f"{recipe}: no '# {label}: python3 ...' line in the header")


def launch_command(
    recipe: Path, overrides: Sequence[str] = (), label: str = LAUNCH_LABEL
) -> tuple[list[str], dict[str, str]]:
    """The header line, run as written by bash, with ``overrides`` appended; and its environment.

    ``$RECIPE`` is set to the recipe, and this interpreter's directory goes first on PATH, so the
    header's ``python3`` is the environment's interpreter (as in an activated venv).
    """
    line = header_command(recipe, label)
    if shlex.split(line)[0] != "python3":
        raise ValueError(f"{recipe}: the '{label}' line must start with python3: {line}")
    bindir = os.path.dirname(sys.executable)
    if not os.access(os.path.join(bindir, "python3"), os.X_OK):
        raise FileNotFoundError(f"no python3 beside {sys.executable}: cannot run the header line")
    cmd = ["bash", "-c", f'exec {line} "$@"', "a3po-arm", *overrides]
    env = {"RECIPE": str(recipe), "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    return cmd, env


def check_label(label: str) -> None:
    """An arm's label names its directory and AReaL's trial: raises ValueError if it cannot."""
    if not _LABEL_RE.fullmatch(label) or label == "model":
        raise ValueError(
            f"arm label {label!r}: letters, digits, '_', '.' and '-' only, not 'model'"
        )


@dataclass(frozen=True)
class Launch:
    """One arm's launch: the command, its own environment, where it writes, how long it may run."""

    cmd: list[str]
    cmd_env: dict[str, str]  # RECIPE, PATH and the pace: shown in launch_cmd.txt
    arm_dir: Path  # out_dir/<label>
    run_dir: Path  # its tensorboard dir (AReaL's stats_logger.tensorboard.path)
    limit_s: float

    @property
    def line(self) -> str:
        """The line kept in ``launch_cmd.txt``: the same line means the same run (resume)."""
        shown_env = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in self.cmd_env.items() if k != "PATH"
        )
        return f"{shown_env} {shlex.join(self.cmd)}\n"

    def process_env(self) -> dict[str, str]:
        """This environment with the launch's own: loopback on, SPMD mode and a stale pace off."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", AREAL_A3PO_LOOPBACK="1", **self.cmd_env)
        env.pop("AREAL_SPMD_MODE", None)
        if pacing.ENV not in self.cmd_env:
            env.pop(pacing.ENV, None)
        return env


def plan_launch(
    arm: Arm, out: Path, steps: int, extra_overrides: Sequence[str], scheduler: str, pace: str,
    testbed: str,
) -> Launch:  # fmt: skip
    """Build the arm's model (once per out dir) and put its launch together."""
    bed = testbeds.get(testbed)
    model_dir = bed.build_model(str(out / "model"), arm.seed)
    arm_dir = out / arm.label
    fileroot = arm_dir / "areal"
    twin, overrides = arm_overrides(
        arm.provider, steps, fileroot, arm.seed, arm.staleness, model_dir, arm.label
    )
    recipe = recipe_path(twin, testbed)
    cmd, cmd_env = launch_command(recipe, [*overrides, *extra_overrides], LAUNCH_LABELS[scheduler])
    if pace != pacing.FREE:
        cmd_env[pacing.ENV] = pace
    run_dir = fileroot / "tensorboard" / _experiment_name(recipe) / arm.label
    return Launch(cmd, cmd_env, arm_dir, run_dir, bed.arm_limit_s(steps))


def _experiment_name(recipe: Path) -> str:
    import yaml

    return str(yaml.safe_load(recipe.read_text())["experiment_name"])
