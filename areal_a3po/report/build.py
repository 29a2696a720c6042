"""``compare``: load the runs, summarise them, write report.md, report.json and the plots."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from areal_a3po.report import render
from areal_a3po.report.areal_keys import REWARD_KEYS
from areal_a3po.report.defaults import LAST_N, MARGIN
from areal_a3po.report.load import data_notes, load_scalars
from areal_a3po.report.over_cap import OverCap, over_cap
from areal_a3po.report.plots import write_plots, write_seed_plots, write_sweep_plot
from areal_a3po.report.record import RunRecord, record_from_run, write_records
from areal_a3po.report.render import Report
from areal_a3po.report.seeds import group_records, summarize_arms
from areal_a3po.report.summarise import RunSummary, summarize_run, with_baseline
from areal_a3po.report.sweep import Sweep, points_from_runs, summarize_sweep

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
RECORDS_DIR = "runs"  # report/runs/<arm>_seed<S>.json: the kept data of each run


@dataclass(frozen=True)
class Run:
    """One run to compare: its tensorboard dir and what is known of how it ran."""

    dir: str
    label: str | None = None  # None: labelled by its directory
    seed: int | None = None  # runs of one label with different seeds form one arm
    provider: str | None = None
    staleness: int | None = None  # its rollout.max_head_offpolicyness (the cap)


def _labels(runs: list[Run]) -> tuple[list[str], list[str]]:
    """(arm label, per-run label) of each run: a directory's name where no label is given, and
    the seed after it where one arm has several runs (the per-run tables need one per run)."""
    names = [os.path.basename(os.path.normpath(r.dir)) or r.dir for r in runs]
    default = [f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    arms = [str(r.label) if r.label is not None else d for r, d in zip(runs, default, strict=True)]
    seeded = any(r.seed is not None for r in runs)
    if seeded and len(set(arms)) < len(arms):
        return arms, [f"{a} s{r.seed}" for a, r in zip(arms, runs, strict=True)]
    return arms, arms


def _notes(run: RunSummary) -> list[str]:
    notes = [
        f"{run.label}: unreadable event file skipped: {bad}" for bad in run.skipped_event_files
    ]
    if run.timing.step_time_s is None:
        notes.append(f"{run.label}: no timeperf/* tags, step times n/a")
    if run.reward.key is None:
        notes.append(f"{run.label}: no task reward tag ({', '.join(REWARD_KEYS)})")
    dirs = {os.path.dirname(p) for p in run.event_files}
    if len(dirs) > 1:
        notes.append(f"{run.label}: event files in {len(dirs)} directories were merged by step")
    return notes


def _sweep(runs: list[Run], records: list[RunRecord], grouped, **kw) -> Sweep | None:
    """The staleness table's data when every run names its provider and staleness."""
    if any(r.provider is None or r.staleness is None for r in runs):
        return None
    points = points_from_runs(
        [rec.arm for rec in records], [(r.provider, r.staleness) for r in runs]
    )
    return summarize_sweep(grouped, points, runs[0].provider, **kw)


def _over_caps(records: list[RunRecord], labels: list[str], runs: list[Run]) -> list[OverCap]:
    """The runs whose token lags exceed their staleness cap."""
    overs = [
        over_cap(rec, lbl, r.staleness)
        for rec, lbl, r in zip(records, labels, runs, strict=True)
        if r.staleness is not None
    ]
    return [o for o in overs if o is not None]


def compare(
    runs: list[Run],
    out_dir: str,
    *,
    last_n: int = LAST_N,
    warmup: int | None = None,
    pace: str | None = None,
    overrides: list[str] | None = None,
    target: float | None = None,
    margin: float = MARGIN,
    provider_notes: dict[str, str] | None = None,
) -> Report:
    """Compare runs (the first is the baseline) and write report.md, report.json and plots.

    ``warmup``: timed steps dropped at the start of every run before its step-time means;
    None = 1 when a run has more than 2 timed steps, else 0. Rewards use every step.
    Runs with one label and different seeds form an arm, whose intervals and verdicts against the
    baseline arm are in the "Across seeds" section. When every run names its provider and
    staleness and there are several staleness points, the report adds the staleness table, each
    provider against the first run's at the same point; a run whose token lags exceed its
    staleness gets a line in the staleness section (:mod:`over_cap`). ``pace``, ``overrides``:
    what ran (kept in each record and the report). ``target``: a reward of record whose time to
    reach is compared; ``margin``: the non-inferiority margin of the reward difference.
    ``provider_notes``: provider -> one line saying what it is. ``out_dir/runs/`` gets one small
    JSON record per run (:mod:`areal_a3po.report.record`). Raises FileNotFoundError naming the
    directory when a run has no event files.
    """
    if not runs:
        raise ValueError("compare needs at least one run directory")
    if last_n < 1:
        raise ValueError(f"last_n must be >= 1, got {last_n}")
    arm_labels, labels = _labels(runs)
    datas = [load_scalars(os.fspath(r.dir)) for r in runs]
    summaries = with_baseline(
        [summarize_run(d, lbl, warmup, last_n) for d, lbl in zip(datas, labels, strict=True)]
    )
    records = [
        record_from_run(d, arm, r.seed or 0, provider=r.provider, staleness=r.staleness,
                        pace=pace, overrides=overrides)
        for d, arm, r in zip(datas, arm_labels, runs, strict=True)
    ]  # fmt: skip
    grouped = group_records(records)
    kw = {"warmup": warmup, "last_n": last_n, "target": target, "margin": margin}
    study = _sweep(runs, records, grouped, **kw)
    os.makedirs(out_dir, exist_ok=True)
    paths, plot_notes = write_plots(summaries, datas, out_dir)
    paths.update(write_seed_plots(grouped, out_dir))
    if study is not None:
        paths.update(write_sweep_plot(study, out_dir))
    report = Report(
        runs=summaries, out_dir=out_dir, paths=paths, baseline=labels[0], last_n=last_n,
        warmup=warmup, arms=summarize_arms(grouped, **kw), sweep=study,
        notes=[n for s in summaries for n in _notes(s)] + data_notes(datas, labels) + plot_notes,
        over_cap=_over_caps(records, labels, runs), records=records,
        overrides=list(overrides or []), target=target, margin=margin,
        provider_notes=dict(provider_notes or {}),
    )  # fmt: skip
    _write(report)
    return report


def _write(report: Report) -> None:
    """report.md, report.json and the kept records into ``report.out_dir``."""
    out_dir, paths = report.out_dir, report.paths
    write_records(report.records, os.path.join(out_dir, RECORDS_DIR))
    paths["report_md"] = os.path.join(out_dir, REPORT_MD)
    paths["report_json"] = os.path.join(out_dir, REPORT_JSON)
    with open(paths["report_md"], "w", encoding="utf-8") as fh:
        fh.write(render.markdown(report))
    with open(paths["report_json"], "w", encoding="utf-8") as fh:
        json.dump(render.json_dict(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
