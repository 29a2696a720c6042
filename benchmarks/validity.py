"""Is the SmolLM2 testbed valid? The recompute twin must learn on held-out data, before comparing.

The testbed (``recipes/cpu_smollm2_*.yaml``) compares providers by the held-out reward; that means
something only if the baseline, AReaL's recompute, raises it. Per seed, the recompute twin's
reward of record is the mean of its last :data:`LAST_EVALS` held-out evaluations (AReaL's
evaluator, ``eval-rollout/reward``: one greedy answer per prompt on the held-out set every seed
and arm shares, ``gym_task.build_heldout_rows``), and its gain is that minus the untrained model's
score on the same set (:data:`UNTRAINED`: greedy, so one number, measured by
``benchmarks/smollm2_pass_rate.py``). Across seeds: the mean gain with its 95 % Student-t interval
(``areal_a3po.report.stats.mean_ci``, no interval under :data:`MIN_SEEDS` seeds). Verdict
:data:`VALID` only when the interval's lower bound is above 0.

    python benchmarks/validity.py run                  # hours on 2 cores: run it in the background
    python benchmarks/validity.py run --seeds 1,2,3 --out /tmp/validity --kept /tmp/kept
    python benchmarks/validity.py table                # the markdown of the kept records

``run`` runs the recompute twin through ``a3po compare``'s runner (``runner.run_arm``: the twin's
``single-controller, local`` header line, AReaL's local scheduler) once per seed, one after the
other, at the ``smollm2-mb4-v2`` study's setting (four PPO minibatches, staleness 2, free-running), and
keeps one ``RunRecord`` per seed in ``docs/benchmarks/smollm2-validity/runs/`` (the format of
``a3po compare``'s ``report/runs/``) with ``validity.json`` (what ran, when, where). Rerunning
into the same ``--out`` resumes: finished seeds are skipped, an interrupted one continues.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from areal_a3po.report import stats
from areal_a3po.report.defaults import LAST_EVALS  # the held-out reward of record's window
from areal_a3po.report.record import RunRecord, read_records, record_from_run, write_records
from areal_a3po.report.seeds import window_mean
from areal_a3po.report.text import pipe_table

ROOT = Path(__file__).resolve().parents[1]

KEPT = ROOT / "docs" / "benchmarks" / "smollm2-validity"
RUNS = "runs"  # KEPT/runs/recompute_seed<S>.json
META_JSON = "validity.json"
UNTRAINED = ROOT / "docs" / "benchmarks" / "smollm2" / "heldout_untrained.json"
# The same score through AReaL's evaluator: the recompute twin for one step at learning rate 0
# (the evaluation after step 0 then scores the untrained weights), kept by ``validity.py untrained``.
UNTRAINED_AREAL_JSON = "untrained_areal.json"
UNTRAINED_OVERRIDES = ["actor.optimizer.lr=0"]
PROVIDER = "recompute"
TESTBED = "smollm2"
STEPS = 20
SEEDS = (1, 2, 3, 4, 5)
MINIBATCHES = (
    4  # actor.ppo_n_minibatches of the smollm2-mb4-v2 study, the comparison this validates
)
STALENESS = 2
MIN_SEEDS = stats.MIN_SEEDS
VALID = "valid: the baseline learns on held-out data"
NOT_VALID = "not valid"


# ----------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class SeedGain:
    seed: int
    evals: dict[int, float]  # step -> held-out reward, every evaluation of the run
    reward: float  # reward of record: mean of the last LAST_EVALS evaluations
    gain: float  # reward - the untrained score


@dataclass(frozen=True)
class Validity:
    untrained: float
    seeds: list[SeedGain]
    gain: stats.Interval  # mean gain over seeds [95 % t-interval]
    verdict: str

    @property
    def valid(self) -> bool:
        return self.verdict == VALID


def reward_of_record(record: RunRecord, last: int = LAST_EVALS) -> float:
    """Mean of the run's last ``last`` held-out evaluations (by step)."""
    evals = sorted(record.eval_reward.items())
    if len(evals) < last:
        raise ValueError(
            f"{record.arm} seed {record.seed}: {len(evals)} held-out evaluations "
            f"({record.eval_reward_key or 'no eval reward logged'}); the reward of record needs "
            f"the last {last}"
        )
    return window_mean(record.eval_reward, last)  # the report's reward of record, as its tables


def verdict(gain: stats.Interval) -> str:
    """:data:`VALID` when the interval's lower bound is above 0, else ``not valid`` and why."""
    if not gain.has_interval:
        return f"{NOT_VALID}: {stats.no_interval_text(gain.n_seeds)}"
    if gain.low > 0:
        return VALID
    return (
        f"{NOT_VALID}: mean gain {gain.estimate:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}] "
        f"over {gain.n_seeds} seeds, the interval's lower bound is not above 0"
    )


