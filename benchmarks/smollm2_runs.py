"""Runs of the SmolLM2 recipe twins (issue 19), kept and shown in docs/benchmarks.md.

``keep`` reads one finished run of a twin's header line (``recipes/cpu_smollm2_*.yaml``, AReaL's
local scheduler) and keeps, under ``docs/benchmarks/<testbed>/`` (``smollm2``, or
``smollm2-multiturn`` for the multi-turn twins: the testbed whose entry script the line runs):

* ``runs/<name>_seed<S>.json``: the run's scalars as ``a3po compare`` keeps them
  (``areal_a3po.report.record``: timed stages per step, training and held-out reward);
* ``facts/<name>_seed<S>.json``: what the run was: the command line, exit code and wall time
  (written by the shell that ran it), the model it trained (from the converted checkpoint's
  ``config.json``) and the ``ppo_actor/*`` statistics it logged.

:func:`markdown` renders every kept run (``benchmarks/update_docs.py``, block ``smollm2_runs``):
the per-step time breakdown, the recompute stage's share of trainer compute next to the tiny
model's, and the held-out pass rate at each evaluation with Wilson 95 % intervals.

    python benchmarks/smollm2_runs.py keep FILEROOT TRIAL --name NAME --seed S --run-json F
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy.stats import binomtest
from studies import RUNS, STUDIES, kept_dir  # the sibling script: the tiny studies' kept runs

from areal_a3po.report.load import load_scalars, step_total
from areal_a3po.report.record import RunRecord, read_records, record_from_run, write_records
from areal_a3po.report.text import pipe_table
from areal_a3po.testbeds.smollm2.model import STAMP
from areal_a3po.testbeds.smollm2.task import EVAL_SIZE, TASK, TASK_CONFIG

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "smollm2"
KEPT_MULTITURN = ROOT / "docs" / "benchmarks" / "smollm2-multiturn"
UNTRAINED = KEPT / "heldout_untrained.json"  # the untrained model on the shared held-out set
# The tiny model's recompute runs: its one-minibatch study (as the SmolLM2 recipes), else four.
TINY_STUDIES = (("tiny-mb1", 1), ("tiny-mb4", 4))
MODEL_DIR = "models/smollm2-135m-instruct"
STAGES = ("rollout", "recompute_logp", "train_step", "update_weights", "eval")
MODEL_KEYS = ("model_type", "architectures", "num_hidden_layers", "hidden_size", "vocab_size")
BUILD_KEYS = ("source", "source_version", "gguf_file", "architecture")


def keep(fileroot: Path, trial: str, name: str, seed: int, run_json: Path) -> list[str]:
    """Keep one finished run (see module doc); returns the written paths."""
    run = json.loads(run_json.read_text())  # {"cmd": ..., "rc": ..., "start": ..., "end": ...}
    kept = kept_dir_of(run["cmd"])
    tb = fileroot / "tensorboard" / str(_recipe_value(run["cmd"], "experiment_name")) / trial
    data = load_scalars(str(tb))
    provider = provider_of(run["cmd"])
    record = record_from_run(data, name, seed, provider=provider, overrides=run["cmd"].split()[1:])
    config = json.loads((fileroot / MODEL_DIR / "config.json").read_text())
    build = json.loads((fileroot / MODEL_DIR / STAMP).read_text())  # what the conversion built
    facts = {
        "produced_by": "benchmarks/smollm2_runs.py keep (the run's tensorboard logs and model)",
        "cmd": run["cmd"],
        "exit_code": run["rc"],
        "wall_s": round(run["end"] - run["start"], 1),
        "steps_logged": len(record.reward),
        "model": {k: config.get(k) for k in MODEL_KEYS},
        "model_build": {k: build.get(k) for k in BUILD_KEYS},
        "ppo_actor_tags": sorted(t for t in data.scalars if t.startswith("ppo_actor/")),
    }
    facts_path = kept / "facts" / f"{name}_seed{seed}.json"
    facts_path.parent.mkdir(parents=True, exist_ok=True)
    facts_path.write_text(json.dumps(facts, indent=1) + "\n")
    return [*write_records([record], str(kept / "runs")), str(facts_path)]


def kept_dir_of(cmd: str) -> Path:
    """Where a run of ``cmd`` is kept: :data:`KEPT` for the single-turn twins' entry script,
    :data:`KEPT_MULTITURN` for the multi-turn twins' (the testbed records' ``entry_module``)."""
    from areal_a3po import testbeds

    dirs = {"smollm2": KEPT, "smollm2-multiturn": KEPT_MULTITURN}  # read at call time
    args = cmd.split()
    module = args[args.index("-m") + 1] if "-m" in args[:-1] else None
    for name, kept in dirs.items():
        if testbeds.get(name).entry_module == module:
            return kept
    entries = " or ".join(testbeds.get(name).entry_module for name in dirs)
    raise ValueError(
        f"run command {cmd!r}: not a SmolLM2 twin's header line (python3 -m {entries} "
        "--config RECIPE ...)"
    )


def _recipe_value(cmd: str, key: str, root: Path = ROOT):
    """``key`` of a header line's run: its ``--config`` recipe with the line's ``KEY=VALUE``
    overrides merged over it, as AReaL's loader merges them."""
    from omegaconf import OmegaConf

    args = cmd.split()
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        raise ValueError(f"run command {cmd!r}: no '--config RECIPE' to read {key} from")
    recipe = root / args[args.index("--config") + 1]
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    conf = OmegaConf.merge(OmegaConf.load(recipe), OmegaConf.from_dotlist(overrides))
    value = OmegaConf.select(conf, key)
    if value is None:
        raise ValueError(f"{recipe}: no {key} (nor in the line's overrides)")
    return value


