"""Faults through AReaL's launcher, measured and kept as data (docs/benchmarks/faults/*.json).

    python benchmarks/faults.py kill-resume --provider a3po     # ~5 min on 2 cores, run alone
    python benchmarks/faults.py kill-resume --provider hybrid   # ~5 min
    python benchmarks/faults.py compare-resume                  # ~12 min
    python benchmarks/faults.py dead-process --role actor       # ~3 min: the trainer's worker
    python benchmarks/faults.py dead-process --role server      # ~3 min: the vLLM CPU server

``kill-resume``: the tiny a3po twin's ``single-controller, local`` header line with the provider,
``recover.freq_steps`` FREQ; SIGKILL to the whole process group once step KILL_AFTER is in
tensorboard; the same line again. Kept per step: which launch logged it, the token lags (V - v)
and the plugin's statistics from each launch's event file, the step AReaL resumed from, the steps
run twice, the processes left after the kill, and (hybrid) its calibration decisions.

``compare-resume``: ``a3po compare`` with four providers, SIGINT (a terminal's Ctrl-C) once the
third arm's controller runs, then the same command again. Kept: both invocations' times and exit
codes, the arms skipped, whether the finished arms' event files stayed byte for byte, the
processes left after the interrupt, and the report's cells that differ from a report built
afterwards from the same four run directories (``a3po compare RUN...``).

``dead-process``: the tiny a3po header line for STEPS steps; once step 2 is in tensorboard,
SIGKILL to one process: AReaL's trainer worker (``rpc_server --role actor``) or the vLLM CPU
server. Kept: the time from the kill to the controller's exit, its exit code, its last error
lines, the processes of the run left after it exited (then stopped here).

Every number in the JSON is measured; none is typed by hand. ``faults_report.markdown`` renders
a kept file for docs/benchmarks.md. Each run uses its own seed (AReaL
seeds its port draws with it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from areal_a3po import keys
from areal_a3po.compare import procs, runner
from areal_a3po.compare.progress import steps_logged
from areal_a3po.report import load_scalars
from areal_a3po.report.load import find_event_files
from areal_a3po.testbeds.tiny import task
from areal_a3po.testbeds.tiny.model import build_model_dir

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "faults"
EXPERIMENT = "a3po-cpu-tiny"
A3PO = [sys.executable, "-m", "areal_a3po.cli"]
LIMIT_S = 1200  # per launch
LAG = keys.LAG_PREFIX + keys.TOKEN_LAG


def _plugin_stats(provider: str) -> tuple[str, ...]:
    """The plugin's per-step statistics kept for each launch (averages over loss tokens)."""
    return (
        keys.full(keys.LAG_WEIGHT_BEHAVE, "avg"),
        keys.full(keys.provider_key(provider, keys.IMPORTANCE_WEIGHT), "avg"),
        keys.full(keys.KL_DIV[0], "avg"),
    )


# ------------------------------------------------------------------------------------ helpers


def _processes(marker: str, width: int = 200) -> list[str]:
    """'pid command', cut at ``width`` for the kept record, of what mentions ``marker``."""
    return [line[:width] for line in procs.processes_mentioning(marker)]


def _short(text: str, out: Path) -> str:
    return text.replace(str(out), "OUT").replace(str(ROOT) + "/", "")


def _launch(out: Path, name: str, overrides: list[str]) -> subprocess.Popen:
    """The tiny a3po twin's local header line, as ``a3po compare`` runs it, in its own session."""
    cmd, cmd_env = runner.launch_command(runner.recipe_path("a3po"), overrides)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **cmd_env)
    return procs.launch_bounded(cmd, LIMIT_S, out / f"{name}.log", env=env, cwd=out)


def _overrides(out: Path, trial: str, seed: int, steps: int, *more: str) -> list[str]:
    model = build_model_dir(str(out / "model"), list(task.VOCAB), seed)
    return [
        f"total_train_steps={steps}", f"cluster.fileroot={out / 'areal'}", f"actor.path={model}",
        f"trial_name={trial}", f"seed={seed}", "rollout.setup_timeout=900", *more,
    ]  # fmt: skip


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int) -> int:
    """Wait until more than ``step`` steps are logged; the number logged (fails if it ended)."""
    deadline = time.monotonic() + LIMIT_S
    while proc.poll() is None and steps_logged(run_dir) <= step:
        if time.monotonic() > deadline:
            raise SystemExit(f"no step {step} after {LIMIT_S}s in {run_dir}")
        time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit(f"the run ended by itself (exit {proc.returncode}) before the fault")
    return steps_logged(run_dir)


def _plain_log(log: Path) -> str:
    """A log's text without AReaL's colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))


def _error_lines(log: Path, n: int = 6) -> list[str]:
    lines = _plain_log(log).splitlines()
    hits = [
        ln
        for ln in lines
        if re.search(r"Error|Traceback|failed|died|exited", ln) and " INFO: " not in ln
    ]
    return [ln[:300] for ln in hits[-n:]]


# ------------------------------------------------------------------------------ kill-resume


def _per_file(run_dir: Path) -> list[dict[str, dict[int, float]]]:
    """Each event file's scalars (oldest first): one per launch."""
    return [load_scalars(path).scalars for path in find_event_files(str(run_dir))]


