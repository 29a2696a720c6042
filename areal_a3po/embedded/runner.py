"""Runner of ``a3po compare``'s embedded default: AReaL's own launcher, once per recipe twin.

Each arm runs the launch line in the header of ``recipes/cpu_tiny_<twin>.yaml``
(``single-controller, local``: ``python3 -m areal_a3po.embedded.train --config $RECIPE
scheduler.type=local``) with AReaL overrides appended. AReaL's ``LocalScheduler`` then starts the
actor and rollout workers, the rollout worker starts the vLLM CPU server (through the coupling in
:mod:`areal_a3po.coupling.vllm`), and AReaL's ``StatsLogger`` writes tensorboard logs.

This module adds only what AReaL does not do: the tiny model built once for all arms, an overall
time bound per arm, a progress bar fed from the arm's tensorboard event files, and stopping the
controller's whole process group (AReaL's workers and servers are in it) on failure or Ctrl-C.

Layout of ``out_dir``::

    model/tiny-seed<S>/     tiny model + tokenizer (shared by the arms, read-only)
    <label>/launch_cmd.txt  the command run (the header line plus overrides)
    <label>/controller.log  the AReaL controller's output (workers' logs: AReaL's log dir)
    <label>/summary.json    this runner's timings
    <label>/areal/          the arm's cluster.fileroot; its tensorboard dir is the run dir

Rerunning the same study into the same ``out_dir`` resumes it: an arm whose directory holds the
same launch command and all its steps in tensorboard is skipped; an arm with the same command but
fewer steps (interrupted) is relaunched in place, so AReaL's recover (``recover.mode: on`` in the
recipes) continues it from its last checkpoint (without one AReaL starts it over, and the report
reads only the newest run's event file: :mod:`areal_a3po.report.load`); an arm with another
command is deleted and run afresh.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from areal_a3po import recipes
from areal_a3po.embedded import procs, testbeds
from areal_a3po.embedded.arms import (
    A3PO_TWIN,
    BASELINE_PROVIDER,
    TWIN_PROVIDER,
    arm_overrides,
    arm_plan,
    check_overrides,
)
from areal_a3po.embedded.progress import TensorboardProgress, previous_arm

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPE_PREFIX = "cpu_tiny"  # the default testbed's (embedded/testbeds.py)
LAUNCH_LABEL = "single-controller, local"
LAUNCH_LABELS = {
    "local": LAUNCH_LABEL,
    "ray": "single-controller, Ray",
}  # header line per scheduler

DEFAULT_STEPS = 30
DEFAULT_STALENESS = 2
DEFAULT_SEED = 1
CI_STEPS = 3
FALLBACK_APPROX_PROVIDER = "loglinear"  # AReaL's built-in approximation (also skips recompute)

# Expected time of one arm on the 2-core machine this was developed on (measured there, 2026-11:
# launch to first step ~100 s incl. the first batch, stop ~10 s; a step ~3.5 s free-running,
# ~4 s at the cap, where generation no longer overlaps training).
EXPECTED_START_S = 110.0
EXPECTED_STEP_S = {"free": 3.5, "cap": 4.0}

# Overall bound of one arm (seconds): start-up (workers, vLLM, first rollouts) plus a per-step
# allowance; generous for a loaded 2-core machine, a healthy arm is far below it.
START_LIMIT_S = 480.0
STEP_LIMIT_S = 90.0
POLL_S = 2.0

_HEADER_LINE_RE = re.compile(r"^#\s+(?P<label>[^:]+):\s+(?P<cmd>python3 .+)$")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # provider names have dashes


class EmbeddedRunError(RuntimeError):
    """An arm failed; the message names the arm, what failed, and the log to read."""


@dataclass
class ArmResult:
    provider: str
    label: str
    run_dir: str  # the arm's tensorboard dir (AReaL's stats_logger.tensorboard.path)
    steps: int
    seed: int
    staleness: int
    pace: str = "free"  # AREAL_A3PO_PACE of the arm (embedded/pacing.py)
    first_step_s: float = 0.0  # launch -> first step in tensorboard (workers, vLLM, first batch)
    train_s: float = 0.0  # first -> last step seen in tensorboard
    total_s: float = 0.0  # launch -> controller process group gone
    rewards: list[float] = field(default_factory=list)  # rollout/reward per step
    command: list[str] = field(default_factory=list)
    # fresh | continued (interrupted before, relaunched in place) | skipped (complete by its logs)
    start: str = "fresh"


# ------------------------------------------------------------------------------------ recipes


def default_providers() -> list[str]:
    """``[recompute, a3po-step]`` (the twins' own methods) when the plugin's providers are
    installed, else ``[recompute, loglinear]``; the paper's ``a3po`` is one more arm away
    (``--providers recompute,a3po-step,a3po``)."""
    try:
        from importlib.metadata import entry_points

        names = {ep.name for ep in entry_points(group="areal_a3po.providers")}
    except Exception:  # noqa: BLE001 - metadata problems just mean "not installed"
        names = set()
    return [
        BASELINE_PROVIDER,
        TWIN_PROVIDER if TWIN_PROVIDER in names else FALLBACK_APPROX_PROVIDER,
    ]


def recipe_path(twin: str, testbed: str = "tiny") -> Path:
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


# ------------------------------------------------------------------------------------ logs


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------ arms


def check_label(label: str) -> None:
    """An arm's label names its directory and AReaL's trial: raises ValueError if it cannot."""
    if not _LABEL_RE.fullmatch(label) or label == "model":
        raise ValueError(
            f"arm label {label!r}: letters, digits, '_', '.' and '-' only, not 'model'"
        )


def run_arm(
    provider: str,
    out_dir: str | os.PathLike,
    steps: int = DEFAULT_STEPS,
    staleness: int = DEFAULT_STALENESS,
    seed: int = DEFAULT_SEED,
    label: str | None = None,
    progress: bool = True,
    position: int = 0,
    extra_overrides: Sequence[str] = (),
    scheduler: str = "local",
    pace: str = "free",
    testbed: str = testbeds.DEFAULT_TESTBED,
) -> ArmResult:
    """Run one arm with AReaL's scheduler; returns its timings and reward curve.

    The twin and overrides come from :func:`arm_overrides`. ``scheduler``: the header
    line to run, ``local`` or ``ray`` (Ray: a running cluster, e.g. ``RAY_ADDRESS`` set).
    ``pace``: ``free`` (AReaL's own overlap) or ``cap`` (rollouts at the staleness cap, the
    staleness study's control: :mod:`areal_a3po.embedded.pacing`). ``testbed``: the recipe twins
    and model (:mod:`areal_a3po.embedded.testbeds`).
    """
    from areal_a3po.embedded import pacing

    label = label or provider
    if pace not in pacing.MODES:
        raise ValueError(f"pace must be one of {pacing.MODES}, got {pace!r}")
    if scheduler not in LAUNCH_LABELS:
        raise ValueError(f"scheduler must be one of {sorted(LAUNCH_LABELS)}, got {scheduler!r}")
    check_label(label)
    out = Path(out_dir).resolve()
    bed = testbeds.get(testbed)
    model_dir = bed.build_model(str(out / "model"), seed)
    arm_dir = out / label
    fileroot = arm_dir / "areal"

    twin, overrides = arm_overrides(provider, steps, fileroot, seed, staleness, model_dir, label)
    recipe = recipe_path(twin, testbed)
    overrides += list(extra_overrides)
    cmd, cmd_env = launch_command(recipe, overrides, LAUNCH_LABELS[scheduler])
    if pace != pacing.FREE:
        cmd_env[pacing.ENV] = pace
    experiment = _experiment_name(recipe)
    run_dir = fileroot / "tensorboard" / experiment / label
    result = ArmResult(provider, label, str(run_dir), steps, seed, staleness, pace, command=cmd)
    shown_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cmd_env.items() if k != "PATH")
    launched = f"{shown_env} {shlex.join(cmd)}\n"
    result.start = previous_arm(arm_dir, launched, run_dir, steps)
    if result.start == "skipped":
        return _skipped(arm_dir, result)
    if result.start == "fresh":
        if arm_dir.exists():
            shutil.rmtree(arm_dir)  # never mix event files or name records of two runs
        arm_dir.mkdir(parents=True)
        (arm_dir / "launch_cmd.txt").write_text(launched)

    limit = (bed.start_limit_s or START_LIMIT_S) + steps * (bed.step_limit_s or STEP_LIMIT_S)
    env = dict(os.environ, PYTHONUNBUFFERED="1", AREAL_A3PO_LOOPBACK="1", **cmd_env)
    env.pop("AREAL_SPMD_MODE", None)
    if pace == pacing.FREE:
        env.pop(pacing.ENV, None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"{label:>10}", unit="step", position=position, leave=True)
        bar.set_postfix_str("AReaL starting workers and vLLM")
    watch = TensorboardProgress(run_dir)
    log_path = arm_dir / "controller.log"
    t0 = time.monotonic()
    proc = None
    try:
        proc = procs.launch_bounded(
            cmd, limit, log_path, env=env, cwd=arm_dir, append=result.start == "continued"
        )
        shown = 0
        while proc.poll() is None:
            time.sleep(POLL_S)
            watch.poll()
            if bar is not None and watch.done > shown:
                bar.update(watch.done - shown)
                shown = watch.done
                rewards = watch.rewards()
                if rewards:
                    bar.set_postfix_str(f"reward {rewards[-1]:.3f}")
            if time.monotonic() - t0 > limit + 30:
                raise EmbeddedRunError(
                    f"[{label}] not finished after {limit:.0f}s ({watch.done}/{steps} steps); "
                    f"see {log_path}\n{_tail(log_path)}"
                )
        watch.poll()
        rc = proc.returncode
        if rc != 0 or watch.done < steps:
            why = "timed out" if rc in (124, 137) else f"exited with code {rc}"
            raise EmbeddedRunError(
                f"[{label}] AReaL's controller {why} after {watch.done}/{steps} steps "
                f"(limit {limit:.0f}s); see {log_path}\n{_tail(log_path)}"
            )
    finally:
        if proc is not None:
            procs.stop_group(proc)
        result.total_s = time.monotonic() - t0
        seen = sorted(watch.step_seen_at.values())
        if seen:
            result.first_step_s = seen[0] - t0
            result.train_s = seen[-1] - seen[0]
        result.rewards = watch.rewards()
        if bar is not None:
            bar.close()
        (arm_dir / "summary.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def _skipped(arm_dir: Path, result: ArmResult) -> ArmResult:
    """The result of an arm an earlier invocation completed (its timings from its summary)."""
    try:
        before = json.loads((arm_dir / "summary.json").read_text())
    except (OSError, ValueError):
        before = {}
    for name in ("first_step_s", "train_s", "total_s"):
        if isinstance(before.get(name), (int, float)):
            setattr(result, name, float(before[name]))
    watch = TensorboardProgress(Path(result.run_dir))
    watch.poll()
    result.rewards = watch.rewards()
    print(f"[{result.label}] complete in {arm_dir} ({result.steps} steps logged): skipped")
    return result


def expected_seconds(n_arms: int, steps: int, pace: str = "free", testbed: str = "tiny") -> float:
    """Rough wall time of ``n_arms`` sequential arms (printed before a study starts)."""
    bed = testbeds.get(testbed)
    per_step = (bed.expected_step_s or EXPECTED_STEP_S)[pace]
    return n_arms * ((bed.expected_start_s or EXPECTED_START_S) + steps * per_step)


def _experiment_name(recipe: Path) -> str:
    import yaml

    return str(yaml.safe_load(recipe.read_text())["experiment_name"])


def run_default(
    out_dir: str,
    steps: int = DEFAULT_STEPS,
    staleness: int | Sequence[int] = DEFAULT_STALENESS,
    seed: int | Sequence[int] = DEFAULT_SEED,
    providers: Sequence[str] | None = None,
    progress: bool = True,
    pace: str = "free",
    on_arm_done: Callable[[ArmResult], None] | None = None,
    extra_overrides: Sequence[str] = (),
    testbed: str = testbeds.DEFAULT_TESTBED,
) -> list[ArmResult]:
    """Run the embedded default, one arm per (seed, staleness, provider), sequentially.

    Returns the arms' results; ``result.run_dir`` holds AReaL's tensorboard event files.
    ``providers=None`` means :func:`default_providers`; ``pace`` as in :func:`run_arm`.
    ``extra_overrides``: AReaL overrides for every arm, checked with AReaL's loader first.
    """
    seeds = [seed] if isinstance(seed, int) else list(seed)
    stalenesses = [staleness] if isinstance(staleness, int) else list(staleness)
    providers = list(providers) if providers else default_providers()
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if not seeds or not stalenesses or any(s < 0 for s in stalenesses):
        raise ValueError("staleness values must be >= 0, and at least one seed and staleness")
    for name, values in (("providers", providers), ("seeds", seeds), ("staleness", stalenesses)):
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate {name}: {values}")
    twins = {BASELINE_PROVIDER if p == BASELINE_PROVIDER else A3PO_TWIN for p in providers}
    check_overrides([recipe_path(t, testbed) for t in sorted(twins)], extra_overrides)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    results = []
    for i, (provider, s, k, label) in enumerate(arm_plan(providers, seeds, stalenesses)):
        res = run_arm(
            provider, out_dir, steps=steps, staleness=k, seed=s, label=label,
            progress=progress, position=i, pace=pace, extra_overrides=extra_overrides,
            testbed=testbed,
        )  # fmt: skip
        results.append(res)
        if on_arm_done is not None:
            on_arm_done(res)
    return results
