"""The fidelity table of ``a3po-metrics`` runs: every provider against AReaL's recompute.

An ``a3po-metrics`` run (``actor.prox_logp_method: a3po-metrics``, any AReaL run, CPU or GPU)
logs, per scored provider, PPO minibatch and token-lag bucket, how far its proximal log-probs are
from the recompute's (``ppo_actor/a3po/fidelity/...``, ``areal_a3po/fidelity.py``).
:func:`reduce_run` turns one run's tensorboard logs into token-weighted means per (provider,
minibatch, lag); :func:`markdown` renders runs so reduced (``a3po fidelity``, and the kept files
of ``benchmarks/fidelity.py`` in docs/benchmarks.md), and :func:`closest` names the provider
nearest the recompute. A run is a dict: label, seed, staleness (None: not given), steps, scores
(provider -> "mb/lag" -> {metric: mean, "n_tokens": n}), mismatch.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from areal_a3po import keys
from areal_a3po.report import stats
from areal_a3po.report.load import RunData, RunDataError, load_scalars
from areal_a3po.report.summarise import mismatch_steps
from areal_a3po.report.text import interval_text

# Table order; a provider scored beyond these is listed after them, by name.
PROVIDERS = ("a3po-step", "a3po", "a3po-linear", "loglinear", "behave", "current")
# a3po-step is pi_theta on minibatch 0, where the recompute evaluates the same weights: a larger
# mean |dlogp| there means the recompute and the training forward disagree (e.g. packed CPU
# micro-batches), and no provider's score against it is evidence.
GROUND_TRUTH_TOL = 1e-4
METRIC_RE = re.compile(re.escape(keys.PREFIX) + keys.FIDELITY_PATTERN)
TOKENS_RE = re.compile(
    re.escape(keys.PREFIX)
    + keys.FIDELITY
    + r"/mb(?P<minibatch>\d+)/lag(?P<lag>_ge\d+|\d+)/n_tokens"
)
NO_KEYS = (
    "{run}: no fidelity keys ({prefix}{fidelity}/...) in its logs; the fidelity table needs a run "
    "with `actor.prox_logp_method=a3po-metrics` (docs/configuration.md), which scores every "
    "approximate provider against the recompute"
)


def reduce_scores(data: RunData) -> dict[str, dict[str, dict[str, float]]]:
    """provider -> "mb/lag" -> {metric: mean, "n_tokens": n}, weighted by each step's bucket
    token count (the statistic's own denominator): the mean over every scored token of the run."""
    tokens = {}
    for tag, series in data.scalars.items():
        if m := TOKENS_RE.search(tag):
            tokens[(m["minibatch"], m["lag"])] = series
    sums: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for tag, series in data.scalars.items():
        m = METRIC_RE.search(tag)
        if not m or m["metric"] == "n_tokens":
            continue
        counts = tokens[(m["minibatch"], m["lag"])]
        cell = sums[m["provider"]][f"{m['minibatch']}/{m['lag']}"]
        for step, value in series.items():
            cell[m["metric"]] += value * counts[step]
            cell["_n_" + m["metric"]] += counts[step]
    out: dict = {}
    for provider, cells in sorted(sums.items()):
        out[provider] = {}
        for bucket, acc in sorted(cells.items()):
            metrics = {k: acc[k] / acc["_n_" + k] for k in acc if not k.startswith("_n_")}
            metrics["n_tokens"] = max(acc["_n_" + k] for k in acc if not k.startswith("_n_"))
            out[provider][bucket] = metrics
    return out


def reduce_mismatch(data: RunData) -> dict[str, float] | None:
    """The run's train-inference mismatch (areal_a3po/mismatch.py): mean |dlogp| over every
    fresh token of the run, and their number; None where the run did not log it."""
    # A step without fresh tokens logs n_tokens 0 and no average (nothing to average).
    cells = [c for c in mismatch_steps(data).values() if c.get("n_tokens")]
    n = sum(c["n_tokens"] for c in cells)
    if not n:
        return None
    return {"abs_dlogp": sum(c["abs_dlogp"] * c["n_tokens"] for c in cells) / n, "n_tokens": n}


def reduce_run(run_dir: str, **what: Any) -> dict[str, Any]:
    """One run's tensorboard logs -> a run of the table (``what``: label, seed, staleness, ...).

    Raises :class:`RunDataError` naming the run when it logged no fidelity keys.
    """
    data = load_scalars(run_dir)
    scores = reduce_scores(data)
    if not scores:
        raise RunDataError(NO_KEYS.format(run=run_dir, prefix=keys.PREFIX, fidelity=keys.FIDELITY))
    steps = {s for series in data.scalars.values() for s in series}
    run = {"label": run_dir, "seed": None, "staleness": None, "steps": len(steps), **what}
    return {**run, "scores": scores, "mismatch": reduce_mismatch(data)}


def n_minibatches(runs: Iterable[dict]) -> int:
    """PPO minibatches the runs scored (the largest minibatch index + 1)."""
    return 1 + max(_bucket_key(b)[0] for r in runs for cells in r["scores"].values() for b in cells)


def ground_truth_gap(run: dict) -> float:
    """Mean |dlogp| of ``a3po-step`` on minibatch 0 in one run (0 when the truth is sound)."""
    cells = [c for b, c in run["scores"].get("a3po-step", {}).items() if b.startswith("0/")]
    n = sum(c["n_tokens"] for c in cells)
    return sum(c["abs_dlogp"] * c["n_tokens"] for c in cells) / n if n else 0.0


def _bucket_key(bucket: str) -> tuple[int, int]:
    mb, lag = bucket.split("/")
    return int(mb), (10**6 + int(lag[3:]) if lag.startswith("_ge") else int(lag))


def _providers(runs: list[dict]) -> list[str]:
    found = {p for r in runs for p in r["scores"]}
    return [p for p in PROVIDERS if p in found] + sorted(found - set(PROVIDERS))


def provider_means(runs: list[dict], provider: str) -> dict[str, dict[int, float]]:
    """metric -> run index -> the provider's mean over all of that run's loss tokens."""
    per_run: dict[str, dict[int, float]] = defaultdict(dict)
    for i, run in enumerate(runs):
        cells = run["scores"].get(provider, {})
        n = sum(c["n_tokens"] for c in cells.values())
        if not n:
            continue
        for metric in keys.FIDELITY_METRICS:
            total = sum(c[metric] * c["n_tokens"] for c in cells.values() if metric in c)
            per_run[metric][i] = total / n
    return per_run


def _mean_text(per_run: dict[int, float]) -> str:
    """Mean across seeds with its t-interval (none under ``MIN_SEEDS`` seeds: the mean alone)."""
    return interval_text(stats.mean_ci(per_run), ".3g", reason=False)


def _mismatch_line(runs: list[dict]) -> str:
    """The train-inference mismatch of the same runs, beside the providers' scores."""
    measured = [r["mismatch"]["abs_dlogp"] for r in runs if r.get("mismatch")]
    if len(measured) < len(runs):
        return (
            "Train-inference mismatch: not logged by these runs (kept before the monitor, "
            "`ppo_actor/a3po/mismatch/*`), so a lag-0 score here cannot be told from it."
        )
    return (
        f"Train-inference mismatch of the same runs (lag-0 tokens; the recompute ran, so every "
        f"minibatch counts): mean |log π_trainer − log π_behave| = "
        f"{_mean_text(dict(enumerate(measured)))} nats. "
        "A provider that reads π_behave cannot score below it at lag 0."
    )


def _setting(staleness: int | None, runs: list[dict], n_mb: int) -> list[str]:
    seeds = sorted(r["seed"] for r in runs)
    steps = sorted({r["steps"] for r in runs})
    where = (
        f"**staleness {staleness}** (`rollout.max_head_offpolicyness={staleness}`, "
        if staleness is not None
        else "**the runs given** (staleness not given, "
    )
    lines = [
        f"{where}`ppo_n_minibatches={n_mb}`, seeds {seeds}, steps {steps}); per provider over "
        f"all loss tokens, mean across seeds [{round(stats.CONFIDENCE * 100)} % t interval]:",
        "",
    ]
    gap = max(ground_truth_gap(r) for r in runs)
    if gap > GROUND_TRUTH_TOL:
        lines += [
            f"**Ground truth off**: `a3po-step` differs from the recompute on minibatch 0 by "
            f"{gap:.3g} nats (it must be 0: same weights), so the recompute and the "
            "training forward disagree and these scores are not fidelity evidence.",
            "",
        ]
    lines += [
        "| provider | mean \\|Δ log π_prox\\| | clip-decision mismatch | rejection mismatch |",
        "|---|---|---|---|",
    ]
    for provider in _providers(runs):
        if per_run := provider_means(runs, provider):
            cells = " | ".join(_mean_text(per_run[m]) for m in keys.FIDELITY_METRICS)
            lines.append(f"| `{provider}` | {cells} |")
    return lines + ["", _mismatch_line(runs)]


def _lag_row(runs: list[dict], provider: str, lag: str, mbs: list[int]) -> str | None:
    cells, tokens = [], 0.0
    for mb in mbs:
        vals = [v for r in runs if (v := r["scores"].get(provider, {}).get(f"{mb}/{lag}"))]
        if not vals:
            cells.append("–")
            continue
        tokens += sum(v["n_tokens"] for v in vals) / len(runs)
        avg = {m: sum(v.get(m, 0.0) for v in vals) / len(vals) for m in keys.FIDELITY_METRICS}
        cells.append(
            f"{avg[keys.ABS_DLOGP]:.3g} · {avg[keys.CLIP_MISMATCH]:.1%} · "
            f"{avg[keys.REJECT_MISMATCH]:.1%}"
        )
    if all(c == "–" for c in cells):
        return None
    shown = lag.replace("_ge", "≥")
    return f"| `{provider}` | {shown} ({tokens:.0f} tok) | " + " | ".join(cells) + " |"


def _per_lag(runs: list[dict]) -> list[str]:
    buckets = {b for r in runs for cells in r["scores"].values() for b in cells}
    mbs = sorted({_bucket_key(b)[0] for b in buckets})
    lags = sorted({b.split("/")[1] for b in buckets}, key=lambda x: _bucket_key("0/" + x))
    lines = [
        "",
        "Per lag and PPO minibatch (mean over seeds): mean |Δ log π_prox| · clip mismatch · "
        "rejection mismatch; tokens per seed in the lag's row.",
        "",
        "| provider | lag | " + " | ".join(f"minibatch {mb}" for mb in mbs) + " |",
        "|---|---|" + "---|" * len(mbs),
    ]
    rows = (_lag_row(runs, p, lag, mbs) for p in _providers(runs) for lag in lags)
    return lines + [row for row in rows if row is not None]


def by_staleness(runs: list[dict]) -> dict[int | None, list[dict]]:
    """The runs grouped by staleness point (one table each), in order."""
    out: dict[int | None, list[dict]] = defaultdict(list)
    for run in runs:
        out[run["staleness"]].append(run)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


def markdown(runs: list[dict], n_mb: int | None = None, head: Iterable[str] = ()) -> str:
    """The fidelity tables: per staleness a summary per provider across seeds, then provider x
    lag x minibatch (seed means). ``head``: lines above them (a note)."""
    lines = list(head)
    n_mb = n_minibatches(runs) if n_mb is None else n_mb
    for staleness, group in by_staleness(runs).items():
        lines += _setting(staleness, group, n_mb) + _per_lag(group) + [""]
    return "\n".join(lines).rstrip() + "\n"


def closest(runs: list[dict]) -> list[str]:
    """Per staleness, which provider is closest to the recompute (lowest mean |Δ log π_prox|
    over all loss tokens, mean across seeds), and whether the intervals separate it."""
    out = []
    for staleness, group in by_staleness(runs).items():
        means = {p: provider_means(group, p).get(keys.ABS_DLOGP) for p in _providers(group)}
        ranked = sorted((statistics.fmean(v.values()), p) for p, v in means.items() if v)
        if not ranked:
            continue
        (best, name), rest = ranked[0], ranked[1:]
        where = "the runs given" if staleness is None else f"staleness {staleness}"
        line = (
            f"Closest to the recompute at {where}: `{name}` (mean |Δ log π_prox| {best:.3g} "
            f"over {len(group)} seed{'s' if len(group) != 1 else ''})"
        )
        if rest:
            a, b = stats.mean_ci(means[name]), stats.mean_ci(means[rest[0][1]])
            if not a.has_interval or not b.has_interval:
                why = f"fewer than {stats.MIN_SEEDS} seeds, no interval"
                line += f"; next `{rest[0][1]}` ({rest[0][0]:.3g}): {why} to tell them apart"
            elif a.high < b.low:
                line += f"; its interval lies below the next one's (`{rest[0][1]}`)"
            else:
                line += f"; not told apart from `{rest[0][1]}`: their intervals overlap"
        out.append(line + ".")
    return out


def load(paths: list[str], staleness: list[int] | None = None) -> tuple[list[dict], list[str]]:
    """The runs of ``paths`` (run directories of ``a3po-metrics`` runs, or kept fidelity files
    ``*.json`` of ``benchmarks/fidelity.py``) and the kept files' notes. A run directory's seed is
    its position (1, 2, ...) and its run keeps its ``path``; ``staleness``: one for
    every run directory, or one each."""
    import json
    import os

    dirs = [p for p in paths if not p.endswith(".json")]
    if staleness is not None and len(staleness) not in (1, len(dirs)):
        raise ValueError(f"got {len(staleness)} staleness values for {len(dirs)} run directories")
    runs, notes = [], []
    for path in paths:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                kept = json.load(fh)
            runs += kept["runs"]
            notes += [f"*{kept['note']}*", ""] if kept.get("note") else []
            continue
        i = len([r for r in runs if r.get("command") is None])
        point = None if staleness is None else staleness[min(i, len(staleness) - 1)]
        label = os.path.basename(os.path.normpath(path)) or path
        runs.append(reduce_run(path, label=label, seed=i + 1, staleness=point, path=path))
    return runs, notes