def analyse(records: list[RunRecord], untrained: float, last: int = LAST_EVALS) -> Validity:
    """Per seed the gain over ``untrained``; across seeds its mean, interval and the verdict.

    ``records``: the recompute twin's runs, one per seed.
    """
    if not records:
        raise ValueError("no run records")
    if not math.isfinite(untrained):
        raise ValueError(f"untrained score {untrained} is not finite")
    others = sorted({r.provider or r.arm for r in records if (r.provider or r.arm) != PROVIDER})
    if others:
        raise ValueError(f"records of {others}: the validity check reads the {PROVIDER} twin only")
    seeds = [r.seed for r in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"one record per seed, got seeds {sorted(seeds)}")
    per_seed = []
    for r in sorted(records, key=lambda r: r.seed):
        reward = reward_of_record(r, last)
        per_seed.append(SeedGain(r.seed, dict(sorted(r.eval_reward.items())), reward,
                                 reward - untrained))  # fmt: skip
    gain = stats.mean_ci({g.seed: g.gain for g in per_seed}, what="held-out gain")
    return Validity(untrained, per_seed, gain, verdict(gain))


def untrained_score(path: Path = UNTRAINED) -> float:
    """The kept greedy score of the untrained model on the current held-out set.

    Refuses a score measured on another set (its digest) or another difficulty of the task.
    """
    from areal_a3po.testbeds.smollm2 import task as gym_task

    kept = json.loads(Path(path).read_text())
    for result in kept["results"]:
        if result["config"] != gym_task.TASK_CONFIG:
            continue
        digest = result.get("heldout", {}).get("digest")
        if digest != gym_task.heldout_digest():
            raise ValueError(
                f"{path}: measured on held-out set {digest}, the current one is "
                f"{gym_task.heldout_digest()}; rerun benchmarks/smollm2_pass_rate.py"
            )
        return float(result["greedy"]["pass_rate"])
    raise ValueError(f"{path}: no result for the task's difficulty {gym_task.TASK_CONFIG}")


# ----------------------------------------------------------------------------- markdown


def markdown(directory: Path = KEPT, untrained_path: Path = UNTRAINED) -> str:
    """The kept runs' validity check as Markdown (the docs block)."""
    from areal_a3po.testbeds.smollm2 import task as gym_task

    runs = Path(directory) / RUNS
    if not runs.is_dir() or not any(runs.glob("*.json")):
        return "*Not yet run (`python benchmarks/validity.py run`).*\n"
    untrained = untrained_score(untrained_path)
    result = analyse(read_records(str(runs)), untrained)
    meta_path = Path(directory) / META_JSON
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    steps = sorted({s for g in result.seeds for s in g.evals})
    rows = [
        [str(g.seed), *(_f(g.evals.get(s)) for s in steps), _f(g.reward), f"{g.gain:+.3f}"]
        for g in result.seeds
    ]
    header = ["seed", *(f"step {s}" for s in steps), f"last {LAST_EVALS} (of record)", "gain"]
    out = []
    if meta:
        parts = meta.get("sittings") or [meta]
        when = "; ".join(
            f"{x['started_utc']} to {x['finished_utc']} (seeds {', '.join(map(str, x['seeds']))})"
            for x in parts
        )
        out += [
            f"Ran {when} on {meta['machine']['cpus']} CPUs: the `{PROVIDER}` twin, "
            f"{meta['steps']} steps, staleness {meta['staleness']}, free-running, seeds "
            f"{', '.join(map(str, meta['seeds']))}, overrides "
            f"{', '.join(f'`{o}`' for o in meta['overrides'])}.",
            "",
        ]
    g = result.gain
    interval = f"[{g.low:+.3f}, {g.high:+.3f}]" if g.has_interval else "(no interval)"
    out += [
        f"Held-out reward (`eval-rollout/reward`, AReaL's evaluator after the step named, 0-based:"
        f" one greedy answer to each of the {gym_task.EVAL_SIZE} held-out questions every seed"
        f" shares) per seed;"
        f" reward of record: the mean of the last {LAST_EVALS} evaluations; gain: that minus the"
        f" untrained model's greedy score on the same set, {untrained:.4f}"
        f" ([heldout_untrained.json](benchmarks/smollm2/heldout_untrained.json), vLLM CPU,"
        f" `benchmarks/smollm2_pass_rate.py`).{untrained_line(directory, untrained)}",
        "",
        pipe_table(header, rows),
        "",
        f"Mean gain over {g.n_seeds} seeds: {g.estimate:+.3f} {interval}"
        f" ({round(g.confidence * 100)} % Student-t interval across seeds). **{result.verdict}**.",
    ]
    return "\n".join(out) + "\n"