def _per_step(files: list[dict], steps: int, provider: str) -> list[dict]:
    """Per step, what each launch (``first``, ``second``: its event file) logged of it: the token
    lag's range, the provider's statistics and hybrid's decision."""
    per_step = []
    for step in range(steps):
        row: dict = {"step": step}
        for name, scalars in zip(("first", "second"), files, strict=False):
            if step not in scalars.get(f"{LAG}/max", {}):
                continue
            row[name] = {
                "token_lag": [scalars[f"{LAG}/min"][step], scalars[f"{LAG}/max"][step]],
                **{
                    k.rsplit("/", 2)[-2]: scalars[k].get(step)
                    for k in _plugin_stats(provider)
                    if k in scalars
                },
            }
            if keys.HYBRID_RECOMPUTE in scalars:
                row[name]["hybrid_recompute"] = scalars[keys.HYBRID_RECOMPUTE].get(step)
                row[name]["hybrid_escalated"] = scalars[keys.HYBRID_ESCALATED].get(step)
        per_step.append(row)
    return per_step


def kill_resume(out: Path, provider: str, seed: int, steps: int, freq: int, kill_after: int):
    trial = provider
    more = [f"actor.prox_logp_method={provider}", f"recover.freq_steps={freq}"]
    if provider == "hybrid":
        more.append("+actor.a3po.calibration_interval=3")
    overrides = _overrides(out, trial, seed, steps, *more)
    run_dir = out / "areal" / "tensorboard" / EXPERIMENT / trial
    first = _launch(out, "first", overrides)
    try:
        killed_at = _wait_for_step(first, run_dir, kill_after)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=60)
    time.sleep(2.0)
    left = _processes(str(out))
    procs.kill_processes_mentioning(str(out))
    t0 = time.monotonic()
    second = _launch(out, "second", overrides)
    rc = second.wait(timeout=LIMIT_S + 60)
    second_s = time.monotonic() - t0
    log = _plain_log(out / "second.log")
    m = re.search(r"Recovering from StepInfo\(.*?global_step=(\d+)", log)
    resumed = int(m.group(1)) if m else None  # the step the relaunch starts at
    files = _per_file(run_dir)
    per_step = _per_step(files, steps, provider)
    restored = re.findall(r"hybrid calibration [^\n]*", log)
    return {
        "provider": provider,
        "command": runner.header_command(runner.recipe_path("a3po")),
        "overrides": [_short(o, out) for o in overrides],
        "steps": steps,
        "recover_freq_steps": freq,
        "steps_logged_at_kill": killed_at,
        "processes_left_after_kill": left,
        "resumed_at_global_step": resumed,
        "steps_run_twice": None if resumed is None else killed_at - resumed,
        "steps_lost": sum(1 for r in per_step if "first" not in r and "second" not in r),
        "second_exit_code": rc,
        "second_launch_s": round(second_s, 1),
        "hybrid_state": [_short(s, out) for s in restored],
        "event_files": len(files),
        "per_step": per_step,
        "processes_left_at_end": _processes(str(out)),
    }


# --------------------------------------------------------------------------- compare-resume


