"""``a3po`` command line: ``a3po info`` (is the plugin active?), ``a3po compare``, ``a3po fidelity``,
``a3po recipe``."""

from __future__ import annotations

import argparse
import sys


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


def _compare(args: argparse.Namespace) -> int:
    from areal_a3po.compare import command

    return command.compare(args)


def _fidelity(args: argparse.Namespace) -> int:
    from areal_a3po.compare.command import int_list
    from areal_a3po.report import fidelity, update_fidelity
    from areal_a3po.report.load import RunDataError

    staleness = int_list(args.staleness, "--staleness", "a3po fidelity") if args.staleness else None
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
    dirs = [r for r in runs if "path" in r]  # the run directories (kept files have none)
    probed = update_fidelity.probed_runs(dirs)
    if probed:  # actor.a3po.update_fidelity_every was on: the gradient against the recompute's
        print("\n## Update fidelity against the noise floor\n")
        print(update_fidelity.markdown_runs(probed, fidelity.n_minibatches(dirs)))
    return 0


def _recipe(args: argparse.Namespace) -> int:
    from areal_a3po import recipes

    argv = ([args.name] if args.name else []) + (["--out", args.out] if args.out else [])
    return recipes.main(argv, prog="a3po recipe")


def _add_testbed_argument(p_cmp: argparse.ArgumentParser) -> None:
    """``--testbed``: the choices, and each one's recipes and expected step time, from the records."""
    from areal_a3po import testbeds

    beds = testbeds.TESTBEDS.values()
    p_cmp.add_argument(
        "--testbed",
        choices=list(testbeds.TESTBEDS),
        default=testbeds.DEFAULT_TESTBED,
        help="embedded default: "
        + "; ".join(
            f"'{b.name}' = recipes/{b.recipe_prefix}_*.yaml ({b.summary}; "
            f"~{b.expected_step_s['free']:g} s per step)"
            for b in beds
        ),
    )


def _add_compare_parser(sub) -> None:
    """``a3po compare``: the runs and the report's options; the embedded default's in
    :func:`_add_embedded_options`."""
    from areal_a3po.report import defaults

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
    _add_embedded_options(p_cmp)  # the options' order: as `a3po compare --help` lists them
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
    _add_testbed_argument(p_cmp)
    p_cmp.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_cmp.set_defaults(fn=_compare)


def _add_embedded_options(p_cmp: argparse.ArgumentParser) -> None:
    """The options of ``a3po compare``'s embedded default (no RUN given) but ``--testbed``."""
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


def _add_fidelity_parser(sub) -> None:
    p_fid = sub.add_parser(
        "fidelity",
        help="the fidelity table of a3po-metrics runs (every provider against the recompute, per "
        "lag and PPO minibatch) and the provider closest to the recompute on that workload; with "
        "actor.a3po.update_fidelity_every probes, the update-fidelity table too",
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


def main(argv: list[str] | None = None) -> int:
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
    _add_compare_parser(sub)
    _add_fidelity_parser(sub)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