def untrained_line(directory: Path, untrained: float) -> str:
    """The cross-check of the untrained score through AReaL's evaluator, where it was kept."""
    path = Path(directory) / UNTRAINED_AREAL_JSON
    if not path.is_file():
        return ""
    from areal_a3po.testbeds.smollm2 import task as gym_task

    kept = json.loads(path.read_text())
    same = abs(kept["eval_reward"] - untrained) < 0.5 / gym_task.EVAL_SIZE  # within half a prompt
    agree = "the same" if same else "NOT the same"
    return (
        f" Cross-check through AReaL's own evaluator: the `{PROVIDER}` twin for one step at "
        f"learning rate 0 (`{' '.join(kept['overrides'])}`: the evaluation after step 0 scores "
        f"the untrained weights) reads {kept['eval_reward']:.4f}, {agree} score"
        f" ([{UNTRAINED_AREAL_JSON}](benchmarks/smollm2-validity/{UNTRAINED_AREAL_JSON}))."
    )


def summary(directory: Path = KEPT, untrained_path: Path = UNTRAINED) -> str:
    """One line for quoting: the verdict with the mean gain, its interval and the seeds."""
    runs = Path(directory) / RUNS
    if not runs.is_dir() or not any(runs.glob("*.json")):
        return "not yet run"
    result = analyse(read_records(str(runs)), untrained_score(untrained_path))
    g = result.gain
    interval = f" [{g.low:+.3f}, {g.high:+.3f}]" if g.has_interval else ""
    return f"{result.verdict} (held-out gain {g.estimate:+.3f}{interval}, {g.n_seeds} seeds)"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------- run


def overrides(minibatches: int = MINIBATCHES) -> list[str]:
    return [f"actor.ppo_n_minibatches={minibatches}"]


def evaluations(steps: int) -> int:
    """Held-out evaluations in a run of ``steps`` steps: after the first, then every
    ``evaluator.freq_steps`` steps (the recipe's)."""
    import yaml

    from areal_a3po.compare import runner

    recipe = yaml.safe_load(runner.recipe_path(PROVIDER, TESTBED).read_text())
    return 1 + steps // int(recipe["evaluator"]["freq_steps"]) if steps > 0 else 0


def expected_seconds(n_seeds: int, steps: int = STEPS) -> float:
    from areal_a3po.compare import runner

    return runner.expected_seconds(n_seeds, steps, "free", TESTBED)


def run(seeds: list[int], steps: int, out: Path, kept: Path, minibatches: int = MINIBATCHES) -> int:
    """The recompute twin once per seed (resumable), then its records kept in ``kept/runs``."""
    from studies import stamp  # the sibling script: when and where a kept study ran

    from areal_a3po.compare import runner
    from areal_a3po.report.load import load_scalars

    untrained = untrained_score()  # refuse before hours of CPU if the baseline is not current
    if evaluations(steps) < LAST_EVALS:
        raise SystemExit(f"{steps} steps give {evaluations(steps)} held-out evaluations, the "
                         f"reward of record needs {LAST_EVALS}")  # fmt: skip
    extra = overrides(minibatches)
    print(
        f"validity: {PROVIDER} twin, {TESTBED}, {len(seeds)} seeds x {steps} steps, "
        f"{' '.join(extra)}; untrained held-out score {untrained:.4f}\n"
        f"expected ~{expected_seconds(len(seeds), steps) / 60:.0f} min",
        flush=True,
    )
    started = datetime.datetime.now(datetime.timezone.utc)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, seed in enumerate(seeds):
        res = runner.run_arm(
            PROVIDER, out, steps=steps, staleness=STALENESS, seed=seed,
            label=f"{PROVIDER}_seed{seed}", progress=False, position=i,
            extra_overrides=extra, testbed=TESTBED,
        )  # fmt: skip
        records.append(
            record_from_run(load_scalars(res.run_dir), PROVIDER, seed, provider=PROVIDER,
                            staleness=STALENESS, pace=res.pace, overrides=extra)
        )  # fmt: skip
        print(f"validity: seed {seed} done ({res.start}, {res.total_s / 60:.0f} min)", flush=True)
    # Seeds kept by an earlier invocation (another session) and not rerun here stay in the study.
    earlier = read_records(str(kept / RUNS)) if (kept / RUNS).is_dir() else []
    records += [r for r in earlier if r.seed not in seeds]
    records.sort(key=lambda r: r.seed)
    result = analyse(records, untrained)  # before keeping: a run without 3 evaluations raises
    if (kept / RUNS).exists():
        shutil.rmtree(kept / RUNS)
    write_records(records, str(kept / RUNS))
    this = {"seeds": list(seeds), **stamp(started)}
    before = json.loads((kept / META_JSON).read_text()) if (kept / META_JSON).is_file() else {}
    kept_seeds = {r.seed for r in records}
    earlier_sittings = before.get("sittings") or ([_sitting(before)] if before else [])
    sittings = [x for x in earlier_sittings if set(x["seeds"]) & (kept_seeds - {*seeds})]
    meta = {
        "provider": PROVIDER,
        "testbed": TESTBED,
        "seeds": [r.seed for r in records],
        "steps": steps,
        "staleness": STALENESS,
        "overrides": extra,
        "untrained": str(UNTRAINED.relative_to(ROOT)),
        **stamp(started),
        "sittings": [*sittings, this],  # one per invocation whose seeds are kept
    }
    (kept / META_JSON).write_text(json.dumps(meta, indent=1) + "\n")
    print(f"validity: kept {len(records)} run records in {kept}\n{result.verdict}")
    return 0


