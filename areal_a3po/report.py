"""Report half of ``a3po compare``: read AReaL tensorboard logs of several runs and compare them.

Where the numbers come from
---------------------------
AReaL's ``areal.utils.stats_logger.StatsLogger`` (enabled by ``stats_logger.tensorboard.path``)
opens one ``tensorboardX.SummaryWriter(log_dir=<tensorboard.path>)`` per process lifetime, so a
run's directory holds flat ``events.out.tfevents.<unix_time>.<hostname>`` files (a recovered run
adds one more file to the same directory). On every ``commit(epoch, step, global_step, stats)`` it
writes each key of the exported stats dict verbatim as a scalar tag, at step
``max(global_step, last_step + 1)``, dropping the ``*__count`` keys. The tags are the stats
tracker's keys:

* ``timeperf/<stage>``: wall seconds of one trainer stage (``stats_tracker.record_timing``), e.g.
  ``rollout``, ``recompute_logp``, ``compute_advantage``, ``train_step``, ``update_weights``,
  ``save``, ``checkpoint_for_recover``, ``eval``, ``clear_batches``. A stage that did not run in
  a step has no value at that step (AReaL only times ``recompute_logp`` when it recomputes).
* ``ppo_actor/task_reward/avg|min|max``: per-sequence task reward of the trained batch.
* ``ppo_actor/update/version_stats/sample_staleness_theta_avg|max|min``: AReaL's token staleness.
* ``ppo_actor/update/compute_logp/<method>/<metric>/avg|min|max``: approximation errors against
  the recomputed ground truth (AReaL's ``metrics`` mode and our providers).
* ``eval-rollout/reward``: reward of the evaluation rollouts (steps with an evaluation only).

Tags are matched by suffix (``tag == key`` or ``tag.endswith("/" + key)``) so extra scopes in front
of AReaL's keys do not matter. Nothing here prints; :func:`format_table` returns the text to print.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "APPROX_ERROR_METRICS",
    "EVAL_REWARD_KEYS",
    "EXACT_TOKEN_SHARE_KEYS",
    "NAMED_TIME_PARTS",
    "RECOMPUTED_KEYS",
    "REWARD_KEYS",
    "Report",
    "compare",
    "format_table",
    "load_scalars",
]

# --------------------------------------------------------------------------------------------
# Key conventions (AReaL 1.0.4 + this plugin's providers)
# --------------------------------------------------------------------------------------------

EVENT_FILE_MARKER = "tfevents"  # tensorboardX: events.out.tfevents.<time>.<host>[suffix]

TIMEPERF_PREFIX = "timeperf/"  # stats_tracker.record_timing(key) -> "timeperf/<key>"
TIME_ROLLOUT = "rollout"  # waiting for / producing the rollout batch
TIME_RECOMPUTE = "recompute_logp"  # the extra forward pass A-3PO removes
TIME_TRAIN = "train_step"  # actor.ppo_update (includes any in-loss approximation)
TIME_UPDATE = "update_weights"  # pushing new weights to the inference engine
NAMED_TIME_PARTS = (TIME_ROLLOUT, TIME_RECOMPUTE, TIME_TRAIN, TIME_UPDATE)
TIME_OTHER = "other"  # every other timeperf/* stage summed
# AReaL 1.0.4 logs no per-step total; a "timeperf/total" tag, if some version adds one, is used
# as the step time instead of the sum of the parts (and never added into the sum).
TIME_TOTAL_PARTS = ("total",)

# Train reward: AReaL's actor stat (AVG_MIN_MAX under scope "ppo_actor"), then the workflow scalar.
REWARD_KEYS = ("ppo_actor/task_reward/avg", "rollout/reward")
# Eval reward: workflows log scalar "reward" in the "eval-rollout" tracker (workflow_context).
EVAL_REWARD_KEYS = ("eval-rollout/reward", "eval-rollout/task_reward/avg")
EVAL_PREFIXES = ("eval-rollout/", "eval/")

# Staleness. Ours: counts of tokens per lag (sum per step) + lag avg/max (our provider).
STALENESS_LAG_RE = re.compile(r"(?:^|/)staleness_lag_(ge)?(\d+)$")
OUR_STALENESS_AVG_KEYS = ("ppo_actor/update/compute_logp/staleness/avg",)
OUR_STALENESS_MAX_KEYS = ("ppo_actor/update/compute_logp/staleness/max",)
# AReaL's own (areal/trainer/ppo/actor.py::_log_version_staleness_stats, scalars).
AREAL_STALENESS_AVG_KEYS = ("ppo_actor/update/version_stats/sample_staleness_theta_avg",)
AREAL_STALENESS_MAX_KEYS = ("ppo_actor/update/version_stats/sample_staleness_theta_max",)

# Approximation error: ppo_actor/update/compute_logp/<method>/<metric>/avg (method may be nested).
APPROX_ERROR_METRICS = (
    "abs_error",
    "rel_error",
    "importance_weight_abs_error",
    "behave_imp_weight_abs_error",
    "squared_error",
    "importance_weight_rel_error",
    "behave_imp_weight_rel_error",
)
APPROX_TABLE_METRICS = APPROX_ERROR_METRICS[:4]  # shown in report.md; JSON has all found
APPROX_ERROR_RE = re.compile(
    r"(?:^|/)compute_logp/(?P<method>.+)/(?P<metric>" + "|".join(APPROX_ERROR_METRICS) + r")/avg$"
)
# 1 on steps that recomputed the ground truth, 0 otherwise (our provider).
RECOMPUTED_KEYS = (
    "ppo_actor/update/compute_logp/recomputed",
    "ppo_actor/update/compute_logp/recomputed/avg",
)
EXACT_TOKEN_SHARE_KEYS = (
    "ppo_actor/update/compute_logp/exact_token_share/avg",
    "ppo_actor/update/compute_logp/exact_token_share",
)

NA = "n/a"

PLOT_REWARD_STEP = "reward_vs_step.png"
PLOT_REWARD_TIME = "reward_vs_time.png"
PLOT_BREAKDOWN = "step_time_breakdown.png"
PLOT_STALENESS = "staleness_hist.png"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"

Series = dict[int, float]  # step -> value


# --------------------------------------------------------------------------------------------
# Reading event files
# --------------------------------------------------------------------------------------------


@dataclass
class RunData:
    """All scalars of one run: tag -> step -> value, plus step -> wall time of the commit."""

    run_dir: str
    event_files: list[str]
    scalars: dict[str, Series]
    wall_time: dict[int, float]
    skipped_files: list[str] = field(default_factory=list)


def find_event_files(run_dir: str) -> list[str]:
    """Tensorboard event files under ``run_dir`` (recursive), or ``[run_dir]`` if it is one."""
    if not os.path.exists(run_dir):
        raise FileNotFoundError(f"run directory does not exist: {run_dir}")
    if os.path.isfile(run_dir):
        if EVENT_FILE_MARKER not in os.path.basename(run_dir):
            raise FileNotFoundError(f"not a tensorboard event file: {run_dir}")
        return [run_dir]
    found = []
    for root, dirs, files in os.walk(run_dir):
        dirs.sort()
        for name in sorted(files):
            if name.startswith("events.out.") and EVENT_FILE_MARKER in name:
                found.append(os.path.join(root, name))
    if not found:
        raise FileNotFoundError(
            f"no tensorboard event files (events.out.tfevents.*) found under {run_dir}; "
            "was the run started with stats_logger.tensorboard.path set?"
        )
    return found


def load_scalars(run_dir: str) -> RunData:
    """Read every scalar of every event file under ``run_dir``.

    Files are merged oldest first (by first event wall time); a later file overrides the same
    (tag, step), which is what a recovered run that re-logs a step means.
    """
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    loaded = []
    skipped = []
    for path in find_event_files(run_dir):
        try:
            acc = EventAccumulator(path, size_guidance={SCALARS: 0})
            acc.Reload()
            per_tag = {tag: acc.Scalars(tag) for tag in acc.Tags().get("scalars", [])}
        except Exception as exc:  # noqa: BLE001 - a corrupt file is reported, not fatal
            skipped.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        first = min((ev.wall_time for evs in per_tag.values() for ev in evs), default=math.inf)
        loaded.append((first, path, per_tag))
    if not loaded:
        raise FileNotFoundError(
            f"no readable tensorboard event files under {run_dir}: " + "; ".join(skipped)
        )
    loaded.sort(key=lambda item: (item[0], item[1]))

    scalars: dict[str, Series] = {}
    wall: dict[int, float] = {}
    for _, _, per_tag in loaded:
        for tag, events in per_tag.items():
            series = scalars.setdefault(tag, {})
            for ev in events:
                series[int(ev.step)] = float(ev.value)
                wall[int(ev.step)] = float(ev.wall_time)
    return RunData(
        run_dir=run_dir,
        event_files=[p for _, p, _ in loaded],
        scalars=scalars,
        wall_time=wall,
        skipped_files=skipped,
    )


# --------------------------------------------------------------------------------------------
# Key matching and small statistics
# --------------------------------------------------------------------------------------------


def _matches(tag: str, key: str) -> bool:
    return tag == key or tag.endswith("/" + key)


def _is_eval(tag: str) -> bool:
    return tag.startswith(EVAL_PREFIXES)


def find_tag(tags, keys, *, allow_eval: bool = False) -> str | None:
    """First tag matching ``keys`` in order: an exact match, else the shortest suffix match.

    A key is tried with its leading scopes dropped too (``ppo_actor/update/x/avg`` also matches
    ``<anything>/update/x/avg`` and ``<anything>/x/avg``), so extra or missing scopes are fine;
    the last two components of a key are always required.
    """
    tags = [t for t in tags if allow_eval or not _is_eval(t)]
    for key in keys:
        if key in tags:
            return key
        parts = key.split("/")
        for start in range(0, max(1, len(parts) - 1)):
            suffix = "/".join(parts[start:])
            hits = [t for t in tags if _matches(t, suffix)]
            if hits:
                return min(hits, key=lambda t: (len(t), t))
    return None


def _timeperf_parts(tags) -> dict[str, str]:
    """Stage name -> tag for every ``timeperf/<stage>`` tag (unprefixed tags win)."""
    parts: dict[str, str] = {}
    for tag in sorted(tags, key=lambda t: (len(t), t)):
        idx = tag.find(TIMEPERF_PREFIX)
        if idx < 0 or (idx > 0 and tag[idx - 1] != "/"):
            continue
        name = tag[idx + len(TIMEPERF_PREFIX) :]
        parts.setdefault(name, tag)
    return parts


def _mean(values) -> float | None:
    values = list(values)
    return float(statistics.fmean(values)) if values else None


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples become lists, keys become str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Per-run summaries
# --------------------------------------------------------------------------------------------


def resolve_warmup(n_steps: int, warmup: int | None) -> int:
    """Steps dropped from timing means: ``warmup`` if given, else 1 when there are > 2 steps."""
    if warmup is None:
        return 1 if n_steps > 2 else 0
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    return min(warmup, max(n_steps - 1, 0))


def step_times(data: RunData) -> dict[int, dict[str, float]]:
    """Step -> {stage: seconds} for every step that has at least one ``timeperf/*`` value."""
    parts = _timeperf_parts(data.scalars)
    per_step: dict[int, dict[str, float]] = {}
    for name, tag in parts.items():
        for step, value in data.scalars[tag].items():
            per_step.setdefault(step, {})[name] = value
    return dict(sorted(per_step.items()))


def _step_total(stages: dict[str, float]) -> float:
    for total in TIME_TOTAL_PARTS:
        if total in stages:
            return stages[total]
    return sum(v for k, v in stages.items() if k not in TIME_TOTAL_PARTS)


def summarize_timing(data: RunData, warmup: int | None) -> dict[str, Any]:
    per_step = step_times(data)
    steps = list(per_step)
    skip = resolve_warmup(len(steps), warmup)
    used = steps[skip:]
    out: dict[str, Any] = {
        "timed_steps": len(steps),
        "warmup_skipped": skip if steps else 0,
        "steps_used": len(used),
        "first_step_used": used[0] if used else None,
        "step_time_s": None,
        "parts_s": {},
        "other_parts_s": {},
        "logged_parts": sorted({k for s in per_step.values() for k in s}),
        "commit_interval_s": None,
        "step_time_source": None,
    }
    if not used:
        return out
    has_total = any(t in out["logged_parts"] for t in TIME_TOTAL_PARTS)
    out["step_time_source"] = "timeperf/total" if has_total else "sum of timeperf/* stages per step"
    out["step_time_s"] = _mean(_step_total(per_step[s]) for s in used)
    # A stage with no value at a step did not run at that step: it contributes 0 seconds.
    for name in NAMED_TIME_PARTS:
        out["parts_s"][name] = _mean(per_step[s].get(name, 0.0) for s in used)
    others = sorted(
        {k for s in used for k in per_step[s]} - set(NAMED_TIME_PARTS) - set(TIME_TOTAL_PARTS)
    )
    for name in others:
        out["other_parts_s"][name] = _mean(per_step[s].get(name, 0.0) for s in used)
    out["parts_s"][TIME_OTHER] = _mean(sum(per_step[s].get(k, 0.0) for k in others) for s in used)
    # Cross-check from the event files: wall time between consecutive commits.
    deltas = [
        data.wall_time[s] - data.wall_time[s - 1]
        for s in used
        if s - 1 in data.wall_time and s in data.wall_time
    ]
    out["commit_interval_s"] = _mean(deltas)
    return out


def summarize_reward(series: Series | None, key: str | None, last_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": key,
        "n_points": 0,
        "final": None,
        "final_step": None,
        "best": None,
        "best_step": None,
        "last_n": 0,
        "last_mean": None,
        "last_std": None,
        "last_min": None,
        "last_max": None,
    }
    if not series:
        return out
    steps = sorted(series)
    best_step = max(steps, key=lambda s: (series[s], -s))  # earliest step reaching the best
    tail = [series[s] for s in steps[-max(1, last_n) :]]
    out.update(
        n_points=len(steps),
        final=series[steps[-1]],
        final_step=steps[-1],
        best=series[best_step],
        best_step=best_step,
        last_n=len(tail),
        last_mean=float(statistics.fmean(tail)),
        last_std=float(statistics.pstdev(tail)),
        last_min=min(tail),
        last_max=max(tail),
    )
    return out


def summarize_staleness(data: RunData) -> dict[str, Any]:
    tags = list(data.scalars)
    # (lag, is_ge) -> (tag, label, count); "7" sorts before ">=8". Least-prefixed tag wins.
    bins: dict[tuple[int, int], tuple[str, str, float]] = {}
    for tag in sorted(tags, key=lambda t: (-len(t), t)):
        m = STALENESS_LAG_RE.search(tag)
        if not m or _is_eval(tag):
            continue
        is_ge, lag = (1 if m.group(1) else 0), int(m.group(2))
        label = f">={lag}" if is_ge else str(lag)
        bins[(lag, is_ge)] = (tag, label, sum(data.scalars[tag].values()))
    hist = None
    if bins:
        ordered = [bins[k][1:] for k in sorted(bins)]
        total = sum(c for _, c in ordered)
        hist = {
            "labels": [lbl for lbl, _ in ordered],
            "counts": [c for _, c in ordered],
            "shares": [(c / total) if total > 0 else None for _, c in ordered],
            "total": total,
        }

    avg_tag = find_tag(tags, OUR_STALENESS_AVG_KEYS)
    max_tag = find_tag(tags, OUR_STALENESS_MAX_KEYS)
    source = "a3po provider" if (avg_tag or max_tag) else None
    if source is None:
        avg_tag = find_tag(tags, AREAL_STALENESS_AVG_KEYS)
        max_tag = find_tag(tags, AREAL_STALENESS_MAX_KEYS)
        source = "areal version_stats" if (avg_tag or max_tag) else None
    return {
        "source": source,
        "avg_key": avg_tag,
        "max_key": max_tag,
        # mean over steps of the per-step token average; max over steps of the per-step max
        "avg": _mean(data.scalars[avg_tag].values()) if avg_tag else None,
        "max": max(data.scalars[max_tag].values()) if max_tag else None,
        "histogram": hist,
    }


def summarize_approx(data: RunData) -> dict[str, Any]:
    methods: dict[str, dict[str, dict[str, Any]]] = {}
    for tag, series in data.scalars.items():
        m = APPROX_ERROR_RE.search(tag)
        if not m or not series or _is_eval(tag):
            continue
        entry = methods.setdefault(m.group("method"), {})
        vals = list(series.values())
        prev = entry.get(m.group("metric"))
        if prev is not None and len(prev["key"]) <= len(tag):
            continue  # keep the least-prefixed duplicate
        entry[m.group("metric")] = {
            "key": tag,
            "mean": float(statistics.fmean(vals)),
            "max": max(vals),
            "final": series[max(series)],
            "n_steps": len(vals),
        }
    tags = list(data.scalars)
    rec_tag = find_tag(tags, RECOMPUTED_KEYS)
    exact_tag = find_tag(tags, EXACT_TOKEN_SHARE_KEYS)
    rec = data.scalars[rec_tag] if rec_tag else {}
    return {
        "methods": dict(sorted(methods.items())),
        "recomputed_key": rec_tag,
        "recomputed_steps": sum(1 for v in rec.values() if v > 0) if rec_tag else None,
        "recomputed_step_share": (
            sum(1 for v in rec.values() if v > 0) / len(rec) if rec else None
        ),
        "exact_token_share_key": exact_tag,
        "exact_token_share": _mean(data.scalars[exact_tag].values()) if exact_tag else None,
    }


def summarize_run(data: RunData, label: str, warmup: int | None, last_n: int) -> dict[str, Any]:
    tags = list(data.scalars)
    reward_key = find_tag(tags, REWARD_KEYS)
    eval_key = find_tag([t for t in tags if _is_eval(t)], EVAL_REWARD_KEYS, allow_eval=True)
    all_steps = sorted({s for series in data.scalars.values() for s in series})
    return {
        "label": label,
        "run_dir": data.run_dir,
        "event_files": data.event_files,
        "skipped_event_files": data.skipped_files,
        "n_tags": len(tags),
        "n_steps": len(all_steps),
        "last_step": all_steps[-1] if all_steps else None,
        "timing": summarize_timing(data, warmup),
        "reward": summarize_reward(data.scalars.get(reward_key), reward_key, last_n),
        "eval_reward": summarize_reward(data.scalars.get(eval_key), eval_key, last_n),
        "staleness": summarize_staleness(data),
        "approx": summarize_approx(data),
    }


def versus_baseline(run: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Saving of ``run`` relative to ``base`` (both from this invocation)."""
    t, b = run["timing"], base["timing"]
    out: dict[str, Any] = {
        "baseline": base["label"],
        "step_time_ratio": None,
        "speedup": None,
        "saved_s_per_step": None,
        "baseline_recompute_logp_s": b["parts_s"].get(TIME_RECOMPUTE),
        "recompute_logp_s": t["parts_s"].get(TIME_RECOMPUTE),
        "recompute_removed_share": None,
    }
    if t["step_time_s"] is not None and b["step_time_s"] is not None and b["step_time_s"] > 0:
        out["step_time_ratio"] = t["step_time_s"] / b["step_time_s"]
        out["saved_s_per_step"] = b["step_time_s"] - t["step_time_s"]
        if t["step_time_s"] > 0:
            out["speedup"] = b["step_time_s"] / t["step_time_s"]
    rb, rr = out["baseline_recompute_logp_s"], out["recompute_logp_s"]
    if rb is not None and rr is not None and rb > 0:
        out["recompute_removed_share"] = 1.0 - rr / rb
    return out


# --------------------------------------------------------------------------------------------
# The flat table
# --------------------------------------------------------------------------------------------

# (column key, row title in the printed table, kind used for formatting)
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("steps", "steps logged", "int"),
    ("timed_steps_used", "timed steps used", "int"),
    ("warmup_skipped", "warm-up steps skipped", "int"),
    ("step_time_s", "step time (s)", "sec"),
    ("rollout_s", "  rollout wait (s)", "sec"),
    ("recompute_logp_s", "  recompute_logp (s)", "sec"),
    ("train_step_s", "  train_step (s)", "sec"),
    ("update_weights_s", "  update_weights (s)", "sec"),
    ("other_s", "  other stages (s)", "sec"),
    ("step_time_ratio", "step time / baseline", "ratio"),
    ("speedup", "speedup vs baseline (x)", "ratio"),
    ("recompute_removed_share", "recompute_logp removed", "pct"),
    ("reward_final", "reward final", "rew"),
    ("reward_best", "reward best", "rew"),
    ("reward_last_mean", "reward last-N mean", "rew"),
    ("reward_last_std", "reward last-N std", "rew"),
    ("reward_last_min", "reward last-N min", "rew"),
    ("reward_last_max", "reward last-N max", "rew"),
    ("eval_reward_final", "eval reward final", "rew"),
    ("eval_reward_best", "eval reward best", "rew"),
    ("staleness_avg", "staleness avg", "ratio"),
    ("staleness_max", "staleness max", "ratio"),
    ("staleness_source", "staleness source", "str"),
    ("approx_abs_error", "prox abs error (mean)", "err"),
    ("recomputed_step_share", "steps recomputed", "pct"),
    ("exact_token_share", "exact-token share", "pct"),
)


def _table_row(run: dict[str, Any], vs: dict[str, Any]) -> dict[str, Any]:
    t, r, e = run["timing"], run["reward"], run["eval_reward"]
    st, ap = run["staleness"], run["approx"]
    parts = t["parts_s"]
    if len(ap["methods"]) == 1:
        method, metrics = next(iter(ap["methods"].items()))
        abs_err = metrics.get("abs_error", {}).get("mean")
        abs_method = method if abs_err is not None else None
    else:  # several methods (AReaL metrics mode): no single number, see the section table
        abs_err, abs_method = None, None
    return {
        "label": run["label"],
        "run_dir": run["run_dir"],
        "steps": run["n_steps"],
        "timed_steps_used": t["steps_used"],
        "warmup_skipped": t["warmup_skipped"],
        "step_time_s": t["step_time_s"],
        "rollout_s": parts.get(TIME_ROLLOUT),
        "recompute_logp_s": parts.get(TIME_RECOMPUTE),
        "train_step_s": parts.get(TIME_TRAIN),
        "update_weights_s": parts.get(TIME_UPDATE),
        "other_s": parts.get(TIME_OTHER),
        "recompute_logp_logged": TIME_RECOMPUTE in t["logged_parts"],
        "step_time_ratio": vs["step_time_ratio"],
        "speedup": vs["speedup"],
        "recompute_removed_share": vs["recompute_removed_share"],
        "reward_key": r["key"],
        "reward_final": r["final"],
        "reward_best": r["best"],
        "reward_best_step": r["best_step"],
        "reward_last_n": r["last_n"],
        "reward_last_mean": r["last_mean"],
        "reward_last_std": r["last_std"],
        "reward_last_min": r["last_min"],
        "reward_last_max": r["last_max"],
        "eval_reward_final": e["final"],
        "eval_reward_best": e["best"],
        "staleness_avg": st["avg"],
        "staleness_max": st["max"],
        "staleness_source": st["source"],
        "approx_abs_error": abs_err,
        "approx_method": abs_method,
        "recomputed_step_share": ap["recomputed_step_share"],
        "exact_token_share": ap["exact_token_share"],
    }


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return NA
    if kind == "str":
        return str(value)
    if kind == "int":
        return str(int(value))
    if isinstance(value, float) and not math.isfinite(value):
        return NA
    if kind == "sec":
        return f"{value:.3f}"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "pct":
        return f"{100.0 * value:.1f}%"
    if kind == "rew":
        return f"{value:.4f}"
    if kind == "err":
        return f"{value:.3e}"
    return str(value)


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    text = _fmt(row.get(key), kind)
    if key == "recompute_logp_s" and row.get(key) is not None and not row["recompute_logp_logged"]:
        text += " (not run)"
    if key == "approx_abs_error" and row.get("approx_method"):
        text += f" [{row['approx_method']}]"
    if key == "reward_best" and row.get("reward_best_step") is not None:
        text += f" @{row['reward_best_step']}"
    return text


def _pipe_table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.rjust(widths[i]) if i >= align_right_from else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = [
        ("-" * (w + 1) + ":") if i >= align_right_from else "-" * (w + 2)
        for i, w in enumerate(widths)
    ]
    return "\n".join([line(header), "|" + "|".join(sep) + "|"] + [line(r) for r in rows])


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """Result of :func:`compare`: one flat row per run, full details, and the files written."""

    table: list[dict[str, Any]]  # flat numbers per run (None where not logged)
    runs: list[dict[str, Any]]  # nested details per run (timing, reward, staleness, approx)
    out_dir: str
    paths: dict[str, str]  # "report_md", "report_json", and one entry per plot written
    baseline: str
    last_n: int
    warmup: int | None  # as requested (None = automatic: 1 when > 2 timed steps)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _clean(
            {
                "baseline": self.baseline,
                "last_n": self.last_n,
                "warmup": self.warmup,
                "table": self.table,
                "runs": self.runs,
                "paths": self.paths,
                "notes": self.notes,
            }
        )


def format_table(report: Report) -> str:
    """The summary table (metrics as rows, runs as columns) as Markdown/plain text."""
    header = ["metric"] + [row["label"] for row in report.table]
    rows = []
    for key, title, kind in TABLE_COLUMNS:
        title = title.replace("last-N", f"last-{report.last_n}")
        rows.append([title] + [_cell(row, key, kind) for row in report.table])
    lines = [_pipe_table(header, rows)]
    lines.append("")
    lines.append(
        f"baseline: {report.baseline}; step time = mean over steps after the warm-up of the "
        "per-step sum of timeperf/* stages; a stage not logged in a step counts 0 s."
    )
    return "\n".join(lines)


def _default_labels(run_dirs: list[str]) -> list[str]:
    labels = []
    for d in run_dirs:
        base = os.path.basename(os.path.normpath(d)) or d
        labels.append(base)
    for i, lbl in enumerate(labels):
        if labels.count(lbl) > 1:
            labels[i] = f"{lbl}#{i}"
    return labels


def compare(
    run_dirs: list[str],
    out_dir: str,
    labels: list[str] | None = None,
    last_n: int = 5,
    warmup: int | None = None,
) -> Report:
    """Compare runs (the first is the baseline) and write report.md, report.json and plots.

    ``warmup``: timed steps dropped at the start of every run before averaging step times;
    None = 1 when a run has more than 2 timed steps, else 0. Rewards use every step.
    Raises FileNotFoundError naming the directory when a run has no event files.
    """
    run_dirs = [os.fspath(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    if labels is None:
        labels = _default_labels(run_dirs)
    labels = [str(lbl) for lbl in labels]
    if len(labels) != len(run_dirs):
        raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} run directories")
    if last_n < 1:
        raise ValueError(f"last_n must be >= 1, got {last_n}")

    datas = [load_scalars(d) for d in run_dirs]
    runs = [summarize_run(d, lbl, warmup, last_n) for d, lbl in zip(datas, labels, strict=True)]
    for run in runs:
        run["vs_baseline"] = versus_baseline(run, runs[0])
    table = [_table_row(run, run["vs_baseline"]) for run in runs]

    notes = []
    for run in runs:
        for bad in run["skipped_event_files"]:
            notes.append(f"{run['label']}: unreadable event file skipped: {bad}")
        if run["timing"]["step_time_s"] is None:
            notes.append(f"{run['label']}: no timeperf/* tags, step times n/a")
        if run["reward"]["key"] is None:
            notes.append(f"{run['label']}: no task reward tag ({', '.join(REWARD_KEYS)})")
        dirs = {os.path.dirname(p) for p in run["event_files"]}
        if len(dirs) > 1:
            notes.append(
                f"{run['label']}: event files in {len(dirs)} directories were merged by step"
            )

    os.makedirs(out_dir, exist_ok=True)
    paths: dict[str, str] = {}
    plot_notes = _write_plots(runs, datas, out_dir, paths)
    notes.extend(plot_notes)
    report = Report(
        table=table,
        runs=runs,
        out_dir=out_dir,
        paths=paths,
        baseline=labels[0],
        last_n=last_n,
        warmup=warmup,
        notes=notes,
    )
    paths["report_md"] = os.path.join(out_dir, REPORT_MD)
    paths["report_json"] = os.path.join(out_dir, REPORT_JSON)
    with open(paths["report_md"], "w", encoding="utf-8") as fh:
        fh.write(_markdown(report))
    with open(paths["report_json"], "w", encoding="utf-8") as fh:
        json.dump(report.to_dict(), fh, indent=2, allow_nan=False)
        fh.write("\n")
    return report


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _markdown(report: Report) -> str:
    L = report.last_n
    out = ["# A-3PO comparison", ""]
    out.append(f"Baseline (first run): **{report.baseline}**. Last-N window: {L} steps.")
    warm = (
        "automatic (1 when a run has > 2 timed steps)" if report.warmup is None else report.warmup
    )
    out.append(f"Warm-up steps skipped in step-time means: {warm}.")
    out.append("")
    out.append(
        _pipe_table(
            ["run", "directory", "event files", "steps", "last step"],
            [
                [
                    r["label"],
                    r["run_dir"],
                    str(len(r["event_files"])),
                    str(r["n_steps"]),
                    _fmt(r["last_step"], "int"),
                ]
                for r in report.runs
            ],
            align_right_from=2,
        )
    )
    out += ["", "## Summary", "", format_table(report), ""]

    out += ["## Step time (s, mean per step)", ""]
    rows = []
    for r in report.runs:
        t = r["timing"]
        p = t["parts_s"]
        rows.append(
            [
                r["label"],
                f"{t['steps_used']}/{t['timed_steps']}",
                str(t["warmup_skipped"]),
                _fmt(t["step_time_s"], "sec"),
            ]
            + [_fmt(p.get(k), "sec") for k in (*NAMED_TIME_PARTS, TIME_OTHER)]
            + [_fmt(t["commit_interval_s"], "sec")]
        )
    out.append(
        _pipe_table(
            [
                "run",
                "steps used",
                "warm-up",
                "step",
                *NAMED_TIME_PARTS,
                TIME_OTHER,
                "commit interval",
            ],
            rows,
        )
    )
    out.append("")
    for r in report.runs:
        other = r["timing"]["other_parts_s"]
        if other:
            items = ", ".join(f"{k} {v:.3f}" for k, v in sorted(other.items(), key=lambda x: -x[1]))
            out.append(f"- {r['label']} other stages: {items}")
    out.append(
        "- commit interval: mean wall time between consecutive logged steps (event wall_time), "
        "a cross-check that the timeperf stages cover the step."
    )
    out.append("")

    out += [f"## Saving vs baseline ({report.baseline}, same invocation)", ""]
    rows = []
    for r in report.runs:
        v = r["vs_baseline"]
        rows.append(
            [
                r["label"],
                _fmt(v["step_time_ratio"], "ratio"),
                _fmt(v["speedup"], "ratio"),
                _fmt(v["saved_s_per_step"], "sec"),
                _fmt(v["recompute_logp_s"], "sec"),
                _fmt(v["recompute_removed_share"], "pct"),
            ]
        )
    out.append(
        _pipe_table(
            [
                "run",
                "step time ratio",
                "speedup (x)",
                "saved s/step",
                "recompute_logp (s)",
                "recompute_logp removed",
            ],
            rows,
        )
    )
    out += ["", "removed = 1 - run's recompute_logp time / baseline's recompute_logp time.", ""]

    out += ["## Reward", ""]
    rows = []
    for r in report.runs:
        for name, rw in (("train", r["reward"]), ("eval", r["eval_reward"])):
            if name == "eval" and rw["key"] is None:
                continue
            rows.append(
                [
                    r["label"],
                    name,
                    rw["key"] or NA,
                    str(rw["n_points"]),
                    _fmt(rw["final"], "rew"),
                    _fmt(rw["best"], "rew"),
                    _fmt(rw["best_step"], "int"),
                    _fmt(rw["last_mean"], "rew"),
                    _fmt(rw["last_std"], "rew"),
                    _fmt(rw["last_min"], "rew"),
                    _fmt(rw["last_max"], "rew"),
                ]
            )
    out.append(
        _pipe_table(
            [
                "run",
                "split",
                "key",
                "points",
                "final",
                "best",
                "best step",
                f"last-{L} mean",
                f"last-{L} std",
                f"last-{L} min",
                f"last-{L} max",
            ],
            rows,
            align_right_from=3,
        )
    )
    out += ["", "std is the population std over the last-N logged points.", ""]

    out += ["## Staleness (policy versions behind)", ""]
    rows = [
        [
            r["label"],
            r["staleness"]["source"] or NA,
            _fmt(r["staleness"]["avg"], "ratio"),
            _fmt(r["staleness"]["max"], "ratio"),
        ]
        for r in report.runs
    ]
    out.append(
        _pipe_table(["run", "source", "avg (mean over steps)", "max"], rows, align_right_from=2)
    )
    hists = [
        (r["label"], r["staleness"]["histogram"])
        for r in report.runs
        if r["staleness"]["histogram"]
    ]
    if hists:
        labels = []
        for _, h in hists:
            for lbl in h["labels"]:
                if lbl not in labels:
                    labels.append(lbl)
        rows = []
        for name, h in hists:
            share = dict(zip(h["labels"], h["shares"], strict=True))
            rows.append(
                [name] + [_fmt(share.get(lbl), "pct") for lbl in labels] + [_fmt(h["total"], "int")]
            )
        out += ["", "Token share per lag, all steps:", ""]
        out.append(_pipe_table(["run", *[f"lag {x}" for x in labels], "tokens"], rows))
    out.append("")

    out += ["## Proximal approximation error", ""]
    rows = []
    for r in report.runs:
        ap = r["approx"]
        for method, metrics in ap["methods"].items():
            n = max(m["n_steps"] for m in metrics.values())
            rows.append(
                [r["label"], method, str(n)]
                + [_fmt(metrics.get(k, {}).get("mean"), "err") for k in APPROX_TABLE_METRICS]
            )
    if rows:
        out.append(
            _pipe_table(
                ["run", "method", "steps", *[f"{k} (mean)" for k in APPROX_TABLE_METRICS]],
                rows,
                align_right_from=2,
            )
        )
        out.append("")
    else:
        out += ["No run logged approximation errors.", ""]
    rows = [
        [
            r["label"],
            _fmt(r["approx"]["recomputed_steps"], "int"),
            _fmt(r["approx"]["recomputed_step_share"], "pct"),
            _fmt(r["approx"]["exact_token_share"], "pct"),
        ]
        for r in report.runs
    ]
    out.append(
        _pipe_table(["run", "steps recomputed", "share of steps", "exact-token share"], rows)
    )
    out.append("")

    plots = [(k, v) for k, v in report.paths.items() if v.endswith(".png")]
    if plots:
        out += ["## Plots", ""]
        for key, path in plots:
            out.append(f"![{key}]({os.path.basename(path)})")
        out.append("")
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Plots (matplotlib Figure objects, Agg canvas, no pyplot global state)
# --------------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png")


def _write_plots(runs, datas, out_dir: str, paths: dict[str, str]) -> list[str]:
    notes = []
    colors = [f"C{i % 10}" for i in range(len(runs))]

    # reward vs step (train solid, eval dashed markers)
    with_reward = [(i, r) for i, r in enumerate(runs) if r["reward"]["key"]]
    if with_reward:
        fig, ax = _figure()
        for i, r in with_reward:
            series = datas[i].scalars[r["reward"]["key"]]
            xs = sorted(series)
            ax.plot(xs, [series[s] for s in xs], color=colors[i], marker=".", label=r["label"])
            ek = r["eval_reward"]["key"]
            if ek:
                es = datas[i].scalars[ek]
                ex = sorted(es)
                ax.plot(
                    ex,
                    [es[s] for s in ex],
                    color=colors[i],
                    linestyle="--",
                    marker="o",
                    label=f"{r['label']} (eval)",
                )
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel("task reward")
        ax.set_title("Reward vs step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths["reward_vs_step"] = os.path.join(out_dir, PLOT_REWARD_STEP)
        _save(fig, paths["reward_vs_step"])

        # reward vs wall clock: cumulative sum of per-step timeperf totals (all steps)
        fig, ax = _figure()
        drawn = 0
        xlabel = "cumulative step time (s, sum of timeperf/*)"
        for i, r in with_reward:
            series = datas[i].scalars[r["reward"]["key"]]
            per_step = step_times(datas[i])
            if per_step:
                cum, acc = {}, 0.0
                for s, stages in per_step.items():
                    acc += _step_total(stages)
                    cum[s] = acc
                pts = [(cum[s], series[s]) for s in sorted(series) if s in cum]
                lbl = r["label"]
            else:  # no timeperf: event wall time since the first logged step
                wall = datas[i].wall_time
                t0 = min(wall.values()) if wall else 0.0
                pts = [(wall[s] - t0, series[s]) for s in sorted(series) if s in wall]
                lbl = f"{r['label']} (event wall time)"
            if pts:
                ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts], color=colors[i], marker=".", label=lbl
                )
                drawn += 1
        ax.set_xlabel(xlabel)
        ax.set_ylabel("task reward")
        ax.set_title("Reward vs wall clock")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        paths["reward_vs_time"] = os.path.join(out_dir, PLOT_REWARD_TIME)
        _save(fig, paths["reward_vs_time"])
    else:
        notes.append("no run logged a task reward: reward plots not written")

    # stacked step-time breakdown
    timed = [(i, r) for i, r in enumerate(runs) if r["timing"]["step_time_s"] is not None]
    if timed:
        fig, ax = _figure(max(5.0, 1.6 * len(timed) + 3.0), 4.5)
        x = list(range(len(timed)))
        bottoms = [0.0] * len(timed)
        for j, part in enumerate((*NAMED_TIME_PARTS, TIME_OTHER)):
            vals = [r["timing"]["parts_s"].get(part) or 0.0 for _, r in timed]
            ax.bar(x, vals, bottom=bottoms, color=f"C{j}", label=part, width=0.6)
            bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
        for xi, (_, r) in zip(x, timed, strict=True):
            ax.annotate(
                f"{r['timing']['step_time_s']:.3g}s",
                (xi, bottoms[xi]),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(x)
        ax.set_xticklabels([r["label"] for _, r in timed], rotation=15)
        ax.set_ylabel("seconds per step (mean after warm-up)")
        ax.set_title("Step time breakdown")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        paths["step_time_breakdown"] = os.path.join(out_dir, PLOT_BREAKDOWN)
        _save(fig, paths["step_time_breakdown"])
    else:
        notes.append("no run logged timeperf/*: step-time breakdown not written")

    # staleness histogram, grouped bars of token share per lag
    hists = [
        (i, r["staleness"]["histogram"])
        for i, r in enumerate(runs)
        if r["staleness"]["histogram"] and r["staleness"]["histogram"]["total"] > 0
    ]
    if hists:
        order = []
        for _, h in hists:
            for lbl in h["labels"]:
                if lbl not in order:
                    order.append(lbl)
        fig, ax = _figure(max(6.0, 0.6 * len(order) * len(hists) + 2.0), 4.2)
        width = 0.8 / len(hists)
        for k, (i, h) in enumerate(hists):
            share = dict(zip(h["labels"], h["shares"], strict=True))
            xs = [j - 0.4 + width * (k + 0.5) for j in range(len(order))]
            ax.bar(
                xs,
                [share.get(lbl) or 0.0 for lbl in order],
                width=width,
                color=colors[i],
                label=runs[i]["label"],
            )
        ax.set_xticks(list(range(len(order))))
        ax.set_xticklabels(order)
        ax.set_xlabel("staleness (versions behind)")
        ax.set_ylabel("share of tokens")
        ax.set_title("Staleness histogram")
        ax.legend(fontsize=8)
        paths["staleness_hist"] = os.path.join(out_dir, PLOT_STALENESS)
        _save(fig, paths["staleness_hist"])
    else:
        notes.append("no run logged staleness_lag_* counts: staleness histogram not written")
    return notes
