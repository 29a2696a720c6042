"""The one declaration of the report's flat metrics: :data:`METRICS`.

Each :class:`Metric` gives a JSON key (``table`` rows of ``report.json``), a row title in the
summary table (``None``: JSON only), a format kind, and the field of the run's reduction
(:class:`RunSummary`) it shows, as a dotted path: no getter per number. The summary table (:data:`TABLE_COLUMNS`), the JSON rows (:func:`flat_row`)
and the cells of the Markdown sections (``render``) all come from it. To add a number to the
report, add one ``Metric`` here.
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


def _rewards(split: str, names: list[tuple[str, str, str | None]]) -> list[Metric]:
    """``split`` is the RunSummary field ("reward" or "eval_reward"), also the key prefix."""

    def note(n: str) -> Callable[[RunSummary], str]:  # the train reward's best names its step
        return _best_step if (split, n) == ("reward", "best") else _no_note

    return [
        Metric(f"{split}_{n}", label, kind, f"{split}.{n}", note(n)) for n, kind, label in names
    ]


_TRAIN = [
    ("key", "str", None), ("n_points", "int", None), ("final", "rew", "reward final"),
    ("best", "rew", "reward best"), ("best_step", "int", None), ("last_n", "int", None),
    ("last_mean", "rew", "reward last-N mean"), ("last_std", "rew", "reward last-N std"),
    ("last_min", "rew", "reward last-N min"), ("last_max", "rew", "reward last-N max"),
]  # fmt: skip
_EVAL = [(n, k, {"final": "eval reward final", "best": "eval reward best"}.get(n))
         for n, k, _ in _TRAIN]  # fmt: skip

# ------------------------------------------------------------------------- the declaration

METRICS: tuple[Metric, ...] = (
    Metric("label", None, "str", "label"),
    Metric("run_dir", None, "str", "run_dir"),
    Metric("n_event_files", None, "int", "n_event_files"),
    Metric("steps", "steps logged", "int", "n_steps"),
    Metric("last_step", None, "int", "last_step"),
    # timing (mean per step after the warm-up)
    Metric("timed_steps", None, "int", "timing.timed_steps"),
    Metric("timed_steps_used", "timed steps used", "int", "timing.steps_used"),
    Metric("warmup_skipped", "warm-up steps skipped", "int", "timing.warmup_skipped"),
    Metric("step_time_s", "step time (s)", "sec", "timing.step_time_s"),
    Metric("rollout_s", "  rollout wait (s)", "sec", _parts(TIME_ROLLOUT)),
    Metric(
        "recompute_logp_s",
        "  recompute_logp (s)",
        "sec",
        _parts(TIME_RECOMPUTE),
        note=_recompute_not_run,
    ),
    Metric("train_step_s", "  train_step (s)", "sec", _parts(TIME_TRAIN)),
    Metric("update_weights_s", "  update_weights (s)", "sec", _parts(TIME_UPDATE)),
    Metric("other_s", "  other stages (s)", "sec", _parts(TIME_OTHER)),
    Metric("commit_interval_s", None, "sec", "timing.commit_interval_s"),
    Metric("recompute_logp_logged", None, "bool", "timing.recompute_logged"),
    # saving against the baseline
    Metric("step_time_ratio", "step time / baseline", "ratio", "vs_baseline.step_time_ratio"),
    Metric("speedup", "speedup vs baseline (x)", "ratio", "vs_baseline.speedup"),
    Metric("saved_s_per_step", None, "sec", "vs_baseline.saved_s_per_step"),
    Metric(
        "recompute_removed_share",
        "recompute_logp removed",
        "pct",
        "vs_baseline.recompute_removed_share",
    ),
    # reward (train, then eval)
    *_rewards("reward", _TRAIN),
    *_rewards("eval_reward", _EVAL),
    # staleness
    Metric("staleness_avg", "staleness avg", "ratio", "staleness.avg"),
    Metric("staleness_max", "staleness max", "ratio", "staleness.max"),
    Metric("staleness_source", "staleness source", "str", "staleness.source"),
    Metric("mismatch_avg", "mismatch avg", "err", "staleness.mismatch_avg"),
    Metric("mismatch_max", "mismatch max", "err", "staleness.mismatch_max"),
    # proximal approximation
    Metric(
        "approx_abs_error", "prox abs error (mean)", "err", "approx.sole_abs_error", _approx_method
    ),
    Metric("approx_method", None, "str", "approx.sole_method"),
    Metric("recomputed_steps", None, "int", "approx.recomputed_steps"),
    Metric("recomputed_step_share", "steps recomputed", "pct", "approx.recomputed_step_share"),
    Metric("exact_token_share", "exact-token share", "pct", "approx.exact_token_share"),
)

METRIC = {m.key: m for m in METRICS}
TABLE_COLUMNS = tuple(m for m in METRICS if m.label is not None)  # rows of the summary table
REWARD_SPLITS = (("reward", "train"), ("eval_reward", "eval"))  # RunSummary field, split name


def flat_row(run: RunSummary) -> dict[str, Any]:
    """One ``table`` row of report.json: every metric's key and raw value."""
    return {m.key: m.value(run) for m in METRICS}


def cell(key: str, run: RunSummary, *, note: bool = False) -> str:
    """Formatted value of metric ``key`` for ``run`` (with its note when ``note``)."""
    m = METRIC[key]
    return fmt(m.value(run), m.kind) + (m.note(run) if note else "")
