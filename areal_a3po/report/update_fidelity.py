"""The update-fidelity tables: ``a3po-metrics`` runs probed with ``actor.a3po.update_fidelity_every``
(``areal_a3po/update_fidelity.py`` logs the probes) -> per provider and PPO minibatch, the
gradient's error against the recompute's beside the recompute's noise floor (no AReaL).

:func:`reduce_run` reads one run's tensorboard scalars; :func:`markdown` renders a kept file of
``benchmarks/update_fidelity.py`` (the tables docs/benchmarks.md shows). The run is the unit: each
run's probes are pooled, weighted by the norm of the gradient the step trained on (:func:`pooled`),
and intervals are across seeds (:func:`seed_ratio`, the report's paired log-ratio t-interval).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from areal_a3po import keys
from areal_a3po.report.defaults import MIN_SEEDS
from areal_a3po.report.fidelity import PROVIDERS
from areal_a3po.report.stats import Interval, ratio_ci
from areal_a3po.report.text import pipe_table

EVERY_KEY = "actor.a3po.update_fidelity_every"
BELOW = "below the floor"
ABOVE = "above the floor"
AT = "not told from the floor"  # the interval of error / floor holds 1
EXACT = "exact"  # error 0 on every seed: the provider's pi_prox is the recompute's
WARMUP_STEP = 0
SPECIAL = {keys.UF_REFERENCE, keys.UF_NOISE_FLOOR, keys.UF_MINIBATCH}  # not providers
HEADER = ["provider", "minibatch", "mean lag", "rel. L2 error", "cos", "noise floor"]
HEADER += ["error / floor [95 % CI]", "verdict"]


# ----------------------------------------------------------------------------- reduce


def _pattern() -> re.Pattern:
    return re.compile(re.escape(keys.PREFIX) + keys.UPDATE_FIDELITY_PATTERN + "$")


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def reduce_run(run_dir: str) -> dict:
    """One run's tensorboard scalars -> probes, {name: {minibatch: {metric: mean over probes,
    "n_probes": n, "per_probe": {metric: {step: value}}}}}, the self-check's largest error and
    the train-step time."""
    from areal_a3po.report.load import load_scalars  # tensorboard: only when reading runs

    data = load_scalars(run_dir)
    values: dict = defaultdict(lambda: defaultdict(dict))  # name -> mb -> metric -> {step: v}
    probes: set[int] = set()
    for tag, series in data.scalars.items():
        m = _pattern().search(tag)
        if not m:
            continue
        probes |= set(series)
        values[m["name"]][m["minibatch"]][m["metric"]] = dict(series)
    cells: dict = {}
    for name, per_mb in sorted(values.items()):
        cells[name] = {}
        for mb, metrics in sorted(per_mb.items(), key=lambda kv: int(kv[0])):
            cell = {metric: _mean(list(vs.values())) for metric, vs in sorted(metrics.items())}
            cell["n_probes"] = max(len(vs) for vs in metrics.values())
            cell["per_probe"] = {
                m: {str(s): v for s, v in sorted(vs.items())} for m, vs in metrics.items()
            }
            cells[name][mb] = cell
    reference = [
        v
        for metrics in values.get(keys.UF_REFERENCE, {}).values()
        for v in metrics.get(keys.UF_REL_L2, {}).values()
    ]
    tag = data.find(["timeperf/train_step"])
    train = data.scalars.get(tag, {}) if tag else {}
    steps = [s for s in train if s != WARMUP_STEP]
    return {
        "probes": sorted(probes),
        "cells": cells,
        "self_check_max": max(reference) if reference else None,
        "train_step_s": {
            "probe": _mean([train[s] for s in steps if s in probes]),
            "other": _mean([train[s] for s in steps if s not in probes]),
        },
    }


# ----------------------------------------------------------------------------- markdown


def _cell(run: dict, name: str, mb: str, metric: str) -> float | None:
    return run["cells"].get(name, {}).get(mb, {}).get(metric)


def _per_probe(run: dict, name: str, mb: str, metric: str) -> dict[str, float]:
    """step -> value of ``metric`` at each of the run's probes."""
    return run["cells"].get(name, {}).get(mb, {}).get("per_probe", {}).get(metric, {})