def _digest(arm_dir: Path) -> dict[str, str]:
    files = sorted(arm_dir.rglob("events.out.tfevents.*"))
    return {str(f.relative_to(arm_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _cells_that_differ(a: list[dict], b: list[dict]) -> list[str]:
    """Report-table cells that differ between two reports (paths and labels aside)."""
    diffs = [f"rows: {len(a)} vs {len(b)}"] if len(a) != len(b) else []
    for x, y in zip(a, b, strict=False):
        for key in sorted(set(x) | set(y)):
            if any(word in key for word in ("path", "dir", "label", "run")):
                continue
            if x.get(key) != y.get(key):
                diffs.append(f"{x.get('label')}: {key}: {x.get(key)!r} vs {y.get(key)!r}")
    return diffs


def compare_resume(out: Path, seed: int, steps: int) -> dict:
    providers = ("recompute", "a3po", "a3po-step", "behave")
    cmd = [*A3PO, "compare", "--providers", ",".join(providers), "--steps", str(steps)]
    cmd += ["--seeds", str(seed), "--out", str(out), "--no-progress"]
    out.mkdir(parents=True, exist_ok=True)
    labels = list(providers)  # one seed: the arm labels are the provider names
    third = labels[2]
    t0 = time.monotonic()
    with open(out / "first.log", "wb") as log:
        first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while not any(
            "testbeds.tiny.train" in line and f"trial_name={third}" in line
            for line in procs.processes_mentioning(str(out))
        ):
            if first.poll() is not None:
                raise SystemExit(f"a3po compare ended (exit {first.returncode}) before arm 3")
            time.sleep(0.5)
        time.sleep(30)  # the third arm's AReaL is starting its workers: an interrupted arm
        os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        first.wait(timeout=300)
    first_s = time.monotonic() - t0
    left = _processes(str(out))
    procs.kill_processes_mentioning(str(out))
    finished = {label: _digest(out / label) for label in labels[:2]}
    t1 = time.monotonic()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * LIMIT_S)
    second_s = time.monotonic() - t1
    text = second.stdout + second.stderr
    (out / "second.log").write_text(text)
    runs = [
        str(out / label / "areal" / "tensorboard" / "a3po-cpu-tiny" / label) for label in labels
    ]
    again = subprocess.run(
        [*A3PO, "compare", *runs, "--labels", ",".join(providers), "--seeds",
         ",".join([str(seed)] * len(runs)), "--out", str(out / "rebuilt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    resumed = json.loads((out / "report" / "report.json").read_text())
    rebuilt = json.loads((out / "rebuilt" / "report" / "report.json").read_text())
    first_log = (out / "first.log").read_text(errors="replace")
    return {
        "command": _short(" ".join(["a3po", *cmd[3:]]), out),
        "first_invocation_s": round(first_s, 1),
        "first_exit_code": first.returncode,
        "first_last_line": first_log.strip().splitlines()[-1] if first_log.strip() else "",
        "processes_left_after_interrupt": left,
        "second_invocation_s": round(second_s, 1),
        "second_exit_code": second.returncode,
        "arms_skipped": re.findall(r"^\[([\w.-]+)\] complete in .*: skipped$", text, re.M),
        "finished_arms_files_unchanged": all(_digest(out / k) == v for k, v in finished.items()),
        "report_rows": len(resumed.get("table", [])),
        "rebuilt_exit_code": again.returncode,
        "report_cells_that_differ": _cells_that_differ(
            resumed.get("table", []), rebuilt.get("table", [])
        ),
    }


# ----------------------------------------------------------------------------- dead-process


ROLES = {  # what to kill: a marker in its command line
    "actor": "--role actor",
    "server": "areal_a3po.testbeds.vllm_cpu.server",
}


def dead_process(out: Path, role: str, seed: int, steps: int, kill_after: int) -> dict:
    trial = f"dead-{role}"
    overrides = _overrides(out, trial, seed, steps)
    run_dir = out / "areal" / "tensorboard" / EXPERIMENT / trial
    proc = _launch(out, "controller", overrides)
    try:
        at = _wait_for_step(proc, run_dir, kill_after)
        victims = [ln for ln in procs.processes_mentioning(str(out)) if ROLES[role] in ln]
        if not victims:
            raise SystemExit(f"dead-process: no process matching {ROLES[role]!r} to kill")
        pid = int(victims[0].split()[0])
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        try:
            rc = proc.wait(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            rc = None
        exit_s = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(5.0)
    left = _processes(str(out))
    procs.kill_processes_mentioning(str(out))
    return {
        "role": role,
        "killed": _short(victims[0].split(maxsplit=1)[1][:120], out),
        "steps_logged_at_kill": at,
        "steps_logged_at_exit": steps_logged(run_dir),
        "controller_exit_s": None if rc is None else round(exit_s, 1),
        "controller_exit_code": rc,
        "error_lines": [_short(ln, out) for ln in _error_lines(out / "controller.log")],
        "processes_left_after_exit": left,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("kill-resume")
    p.add_argument("--provider", choices=["a3po", "hybrid"], required=True)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--freq", type=int, default=2)  # checkpoints after steps 1, 3, 5
    p.add_argument("--kill-after", type=int, default=4)  # between two: step 4 runs twice
    p = sub.add_parser("compare-resume")
    p.add_argument("--steps", type=int, default=3)
    p = sub.add_parser("dead-process")
    p.add_argument("--role", choices=sorted(ROLES), required=True)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--kill-after", type=int, default=2)
    for p in sub.choices.values():
        p.add_argument("--out", type=Path, default=None, help="run dir (default /tmp/faults-NAME)")
        p.add_argument("--seed", type=int, default=None, help="default: one per scenario")
    args = ap.parse_args()
    name = args.scenario + (f"-{args.provider}" if args.scenario == "kill-resume" else "")
    name += f"-{args.role}" if args.scenario == "dead-process" else ""
    seeds = {"kill-resume-a3po": 41, "kill-resume-hybrid": 42, "compare-resume": 43,
             "dead-process-actor": 44, "dead-process-server": 45}  # fmt: skip
    seed = args.seed if args.seed is not None else seeds[name]
    out = (args.out or Path(f"/tmp/faults-{name}")).resolve()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: remove it or pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.scenario == "kill-resume":
        result = kill_resume(out, args.provider, seed, args.steps, args.freq, args.kill_after)
    elif args.scenario == "compare-resume":
        result = compare_resume(out, seed, args.steps)
    else:
        result = dead_process(out, args.role, seed, args.steps, args.kill_after)
    result = {"scenario": name, "seed": seed, "wall_s": round(time.monotonic() - t0, 1), **result}
    KEPT.mkdir(parents=True, exist_ok=True)
    path = KEPT / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"kept: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
