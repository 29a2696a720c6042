"""Update fidelity study: each provider's gradient against the recompute's, beside its noise floor.

One ``a3po-metrics`` run per (staleness, seed) with ``actor.a3po.update_fidelity_every: N``
(``areal_a3po/update_fidelity.py``): on every N-th update, per PPO minibatch, the relative L2
error and cosine of the gradient trained on each scored provider's π_prox against the gradient on
the recompute's, and the recompute's own split-half noise floor. The runs go through
``a3po compare``'s runner (AReaL's own launcher), at the fidelity study's setting
(``benchmarks/fidelity.py``: ``actor.ppo_n_minibatches=4``, ``current`` with ``fallback: a3po``).

    python benchmarks/update_fidelity.py run --testbed smollm2 --staleness 2,4 --seeds 1,2,3 \\
        --steps 8 --every 2 --out runs/update-fidelity-smollm2 --name smollm2
    python benchmarks/update_fidelity.py reduce runs/update-fidelity-smollm2 --name smollm2
    python benchmarks/update_fidelity.py table docs/benchmarks/update_fidelity/smollm2.json

``run`` prints its expected time first, then runs the arms one after the other and reduces them
into the kept file. Rerunning it into the same ``--out`` resumes (``areal_a3po.compare.runner``:
finished arms are skipped, an interrupted one continues from AReaL's last checkpoint).

Kept data: ``docs/benchmarks/update_fidelity/<name>.json``, per run (staleness, seed) the probe
steps, per (name, minibatch) each probe's value and the mean over probes of each logged scalar,
the probe self-check's largest error, and the mean ``timeperf/train_step`` on probe steps and on
the others (step 0, the warm-up, left out). Reading a run and rendering a kept file are the
report's (:mod:`areal_a3po.report.update_fidelity`): ``docs/benchmarks.md``'s update-fidelity
section (written by ``benchmarks/update_docs.py``) is its ``markdown`` of that file, nothing else.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling scripts

from fidelity import (  # noqa: E402
    N_MINIBATCHES,
    OVERRIDES,
    announce,
    finished_arms,
    grid,
    run_arms,
    study_parser,
)

from areal_a3po.report.update_fidelity import EVERY_KEY, markdown, reduce_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "update_fidelity"
# One training pass over a step's batch (the update itself), seconds, on the 2-core machine: a
# probe costs (scored providers + 2) of them. tiny: the demonstration's train_step on probe steps
# less the others', over its 8 passes (docs/benchmarks/update_fidelity/tiny-demo.json: 17.4 s,
# with a benchmark running beside it); smollm2: the update's CPU time in
# docs/benchmarks/bench_trainer_smollm2.txt (~66 s), rounded up.
PASS_S = {"tiny": 2.2, "smollm2": 70.0}
META = ("testbed", "pace", "started_utc", "finished_utc", "machine")  # what ran, when, where


def _override(command: list[str], key: str) -> str | None:
    """The value of ``key=`` (with or without ``+``) in an arm's launch command."""
    for token in command:
        if token.lstrip("+").startswith(key + "="):
            return token.split("=", 1)[1]
    return None


def reduce_study(out_dir: str, name: str, note: str = "", meta: dict | None = None) -> Path:
    """Every finished arm under ``out_dir`` (``<arm>/summary.json``) -> the kept file."""
    runs = []
    for arm in finished_arms(out_dir):
        every = _override(arm["command"], EVERY_KEY)
        if not every or every == "0":
            print(f"skipped (no {EVERY_KEY}): {arm['summary']}")
            continue
        run = {k: arm[k] for k in ("label", "seed", "staleness", "steps", "command")}
        runs.append({**run, "every": int(every), **reduce_run(arm["run_dir"])})
    if not runs:
        raise SystemExit(f"no finished probed arm (<arm>/summary.json) under {out_dir}")
    KEPT.mkdir(parents=True, exist_ok=True)
    path = KEPT / f"{name}.json"
    if meta is None and path.is_file():  # reduced again: keep what the run recorded
        before = json.loads(path.read_text())
        meta = {k: before[k] for k in META if k in before}
    kept = {"name": name, "note": note, "n_minibatches": N_MINIBATCHES, "runs": runs}
    kept.update(meta or {})
    path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
    return path


# ----------------------------------------------------------------------------- run


def probes_in(steps: int, every: int) -> int:
    """Probe updates in a run of ``steps`` steps (the update at version v: (v + 1) % every == 0)."""
    from areal_a3po.update_fidelity import is_probe

    return sum(is_probe(every, v) for v in range(steps))


def expected_seconds(n_arms: int, steps: int, every: int, n_scored: int, pace: str,
                     testbed: str) -> float:  # fmt: skip
    """The runner's expected time of the arms plus (scored + 2) training passes per probe."""
    from areal_a3po.compare import runner

    probes = probes_in(steps, every) * (n_scored + 2) * PASS_S[testbed]
    return runner.expected_seconds(n_arms, steps, pace, testbed) + n_arms * probes


def _run(args) -> None:
    from studies import stamp  # the sibling script: when and where a kept study ran

    from areal_a3po import fidelity as scoring
    from areal_a3po.compare import runner
    from areal_a3po.compare.arms import check_overrides
    from areal_a3po.config import A3POConfig

    seeds, stalenesses = grid(args)
    providers = [p for p in args.providers.split(",") if p]
    scored = scoring.scored_by_metrics(A3POConfig(eval_providers=providers))
    n_arms = len(seeds) * len(stalenesses)
    expected = expected_seconds(
        n_arms, args.steps, args.every, len(scored), args.pace, args.testbed
    )
    probes = (
        f", {probes_in(args.steps, args.every)} probes each (every {args.every}), scored {scored}"
    )
    announce("update fidelity", args, seeds, stalenesses, expected, probes)
    recipe = runner.recipe_path("a3po", args.testbed)
    overrides = [*OVERRIDES, f"+{EVERY_KEY}={args.every}"]
    if providers:
        overrides.append(f"+actor.a3po.eval_providers=[{','.join(providers)}]")
    overrides += args.set
    check_overrides([recipe], ["actor.prox_logp_method=a3po-metrics", *overrides])  # as the arm
    started = datetime.datetime.now(datetime.timezone.utc)
    run_arms(args, seeds, stalenesses, overrides, "uf_s{staleness}_seed{seed}")
    meta = {"testbed": args.testbed, "pace": args.pace, **stamp(started)}
    print(f"kept: {reduce_study(args.out, args.name, args.note, meta)}")


def main(argv: list[str] | None = None) -> int:
    parser, p_run = study_parser(__doc__, "run the probed a3po-metrics arms, then reduce them",
                                 _run, reduce_study, markdown, KEPT, sorted(PASS_S))  # fmt: skip
    p_run.add_argument("--every", type=int, default=2, help=f"{EVERY_KEY}")
    p_run.add_argument("--providers", default="", help="eval_providers (default: every one)")
    args = parser.parse_args(argv)
    if args.cmd == "run" and args.every < 1:
        parser.error("--every must be >= 1")
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