def provider_of(cmd: str, root: Path = ROOT) -> str:
    """``actor.prox_logp_method`` of a header line (:func:`_recipe_value`)."""
    return str(_recipe_value(cmd, "actor.prox_logp_method", root))


def _median(series: dict[int, float], steps: list[int]) -> float | None:
    vals = [series[s] for s in steps if s in series]
    return statistics.median(vals) if vals else None


def _share(record: RunRecord, steps: list[int]) -> float | None:
    """Median over steps of recompute_logp / (recompute_logp + train_step)."""
    rec, train = record.stages.get("recompute_logp", {}), record.stages.get("train_step", {})
    vals = [rec[s] / (rec[s] + train[s]) for s in steps if s in rec and s in train]
    return statistics.median(vals) if vals else None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _steps(record: RunRecord) -> list[int]:
    """The steps a breakdown reads: all but step 0 (vLLM's first batch, nothing to overlap)."""
    steps = sorted(record.reward)
    return steps[1:] if len(steps) > 1 else steps


def _kept_runs(kept: Path) -> list[tuple[RunRecord, dict]]:
    """Every kept run that has its facts file, with those facts."""
    if not (kept / "runs").is_dir():
        return []
    facts = {p.stem: json.loads(p.read_text()) for p in sorted((kept / "facts").glob("*.json"))}
    records = read_records(str(kept / "runs"))
    return [
        (r, facts[f"{r.arm}_seed{r.seed}"]) for r in records if f"{r.arm}_seed{r.seed}" in facts
    ]


def _step_totals(record: RunRecord) -> dict[int, float]:
    return {s: step_total(t) for s, t in record.step_times().items()}


def timings(kept: Path = KEPT) -> dict[str, tuple[str | None, float, float]]:
    """Run name -> (provider, start-up s, median step s); start-up = wall time less the logged
    steps' sum, the median over the breakdown's steps."""
    out = {}
    for r, f in _kept_runs(kept):
        totals = _step_totals(r)
        step = statistics.median(totals[s] for s in _steps(r) if s in totals)
        out[r.arm] = (r.provider, f["wall_s"] - sum(totals.values()), step)
    return out


def compare_minutes(steps: int, kept: Path = KEPT) -> str:
    """Minutes ``a3po compare --testbed smollm2 --steps N`` takes by the kept runs: per twin,
    its start-up plus N median steps."""
    t = timings(kept).values()
    recompute = [step for p, _, step in t if p == "recompute"]
    other = [step for p, _, step in t if p != "recompute"]
    if not recompute or not other:
        return "not yet run"
    startup = statistics.median(s for _, s, _ in t)
    per_step = statistics.median(recompute) + statistics.median(other)
    return f"{(2 * startup + steps * per_step) / 60:.0f}"


