"""A :class:`Report` and its text: the summary table, ``report.md`` and ``report.json``.

Cells and column titles come from ``columns.METRICS``; each Markdown section below names the
metrics it shows by key and only adds its own headings and prose.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from areal_a3po.report import stats
from areal_a3po.report.columns import (
    REWARD_SPLITS,
    TABLE_COLUMNS,
    cell,
    flat_row,
    fmt,
    header,
)
from areal_a3po.report.over_cap import WHY, OverCap
from areal_a3po.report.record import RunRecord
from areal_a3po.report.render_arms import ONE_SEED, arms_tables
from areal_a3po.report.seeds import ArmSeeds
from areal_a3po.report.sittings import sittings
from areal_a3po.report.summarise import APPROX_TABLE_METRICS, RunSummary
from areal_a3po.report.sweep import LAG_TOLERANCE, Sweep, sweep_rows
from areal_a3po.report.text import interval_text, pipe_table


@dataclass
class Report:
    """Result of ``compare``: one summary per run, the arms across seeds, and the files written."""

    runs: list[RunSummary]  # in the order given; the first is the baseline
    out_dir: str
    paths: dict[str, str]  # "report_md", "report_json", and one entry per plot written
    baseline: str
    last_n: int
    warmup: int | None  # as requested (None = automatic: 1 when > 2 timed steps)
    notes: list[str] = field(default_factory=list)
    arms: list[ArmSeeds] = field(default_factory=list)  # runs grouped by label across seeds
    sweep: Sweep | None = None  # providers x staleness points, when several points were run
    over_cap: list[OverCap] = field(default_factory=list)  # runs with token lags above their cap
    records: list[RunRecord] = field(default_factory=list)  # the kept data, one per run
    overrides: list[str] = field(default_factory=list)  # AReaL overrides given to every arm
    target: float | None = None  # reward of record whose time to reach is compared
    margin: float = stats.MARGIN  # non-inferiority margin of the reward difference
    # provider -> what it is (one line), for the providers the arms ran; given by the caller
    # (report.* does not read the registry)
    provider_notes: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> list[dict[str, Any]]:
        """One flat row per run (``columns.METRICS``; None where not logged)."""
        return [flat_row(run) for run in self.runs]


# A section column: a metric key (titled by its ``Metric.header``), or (title, metric key or
# function giving the cell text) where the section titles it otherwise or no metric holds it.
Column = str | tuple[str, str | Callable[[RunSummary], str]]

RUNS_SECTION: tuple[Column, ...] = ("label", "run_dir", "n_event_files", "steps", "last_step")
STEP_TIME_SECTION: tuple[Column, ...] = (
    "label",
    ("steps used", lambda r: f"{r.timing.steps_used}/{r.timing.timed_steps}"),
    "warmup_skipped",
    "step_time_s",
    "rollout_s",
    "recompute_logp_s",
    "train_step_s",
    "update_weights_s",
    "other_s",
    "commit_interval_s",
)
SAVING_SECTION: tuple[Column, ...] = (
    "label",
    "step_time_ratio",
    "speedup",
    "saved_s_per_step",
    ("recompute_logp (s)", "recompute_logp_s"),
    "recompute_removed_share",
)
# One row per run and split (REWARD_SPLITS); metric key = "<split field>_<name>".
REWARD_SECTION = (
    "key", "n_points", "final", "best", "best_step", "last_mean", "last_std", "last_min", "last_max",
)  # fmt: skip
STALENESS_SECTION: tuple[Column, ...] = (
    "label",
    "staleness_source",
    "staleness_avg",
    "staleness_max",
    "mismatch_avg",
    "mismatch_max",
)
MISMATCH_NOTE = (
    "Train-inference mismatch: mean |log pi_trainer - log pi_behave| on the tokens the trainer "
    "evaluates with the very weights that generated them (lag 0 on PPO minibatch 0; every "
    "minibatch where the recompute ran), from `ppo_actor/a3po/mismatch/abs_dlogp`. It is not "
    "staleness: it measures the behaviour log-probs themselves (healthy: ~0 in fp32, 0.01 to 0.04 "
    "in bf16; the plugin warns above its threshold, docs/metrics.md)."
)
RECOMPUTED_SECTION: tuple[Column, ...] = (
    "label",
    "recomputed_steps",
    "recomputed_step_share",
    "exact_token_share",
)


def _titled(column: Column) -> tuple[str, str | Callable[[RunSummary], str]]:
    return (header(column), column) if isinstance(column, str) else column


def _section(columns: Sequence[Column], runs: list[RunSummary], align_right_from: int = 1) -> str:
    titled = [_titled(c) for c in columns]
    rows = [[c(r) if callable(c) else cell(c, r) for _, c in titled] for r in runs]
    return pipe_table([h for h, _ in titled], rows, align_right_from)


def format_table(report: Report) -> str:
    """The summary table (metrics as rows, runs as columns) as Markdown/plain text."""
    header = ["metric"] + [run.label for run in report.runs]
    rows = [
        [m.label.replace("last-N", f"last-{report.last_n}")]
        + [cell(m.key, run, note=True) for run in report.runs]
        for m in TABLE_COLUMNS
    ]
    return "\n".join(
        [
            pipe_table(header, rows),
            "",
            f"baseline: {report.baseline}; step time = mean over steps after the warm-up of the "
            "per-step sum of timeperf/* stages; a stage not logged in a step counts 0 s.",
        ]
    )


def _providers(report: Report) -> list[str]:
    """Each arm's provider (``actor.prox_logp_method``) and what it is, where the caller knows."""
    arms: dict[str, str] = {}
    for rec in report.records:
        if rec.provider:
            arms.setdefault(rec.arm, rec.provider)
    if not arms:
        return []
    out = ["Arms and their proximal policy (`actor.prox_logp_method`):", ""]
    for arm, provider in arms.items():
        note = report.provider_notes.get(provider)
        name = f"`{provider}`" if arm == provider else f"{arm}: `{provider}`"
        out.append(f"- {name}" + (f": {note}" if note else ""))
    return out + [""]


