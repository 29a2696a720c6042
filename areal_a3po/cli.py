"""``a3po`` command line: ``a3po info`` (is the plugin active?), ``a3po compare``, ``a3po fidelity``,
``a3po recipe``."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator


def _info(args: argparse.Namespace) -> int:
    from areal_a3po import __version__, _bootstrap, activation, registry

    print(f"areal-a3po {__version__}")
    if _bootstrap.disabled():
        print(f"activation: DISABLED by {_bootstrap.DISABLE_ENV}")
    else:
        print(f"activation hook installed at interpreter start: {_bootstrap.installed()}")
        if not activation.active():
            print(f"  why not: {activation.inactive_reason()}")
            print(f"  fix: {activation.FIX}")
    import areal.api.cli_args  # noqa: F401  (triggers the hook, as in any AReaL process)
    import areal.trainer.ppo.actor  # noqa: F401
    import areal.utils.recover  # noqa: F401  (hybrid's state beside AReaL's recover checkpoint)

    from areal_a3po import coupling
    from areal_a3po.coupling import gate

    print(
        f"areal {gate.areal_version()}: supported={gate.areal_supported()} "
        f"hooked={coupling.hooked()}"
    )
    print(f"areal installed from: {gate.areal_origin()}")
    points = gate.applied_patch_points()
    print(f"patch points applied ({len(points)}):")
    for point in points:
        print(f"  {point.target}: {point.detail}")
    print("providers (actor.prox_logp_method):")
    for name, p in registry.providers().items():
        if p.calibrated:
            flags = "recompute on calibration steps"
        else:
            flags = "recompute forward" if p.needs_recompute else "no recompute"
        flags += ", AReaL built-in" if p.native else ""
        print(f"  {name:<14} {flags:<34} {p.description}")
    print("losses (actor.a3po.loss): " + ", ".join(registry.losses()))
    return 0 if (coupling.hooked() or _bootstrap.disabled()) else 1


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(
            f"a3po compare: {what} must be integers separated by commas, got {text!r}"
        ) from None


@contextlib.contextmanager
def _stop_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (a preemption, ``kill``), SIGHUP (unless ignored, as under ``nohup``) and SIGINT
    end a study as Ctrl-C does: the running arm's process group is stopped (``runner.run_arm``)
    and rerunning the command resumes. SIGINT too, because a shell starts ``cmd &`` with SIGINT
    ignored and Python then never raises KeyboardInterrupt.
    """

    def interrupt(signum, frame):
        for sig in wanted:  # a second signal must not cut the arm's clean-up short
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    wanted = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        wanted.append(signal.SIGHUP)
    before = {sig: signal.signal(sig, interrupt) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _compare(args: argparse.Namespace) -> int:
    from areal_a3po import report

    runs = list(args.runs)
    labels = args.labels.split(",") if args.labels else None
    if not runs:  # the embedded default: the CPU recipe twins through AReaL's local scheduler
        from areal_a3po.embedded import runner, testbeds

        providers = (
            [p.strip() for p in args.providers.split(",") if p.strip()]
            if args.providers
            else runner.default_providers()
        )
        stalenesses = _int_list(args.staleness or str(runner.DEFAULT_STALENESS), "--staleness")
        seeds = _int_list(args.seed or "1", "--seeds")
        bed = testbeds.get(args.testbed)
        steps = args.steps if args.steps is not None else bed.default_steps or runner.DEFAULT_STEPS
        pace = args.pace if args.pace != "auto" else ("cap" if len(stalenesses) > 1 else "free")
        n_arms = len(providers) * len(stalenesses) * len(seeds)
        print(
            f"a3po compare: {n_arms} arms ({len(providers)} providers x {len(stalenesses)} "
            f"staleness x {len(seeds)} seeds), {steps} steps each, pace={pace}; expected "
            f"~{runner.expected_seconds(n_arms, steps, pace, args.testbed) / 60:.0f} min on a "
            f"2-core CPU machine, testbed {args.testbed} (sequential, one arm at a time)",
            flush=True,
        )
        if args.overrides:
            print("a3po compare: AReaL overrides for every arm: " + " ".join(args.overrides))
        from areal_a3po.embedded.arms import OverrideError
        from areal_a3po.recipes import RecipeError

        try:
            with _stop_like_ctrl_c():
                results = runner.run_default(  # arms interleaved per seed: providers of seed 1..
                    out_dir=args.out,
                    steps=steps,
                    staleness=stalenesses,
                    seed=seeds,
                    providers=providers,
                    progress=not args.no_progress,
                    pace=pace,
                    extra_overrides=args.overrides,
                    testbed=args.testbed,
                )
        except (OverrideError, RecipeError, runner.EmbeddedRunError) as exc:  # no traceback
            raise SystemExit(f"a3po compare: {exc}") from None
        except KeyboardInterrupt as exc:
            print(
                f"a3po compare: interrupted ({exc or 'SIGINT'}); the running arm was stopped. Run "
                "the same command again to resume: finished arms are skipped.",
                file=sys.stderr,
            )
            return 130
        runs = [r.run_dir for r in results]
        # One arm per (provider, staleness point); its seeds are repeats of the same arm.
        swept = len(stalenesses) > 1
        labels = labels or [r.provider + (f"_s{r.staleness}" if swept else "") for r in results]
        seeds = [r.seed for r in results]
        sweep = [(r.provider, r.staleness) for r in results] if swept else None
        caps = [r.staleness for r in results]
        run_providers = [r.provider for r in results]
    else:
        if args.overrides:
            raise SystemExit(
                "a3po compare: --set applies to the runs the embedded default starts; with RUN "
                "directories the runs already ran (their overrides are in their launch lines)"
            )
        run_providers, pace = None, None
        sweep = None
        seeds = _int_list(args.seed, "--seeds") if args.seed else None  # one per RUN
        caps = _int_list(args.staleness, "--staleness") if args.staleness else None
        if caps is not None and len(caps) == 1:
            caps *= len(runs)
    from areal_a3po.report.load import RunDataError

    try:
        rep = report.compare(
            runs,
            os.path.join(args.out, "report"),
            labels=labels,
            last_n=args.last,
            warmup=args.warmup,
            seeds=seeds,
            sweep=sweep,
            caps=caps,
            providers=run_providers,
            pace=pace,
            overrides=args.overrides,
            target=args.target_reward,
            margin=args.margin,
            provider_notes=_provider_notes(run_providers),
        )
    except (FileNotFoundError, RunDataError) as exc:  # a run dir that cannot be read: no report
        print(f"a3po compare: error: {exc}", file=sys.stderr)
        return 2
    print(report.format_table(rep))
    print(f"\nreport: {rep.paths.get('report_md')}  json: {rep.paths.get('report_json')}")
    for name, path in sorted(rep.paths.items()):
        if path.endswith(".png"):
            print(f"plot {name}: {path}")
    return 0


def _provider_notes(providers: list[str] | None) -> dict[str, str]:
    """Provider -> the first line of its registered description, for the report."""
    from areal_a3po import registry

    known = registry.providers()
    return {
        p: known[p].description.splitlines()[0]
        for p in dict.fromkeys(providers or [])
        if p in known and known[p].description
    }


def _fidelity(args: argparse.Namespace) -> int:
    from areal_a3po.report import fidelity
    from areal_a3po.report.load import RunDataError

    staleness = _int_list(args.staleness, "--staleness") if args.staleness else None
    try:
        runs, notes = fidelity.load(args.runs, staleness)
    except (FileNotFoundError, RunDataError, ValueError) as exc:
        print(f"a3po fidelity: error: {exc}", file=sys.stderr)
        return 2
    for run in runs:
        if run.get("command") is None:  # a run directory: its seed is its position
            print(f"seed {run['seed']}: {run['label']}")
    print(fidelity.markdown(runs, head=notes))
    print("\n".join(fidelity.closest(runs)))
    return 0


def _recipe(args: argparse.Namespace) -> int:
    from areal_a3po import recipes

    argv = ([args.name] if args.name else []) + (["--out", args.out] if args.out else [])
    return recipes.main(argv, prog="a3po recipe")


def main(argv: list[str] | None = None) -> int:
    from areal_a3po.report import defaults

    parser = argparse.ArgumentParser(prog="a3po", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_rec = sub.add_parser(
        "recipe", help="print or write a recipe shipped with areal-a3po (without NAME: list them)"
    )
    p_rec.add_argument("name", nargs="?", metavar="NAME", help="recipe name, e.g. cpu_tiny_a3po")
    p_rec.add_argument("--out", default=None, help="write it here (a file or a directory)")
    p_rec.set_defaults(fn=_recipe)
    p_info = sub.add_parser("info", help="print registered providers and whether AReaL is hooked")
    p_info.set_defaults(fn=_info)
    p_cmp = sub.add_parser(
        "compare",
        help="compare AReaL runs (tensorboard dirs); with no RUN, first run the CPU recipe twins "
        "(recipes/cpu_tiny_*.yaml) with AReaL's local scheduler, once per provider",
    )
    p_cmp.add_argument("runs", nargs="*", metavar="RUN", help="AReaL run / tensorboard dirs")
    p_cmp.add_argument("--out", default="runs/compare", help="output directory")
    p_cmp.add_argument("--labels", default=None, help="comma-separated labels, one per run")
    p_cmp.add_argument(
        "--last",
        type=int,
        default=defaults.LAST_N,
        help="the last N steps: the reward spread, and the training reward of record (their mean)",
    )
    p_cmp.add_argument(
        "--warmup", type=int, default=None, help="timed steps skipped (default: auto)"
    )
    p_cmp.add_argument(
        "--providers",
        default=None,
        help="embedded default: arms, comma separated (default recompute,a3po-step: the twins' "
        "own methods; the paper's A-3PO is one more: recompute,a3po-step,a3po)",
    )
    p_cmp.add_argument("--steps", type=int, default=None, help="embedded default: training steps")
    p_cmp.add_argument(
        "--staleness",
        default=None,
        help="embedded default (default 2): rollout.max_head_offpolicyness; a comma list sweeps "
        "it. With RUN dirs: the runs' max_head_offpolicyness (one, or one per run), so the "
        "report can account for tokens trained above it",
    )
    p_cmp.add_argument(
        "--seeds",
        "--seed",
        dest="seed",
        default=None,
        help="embedded default (default 1): seeds, comma separated; every arm runs once per "
        "seed, interleaved (recompute s1, a3po s1, recompute s2, ...), and the report gives "
        "intervals across seeds. With RUN dirs: one seed per run; runs sharing a label "
        "(--labels) form one arm",
    )
    p_cmp.add_argument(
        "--pace",
        choices=["auto", "free", "cap"],
        default="auto",
        help="embedded default: 'free' = AReaL's own overlap of generation and training; 'cap' = "
        "rollouts held at the staleness cap, so every arm trains at the same token lags "
        "(the staleness study's control, docs/benchmarks.md); auto = cap when --staleness "
        "has several points",
    )
    p_cmp.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="embedded default: an AReaL config override for every arm (repeatable), e.g. "
        "--set actor.ppo_n_minibatches=4; checked with AReaL's config loader before any arm "
        "starts, and written to each arm's launch_cmd.txt and the report",
    )
    p_cmp.add_argument(
        "--target-reward",
        type=float,
        default=None,
        help="report the time (cumulative step time) each arm takes to reach this reward of "
        "record, with intervals across seeds",
    )
    p_cmp.add_argument(
        "--margin",
        type=float,
        default=defaults.MARGIN,
        help="non-inferiority margin of the reward difference vs the baseline (absolute reward, "
        f"default {defaults.MARGIN:g}): 'not worse by more than MARGIN' when the interval's lower bound is "
        "above -MARGIN, 'worse by more than MARGIN' when its upper bound is below -MARGIN, "
        "'worse' when its upper bound is below 0, else 'no claim'",
    )
    p_cmp.add_argument(
        "--testbed",
        choices=["tiny", "smollm2"],
        default="tiny",
        help="embedded default: 'tiny' = recipes/cpu_tiny_*.yaml (2-layer model, synthetic task, "
        "seconds per step); 'smollm2' = recipes/cpu_smollm2_*.yaml (SmolLM2-135M-Instruct on a "
        "reasoning-gym task, the mean of the last held-out evaluations as the reward of record; "
        "~40 s per step)",
    )
    p_cmp.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_cmp.set_defaults(fn=_compare)
    p_fid = sub.add_parser(
        "fidelity",
        help="the fidelity table of a3po-metrics runs (every provider against the recompute, per "
        "lag and PPO minibatch) and the provider closest to the recompute on that workload",
    )
    p_fid.add_argument(
        "runs", nargs="+", metavar="RUN", help="a3po-metrics run / tensorboard dirs (one per "
        "seed), or kept fidelity files (docs/benchmarks/fidelity/*.json)",
    )  # fmt: skip
    p_fid.add_argument(
        "--staleness", default=None, help="the runs' rollout.max_head_offpolicyness (one, or one "
        "per run): one table per staleness point",
    )  # fmt: skip
    p_fid.set_defaults(fn=_fidelity)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
