"""The kept data of one run: the per-step scalars the across-seeds report uses, as small JSON.

A :class:`RunRecord` is read out of a run's tensorboard logs (:func:`record_from_run`) and is all
that :mod:`areal_a3po.report.seeds` and :mod:`areal_a3po.report.sweep` need: per step the timed
stages, the training reward, the held-out (eval) reward where logged, the token lag, and when
the step was logged (:mod:`areal_a3po.report.sittings`; records kept before it have none), and the
train-inference mismatch (records kept before the monitor have none). ``a3po
compare`` writes one per run (``report/runs/<label>.json``), and ``benchmarks/update_docs.py``
rebuilds docs/benchmarks.md's tables from the ones kept in docs/benchmarks/<study>/, without the
event files. A record also says what ran: provider, seed, staleness, pace and the AReaL overrides.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from areal_a3po.report.load import RunData, pivot, timeperf_parts
from areal_a3po.report.summarise import lag_token_series, reward_tags, summarize_staleness

FORMAT = 1
DIGITS = 6  # decimals kept: microseconds, and rewards/lags well below their noise
Series = dict[int, float]  # step -> value
SERIES = ("reward", "eval_reward", "lag_avg", "lag_max", "mismatch", "wall_time")  # Series fields
NESTED = ("stages", "lag_tokens")  # name -> Series fields


@dataclass(frozen=True)
class RunRecord:
    """One run (one seed of one arm): what ran and the per-step scalars the report uses."""

    arm: str  # the arm's label (runs of one arm differ by seed)
    seed: int
    provider: str | None = None
    staleness: int | None = None  # rollout.max_head_offpolicyness
    pace: str | None = None
    overrides: list[str] = field(default_factory=list)  # AReaL overrides beyond the recipe's
    stages: dict[str, Series] = field(default_factory=dict)  # timeperf stage -> step -> s
    reward_key: str | None = None
    reward: Series = field(default_factory=dict)  # training reward per step
    eval_reward_key: str | None = None
    eval_reward: Series = field(default_factory=dict)  # held-out reward per evaluated step
    lag_source: str | None = None
    lag_avg: Series = field(default_factory=dict)
    lag_max: Series = field(default_factory=dict)
    wall_time: Series = field(default_factory=dict)  # step -> unix time its stats were logged
    mismatch: Series = field(default_factory=dict)  # train-inference mismatch per step (nats)
    # token-lag bucket ("3", ">=8") -> step -> tokens trained at that lag (the plugin's every-method
    # log; records kept before it have none): the lag histogram and the tokens over the cap
    lag_tokens: dict[str, Series] = field(default_factory=dict)

    def step_times(self) -> dict[int, dict[str, float]]:
        """Step -> {stage: seconds} (the shape of :meth:`RunData.step_times`)."""
        return pivot(self.stages)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in SERIES:
            d[key] = _series_out(d[key])
        for key in NESTED:
            d[key] = {k: _series_out(v) for k, v in d[key].items()}
        if not d["lag_tokens"]:  # a run without token lags: its record as before the field
            del d["lag_tokens"]
        return {"format": FORMAT, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "record") -> RunRecord:
        if d.get("format") != FORMAT:
            raise ValueError(f"{where}: format {d.get('format')!r}, this code reads {FORMAT}")
        d = {k: v for k, v in d.items() if k != "format"}
        for key in SERIES:
            d[key] = _series_in(d.get(key, {}))
        for key in NESTED:
            d[key] = {k: _series_in(v) for k, v in d.get(key, {}).items()}
        return cls(**d)


def _series_out(series: Series) -> dict[str, float]:
    return {str(k): round(float(v), DIGITS) for k, v in sorted(series.items())}


def _series_in(series: dict[str, float]) -> Series:
    return {int(k): float(v) for k, v in series.items()}


def record_from_run(
    data: RunData,
    arm: str,
    seed: int,
    *,
    provider: str | None = None,
    staleness: int | None = None,
    pace: str | None = None,
    overrides: list[str] | None = None,
) -> RunRecord:
    """The kept scalars of one run, read with the report's own tag matching."""
    stages = {name: dict(data.scalars[tag]) for name, tag in timeperf_parts(data.scalars).items()}
    reward_key, eval_key = reward_tags(data)
    lag = summarize_staleness(data)
    return RunRecord(
        arm=arm,
        seed=seed,
        provider=provider,
        staleness=staleness,
        pace=pace,
        overrides=list(overrides or []),
        stages={k: _finite(v) for k, v in sorted(stages.items())},
        reward_key=reward_key,
        reward=_finite(data.scalars[reward_key]) if reward_key else {},
        eval_reward_key=eval_key,
        eval_reward=_finite(data.scalars[eval_key]) if eval_key else {},
        lag_source=lag.source,
        lag_avg=_finite(data.scalars[lag.avg_key]) if lag.avg_key else {},
        lag_max=_finite(data.scalars[lag.max_key]) if lag.max_key else {},
        wall_time=_finite(data.wall_time),
        mismatch=_finite(data.scalars[lag.mismatch_key]) if lag.mismatch_key else {},
        lag_tokens={label: _finite(series) for label, series in lag_token_series(data)},
    )


def _finite(series: Series) -> Series:
    """Finite values, rounded as the JSON keeps them (so a record equals its file's)."""
    return {int(k): round(float(v), DIGITS) for k, v in sorted(series.items()) if math.isfinite(v)}


def record_name(record: RunRecord) -> str:
    return f"{record.arm}_seed{record.seed}.json"


def write_records(records: list[RunRecord], out_dir: str) -> list[str]:
    """One ``<arm>_seed<S>.json`` per run in ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for rec in records:
        path = os.path.join(out_dir, record_name(rec))
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(rec.to_json(), fh, separators=(",", ":"), allow_nan=False)
            fh.write("\n")
        paths.append(path)
    return paths


def read_records(directory: str) -> list[RunRecord]:
    """Every ``*.json`` record in ``directory``, sorted by (arm, seed)."""
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as fh:
                out.append(RunRecord.from_json(json.load(fh), path))
    return sorted(out, key=lambda r: (r.arm, r.seed))