def pooled(run: dict, name: str, mb: str, metric: str) -> float | None:
    """One run's value of ``metric`` over its probes, each probe weighted by ‖G_rec‖, the norm
    of the gradient the real step trained on: rel. L2 errors become Σ‖G_p − G_rec‖ / Σ‖G_rec‖,
    so a probe whose step barely moves (few tokens with an advantage) counts little."""
    values = _per_probe(run, name, mb, metric)
    weights = _per_probe(run, keys.UF_REFERENCE, mb, keys.UF_GRAD_NORM)
    steps = [s for s in values if weights.get(s, 0.0) > 0.0]
    total = sum(weights[s] for s in steps)
    return sum(values[s] * weights[s] for s in steps) / total if steps else None


def _mean_across(runs: list[dict], name: str, mb: str, metric: str) -> float | None:
    """Mean across runs (seeds) of each run's plain mean over its probes."""
    vals = [v for r in runs if (v := _cell(r, name, mb, metric)) is not None]
    return sum(vals) / len(vals) if vals else None


def _across(runs: list[dict], name: str, mb: str, metric: str) -> float | None:
    """Mean across runs (seeds) of each run's pooled value (:func:`pooled`)."""
    vals = [v for r in runs if (v := pooled(r, name, mb, metric)) is not None]
    return sum(vals) / len(vals) if vals else None


