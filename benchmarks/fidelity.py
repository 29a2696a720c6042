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
metric and the bucket's token count (``areal_a3po.report.fidelity.reduce_run``). The markdown
(``docs/benchmarks.md``'s fidelity section, written by ``benchmarks/update_docs.py``) is the
product's table of that file (``a3po fidelity FILE`` prints the same), nothing else.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from areal_a3po.report import fidelity as table

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "fidelity"
PROVIDERS = table.PROVIDERS
N_MINIBATCHES = 4
OVERRIDES = (
    f"actor.ppo_n_minibatches={N_MINIBATCHES}",
    "+actor.a3po.fallback=a3po",  # current = exact on minibatch 0, the paper's a3po after
)

# Kept files that no longer count as evidence, and why (kept as they ran, shown as withdrawn).
WITHDRAWN = {
    "smollm2-raw-logprobs": (
        "its behaviour log-probs were vLLM's raw ones, before temperature, against the trainer's "
        "at T = 0.7: on lag-0 tokens of minibatch 0 every provider that reads pi_behave scores "
        "that mismatch, not its approximation (the `a3po` and `behave` rows there)"
    ),
}


def finished_arms(out_dir: str) -> Iterator[dict]:
    """The runner's summary of every arm under ``out_dir`` (``<arm>/summary.json``) that logged
    all its steps; the others are named and left out."""
    for summary in sorted(Path(out_dir).glob("*/summary.json")):
        arm = json.loads(summary.read_text())
        if len(arm.get("rewards", [])) < arm["steps"]:
            print(f"skipped (incomplete: {len(arm.get('rewards', []))}/{arm['steps']}): {summary}")
            continue
        yield {**arm, "summary": str(summary)}


def reduce_study(out_dir: str, name: str, note: str = "") -> Path:
    """Every arm under ``out_dir`` (the runner's layout, ``<arm>/summary.json``) -> kept file."""
    runs = []
    for arm in finished_arms(out_dir):
        what = {k: arm[k] for k in ("label", "seed", "staleness", "steps", "command")}
        runs.append(table.reduce_run(arm["run_dir"], **what))
    if not runs:
        raise SystemExit(f"no arm (<arm>/summary.json) under {out_dir}")
    KEPT.mkdir(parents=True, exist_ok=True)
    path = KEPT / f"{name}.json"
    kept = {"name": name, "note": note, "n_minibatches": N_MINIBATCHES, "runs": runs}
    path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
    return path


def markdown(path: str | Path) -> str:
    """The fidelity tables of one kept file (``areal_a3po.report.fidelity.markdown``), under
    its note and, for a withdrawn file, why it is no longer evidence."""
    kept = json.loads(Path(path).read_text())
    head = [f"*{kept['note']}*", ""] if kept.get("note") else []
    if Path(path).stem in WITHDRAWN:
        head += [f"**Withdrawn**: {WITHDRAWN[Path(path).stem]}. Kept as it ran, no longer "
                 "evidence.", ""]  # fmt: skip
    return table.markdown(kept["runs"], kept["n_minibatches"], head)


def _run(args) -> None:
    from areal_a3po.compare import runner
    from areal_a3po.compare.arms import check_overrides

    seeds, stalenesses = grid(args)
    n_arms = len(seeds) * len(stalenesses)
    expected = runner.expected_seconds(n_arms, args.steps, args.pace, args.testbed)
    announce("fidelity study", args, seeds, stalenesses, expected)
    recipe = runner.recipe_path("a3po", args.testbed)
    overrides = [*OVERRIDES, *args.set]
    check_overrides([recipe], overrides)
    run_arms(args, seeds, stalenesses, overrides, "metrics_s{staleness}_seed{seed}")
    print(f"kept: {reduce_study(args.out, args.name, args.note)}")


def announce(study: str, args, seeds, stalenesses, expected_s: float, detail: str = "") -> None:
    """The study's first line: its arms, its expected time (printed before it starts), the clock."""
    print(
        f"{study}: {len(seeds) * len(stalenesses)} a3po-metrics arms ({args.testbed}, staleness "
        f"{stalenesses}, seeds {seeds}, {args.steps} steps{detail}, pace {args.pace}); expected "
        f"about {expected_s / 60:.0f} min, started {time.strftime('%H:%M:%S UTC', time.gmtime())}",
        flush=True,
    )


def grid(args) -> tuple[list[int], list[int]]:
    """(seeds, stalenesses) of ``run``'s ``--seeds`` and ``--staleness`` lists."""
    return [int(s) for s in args.seeds.split(",")], [int(s) for s in args.staleness.split(",")]


def run_arms(args, seeds, stalenesses, overrides: list[str], label: str) -> None:
    """One ``a3po-metrics`` arm per (seed, staleness) through ``a3po compare``'s runner, labelled
    ``label.format(staleness=..., seed=...)`` (no '-': the arm label may not carry the provider's);
    a failed launch is retried once in a clean directory, a second failure's directory is kept."""
    from areal_a3po.compare import runner

    for i, (seed, staleness) in enumerate((s, k) for s in seeds for k in stalenesses):
        arm = label.format(staleness=staleness, seed=seed)
        for attempt in (1, 2):  # a launch can fail on a loaded machine (ports, vLLM start-up)
            try:
                runner.run_arm(
                    "a3po-metrics", args.out, steps=args.steps, staleness=staleness, seed=seed,
                    label=arm, progress=not args.no_progress, position=i,
                    extra_overrides=overrides, pace=args.pace, testbed=args.testbed,
                )  # fmt: skip
                break
            except runner.EmbeddedRunError as exc:
                print(f"arm failed (attempt {attempt}/2): {str(exc).splitlines()[0]}", flush=True)
                if attempt == 1:
                    shutil.rmtree(Path(args.out) / arm, True)


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
    from areal_a3po.testbeds import TESTBEDS

    parser, _ = study_parser(__doc__, "run the a3po-metrics arms, then reduce them", _run,
                             reduce_study, markdown, KEPT, list(TESTBEDS))  # fmt: skip
    args = parser.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