def _sitting(meta: dict) -> dict:
    """A kept study's meta written before sittings were recorded: its one sitting."""
    return {k: meta[k] for k in ("seeds", "started_utc", "finished_utc", "machine")}


def keep_untrained(out: Path, kept: Path) -> int:
    """The untrained model's held-out score through AReaL's evaluator (the recompute twin, one
    step at learning rate 0), kept beside the study's records; a finished run is reused."""
    from areal_a3po.compare import runner
    from areal_a3po.report.load import load_scalars

    res = runner.run_arm(
        PROVIDER, out, steps=1, staleness=0, seed=1, label="untrained_lr0", progress=False,
        extra_overrides=UNTRAINED_OVERRIDES, testbed=TESTBED,
    )  # fmt: skip
    data = load_scalars(res.run_dir)
    key = data.find(["eval-rollout/reward"], allow_eval=True)
    if key is None or 0 not in data.scalars[key]:
        raise SystemExit(f"{res.run_dir}: no held-out evaluation after step 0")
    value = float(data.scalars[key][0])
    kept.mkdir(parents=True, exist_ok=True)
    record = {
        "what": "held-out reward of the untrained model through AReaL's evaluator",
        "eval_reward": value,
        "eval_reward_key": key,
        "provider": PROVIDER,
        "testbed": TESTBED,
        "steps": 1,
        "overrides": UNTRAINED_OVERRIDES,
        "command": res.command,
        "start": res.start,
        "offline_score": untrained_score(),
    }
    (kept / UNTRAINED_AREAL_JSON).write_text(json.dumps(record, indent=1) + "\n")
    print(f"validity: untrained held-out score through AReaL's evaluator {value:.4f} "
          f"(offline {record['offline_score']:.4f}); kept in {kept / UNTRAINED_AREAL_JSON}")  # fmt: skip
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run the recompute twin per seed and keep its records")
    p_run.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p_run.add_argument("--steps", type=int, default=STEPS)
    p_run.add_argument("--minibatches", type=int, default=MINIBATCHES)
    p_run.add_argument("--out", type=Path, default=ROOT / "runs" / "smollm2-validity")
    p_run.add_argument("--kept", type=Path, default=KEPT)
    p_unt = sub.add_parser("untrained", help="the untrained score through AReaL's evaluator")
    p_unt.add_argument("--out", type=Path, default=ROOT / "runs" / "smollm2-untrained")
    p_unt.add_argument("--kept", type=Path, default=KEPT)
    p_tab = sub.add_parser("table", help="the markdown of the kept records")
    p_tab.add_argument("--kept", type=Path, default=KEPT)
    args = ap.parse_args()
    if args.cmd == "table":
        print(markdown(args.kept), end="")
        return 0
    if args.cmd == "untrained":
        return keep_untrained(args.out.resolve(), args.kept.resolve())
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(set(seeds)) != len(seeds) or not seeds:
        raise SystemExit(f"--seeds: distinct seeds needed, got {args.seeds}")
    if len(seeds) < MIN_SEEDS:
        print(f"validity: {len(seeds)} seeds give no interval (>= {MIN_SEEDS} needed)")
    return run(seeds, args.steps, args.out.resolve(), args.kept.resolve(), args.minibatches)


if __name__ == "__main__":
    sys.exit(main())