def _step_time(report: Report) -> list[str]:
    out = ["## Step time (s, mean per step)", "", _section(STEP_TIME_SECTION, report.runs), ""]
    for r in report.runs:
        other = r.timing.other_parts_s
        if other:
            items = ", ".join(f"{k} {v:.3f}" for k, v in sorted(other.items(), key=lambda x: -x[1]))
            out.append(f"- {r.label} other stages: {items}")
    out.append(
        "- commit interval: mean wall time between consecutive logged steps (event wall_time), "
        "a cross-check that the timeperf stages cover the step."
    )
    return out + [""]


def _reward(report: Report) -> list[str]:
    last = f"last-{report.last_n}"
    rows = []
    for r in report.runs:
        for part, split in REWARD_SPLITS:
            if split == "eval" and getattr(r, part).key is None:
                continue
            rows.append([r.label, split] + [cell(f"{part}_{n}", r) for n in REWARD_SECTION])
    titles = [header(f"reward_{n}").replace("last-N", last) for n in REWARD_SECTION]
    return [
        "## Reward",
        "",
        pipe_table(["run", "split", *titles], rows, align_right_from=3),
        "",
        "std is the population std over the last-N logged points.",
        "",
    ]


def _staleness(report: Report) -> list[str]:
    out = ["## Staleness (policy versions behind)", ""]
    out.append(_section(STALENESS_SECTION, report.runs, align_right_from=2))
    if any(r.staleness.mismatch_key for r in report.runs):
        out += ["", MISMATCH_NOTE]
    hists = [(r.label, r.staleness.histogram) for r in report.runs if r.staleness.histogram]
    if hists:
        labels = list(dict.fromkeys(lbl for _, h in hists for lbl in h.labels))
        rows = []
        for name, h in hists:
            share = dict(zip(h.labels, h.shares, strict=True))
            rows.append([name] + [fmt(share.get(x), "pct") for x in labels] + [fmt(h.total, "int")])
        out += ["", "Token share per lag, all steps:", ""]
        out.append(pipe_table(["run", *[f"lag {x}" for x in labels], "tokens"], rows))
    if report.over_cap:
        out += ["", "Token lags above `rollout.max_head_offpolicyness`:", ""]
        out += [f"- {o.sentence()}" for o in report.over_cap]
        out += ["", f"Why: {WHY}"]
    return out + [""]


