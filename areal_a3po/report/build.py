"""``compare``: load the runs, summarise them, write report.md, report.json and the plots."""

from __future__ import annotations

import json
import os

from areal_a3po.report import render, stats
from areal_a3po.report.areal_keys import REWARD_KEYS
from areal_a3po.report.load import data_notes, load_scalars
from areal_a3po.report.over_cap import over_cap
from areal_a3po.report.plots import write_plots, write_seed_plots, write_sweep_plot
from areal_a3po.report.record import record_from_run, write_records
from areal_a3po.report.result import Report
from areal_a3po.report.seeds import group_records, summarize_arms
from areal_a3po.report.summaries import RunSummary
from areal_a3po.report.summarise import summarize_run, with_baseline
from areal_a3po.report.sweep import points_from_runs, summarize_sweep

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
RECORDS_DIR = "runs"  # report/runs/<arm>_seed<S>.json: the kept data of each run


def _default_labels(run_dirs: list[str]) -> list[str]:
    labels = [os.path.basename(os.path.normpath(d)) or d for d in run_dirs]
    return [f"{lbl}#{i}" if labels.count(lbl) > 1 else lbl for i, lbl in enumerate(labels)]


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


def compare(
    run_dirs: list[str],
    out_dir: str,
    labels: list[str] | None = None,
    last_n: int = 5,
    warmup: int | None = None,
    seeds: list[int] | None = None,
    sweep: list[tuple[str, int]] | None = None,
    caps: list[int] | None = None,
    *,
    providers: list[str] | None = None,
    pace: str | None = None,
    overrides: list[str] | None = None,
    target: float | None = None,
    margin: float = stats.MARGIN,
    provider_notes: dict[str, str] | None = None,
) -> Report:
    """Compare runs (the first is the baseline) and write report.md, report.json and plots.

    ``warmup``: timed steps dropped at the start of every run before averaging step times;
    None = 1 when a run has more than 2 timed steps, else 0. Rewards use every step.
    ``seeds``: one per run; runs with the same label and different seeds form one arm, whose
    medians, intervals and verdicts against the baseline arm are in the "Across seeds" section.
    Without seeds every run is an arm of one seed (no interval can be given).
    ``sweep``: (provider, staleness) per run; with several staleness points the report adds the
    staleness table, each provider against the first run's provider at the same point.
    ``caps``: ``rollout.max_head_offpolicyness`` per run; runs whose token lags exceed it get a
    line in the staleness section (how many tokens, which steps, and why: :mod:`over_cap`).
    ``providers``, ``pace``, ``overrides``: what ran (recorded in each run's kept record and the
    report). ``target``: a reward of record whose time to reach is compared across arms;
    ``margin``: the non-inferiority margin of the reward difference (absolute reward).
    ``provider_notes``: provider -> one line saying what it is; report.md lists the arms'
    providers with it (which arm is the paper's A-3PO, which the step-anchored one).
    Besides report.md and report.json, ``out_dir/runs/`` gets one small JSON record per run with
    the per-step scalars the across-seeds sections use (:mod:`areal_a3po.report.record`).
    Raises FileNotFoundError naming the directory when a run has no event files.
    """
    run_dirs = [os.fspath(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    labels = _default_labels(run_dirs) if labels is None else [str(lbl) for lbl in labels]
    if len(labels) != len(run_dirs):
        raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} run directories")
    if caps is not None and len(caps) != len(run_dirs):
        raise ValueError(f"got {len(caps)} staleness caps for {len(run_dirs)} run directories")
    if last_n < 1:
        raise ValueError(f"last_n must be >= 1, got {last_n}")
    arm_labels = labels
    if seeds is not None:
        if len(seeds) != len(run_dirs):
            raise ValueError(f"got {len(seeds)} seeds for {len(run_dirs)} run directories")
        if len(set(labels)) < len(labels):  # per-run tables need one label per run
            labels = [f"{lbl} s{seed}" for lbl, seed in zip(labels, seeds, strict=True)]

    datas = [load_scalars(d) for d in run_dirs]
    runs = with_baseline(
        [summarize_run(d, lbl, warmup, last_n) for d, lbl in zip(datas, labels, strict=True)]
    )
    run_seeds = seeds or [0] * len(datas)
    run_providers = providers or ([p for p, _ in sweep] if sweep else [None] * len(datas))
    records = [
        record_from_run(d, lbl, s, provider=p, staleness=c, pace=pace, overrides=overrides)
        for d, lbl, s, p, c in zip(
            datas, arm_labels, run_seeds, run_providers, caps or [None] * len(datas), strict=True
        )
    ]
    grouped = group_records(records)
    arms = summarize_arms(grouped, warmup, last_n, target=target, margin=margin)
    study = None
    if sweep is not None:
        points = points_from_runs(arm_labels, [p for p, _ in sweep], [k for _, k in sweep])
        study = summarize_sweep(
            grouped, points, sweep[0][0], warmup, last_n, target=target, margin=margin
        )
    notes = [note for run in runs for note in _notes(run)] + data_notes(datas, labels)
    overs = [
        over_cap(rec, r.label, c) for rec, r, c in zip(records, runs, caps or [], strict=False)
    ]

    os.makedirs(out_dir, exist_ok=True)
    paths, plot_notes = write_plots(runs, datas, out_dir)
    paths.update(write_seed_plots(grouped, out_dir))
    if study is not None:
        paths.update(write_sweep_plot(study, out_dir))
    report = Report(
        runs, out_dir, paths, labels[0], last_n, warmup, notes + plot_notes, arms, study,
        [o for o in overs if o is not None], records, list(overrides or []), target, margin,
        dict(provider_notes or {}),
    )  # fmt: skip
    write_records(records, os.path.join(out_dir, RECORDS_DIR))
    paths["report_md"] = os.path.join(out_dir, REPORT_MD)
    paths["report_json"] = os.path.join(out_dir, REPORT_JSON)
    with open(paths["report_md"], "w", encoding="utf-8") as fh:
        fh.write(render.markdown(report))
    with open(paths["report_json"], "w", encoding="utf-8") as fh:
        json.dump(render.json_dict(report), fh, indent=2, allow_nan=False)
        fh.write("\n")
    return report
