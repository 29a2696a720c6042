"""Fidelity study: every approximate provider against AReaL's recompute, per lag and minibatch.

One ``a3po-metrics`` run per (staleness, seed) scores every provider at once on the recompute's
own trajectory (``areal_a3po/fidelity.py``): ``a3po``, ``a3po-linear``, ``a3po-step``, ``behave``,
AReaL's ``loglinear`` and ``current`` with ``actor.a3po.fallback`` (``a3po`` here, so that it is
not ``a3po-step`` under another name). The runs go through ``a3po compare``'s runner (AReaL's own
launcher, one process group per arm) at ``actor.ppo_n_minibatches=4``.

    python benchmarks/fidelity.py run --testbed smollm2 --staleness 2,4 --seeds 1,2,3 --steps 8 \\
        --out /tmp/fidelity-smollm2 --name smollm2      # runs, then reduces into the kept file
    python benchmarks/fidelity.py reduce /tmp/fidelity-smollm2 --name smollm2  # logs -> kept file
    python benchmarks/fidelity.py table docs/benchmarks/fidelity/smollm2.json   # markdown

Kept data: ``docs/benchmarks/fidelity/<name>.json``, per run (staleness, seed) and per
(provider, minibatch, lag bucket) the token-weighted mean over the run's steps of each fidelity
metric and the bucket's token count. The markdown (``docs/benchmarks.md``'s fidelity section,
written by ``benchmarks/update_docs.py``) is :func:`markdown` of that file, nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "fidelity"
PROVIDERS = ("a3po-step", "a3po", "a3po-linear", "loglinear", "behave", "current")
N_MINIBATCHES = 4
OVERRIDES = (
    f"actor.ppo_n_minibatches={N_MINIBATCHES}",
    "+actor.a3po.fallback=a3po",  # current = exact on minibatch 0, the paper's a3po after
)


# a3po-step is pi_theta on minibatch 0, where the recompute evaluates the same weights: a larger
# mean |dlogp| there means the recompute and the training forward disagree (e.g. packed CPU
# micro-batches), and no provider's score against it is evidence.
GROUND_TRUTH_TOL = 1e-4

# Kept files that no longer count as evidence, and why (kept as they ran, shown as withdrawn).
WITHDRAWN = {
    "smollm2": (
        "its behaviour log-probs were vLLM's raw ones, before temperature, against the trainer's "
        "at T = 0.7: on lag-0 tokens of minibatch 0 every provider that reads pi_behave scores "
        "that mismatch, not its approximation (the `a3po` and `behave` rows there)"
    ),
}


def ground_truth_gap(run: dict) -> float:
    """Mean |dlogp| of ``a3po-step`` on minibatch 0 in one kept run (0 when the truth is sound)."""
    cells = [c for b, c in run["scores"].get("a3po-step", {}).items() if b.startswith("0/")]
    n = sum(c["n_tokens"] for c in cells)
    return sum(c["abs_dlogp"] * c["n_tokens"] for c in cells) / n if n else 0.0


def _metric_re():
    from areal_a3po import keys

    return re.compile(re.escape(keys.PREFIX) + keys.FIDELITY_PATTERN)


def _tokens_re():
    from areal_a3po import keys

    return re.compile(
        re.escape(keys.PREFIX)
        + keys.FIDELITY
        + r"/mb(?P<minibatch>\d+)/lag(?P<lag>_ge\d+|\d+)/n_tokens"
    )


def reduce_run(run_dir: str) -> dict:
    """One run's tensorboard scalars -> {provider: {"mb/lag": {metric: mean, "n_tokens": n}}}.

    Means are weighted by each step's bucket token count (the statistic's own denominator), so
    the result is the mean over every scored token of the run.
    """
    from areal_a3po.report.load import load_scalars

    data = load_scalars(run_dir)
    tokens: dict[tuple[str, str], dict[int, float]] = {}
    for tag, series in data.scalars.items():
        m = _tokens_re().search(tag)
        if m:
            tokens[(m["minibatch"], m["lag"])] = series
    sums: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for tag, series in data.scalars.items():
        m = _metric_re().search(tag)
        if not m or m["metric"] == "n_tokens":
            continue
        counts = tokens[(m["minibatch"], m["lag"])]
        cell = sums[m["provider"]][f"{m['minibatch']}/{m['lag']}"]
        for step, value in series.items():
            cell[m["metric"]] += value * counts[step]
            cell["_n_" + m["metric"]] += counts[step]
    out: dict = {}
    for provider, cells in sorted(sums.items()):
        out[provider] = {}
        for bucket, acc in sorted(cells.items()):
            metrics = {k: acc[k] / acc["_n_" + k] for k in acc if not k.startswith("_n_")}
            metrics["n_tokens"] = max(acc["_n_" + k] for k in acc if not k.startswith("_n_"))
            out[provider][bucket] = metrics
    return out


def reduce_mismatch(run_dir: str) -> dict | None:
    """The run's train-inference mismatch (areal_a3po/mismatch.py): mean |dlogp| over every
    fresh token of the run, and their number; None where the run did not log it."""
    from areal_a3po.report.load import load_scalars
    from areal_a3po.report.summarise import mismatch_steps

    # A step without fresh tokens logs n_tokens 0 and no average (nothing to average).
    cells = [c for c in mismatch_steps(load_scalars(run_dir)).values() if c.get("n_tokens")]
    n = sum(c["n_tokens"] for c in cells)
    if not n:
        return None
    return {"abs_dlogp": sum(c["abs_dlogp"] * c["n_tokens"] for c in cells) / n, "n_tokens": n}


def reduce_study(out_dir: str, name: str, note: str = "") -> Path:
    """Every arm under ``out_dir`` (the runner's layout, ``<arm>/summary.json``) -> kept file."""
    runs = []
    for summary in sorted(Path(out_dir).glob("*/summary.json")):
        arm = json.loads(summary.read_text())
        if len(arm.get("rewards", [])) < arm["steps"]:
            print(f"skipped (incomplete: {len(arm.get('rewards', []))}/{arm['steps']}): {summary}")
            continue
        runs.append(
            {
                "label": arm["label"],
                "seed": arm["seed"],
                "staleness": arm["staleness"],
                "steps": arm["steps"],
                "command": arm["command"],
                "scores": reduce_run(arm["run_dir"]),
                "mismatch": reduce_mismatch(arm["run_dir"]),
            }
        )
    if not runs:
        raise SystemExit(f"no arm (<arm>/summary.json) under {out_dir}")
    KEPT.mkdir(parents=True, exist_ok=True)
    path = KEPT / f"{name}.json"
    kept = {"name": name, "note": note, "n_minibatches": N_MINIBATCHES, "runs": runs}
    path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
    return path


def _mean_ci(values: list[float]) -> str:
    """Mean across seeds with a 95 % t interval (scipy), or the mean alone for one seed."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return f"{mean:.3g}"
    half = stats.t.ppf(0.975, n - 1) * stats.tstd(values) / n**0.5
    return f"{mean:.3g} [{mean - half:.3g}, {mean + half:.3g}]"


def _mismatch_line(runs: list[dict]) -> str:
    """The train-inference mismatch of the same runs, beside the providers' scores."""
    measured = [r["mismatch"]["abs_dlogp"] for r in runs if r.get("mismatch")]
    if len(measured) < len(runs):
        return (
            "Train-inference mismatch: not logged by these runs (kept before the monitor, "
            "`ppo_actor/a3po/mismatch/*`), so a lag-0 score here cannot be told from it."
        )
    return (
        f"Train-inference mismatch of the same runs (lag-0 tokens; the recompute ran, so every "
        f"minibatch counts): mean |log π_trainer − log π_behave| = {_mean_ci(measured)} nats. "
        "A provider that reads π_behave cannot score below it at lag 0."
    )


def _lag_key(bucket: str) -> tuple[int, int]:
    mb, lag = bucket.split("/")
    return int(mb), (10**6 + int(lag[3:]) if lag.startswith("_ge") else int(lag))


def markdown(path: str | Path) -> str:
    """The fidelity tables of one kept file (per staleness: a summary per provider across seeds,
    then provider x lag x minibatch, seed means)."""
    kept = json.loads(Path(path).read_text())
    lines = []
    if kept.get("note"):
        lines += [f"*{kept['note']}*", ""]
    if Path(path).stem in WITHDRAWN:
        lines += [f"**Withdrawn**: {WITHDRAWN[Path(path).stem]}. Kept as it ran, no longer "
                  "evidence.", ""]  # fmt: skip
    by_staleness: dict[int, list[dict]] = defaultdict(list)
    for run in kept["runs"]:
        by_staleness[run["staleness"]].append(run)
    for staleness, runs in sorted(by_staleness.items()):
        seeds = sorted(r["seed"] for r in runs)
        steps = sorted({r["steps"] for r in runs})
        lines += [
            f"**staleness {staleness}** (`rollout.max_head_offpolicyness={staleness}`, "
            f"`ppo_n_minibatches={kept['n_minibatches']}`, seeds {seeds}, steps {steps}); "
            "per provider over all loss tokens, mean across seeds [95 % t interval]:",
            "",
        ]
        gaps = [ground_truth_gap(r) for r in runs]
        if max(gaps) > GROUND_TRUTH_TOL:
            lines += [
                f"**Ground truth off**: `a3po-step` differs from the recompute on minibatch 0 by "
                f"{max(gaps):.3g} nats (it must be 0: same weights), so the recompute and the "
                "training forward disagree and these scores are not fidelity evidence.",
                "",
            ]
        lines += [
            "| provider | mean \\|Δ log π_prox\\| | clip-decision mismatch | rejection mismatch |",
            "|---|---|---|---|",
        ]
        for provider in PROVIDERS:
            per_seed = defaultdict(list)
            for run in runs:
                cells = run["scores"].get(provider, {})
                n = sum(c["n_tokens"] for c in cells.values())
                if not n:
                    continue
                for metric in ("abs_dlogp", "clip_mismatch", "reject_mismatch"):
                    total = sum(c[metric] * c["n_tokens"] for c in cells.values() if metric in c)
                    per_seed[metric].append(total / n)
            if per_seed:
                lines.append(
                    f"| `{provider}` | {_mean_ci(per_seed['abs_dlogp'])} | "
                    f"{_mean_ci(per_seed['clip_mismatch'])} | {_mean_ci(per_seed['reject_mismatch'])} |"
                )
        lines += ["", _mismatch_line(runs)]
        buckets = sorted(
            {b for r in runs for cells in r["scores"].values() for b in cells}, key=_lag_key
        )
        mbs = sorted({_lag_key(b)[0] for b in buckets})
        lags = sorted({b.split("/")[1] for b in buckets}, key=lambda x: _lag_key("0/" + x))
        lines += [
            "",
            "Per lag and PPO minibatch (mean over seeds): mean |Δ log π_prox| · clip mismatch · "
            "rejection mismatch; tokens per seed in the lag's row.",
            "",
            "| provider | lag | " + " | ".join(f"minibatch {mb}" for mb in mbs) + " |",
            "|---|---|" + "---|" * len(mbs),
        ]
        for provider in PROVIDERS:
            for lag in lags:
                cells = []
                tokens = 0.0
                for mb in mbs:
                    vals = [r["scores"].get(provider, {}).get(f"{mb}/{lag}") for r in runs]
                    vals = [v for v in vals if v]
                    if not vals:
                        cells.append("–")
                        continue
                    tokens += sum(v["n_tokens"] for v in vals) / len(runs)

                    def avg(metric, vals=vals):
                        return sum(v.get(metric, 0.0) for v in vals) / len(vals)

                    cells.append(
                        f"{avg('abs_dlogp'):.3g} · {avg('clip_mismatch'):.1%} · "
                        f"{avg('reject_mismatch'):.1%}"
                    )
                if any(c != "–" for c in cells):
                    shown = lag.replace("_ge", "≥")
                    lines.append(
                        f"| `{provider}` | {shown} ({tokens:.0f} tok) | " + " | ".join(cells) + " |"
                    )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _run(args) -> None:
    from areal_a3po.compare import runner
    from areal_a3po.compare.arms import check_overrides

    seeds = [int(s) for s in args.seeds.split(",")]
    stalenesses = [int(s) for s in args.staleness.split(",")]
    n_arms = len(seeds) * len(stalenesses)
    expected = runner.expected_seconds(n_arms, args.steps, args.pace, args.testbed)
    print(
        f"fidelity study: {n_arms} a3po-metrics arms ({args.testbed}, staleness {stalenesses}, "
        f"seeds {seeds}, {args.steps} steps, pace {args.pace}); expected about "
        f"{expected / 60:.0f} min (runner.expected_seconds), started "
        f"{time.strftime('%H:%M:%S UTC', time.gmtime())}",
        flush=True,
    )
    recipe = runner.recipe_path("a3po", args.testbed)
    overrides = [*OVERRIDES, *args.set]
    check_overrides([recipe], overrides)
    for i, (seed, staleness) in enumerate((s, k) for s in seeds for k in stalenesses):
        for attempt in (1, 2):  # a launch can fail on a loaded machine (ports, vLLM start-up)
            try:
                runner.run_arm(  # the arm label may not carry the provider's '-'
                    "a3po-metrics", args.out, steps=args.steps, staleness=staleness, seed=seed,
                    label=f"metrics_s{staleness}_seed{seed}", progress=not args.no_progress,
                    position=i, extra_overrides=overrides, pace=args.pace, testbed=args.testbed,
                )  # fmt: skip
                break
            except runner.EmbeddedRunError as exc:
                print(f"arm failed (attempt {attempt}/2): {str(exc).splitlines()[0]}", flush=True)
                shutil.rmtree(Path(args.out) / f"metrics_s{staleness}_seed{seed}", True)
    print(f"kept: {reduce_study(args.out, args.name, args.note)}")


def study_parser(doc, run_help, run, reduce, markdown_of, kept: Path, testbeds):
    """(parser, its ``run`` subparser): the ``run`` / ``reduce`` / ``table`` commands of an
    ``a3po-metrics`` study script (this one and ``update_fidelity.py``), ``run``'s shared options
    added; the caller adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help=run_help)
    p_run.add_argument("--testbed", choices=testbeds, default="smollm2")
    p_run.add_argument("--staleness", default="2,4")
    p_run.add_argument("--seeds", default="1,2,3")
    p_run.add_argument("--steps", type=int, default=8)
    p_run.add_argument("--pace", choices=["free", "cap"], default="cap")
    p_run.add_argument("--out", required=True, help="the runner's output directory (scratch)")
    p_run.add_argument(
        "--name", required=True, help=f"kept file {kept.relative_to(ROOT)}/NAME.json"
    )
    p_run.add_argument("--note", default="", help="a line shown above the tables")
    p_run.add_argument("--set", action="append", default=[], help="extra AReaL override")
    p_run.add_argument("--no-progress", action="store_true")
    p_run.set_defaults(fn=run)
    p_red = sub.add_parser("reduce", help="reduce finished arms into the kept file")
    p_red.add_argument("out")
    p_red.add_argument("--name", required=True)
    p_red.add_argument("--note", default="")
    p_red.set_defaults(fn=lambda a: print(reduce(a.out, a.name, a.note)))
    p_tab = sub.add_parser("table", help="print the markdown tables of a kept file")
    p_tab.add_argument("kept")
    p_tab.set_defaults(fn=lambda a: print(markdown_of(a.kept), end=""))
    return parser, p_run


def main(argv: list[str] | None = None) -> int:
    parser, _ = study_parser(__doc__, "run the a3po-metrics arms, then reduce them", _run,
                             reduce_study, markdown, KEPT, ["tiny", "smollm2"])  # fmt: skip
    args = parser.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
