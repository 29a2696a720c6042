"""``a3po compare``: run the embedded default (or take the given run dirs), then write the report.

A study is a list of :class:`~areal_a3po.report.Run` records, one per run, whichever way the runs came: the arms the
embedded default ran (:mod:`areal_a3po.compare.runner`), or the ``RUN`` directories given with
their per-run options (``--labels``, ``--seeds``, ``--staleness``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from areal_a3po.report import Run


@dataclass(frozen=True)
class Study:
    """The runs, and what holds for all of them (known only when the embedded default ran them)."""

    runs: list[Run]
    pace: str | None = None


def int_list(text: str, what: str, prog: str = "a3po compare") -> list[int]:
    """Integers separated by commas; SystemExit naming the command ``prog`` and the option
    ``what`` otherwise."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(
            f"{prog}: {what} must be integers separated by commas, got {text!r}"
        ) from None


@contextlib.contextmanager
def stop_like_ctrl_c() -> Iterator[None]:
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


def _per_run(values: list | None, n: int, what: str) -> list:
    """One value per run from a per-run option (None: [None] * n)."""
    if values is None:
        return [None] * n
    if len(values) != n:
        raise SystemExit(f"a3po compare: got {len(values)} {what} for {n} run directories")
    return values


def given_study(args: argparse.Namespace) -> Study:
    """The ``RUN`` directories, with their ``--labels``, ``--seeds`` and ``--staleness``."""
    if args.overrides:
        raise SystemExit(
            "a3po compare: --set applies to the runs the embedded default starts; with RUN "
            "directories the runs already ran (their overrides are in their launch lines)"
        )
    n = len(args.runs)
    seeds = int_list(args.seed, "--seeds") if args.seed else None
    caps = int_list(args.staleness, "--staleness") if args.staleness else None
    if caps is not None and len(caps) == 1:
        caps *= n
    columns = zip(
        _per_run(args.labels.split(",") if args.labels else None, n, "labels"),
        _per_run(seeds, n, "seeds"),
        _per_run(caps, n, "staleness caps"),
        strict=True,
    )
    return Study(
        [Run(d, lbl, s, None, c) for d, (lbl, s, c) in zip(args.runs, columns, strict=True)]
    )


def embedded_study(args: argparse.Namespace) -> Study | int:
    """Run the embedded default's arms; their :class:`Study`, or 130 when interrupted."""
    from areal_a3po import testbeds
    from areal_a3po.compare import runner
    from areal_a3po.compare.arms import OverrideError
    from areal_a3po.recipes import RecipeError

    providers = (
        [p.strip() for p in args.providers.split(",") if p.strip()]
        if args.providers
        else runner.default_providers()
    )
    stalenesses = int_list(args.staleness or str(runner.DEFAULT_STALENESS), "--staleness")
    seeds = int_list(args.seed or str(runner.DEFAULT_SEED), "--seeds")
    steps = args.steps if args.steps is not None else testbeds.get(args.testbed).default_steps
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
    try:
        with stop_like_ctrl_c():
            results = runner.run_default(  # arms interleaved per seed: providers of seed 1..
                out_dir=args.out, steps=steps, staleness=stalenesses, seed=seeds,
                providers=providers, progress=not args.no_progress, pace=pace,
                extra_overrides=args.overrides, testbed=args.testbed,
            )  # fmt: skip
    except (OverrideError, RecipeError, runner.EmbeddedRunError) as exc:  # no traceback
        raise SystemExit(f"a3po compare: {exc}") from None
    except KeyboardInterrupt as exc:
        print(
            f"a3po compare: interrupted ({exc or 'SIGINT'}); the running arm was stopped. Run "
            "the same command again to resume: finished arms are skipped.",
            file=sys.stderr,
        )
        return 130
    # One arm per (provider, staleness point); its seeds are repeats of the same arm.
    swept = len(stalenesses) > 1
    labels = args.labels.split(",") if args.labels else None
    labels = _per_run(labels, len(results), "labels") if labels else [
        r.provider + (f"_s{r.staleness}" if swept else "") for r in results
    ]  # fmt: skip
    runs = [
        Run(r.run_dir, lbl, r.seed, r.provider, r.staleness)
        for r, lbl in zip(results, labels, strict=True)
    ]
    return Study(runs, pace)


def write_report(study: Study, args: argparse.Namespace) -> int:
    """The report of the study's runs under ``--out``/report; 2 when a run cannot be read."""
    from areal_a3po import report
    from areal_a3po.report.load import RunDataError

    providers = [r.provider for r in study.runs if r.provider is not None]
    try:
        rep = report.compare(
            study.runs, os.path.join(args.out, "report"), last_n=args.last, warmup=args.warmup,
            pace=study.pace, overrides=args.overrides, target=args.target_reward,
            margin=args.margin, provider_notes=_provider_notes(providers),
        )  # fmt: skip
    except (FileNotFoundError, RunDataError) as exc:  # a run dir that cannot be read: no report
        print(f"a3po compare: error: {exc}", file=sys.stderr)
        return 2
    print(report.format_table(rep))
    print(f"\nreport: {rep.paths.get('report_md')}  json: {rep.paths.get('report_json')}")
    for name, path in sorted(rep.paths.items()):
        if path.endswith(".png"):
            print(f"plot {name}: {path}")
    return 0


def _provider_notes(providers: list[str]) -> dict[str, str]:
    """Provider -> the first line of its registered description, for the report."""
    from areal_a3po import registry

    known = registry.providers()
    return {
        p: known[p].description.splitlines()[0]
        for p in dict.fromkeys(providers)
        if p in known and known[p].description
    }


def compare(args: argparse.Namespace) -> int:
    """``a3po compare`` with the parsed arguments (:func:`areal_a3po.cli.main`); its exit code."""
    study = given_study(args) if args.runs else embedded_study(args)
    if isinstance(study, int):
        return study
    return write_report(study, args)


__all__ = ["Run", "Study", "compare"]
