"""Runner of ``a3po compare``'s embedded default: AReaL's own launcher, once per recipe twin.

Each arm runs its twin's header line (:mod:`areal_a3po.compare.launch`). AReaL's
``LocalScheduler`` then starts the actor and rollout workers, the rollout worker starts the vLLM
CPU server (through the coupling in :mod:`areal_a3po.coupling.vllm`), and AReaL's
``StatsLogger`` writes tensorboard logs.

This module adds only what AReaL does not do: the testbed's model built once for all arms, an
overall time bound per arm, a progress bar fed from the arm's tensorboard event files, and
stopping the controller's whole process group (AReaL's workers and servers are in it) on failure
or Ctrl-C.

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
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from areal_a3po import testbeds
from areal_a3po.compare import procs
from areal_a3po.compare.arms import (
    A3PO_TWIN,
    BASELINE_PROVIDER,
    TWIN_PROVIDER,
    Arm,
    arm_plan,
    check_overrides,
)
from areal_a3po.compare.launch import (
    LAUNCH_LABELS,
    Launch,
    check_label,
    header_command,
    launch_command,
    plan_launch,
    recipe_path,
)
from areal_a3po.compare.progress import ProgressBar, TensorboardProgress, previous_arm
from areal_a3po.testbeds import pacing

__all__ = [  # the launch helpers are part of the runner's interface (tests, benchmarks)
    "ArmResult", "EmbeddedRunError", "check_label", "default_providers", "expected_seconds",
    "header_command", "launch_command", "recipe_path", "run_arm", "run_default",
]  # fmt: skip

DEFAULT_STEPS = testbeds.get(testbeds.DEFAULT_TESTBED).default_steps
DEFAULT_STALENESS = 2
DEFAULT_SEED = 1
FALLBACK_APPROX_PROVIDER = "loglinear"  # AReaL's built-in approximation (also skips recompute)
POLL_S = 2.0
STRAGGLE_S = 30.0  # past the arm's limit, coreutils timeout should have ended it: stop waiting


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
    pace: str = "free"  # AREAL_A3PO_PACE of the arm (testbeds/pacing.py)
    first_step_s: float = 0.0  # launch -> first step in tensorboard (workers, vLLM, first batch)
    train_s: float = 0.0  # first -> last step seen in tensorboard
    total_s: float = 0.0  # launch -> controller process group gone
    rewards: list[float] = field(default_factory=list)  # rollout/reward per step
    command: list[str] = field(default_factory=list)
    # fresh | continued (interrupted before, relaunched in place) | skipped (complete by its logs)
    start: str = "fresh"


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


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


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

    The twin and overrides come from :func:`~areal_a3po.compare.arms.arm_overrides`.
    ``scheduler``: the header line to run, ``local`` or ``ray`` (Ray: a running cluster, e.g.
    ``RAY_ADDRESS`` set). ``pace``: ``free`` (AReaL's own overlap) or ``cap`` (rollouts at the
    staleness cap, the staleness study's control: :mod:`areal_a3po.testbeds.pacing`).
    ``testbed``: the recipe twins and model (:mod:`areal_a3po.testbeds`).
    """
    arm = Arm(provider, seed, staleness, label or provider)
    if pace not in pacing.MODES:
        raise ValueError(f"pace must be one of {pacing.MODES}, got {pace!r}")
    if scheduler not in LAUNCH_LABELS:
        raise ValueError(f"scheduler must be one of {sorted(LAUNCH_LABELS)}, got {scheduler!r}")
    check_label(arm.label)
    out = Path(out_dir).resolve()
    launch = plan_launch(arm, out, steps, extra_overrides, scheduler, pace, testbed)
    result = ArmResult(
        provider, arm.label, str(launch.run_dir), steps, seed, staleness, pace, command=launch.cmd
    )
    result.start = previous_arm(launch.arm_dir, launch.line, launch.run_dir, steps)
    if result.start == "skipped":
        return _skipped(launch.arm_dir, result)
    if result.start == "fresh":
        if launch.arm_dir.exists():
            shutil.rmtree(launch.arm_dir)  # never mix event files or name records of two runs
        launch.arm_dir.mkdir(parents=True)
        (launch.arm_dir / "launch_cmd.txt").write_text(launch.line)
    bar = ProgressBar(arm.label, steps, position) if progress else None
    _run_launched(launch, result, bar)
    return result


