"""The one declaration of the report's flat metrics: :data:`METRICS`.

Each :class:`Metric` gives a JSON key (``table`` rows of ``report.json``), a row title in the
summary table (``None``: JSON only), a format kind, the field of the run's reduction
(:class:`RunSummary`) it shows, as a dotted path (no getter per number), and its column title in
report.md's per-run sections. The summary table (:data:`TABLE_COLUMNS`), the JSON rows
(:func:`flat_row`) and the cells and column titles of the Markdown sections (``render``) all come
from it. To add a number to the report, add one ``Metric`` here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

from areal_a3po.report.areal_keys import TIME_RECOMPUTE, TIME_ROLLOUT, TIME_TRAIN, TIME_UPDATE
from areal_a3po.report.summarise import TIME_OTHER, RunSummary

NA = "n/a"
Kind = Literal["int", "sec", "ratio", "pct", "rew", "err", "str", "bool"]


def _no_note(run: RunSummary) -> str:
    return ""


@dataclass(frozen=True)
class Metric:
    """One flat number (or label) per run: one field of the run's reduction."""

    key: str  # key in report.json's table rows
    label: str | None  # row title in the summary table; None = JSON only ("last-N" -> last-<n>)
    kind: Kind  # how :func:`fmt` writes it
    path: str  # the RunSummary field, dotted ("timing.parts_s.rollout"); None where not logged
    header: str | None = None  # column title in report.md's per-run sections (None: not shown)
    note: Callable[[RunSummary], str] = _no_note  # text after the value in the summary table

    def value(self, run: RunSummary) -> Any:
        """The field at :attr:`path` (attributes, then dict keys), None where a part is None."""

        def step(obj: Any, name: str) -> Any:
            if obj is None:
                return None
            return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)

        return reduce(step, self.path.split("."), run)


def fmt(value: Any, kind: Kind) -> str:
    """Text of one cell; ``n/a`` for None and non-finite numbers."""
    if value is None:
        return NA
    if kind in ("str", "bool"):
        return str(value)
    if kind == "int":
        return str(int(value))
    if isinstance(value, float) and not math.isfinite(value):
        return NA
    if kind in ("sec", "ratio"):
        return f"{value:.3f}"
    if kind == "pct":
        return f"{100.0 * value:.1f}%"
    if kind == "rew":
        return f"{value:.4f}"
    if kind == "err":
        return f"{value:.3e}"
    raise ValueError(f"unknown format kind {kind!r}")


# ------------------------------------------------------------------------- notes


def _recompute_not_run(r: RunSummary) -> str:
    ran = TIME_RECOMPUTE in r.timing.logged_parts
    return " (not run)" if r.timing.parts_s.get(TIME_RECOMPUTE) is not None and not ran else ""


def _best_step(r: RunSummary) -> str:
    return f" @{r.reward.best_step}" if r.reward.best_step is not None else ""


def _approx_method(r: RunSummary) -> str:
    method = r.approx.sole_method
    return f" [{method}]" if method else ""


def _parts(stage: str) -> str:
    return f"timing.parts_s.{stage}"


def _rewards(split: str, names: list[tuple[str, str, str | None, str | None]]) -> list[Metric]:
    """``split`` is the RunSummary field ("reward" or "eval_reward"), also the key prefix."""

    def note(n: str) -> Callable[[RunSummary], str]:  # the train reward's best names its step
        return _best_step if (split, n) == ("reward", "best") else _no_note

    return [
        Metric(f"{split}_{n}", label, kind, f"{split}.{n}", header, note(n))
        for n, kind, label, header in names
    ]


# (RunSummary field, kind, summary-table row, reward-section column)
_TRAIN = [
    ("key", "str", None, "key"), ("n_points", "int", None, "points"),
    ("final", "rew", "reward final", "final"), ("best", "rew", "reward best", "best"),
    ("best_step", "int", None, "best step"), ("last_n", "int", None, None),
    ("last_mean", "rew", "reward last-N mean", "last-N mean"),
    ("last_std", "rew", "reward last-N std", "last-N std"),
    ("last_min", "rew", "reward last-N min", "last-N min"),
    ("last_max", "rew", "reward last-N max", "last-N max"),
]  # fmt: skip
_EVAL = [(n, k, {"final": "eval reward final", "best": "eval reward best"}.get(n), h)
         for n, k, _, h in _TRAIN]  # fmt: skip

# ------------------------------------------------------------------------- the declaration