def _before_training(kept: Path) -> tuple[str, float, int] | None:
    """(file, greedy held-out pass rate, prompts) of the converted model before training: the
    single-turn runs' ``initial_pass_rate.json``, else the shared held-out set's
    :data:`UNTRAINED` (the set the multi-turn runs' evaluator uses)."""
    path = kept / "initial_pass_rate.json"
    if not path.is_file():
        path = UNTRAINED
    if not path.is_file():
        return None
    for res in json.loads(path.read_text())["results"]:
        if res["task"] == TASK and res["config"] == TASK_CONFIG:
            greedy = res["greedy"]
            return path.name, greedy["pass_rate"], greedy.get("n", res.get("prompts"))
    return None


def _wilson_ci(rate: float, n: int) -> tuple[float, float]:
    ci = binomtest(round(rate * n), n).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def _wilson(rate: float, n: int = EVAL_SIZE) -> str:
    low, high = _wilson_ci(rate, n)
    return f"{rate:.3f} [{low:.3f}, {high:.3f}]"


def newcombe_ci(after: float, before: tuple[float, int], n: int = EVAL_SIZE):
    """(after - before, low, high): Newcombe's hybrid score interval (his method 10, the two
    Wilson intervals combined) for independent samples; conservative here, where the prompts are
    the same and the two outcomes correlate positively."""
    p0, n0 = before
    (l1, u1), (l0, u0) = _wilson_ci(after, n), _wilson_ci(p0, n0)
    d = after - p0
    low = d - ((after - l1) ** 2 + (u0 - p0) ** 2) ** 0.5
    high = d + ((u1 - after) ** 2 + (p0 - l0) ** 2) ** 0.5
    return d, low, high


def _newcombe(after: float, before: tuple[float, int]) -> str:
    d, low, high = newcombe_ci(after, before)
    return f"{d:+.3f} [{low:+.3f}, {high:+.3f}]"


# Why the kept runs' held-out rewards no longer count (they predate vllm.logprobs_mode).
RAW_LOGPROBS = (
    "these runs trained on vLLM's raw behaviour log-probs, before temperature, against the "
    "trainer's at T = 0.7, and were scored on the former per-seed held-out split"
)


def markdown(kept: Path = KEPT) -> str:
    """Every kept run: facts, time breakdown, recompute share, held-out pass rate."""
    runs = _kept_runs(kept)
    if not runs:
        return "*not yet run.*\n"
    records = [r for r, _ in runs]
    return "\n".join(_runs_table(runs) + _breakdown(records) + _held_out(records, kept))


def _runs_table(runs: list[tuple[RunRecord, dict]]) -> list[str]:
    """What each run was: its command, exit code, wall time, steps and the model it trained."""
    rows = []
    for r, f in runs:
        m, b = f["model"], f["model_build"]
        rows.append([
            f"`{r.arm}`", f"`{f['cmd']}`", str(f["exit_code"]), f"{f['wall_s']:.0f}",
            str(f["steps_logged"]), str(len(f["ppo_actor_tags"])),
            f"{b['gguf_file']} ({b['source']} {b['source_version']}): {m['num_hidden_layers']}"
            f" layers, hidden {m['hidden_size']}, vocabulary {m['vocab_size']},"
            f" as {m['architectures'][0]}",
        ])  # fmt: skip
    header = ["run", "command", "exit", "wall s", "steps", "`ppo_actor/*` tags", "model trained"]
    return [
        "Runs (each the header's local line with the overrides shown; the model is SmolLM2's"
        " Llama, converted into a Qwen2 container that computes it exactly,"
        " `areal_a3po/testbeds/smollm2/model.py`):",
        "",
        pipe_table(header, rows, align_right_from=2),
        "",
    ]