def _run_launched(launch: Launch, result: ArmResult, bar: ProgressBar | None) -> None:
    """Run the arm's launch to its end, then stop its process group and write its summary."""
    watch = TensorboardProgress(launch.run_dir)
    t0 = time.monotonic()
    proc = None
    try:
        proc = procs.launch_bounded(
            launch.cmd, launch.limit_s, launch.arm_dir / "controller.log",
            env=launch.process_env(), cwd=launch.arm_dir, append=result.start == "continued",
        )  # fmt: skip
        _wait(proc, watch, bar, launch, result, t0)
        _check_finished(proc.returncode, watch, launch, result)
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
        summary = json.dumps(asdict(result), indent=1) + "\n"
        (launch.arm_dir / "summary.json").write_text(summary)


def _wait(
    proc, watch: TensorboardProgress, bar: ProgressBar | None, launch: Launch, result: ArmResult,
    t0: float,
) -> None:  # fmt: skip
    """Poll the arm's tensorboard until its controller exits; raise if it outlives its limit.

    coreutils ``timeout`` ends the controller at the limit (:func:`procs.launch_bounded`); this
    is the backstop should it not.
    """
    while proc.poll() is None:
        time.sleep(POLL_S)
        watch.poll()
        if bar is not None:
            bar.show(watch)
        if time.monotonic() - t0 > launch.limit_s + STRAGGLE_S:
            log_path = launch.arm_dir / "controller.log"
            raise EmbeddedRunError(
                f"[{result.label}] not finished after {launch.limit_s:.0f}s ({watch.done}/"
                f"{result.steps} steps); see {log_path}\n{_tail(log_path)}"
            )
    watch.poll()


def _check_finished(rc: int, watch: TensorboardProgress, launch: Launch, result: ArmResult) -> None:
    """Raise :class:`EmbeddedRunError` unless the controller exited 0 with every step logged."""
    if rc == 0 and watch.done >= result.steps:
        return
    why = "timed out" if rc in (124, 137) else f"exited with code {rc}"
    log_path = launch.arm_dir / "controller.log"
    raise EmbeddedRunError(
        f"[{result.label}] AReaL's controller {why} after {watch.done}/{result.steps} steps "
        f"(limit {launch.limit_s:.0f}s); see {log_path}\n{_tail(log_path)}"
    )


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


def expected_seconds(
    n_arms: int, steps: int, pace: str = "free", testbed: str = testbeds.DEFAULT_TESTBED
) -> float:
    """Rough wall time of ``n_arms`` sequential arms (printed before a study starts)."""
    return n_arms * testbeds.get(testbed).expected_s(steps, pace)


def _checked_plan(
    providers: Sequence[str], seeds: Sequence[int], stalenesses: Sequence[int], steps: int
) -> list[Arm]:
    """The study's arms; ValueError for no steps, a negative staleness or a repeated value."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if not seeds or not stalenesses or any(s < 0 for s in stalenesses):
        raise ValueError("staleness values must be >= 0, and at least one seed and staleness")
    for name, values in (("providers", providers), ("seeds", seeds), ("staleness", stalenesses)):
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate {name}: {list(values)}")
    return arm_plan(providers, seeds, stalenesses)


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
    plan = _checked_plan(providers, seeds, stalenesses, steps)
    twins = {BASELINE_PROVIDER if p == BASELINE_PROVIDER else A3PO_TWIN for p in providers}
    check_overrides([recipe_path(t, testbed) for t in sorted(twins)], extra_overrides)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    results = []
    for i, arm in enumerate(plan):
        res = run_arm(
            arm.provider, out_dir, steps=steps, staleness=arm.staleness, seed=arm.seed,
            label=arm.label, progress=progress, position=i, pace=pace,
            extra_overrides=extra_overrides, testbed=testbed,
        )  # fmt: skip
        results.append(res)
        if on_arm_done is not None:
            on_arm_done(res)
    return results