def _approx(report: Report) -> list[str]:
    out = ["## Proximal approximation error", ""]
    rows = []
    for r in report.runs:
        for method, metrics in r.approx.methods.items():
            n = max(m.n_steps for m in metrics.values())
            means = [metrics[k].mean if k in metrics else None for k in APPROX_TABLE_METRICS]
            rows.append([r.label, method, str(n)] + [fmt(v, "err") for v in means])
    if rows:
        header = ["run", "method", "steps", *[f"{k} (mean)" for k in APPROX_TABLE_METRICS]]
        out += [pipe_table(header, rows, align_right_from=2), ""]
    else:
        out += ["No run logged approximation errors.", ""]
    return out + [_section(RECOMPUTED_SECTION, report.runs), ""]


def settings_lines(report: Report) -> list[str]:
    """The settings every arm shared beyond its recipe: AReaL overrides, target, margin."""
    out = []
    if report.overrides:
        out.append(
            "AReaL overrides given to every arm: "
            + " ".join(f"`{o}`" for o in report.overrides)
            + "."
        )
    if report.target is not None:
        out.append(f"Target reward (time to target): {report.target:g}.")
    return out


def arms_section(report: Report) -> list[str]:
    """Across seeds: per-seed summaries, ratios and differences vs the baseline, with intervals."""
    if not report.arms:
        return []
    base = report.arms[0].label
    head = [f"## Across seeds (baseline arm: {base})", ""]
    if max(len(a.seeds) for a in report.arms) == 1:
        return head + [ONE_SEED, ""]
    return head + arms_tables(report.arms, report.margin, report.target, sittings(report.records))


def sweep_section(report: Report) -> list[str]:
    if report.sweep is None:
        return []
    header, rows = sweep_rows(report.sweep, interval_text)
    sources = sorted({c.arm.reward_source for cells in report.sweep.cells.values()
                      for c in cells.values()})  # fmt: skip
    return [
        f"## Staleness sweep (each provider vs {report.sweep.baseline} at the same staleness)",
        "",
        "Per cell: step-time and trainer-compute (recompute + train) ratios vs the baseline "
        f"provider [95 % CI, across seeds], reward of record ({'; '.join(sources)}; mean over "
        "seeds) [95 % CI], and the "
        "token lag the arm trained on (mean over steps and seeds, and its max). Arms of one row "
        f"compare only if their lags match: a lag spread above {LAG_TOLERANCE} versions is "
        "flagged.",
        "",
        pipe_table(header, rows, align_right_from=len(header)),
        "",
    ]


def markdown(report: Report) -> str:
    """The text of report.md."""
    warm = (
        "automatic (1 when a run has > 2 timed steps)" if report.warmup is None else report.warmup
    )
    out = [
        "# A-3PO comparison",
        "",
        f"Baseline (first run): **{report.baseline}**. Last-N window: {report.last_n} steps.",
        f"Warm-up steps skipped in step-time means: {warm}.",
        *settings_lines(report),
        "",
        _section(RUNS_SECTION, report.runs, align_right_from=2),
        "",
        *_providers(report),
        "## Summary",
        "",
        format_table(report),
        "",
    ]
    out += arms_section(report) + sweep_section(report)
    out += _step_time(report)
    out += [f"## Saving vs baseline ({report.baseline}, same invocation)", ""]
    out.append(_section(SAVING_SECTION, report.runs))
    out += ["", "removed = 1 - run's recompute_logp time / baseline's recompute_logp time.", ""]
    out += _reward(report) + _staleness(report) + _approx(report)
    plots = [(k, v) for k, v in report.paths.items() if v.endswith(".png")]
    if plots:
        out += ["## Plots", ""] + [f"![{k}]({os.path.basename(p)})" for k, p in plots] + [""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples become lists, keys become str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_dict(report: Report) -> dict[str, Any]:
    """The content of report.json: ``table`` (flat rows), ``runs`` (typed summaries), ..."""
    return _clean(
        {
            "baseline": report.baseline,
            "last_n": report.last_n,
            "warmup": report.warmup,
            "table": report.table,
            "runs": [dataclasses.asdict(run) for run in report.runs],
            "overrides": report.overrides,
            "target_reward": report.target,
            "margin": report.margin,
            "provider_notes": report.provider_notes,
            "arms": [dict(dataclasses.asdict(a), verdicts=a.verdicts) for a in report.arms],
            "sweep": None if report.sweep is None else dataclasses.asdict(report.sweep),
            "over_cap": [dataclasses.asdict(o) for o in report.over_cap],
            "sittings": [dataclasses.asdict(x) for x in sittings(report.records)],
            "paths": report.paths,
            "notes": report.notes,
        }
    )