def _breakdown(records: list[RunRecord]) -> list[str]:
    """Per run, the median seconds of each stage and the recompute share; the tiny model's
    recompute share beside them."""
    rows = []
    for r in records:
        steps = _steps(r)
        cells = [_fmt(_median(r.stages.get(s, {}), steps)) for s in STAGES[:-1]]
        cells.append(_fmt(_median(r.stages.get("eval", {}), sorted(r.eval_reward))))
        totals = _step_totals(r)
        rows.append([
            f"`{r.arm}`", f"{steps[0]}-{steps[-1]}", _fmt(r.stages.get("rollout", {}).get(0)),
            *cells, _fmt(statistics.median(totals[s] for s in steps)), _fmt(_share(r, steps), ".3f"),
        ])  # fmt: skip
    rows += _tiny_share_row()
    header = ["run", "steps", "step 0 generation", *STAGES, "step total", "recompute share"]
    return [
        "Per-step time breakdown, seconds, median over the steps shown (step 0 is left out: its"
        " `rollout` wait is the first batch's whole generation, shown in its own column; after it,"
        " generation overlaps training and `rollout` is only the trainer's wait). Recompute share"
        " = `recompute_logp` / (`recompute_logp` + `train_step`), the trainer compute the"
        " recompute forward takes; `eval` is the median over the evaluated steps:",
        "",
        pipe_table(header, rows, align_right_from=1),
        "",
    ]


def _tiny_share_row() -> list[list[str]]:
    """The tiny model's recompute share: its first kept study of :data:`TINY_STUDIES`."""
    for study, minibatches in TINY_STUDIES:
        tiny_runs = kept_dir(STUDIES[study]) / RUNS
        tiny = (
            [r for r in read_records(str(tiny_runs)) if r.arm == "recompute"]
            if tiny_runs.is_dir()
            else []
        )
        if tiny:
            shares = [_share(r, _steps(r)) for r in tiny]
            steps = _steps(tiny[0])
            return [[
                f"tiny model, `recompute` (median of {len(tiny)} {study} runs, {minibatches}"
                f" minibatch{'es' if minibatches > 1 else ''})", f"{steps[0]}-{steps[-1]}",
                *["-"] * 7, f"{statistics.median(shares):.3f}",
            ]]  # fmt: skip
    return []


def _held_out(records: list[RunRecord], kept: Path) -> list[str]:
    """Each evaluation's held-out reward with its interval, and its change since before training."""
    rows = []
    before_file, *before = _before_training(kept) or (None,)
    before = tuple(before) if before_file else None
    if before is not None:
        rows.append([f"before training (`{before_file}`)", "-", _wilson(*before), "-"])
    for r in records:
        rows += [
            [f"`{r.arm}`", str(s), _wilson(v), _newcombe(v, before) if before else "-"]
            for s, v in sorted(r.eval_reward.items())
        ]
    if not rows:
        return []
    diff = "change since before training [95 % CI]"
    withdrawn = (
        [f"**Withdrawn as reward evidence**: {RAW_LOGPROBS}; the stage times above stand.", ""]
        if kept == KEPT
        else []
    )
    heldout = (
        f"{EVAL_SIZE} held-out prompts of seed 1's split"
        if kept == KEPT
        else f"the {EVAL_SIZE} held-out prompts every seed and arm shares, single-turn"
    )
    return [
        *withdrawn,
        f"Held-out reward (`eval-rollout/reward`: {heldout}, one greedy answer each, AReaL's"
        " evaluator after the step named): the mean"
        " of reasoning-gym's score, 1 for the exact answer and partial credit"
        " len(reference)/len(answer) for an answer that contains it, so nearly the pass rate."
        " Wilson 95 % intervals at n = 64, approximately conservative for a score in [0, 1] (its"
        " variance is at most p(1 - p)); the change since before training with Newcombe's"
        " interval for two proportions (conservative for the same prompts twice):",
        "",
        pipe_table(["run", "after step", "held-out reward [95 % CI]", diff], rows),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep", help="keep one finished run under docs/benchmarks/<testbed>/")
    k.add_argument("fileroot", type=Path)
    k.add_argument("trial")
    k.add_argument("--name", required=True)
    k.add_argument("--seed", type=int, required=True)
    k.add_argument("--run-json", type=Path, required=True, help="cmd, rc, start, end of the run")
    sub.add_parser("show", help="print the Markdown docs/benchmarks.md shows")
    args = ap.parse_args(argv)
    if args.cmd == "keep":
        for p in keep(args.fileroot, args.trial, args.name, args.seed, args.run_json):
            print(p)
    else:
        print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