# Metric(JSON key, summary-table row, kind, RunSummary field, section column title[, note])
METRICS: tuple[Metric, ...] = (
    Metric("label", None, "str", "label", "run"),
    Metric("run_dir", None, "str", "run_dir", "directory"),
    Metric("n_event_files", None, "int", "n_event_files", "event files"),
    Metric("steps", "steps logged", "int", "n_steps", "steps"),
    Metric("last_step", None, "int", "last_step", "last step"),
    # timing (mean per step after the warm-up)
    Metric("timed_steps", None, "int", "timing.timed_steps"),
    Metric("timed_steps_used", "timed steps used", "int", "timing.steps_used"),
    Metric("warmup_skipped", "warm-up steps skipped", "int", "timing.warmup_skipped", "warm-up"),
    Metric("step_time_s", "step time (s)", "sec", "timing.step_time_s", "step"),
    Metric("rollout_s", "  rollout wait (s)", "sec", _parts(TIME_ROLLOUT), "rollout"),
    Metric("recompute_logp_s", "  recompute_logp (s)", "sec", _parts(TIME_RECOMPUTE),
           "recompute_logp", _recompute_not_run),
    Metric("train_step_s", "  train_step (s)", "sec", _parts(TIME_TRAIN), "train_step"),
    Metric("update_weights_s", "  update_weights (s)", "sec", _parts(TIME_UPDATE),
           "update_weights"),
    Metric("other_s", "  other stages (s)", "sec", _parts(TIME_OTHER), "other"),
    Metric("commit_interval_s", None, "sec", "timing.commit_interval_s", "commit interval"),
    Metric("recompute_logp_logged", None, "bool", "timing.recompute_logged"),
    # saving against the baseline
    Metric("step_time_ratio", "step time / baseline", "ratio", "vs_baseline.step_time_ratio",
           "step time ratio"),
    Metric("speedup", "speedup vs baseline (x)", "ratio", "vs_baseline.speedup", "speedup (x)"),
    Metric("saved_s_per_step", None, "sec", "vs_baseline.saved_s_per_step", "saved s/step"),
    Metric("recompute_removed_share", "recompute_logp removed", "pct",
           "vs_baseline.recompute_removed_share", "recompute_logp removed"),
    # reward (train, then eval)
    *_rewards("reward", _TRAIN),
    *_rewards("eval_reward", _EVAL),
    # staleness
    Metric("staleness_avg", "staleness avg", "ratio", "staleness.avg", "avg (mean over steps)"),
    Metric("staleness_max", "staleness max", "ratio", "staleness.max", "max"),
    Metric("staleness_source", "staleness source", "str", "staleness.source", "source"),
    Metric("mismatch_avg", "mismatch avg", "err", "staleness.mismatch_avg",
           "train-inference mismatch, lag 0 (nats, mean over steps)"),
    Metric("mismatch_max", "mismatch max", "err", "staleness.mismatch_max",
           "mismatch, worst step"),
    # proximal approximation
    Metric("approx_abs_error", "prox abs error (mean)", "err", "approx.sole_abs_error", None,
           _approx_method),
    Metric("approx_method", None, "str", "approx.sole_method"),
    Metric("recomputed_steps", None, "int", "approx.recomputed_steps", "steps recomputed"),
    Metric("recomputed_step_share", "steps recomputed", "pct", "approx.recomputed_step_share",
           "share of steps"),
    Metric("exact_token_share", "exact-token share", "pct", "approx.exact_token_share",
           "exact-token share"),
)  # fmt: skip

METRIC = {m.key: m for m in METRICS}
TABLE_COLUMNS = tuple(m for m in METRICS if m.label is not None)  # rows of the summary table
REWARD_SPLITS = (("reward", "train"), ("eval_reward", "eval"))  # RunSummary field, split name


def flat_row(run: RunSummary) -> dict[str, Any]:
    """One ``table`` row of report.json: every metric's key and raw value."""
    return {m.key: m.value(run) for m in METRICS}


def header(key: str) -> str:
    """Column title of metric ``key`` in report.md's per-run sections."""
    title = METRIC[key].header
    if title is None:
        raise ValueError(f"metric {key!r} has no column title (Metric.header)")
    return title


def cell(key: str, run: RunSummary, *, note: bool = False) -> str:
    """Formatted value of metric ``key`` for ``run`` (with its note when ``note``)."""
    m = METRIC[key]
    return fmt(m.value(run), m.kind) + (m.note(run) if note else "")
