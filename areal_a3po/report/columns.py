"""The one declaration of the report's flat metrics: :data:`METRICS`.

Each :class:`Metric` gives a JSON key (``table`` rows of ``report.json``), a row title in the
summary table (``None``: JSON only), a format kind, and how to read the value from a
:class:`RunSummary`. The summary table (:data:`TABLE_COLUMNS`), the JSON rows (:func:`flat_row`)
and the cells of the Markdown sections (``render``) all come from it. To add a number to the
report, add one ``Metric`` here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from areal_a3po.report.areal_keys import TIME_RECOMPUTE, TIME_ROLLOUT, TIME_TRAIN, TIME_UPDATE
from areal_a3po.report.summarise import TIME_OTHER, RunSummary

NA = "n/a"
Kind = Literal["int", "sec", "ratio", "pct", "rew", "err", "str", "bool"]


def _no_note(run: RunSummary) -> str:
    return ""


@dataclass(frozen=True)
class Metric:
    """One flat number (or label) per run."""

    key: str  # key in report.json's table rows
    label: str | None  # row title in the summary table; None = JSON only ("last-N" -> last-<n>)
    kind: Kind  # how :func:`fmt` writes it
    get: Callable[[RunSummary], Any]  # the value, None where the run did not log it
    note: Callable[[RunSummary], str] = _no_note  # text after the value in the summary table


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


# ------------------------------------------------------------------------- getters, notes


def _part(stage: str) -> Callable[[RunSummary], float | None]:
    return lambda r: r.timing.parts_s.get(stage)


def _vs(name: str) -> Callable[[RunSummary], Any]:
    return lambda r: getattr(r.vs_baseline, name) if r.vs_baseline is not None else None


def _reward(split: str, name: str, kind: Kind, label: str | None = None, **kw: Any) -> Metric:
    """``split`` is the RunSummary field ("reward" or "eval_reward"), also the key prefix."""
    return Metric(f"{split}_{name}", label, kind, lambda r: getattr(getattr(r, split), name), **kw)


def _recompute_not_run(r: RunSummary) -> str:
    ran = TIME_RECOMPUTE in r.timing.logged_parts
    return " (not run)" if r.timing.parts_s.get(TIME_RECOMPUTE) is not None and not ran else ""


def _best_step(r: RunSummary) -> str:
    return f" @{r.reward.best_step}" if r.reward.best_step is not None else ""


def _approx_method(r: RunSummary) -> str:
    method = r.approx.sole_abs_error()[0]
    return f" [{method}]" if method else ""


# ------------------------------------------------------------------------- the declaration

METRICS: tuple[Metric, ...] = (
    Metric("label", None, "str", lambda r: r.label),
    Metric("run_dir", None, "str", lambda r: r.run_dir),
    Metric("n_event_files", None, "int", lambda r: len(r.event_files)),
    Metric("steps", "steps logged", "int", lambda r: r.n_steps),
    Metric("last_step", None, "int", lambda r: r.last_step),
    # timing (median per step after the warm-up)
    Metric("timed_steps", None, "int", lambda r: r.timing.timed_steps),
    Metric("timed_steps_used", "timed steps used", "int", lambda r: r.timing.steps_used),
    Metric("warmup_skipped", "warm-up steps skipped", "int", lambda r: r.timing.warmup_skipped),
    Metric("step_time_s", "step time (s)", "sec", lambda r: r.timing.step_time_s),
    Metric("rollout_s", "  rollout wait (s)", "sec", _part(TIME_ROLLOUT)),
    Metric(
        "recompute_logp_s",
        "  recompute_logp (s)",
        "sec",
        _part(TIME_RECOMPUTE),
        note=_recompute_not_run,
    ),
    Metric("train_step_s", "  train_step (s)", "sec", _part(TIME_TRAIN)),
    Metric("update_weights_s", "  update_weights (s)", "sec", _part(TIME_UPDATE)),
    Metric("other_s", "  other stages (s)", "sec", _part(TIME_OTHER)),
    Metric("commit_interval_s", None, "sec", lambda r: r.timing.commit_interval_s),
    Metric(
        "recompute_logp_logged", None, "bool", lambda r: TIME_RECOMPUTE in r.timing.logged_parts
    ),
    # saving against the baseline
    Metric("step_time_ratio", "step time / baseline", "ratio", _vs("step_time_ratio")),
    Metric("speedup", "speedup vs baseline (x)", "ratio", _vs("speedup")),
    Metric("saved_s_per_step", None, "sec", _vs("saved_s_per_step")),
    Metric(
        "recompute_removed_share", "recompute_logp removed", "pct", _vs("recompute_removed_share")
    ),
    # reward (train, then eval)
    _reward("reward", "key", "str"),
    _reward("reward", "n_points", "int"),
    _reward("reward", "final", "rew", "reward final"),
    _reward("reward", "best", "rew", "reward best", note=_best_step),
    _reward("reward", "best_step", "int"),
    _reward("reward", "last_n", "int"),
    _reward("reward", "last_mean", "rew", "reward last-N mean"),
    _reward("reward", "last_std", "rew", "reward last-N std"),
    _reward("reward", "last_min", "rew", "reward last-N min"),
    _reward("reward", "last_max", "rew", "reward last-N max"),
    _reward("eval_reward", "key", "str"),
    _reward("eval_reward", "n_points", "int"),
    _reward("eval_reward", "final", "rew", "eval reward final"),
    _reward("eval_reward", "best", "rew", "eval reward best"),
    _reward("eval_reward", "best_step", "int"),
    _reward("eval_reward", "last_n", "int"),
    _reward("eval_reward", "last_mean", "rew"),
    _reward("eval_reward", "last_std", "rew"),
    _reward("eval_reward", "last_min", "rew"),
    _reward("eval_reward", "last_max", "rew"),
    # staleness
    Metric("staleness_avg", "staleness avg", "ratio", lambda r: r.staleness.avg),
    Metric("staleness_max", "staleness max", "ratio", lambda r: r.staleness.max),
    Metric("staleness_source", "staleness source", "str", lambda r: r.staleness.source),
    Metric("mismatch_avg", "mismatch avg", "err", lambda r: r.staleness.mismatch_avg),
    Metric("mismatch_max", "mismatch max", "err", lambda r: r.staleness.mismatch_max),
    # proximal approximation
    Metric(
        "approx_abs_error",
        "prox abs error (mean)",
        "err",
        lambda r: r.approx.sole_abs_error()[1],
        note=_approx_method,
    ),
    Metric("approx_method", None, "str", lambda r: r.approx.sole_abs_error()[0]),
    Metric("recomputed_steps", None, "int", lambda r: r.approx.recomputed_steps),
    Metric(
        "recomputed_step_share", "steps recomputed", "pct", lambda r: r.approx.recomputed_step_share
    ),
    Metric("exact_token_share", "exact-token share", "pct", lambda r: r.approx.exact_token_share),
)

METRIC = {m.key: m for m in METRICS}
TABLE_COLUMNS = tuple(m for m in METRICS if m.label is not None)  # rows of the summary table
REWARD_SPLITS = (("reward", "train"), ("eval_reward", "eval"))  # RunSummary field, split name


def flat_row(run: RunSummary) -> dict[str, Any]:
    """One ``table`` row of report.json: every metric's key and raw value."""
    return {m.key: m.get(run) for m in METRICS}


def cell(key: str, run: RunSummary, *, note: bool = False) -> str:
    """Formatted value of metric ``key`` for ``run`` (with its note when ``note``)."""
    m = METRIC[key]
    return fmt(m.get(run), m.kind) + (m.note(run) if note else "")