def _f(value: float | None, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def _per_seed(runs: list[dict], name: str, mb: str) -> dict[int, float]:
    """seed -> the run's pooled rel. L2 error of ``name`` on minibatch ``mb`` (:func:`pooled`)."""
    return {r["seed"]: v for r in runs if (v := pooled(r, name, mb, keys.UF_REL_L2)) is not None}


def seed_ratio(num: dict[int, float], den: dict[int, float]) -> Interval | None:
    """num / den across the seeds both have (den > 0). The run is the unit: the geometric mean of
    the per-seed ratios with a t-interval on their logs (:func:`areal_a3po.report.stats.ratio_ci`,
    none under ``MIN_SEEDS`` seeds); 0 on every seed reads :data:`EXACT`."""
    seeds = sorted(s for s in set(num) & set(den) if den[s] > 0.0)
    if not seeds:
        return None
    if all(num[s] == 0.0 for s in seeds):
        return Interval(0.0, 0.0, 0.0, len(seeds), EXACT)
    if any(num[s] == 0.0 for s in seeds):  # no log-ratio: the ratio of the means, no interval
        point = sum(num[s] for s in seeds) / sum(den[s] for s in seeds)
        return Interval(point, None, None, len(seeds), "a seed's value is 0")
    return ratio_ci({s: num[s] for s in seeds}, {s: den[s] for s in seeds})


def floor_ratio(runs: list[dict], name: str, mb: str) -> Interval | None:
    """error / floor of one provider and minibatch across seeds (:func:`seed_ratio`)."""
    return seed_ratio(_per_seed(runs, name, mb), _per_seed(runs, keys.UF_NOISE_FLOOR, mb))


def _ordered(runs: list[dict]) -> list[str]:
    """The scored providers of these runs, the known ones in their order, then the others."""
    names = {n for r in runs for n in r["cells"]} - SPECIAL
    return [p for p in PROVIDERS if p in names] + sorted(names - set(PROVIDERS))


def _minibatches(runs: list[dict]) -> list[str]:
    return sorted({mb for r in runs for n in _ordered(runs) for mb in r["cells"][n]}, key=int)


def closest_summary(runs: list[dict]) -> str:
    """Per minibatch, the provider whose gradient is closest to the recompute's (lowest geometric
    mean of the per-seed pooled errors), and its error against the next provider's (:func:`seed_ratio`, paired by
    seed); providers with the same error on every seed are named together."""
    parts, providers = [], _ordered(runs)
    for mb in _minibatches(runs):
        errs = {n: e for n in providers if (e := _per_seed(runs, n, mb))}
        groups: list[list[str]] = []  # providers with the same error on every seed
        for name in sorted(errs, key=lambda n: _geometric_mean(errs[n])):
            same = next((g for g in groups if errs[g[0]] == errs[name]), None)
            if same is None:
                groups.append([name])
            else:
                same.append(name)
        if not groups:
            continue
        best, text = groups[0], ""
        named = " = ".join(f"`{n}`" for n in best)
        if _geometric_mean(errs[best[0]]) == 0.0:
            parts.append(f"minibatch {mb}: {named}, exact")
            continue
        if len(groups) > 1:
            r = seed_ratio(errs[best[0]], errs[groups[1][0]])
            text = f", its error {r.estimate:.2f} x `{groups[1][0]}`'s"
            if r.has_interval:
                side = "lower" if r.high < 1.0 else "not told apart"
                text += f" [{r.low:.2f}, {r.high:.2f}], {side}"
            else:
                text += f" (point only, {r.n_seeds} seed{'s' if r.n_seeds != 1 else ''})"
        parts.append(f"minibatch {mb}: {named}{text}")
    return (
        "Closest to the recompute's gradient, per minibatch (geometric mean of the per-seed "
        f"errors; against the next provider, of the per-seed error ratios): {'; '.join(parts)}."
    )


def _geometric_mean(per_seed: dict[int, float]) -> float:
    """0 when a seed's value is 0 (an exact provider ranks first)."""
    values = list(per_seed.values())
    return 0.0 if min(values) <= 0.0 else statistics.geometric_mean(values)


def floor_verdict(ratio: Interval | None) -> str:
    """Below / above the floor only when the whole interval is; a point alone says so."""
    if ratio is None:
        return "no floor"
    if ratio.method == EXACT:
        return EXACT
    if not ratio.has_interval:
        side = BELOW if ratio.estimate < 1.0 else ABOVE
        return f"{side}, point only ({ratio.n_seeds} seed{'s' if ratio.n_seeds != 1 else ''})"
    return BELOW if ratio.high < 1.0 else ABOVE if ratio.low > 1.0 else AT


def _ratio_text(ratio: Interval | None) -> str:
    if ratio is None:
        return "–"
    if not ratio.has_interval or ratio.method == EXACT:
        return f"{ratio.estimate:.2f}"
    return f"{ratio.estimate:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]"


def table_rows(runs: list[dict]) -> list[list[str]]:
    """Provider x minibatch rows of one setting (runs of one staleness): mean lag, the error,
    the cosine, the noise floor (pooled over probes, mean over seeds), error / floor with its interval
    across seeds (:func:`floor_ratio`) and the verdict."""
    rows, mbs = [], _minibatches(runs)
    for name in _ordered(runs):
        for mb in mbs:
            err = _across(runs, name, mb, keys.UF_REL_L2)
            if err is None:
                continue
            ratio = floor_ratio(runs, name, mb)
            rows.append(
                [
                    f"`{name}`",
                    mb,
                    _f(_mean_across(runs, keys.UF_MINIBATCH, mb, keys.UF_MEAN_LAG), ".2f"),
                    _f(err),
                    _f(_across(runs, name, mb, keys.UF_COS), ".4f"),
                    _f(_across(runs, keys.UF_NOISE_FLOOR, mb, keys.UF_REL_L2)),
                    _ratio_text(ratio),
                    floor_verdict(ratio),
                ]
            )
    return rows


def verdict_summary(rows: list[list[str]]) -> str:
    """Which providers sit below the floor on which minibatches, from the table's rows."""
    by_provider: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_provider[row[0]].append((row[1], row[-1]))
    parts = []
    for name, cells in by_provider.items():
        below = [mb for mb, verdict in cells if verdict in (BELOW, EXACT)]
        if len(below) == len(cells):
            where = "every minibatch"
        elif below:
            where = f"minibatch{'es' if len(below) > 1 else ''} {', '.join(below)}"
        else:
            where = "none"
        parts.append(f"{name} on {where}")
    return (
        f"Below the floor (the whole interval under 1) or exact, per provider: {'; '.join(parts)}."
        f" An interval needs >= {MIN_SEEDS} seeds; with fewer the verdict reads the point alone."
    )


def markdown(path: str | Path) -> str:
    """The update-fidelity tables of one kept file (``benchmarks/update_fidelity.py``)."""
    kept = json.loads(Path(path).read_text())
    head = [f"*{kept['note']}*", ""] if kept.get("note") else []
    return markdown_runs(kept["runs"], kept["n_minibatches"], head)


def markdown_runs(runs: list[dict], n_mb: int, head: Sequence[str] = ()) -> str:
    """The update-fidelity tables of reduced runs (each with its seed, staleness, ``every`` and
    optionally ``steps``), one per staleness; ``head``: lines above them (a note)."""
    lines = list(head)
    by_staleness: dict[int | None, list[dict]] = defaultdict(list)
    for run in runs:
        by_staleness[run["staleness"]].append(run)
    for staleness, group in sorted(by_staleness.items(), key=lambda kv: (kv[0] is None, kv[0])):
        lines += _setting(staleness, group, n_mb)
    return "\n".join(lines).rstrip() + "\n"


def probed_runs(dir_runs: list[dict]) -> list[dict]:
    """Of the run directories ``a3po fidelity`` read (its runs with a ``path``), those that
    logged update-fidelity probes, reduced, each with that run's seed and staleness and ``every``
    read off its probe steps."""
    out = []
    for source in dir_runs:
        run = reduce_run(source["path"])
        if run["probes"]:  # the update at version v is a probe when (v + 1) % every == 0
            every = math.gcd(*(p + 1 for p in run["probes"]))
            out.append({**run, "seed": source["seed"], "staleness": source["staleness"],
                        "every": every})  # fmt: skip
    return out


def _setting(staleness: int | None, runs: list[dict], n_mb: int) -> list[str]:
    """One staleness point: its header line, table, summaries, noise halves, self-check, cost."""
    every = ",".join(map(str, sorted({r["every"] for r in runs})))
    probes = sorted({p for r in runs for p in r["probes"]})
    where = "the runs given" if staleness is None else f"staleness {staleness}"
    point = "" if staleness is None else f"`rollout.max_head_offpolicyness={staleness}`, "
    steps = sorted({r["steps"] for r in runs if "steps" in r})
    lines = [
        f"**{where}** ({point}`ppo_n_minibatches={n_mb}`, `{EVERY_KEY}={every}`, seeds "
        f"{sorted(r['seed'] for r in runs)}{f', steps {steps}' if steps else ''}, probes at "
        f"steps {probes}); per provider and PPO minibatch, each run's probes weighted by ‖G_rec‖, "
        "then the mean over seeds: ‖G_p − G_rec‖ / ‖G_rec‖, cos(G_p, G_rec), the noise floor of "
        "G_rec; the two's ratio per seed, its geometric mean with a t-interval across seeds:",
        "",
        pipe_table(HEADER, rows := table_rows(runs), align_right_from=1),
        "",
        verdict_summary(rows),
        "",
        closest_summary(runs),
        "",
    ]
    cos_ab = [
        _f(_mean_across(runs, keys.UF_NOISE_FLOOR, str(mb), keys.UF_COS), ".3f")
        for mb in range(n_mb)
    ]
    checks = [r["self_check_max"] for r in runs if r.get("self_check_max") is not None]
    lines += [
        f"cos(G_A, G_B) of the two halves per minibatch: {', '.join(cos_ab)}. Probe "
        "self-check (the real step's gradient against the probe's recompute gradient, "
        f"largest rel. L2 error over every probe): {_f(max(checks) if checks else None)}.",
        "",
    ]
    return lines + _cost(runs)


def _cost(runs: list[dict]) -> list[str]:
    """What the probes cost: train_step on probe steps against the others."""
    times = [r["train_step_s"] for r in runs if r["train_step_s"].get("probe") is not None]
    if not times or any(t.get("other") is None for t in times):
        return []
    probe = sum(t["probe"] for t in times) / len(times)
    other = sum(t["other"] for t in times) / len(times)
    passes = len({n for r in runs for n in r["cells"]} - SPECIAL) + 2
    return [
        f"Cost: `timeperf/train_step` {probe:.1f} s on probe steps against {other:.1f} s "
        f"on the others (step {WARMUP_STEP} left out): {probe - other:+.1f} s per probe, "
        f"{passes} extra training passes over each minibatch (scored providers + 2).",
        "",
    ]
