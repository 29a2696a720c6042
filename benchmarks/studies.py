"""The studies behind docs/benchmarks.md, defined in one place, run one at a time.

Each study is one ``a3po compare`` invocation of the embedded default (AReaL's own launcher, local
scheduler, arms interleaved by seed). ``run`` prints the command and its expected time, runs it,
and copies the per-run records the report wrote (``report/runs/*.json``: the per-step scalars the
across-seeds statistics use) into ``docs/benchmarks/<study>/runs/``, with ``study.json`` (what ran,
when, where). ``benchmarks/update_docs.py`` rebuilds every table and plot of the page from them.

    python benchmarks/studies.py list                  # the studies and their expected times
    python benchmarks/studies.py run tiny-mb4          # hours on 2 cores: run it in the background
    python benchmarks/studies.py run smoke --kept /tmp/smoke-kept   # pipeline check, not evidence
    python benchmarks/update_docs.py                   # then rebuild docs/benchmarks.md

Rerunning a study into the same ``--out`` resumes it (finished arms are skipped, an interrupted
one continues: ``areal_a3po.compare.runner``), so a long study can span several sessions.

``RECOMMENDED`` in a study's providers is the provider the kept ``tiny-mb4`` data recommends
(:func:`recommended`); such a study refuses to run before that one has (or pass ``--provider``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from areal_a3po.report.defaults import LAST_EVALS, LAST_N, MARGIN

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks"
RUNS = "runs"  # docs/benchmarks/<study>/runs/<arm>_seed<S>.json
STUDY_JSON = "study.json"
RECOMMENDED = "RECOMMENDED"
RECOMMEND_FROM = "tiny-mb4"
FIVE = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    providers: tuple[str, ...]  # the first is the baseline (recompute)
    seeds: tuple[int, ...] = FIVE
    minibatches: int = 1  # actor.ppo_n_minibatches
    staleness: int = 2  # rollout.max_head_offpolicyness
    pace: str = "free"  # free: AReaL's own overlap; cap: paced at the staleness cap
    testbed: str = "tiny"
    steps: int | None = None  # None: the testbed's default
    target: float | None = None  # reward of record for the time-to-target comparison
    evidence: bool = True  # False: a pipeline check, never in the page's tables
    repeat_of: str | None = None  # a second invocation of that study (cross-invocation check)
    withdrawn: str | None = None  # why its data no longer count as evidence (kept, shown as such)
    extra: tuple[str, ...] = field(default_factory=tuple)  # more AReaL overrides

    @property
    def overrides(self) -> list[str]:
        # Both testbeds keep one sequence per micro-batch at any ppo_n_minibatches (their
        # recipes' mb_spec; the entry scripts check it).
        return [f"actor.ppo_n_minibatches={self.minibatches}", *self.extra]


# Targets: the tiny task's training reward (no held-out split; last-5 mean), reached by recompute
# mid-run at the default size; SmolLM2's held-out reward (eval-rollout/reward): above the untrained
# model's score (docs/benchmarks/smollm2/heldout_untrained.json) and, for smollm2-mb4-v2, below the
# level the recompute twin holds in the validity runs (docs/benchmarks/smollm2-validity/), chosen
# from the baseline's runs alone, before any other arm ran.
SMOLLM2_RAW = (
    "its behaviour log-probs were vLLM's raw ones, before temperature, against the trainer's at "
    "T = 0.7, and its held-out split differed per seed"
)
STUDIES = {
    s.name: s
    for s in (
        Study("tiny-mb1", "tiny, one PPO minibatch, free-running",
              ("recompute", "current", "a3po", "a3po-step"), target=0.3),
        Study("tiny-mb4", "tiny, four PPO minibatches, free-running",
              ("recompute", "a3po", "a3po-step", "loglinear"), minibatches=4, target=0.3),
        Study("tiny-mb4-repeat", "tiny-mb4 again, a second invocation",
              ("recompute", "a3po", "a3po-step", "loglinear"), minibatches=4, target=0.3,
              repeat_of="tiny-mb4"),
        Study("smollm2-mb4", "SmolLM2-135M, four PPO minibatches, held-out reward",
              ("recompute", RECOMMENDED), minibatches=4, testbed="smollm2", target=0.25,
              withdrawn=SMOLLM2_RAW),
        Study("smollm2-mb4-v2", "SmolLM2-135M, four PPO minibatches, held-out reward "
              "(behaviour log-probs at the sampling temperature, one held-out set)",
              ("recompute", "a3po-step", "a3po"), minibatches=4, testbed="smollm2",
              target=0.4),
        Study("tiny-stale8", "tiny, staleness 8 paced at the cap, four PPO minibatches",
              ("recompute", RECOMMENDED, "behave"), seeds=(1, 2, 3), minibatches=4,
              staleness=8, pace="cap", target=0.3),
        Study("smoke", "pipeline check: 2 arms x 2 seeds x 3 steps (not evidence)",
              ("recompute", "a3po"), seeds=(1, 2), minibatches=4, steps=3, evidence=False,
              extra=("rollout.setup_timeout=900",)),  # vLLM start on a crowded machine
    )
}  # fmt: skip


def kept_dir(study: Study) -> Path:
    return KEPT / study.name


def meta(study: Study) -> dict | None:
    path = kept_dir(study) / STUDY_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def study_arms(study: Study, last_evals: int | None = None):
    """The study's arms (``ArmSeeds``) from its kept records, baseline first; None if not run.

    ``last_evals``: the held-out reward of record's window (default: the report's
    ``LAST_EVALS``, as every table uses; another only to show what the choice changes).
    """
    from areal_a3po.report.record import read_records
    from areal_a3po.report.seeds import group_records, summarize_arms

    m, runs = meta(study), kept_dir(study) / RUNS
    if m is None or not runs.is_dir():
        return None
    records = read_records(str(runs))
    order = {p: i for i, p in enumerate(m["providers"])}
    unknown = sorted({r.arm for r in records} - set(order))
    if unknown:
        raise ValueError(f"{runs}: records of arms {unknown} not in {STUDY_JSON}'s providers")
    grouped = group_records(sorted(records, key=lambda r: (order[r.arm], r.seed)))
    return summarize_arms(
        grouped, None, LAST_N, target=study.target, margin=MARGIN,
        last_evals=LAST_EVALS if last_evals is None else last_evals,
    )  # fmt: skip


def recommended() -> str | None:
    """The provider ``tiny-mb4``'s kept data supports (``report.seeds.recommend``: non-inferior
    reward and faster trainer compute by their intervals, the lowest ratio); None when that study
    has not run or none qualifies."""
    from areal_a3po.report.seeds import recommend

    arms = study_arms(STUDIES[RECOMMEND_FROM])
    return recommend(arms) if arms else None


def providers(study: Study, chosen: str | None = None) -> list[str]:
    out = []
    for p in study.providers:
        if p == RECOMMENDED:
            p = chosen or recommended()
            if p is None:
                raise SystemExit(
                    f"{study.name}: its providers include the one {RECOMMEND_FROM} recommends, and "
                    f"{RECOMMEND_FROM}'s kept data recommends none yet (run it first, or pass "
                    "--provider NAME)"
                )
        out.append(p)
    return out


def expected_seconds(study: Study) -> float:
    from areal_a3po import testbeds
    from areal_a3po.compare import runner

    steps = study.steps or testbeds.get(study.testbed).default_steps
    n_arms = len(study.providers) * len(study.seeds)
    return runner.expected_seconds(n_arms, steps, study.pace, study.testbed)


def command(study: Study, out: Path, chosen: str | None = None) -> list[str]:
    cmd = [
        sys.executable, "-m", "areal_a3po.cli", "compare", "--out", str(out),
        "--providers", ",".join(providers(study, chosen)),
        "--seeds", ",".join(map(str, study.seeds)),
        "--staleness", str(study.staleness), "--pace", study.pace,
        "--testbed", study.testbed, "--no-progress", "--last", str(LAST_N),
        "--margin", str(MARGIN),
    ]  # fmt: skip
    if study.steps is not None:
        cmd += ["--steps", str(study.steps)]
    if study.target is not None:
        cmd += ["--target-reward", str(study.target)]
    for o in study.overrides:
        cmd += ["--set", o]
    return cmd


def run(study: Study, out: Path, kept: Path, chosen: str | None = None) -> int:
    cmd = command(study, out, chosen)
    print(f"{study.name}: {study.title}\nexpected ~{expected_seconds(study) / 60:.0f} min")
    print("$ " + " ".join(cmd), flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        print(f"{study.name}: a3po compare exited {rc}; nothing kept", file=sys.stderr)
        return rc
    if (kept / RUNS).exists():
        shutil.rmtree(kept / RUNS)
    shutil.copytree(out / "report" / RUNS, kept / RUNS)
    meta = {
        "study": asdict(study),
        "providers": providers(study, chosen),
        "command": cmd[1:],
        **stamp(started),
    }
    (kept / STUDY_JSON).write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{study.name}: kept {len(list((kept / RUNS).glob('*.json')))} run records in {kept}")
    return 0


def stamp(started: datetime.datetime) -> dict:
    """When a kept study ran (UTC, from ``started`` to now) and on what machine."""
    return {
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the studies, their commands and expected times")
    p_run = sub.add_parser("run", help="run one study and keep its per-run records")
    p_run.add_argument("name", choices=sorted(STUDIES))
    p_run.add_argument("--out", type=Path, default=None, help="run dir (default runs/<study>)")
    p_run.add_argument("--kept", type=Path, default=None, help="default docs/benchmarks/<study>")
    p_run.add_argument("--provider", default=None, help=f"instead of {RECOMMENDED}")
    args = ap.parse_args()
    if args.cmd == "list":
        for s in STUDIES.values():
            names = ",".join(s.providers)
            print(f"{s.name:<16} ~{expected_seconds(s) / 3600:4.1f} h  {len(s.seeds)} seeds  "
                  f"{names}  mb={s.minibatches} staleness={s.staleness} pace={s.pace} "
                  f"testbed={s.testbed}: {s.title}")  # fmt: skip
        return 0
    study = STUDIES[args.name]
    out = (args.out or ROOT / "runs" / study.name).resolve()
    kept = (args.kept or kept_dir(study)).resolve()
    if not study.evidence and kept.is_relative_to(KEPT.resolve()):
        raise SystemExit(f"{study.name} is a pipeline check: give --kept outside {KEPT}")
    kept.mkdir(parents=True, exist_ok=True)
    return run(study, out, kept, args.provider)


if __name__ == "__main__":
    sys.exit(main())
