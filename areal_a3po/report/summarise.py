"""One run reduced: :class:`RunSummary` (one per run directory; its fields are report.json's
``runs`` keys, ``columns.METRICS`` names its flat numbers), computed from the run's
:class:`RunData`. Step times have one reduction, :func:`summarize_timing`, also for ``seeds``."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from areal_a3po import keys
from areal_a3po.report import areal_keys as ak
from areal_a3po.report.load import RunData, find_tag, is_eval, step_total

TIME_OTHER = "other"  # every timeperf/* stage not in NAMED_TIME_PARTS, summed


@dataclass(frozen=True)
class TimingSummary:
    """Mean seconds per step after the warm-up (``summarise.summarize_timing`` says why)."""

    timed_steps: int
    warmup_skipped: int
    steps_used: int
    first_step_used: int | None = None
    step_time_s: float | None = None
    trainer_compute_s: float | None = None  # recompute_logp + train_step: the method's own cost
    parts_s: dict[str, float | None] = field(default_factory=dict)  # NAMED_TIME_PARTS + other
    other_parts_s: dict[str, float | None] = field(default_factory=dict)  # summed in "other"
    logged_parts: list[str] = field(default_factory=list)
    commit_interval_s: float | None = None  # mean wall time between consecutive commits
    step_time_source: str | None = None

    @property
    def recompute_logged(self) -> bool:
        return ak.TIME_RECOMPUTE in self.logged_parts


@dataclass(frozen=True)
class RewardSummary:
    """One reward series: final, best, and the spread of its last ``last_n`` logged points."""

    key: str | None = None
    n_points: int = 0
    final: float | None = None
    final_step: int | None = None
    best: float | None = None
    best_step: int | None = None  # earliest step reaching the best
    last_n: int = 0
    last_mean: float | None = None
    last_std: float | None = None  # population std
    last_min: float | None = None
    last_max: float | None = None


@dataclass(frozen=True)
class StalenessHistogram:
    """Tokens per lag over all steps; labels "0".."k-1" and ">=k"."""

    labels: list[str]
    counts: list[float]
    shares: list[float | None]
    total: float


@dataclass(frozen=True)
class StalenessSummary:
    source: str | None = None  # "token lag (every method)", "a3po provider", "areal version_stats"
    avg_key: str | None = None
    max_key: str | None = None
    avg: float | None = None  # mean over steps of the per-step token average
    max: float | None = None  # max over steps of the per-step max
    histogram: StalenessHistogram | None = None
    # Train-inference mismatch beside it (areal_a3po.mismatch): per-step mean |log pi_trainer -
    # log pi_behave| on fresh tokens; its mean and max over the steps that logged it.
    mismatch_key: str | None = None
    mismatch_avg: float | None = None
    mismatch_max: float | None = None


@dataclass(frozen=True)
class ApproxMetric:
    """One error statistic of one method over the steps that logged it."""

    key: str
    mean: float
    max: float
    final: float
    n_steps: int


@dataclass(frozen=True)
class ApproxSummary:
    methods: dict[str, dict[str, ApproxMetric]]  # method -> error metric -> summary
    recomputed_key: str | None = None
    recomputed_steps: int | None = None
    recomputed_step_share: float | None = None
    exact_token_share_key: str | None = None
    exact_token_share: float | None = None

    def _sole(self) -> tuple[str | None, float | None]:
        """(method, mean abs error) when exactly one method logged errors, else (None, None)."""
        if len(self.methods) != 1:  # several methods (AReaL metrics mode): see report.md
            return None, None
        method, metrics = next(iter(self.methods.items()))
        err = metrics.get(keys.ABS_ERROR)
        return (method, err.mean) if err is not None else (None, None)

    @property
    def sole_method(self) -> str | None:
        return self._sole()[0]

    @property
    def sole_abs_error(self) -> float | None:
        return self._sole()[1]


@dataclass(frozen=True)
class VersusBaseline:
    """Saving of a run relative to the baseline run of the same comparison."""

    baseline: str
    step_time_ratio: float | None = None
    speedup: float | None = None
    saved_s_per_step: float | None = None
    baseline_recompute_logp_s: float | None = None
    recompute_logp_s: float | None = None
    recompute_removed_share: float | None = None  # 1 - run's / baseline's recompute time


@dataclass(frozen=True)
class RunSummary:
    label: str
    run_dir: str
    event_files: list[str]
    skipped_event_files: list[str]
    n_tags: int
    n_steps: int
    last_step: int | None
    timing: TimingSummary
    reward: RewardSummary
    eval_reward: RewardSummary
    staleness: StalenessSummary
    approx: ApproxSummary
    vs_baseline: VersusBaseline | None = None  # set by :func:`with_baseline`

    @property
    def n_event_files(self) -> int:
        return len(self.event_files)


# The plugin's tags (names from areal_a3po.keys); AReaL's are in areal_keys.
TOKEN_LAG_RE = re.compile(r"(?:^|/)" + keys.LAG_SCOPE + "/" + keys.TOKEN_LAG_PATTERN + "$")
TOKEN_LAG_AVG_KEYS = (keys.LAG_PREFIX + keys.TOKEN_LAG + "/avg",)
TOKEN_LAG_MAX_KEYS = (keys.LAG_PREFIX + keys.TOKEN_LAG + "/max",)
MISMATCH_KEYS = (keys.LAG_PREFIX + keys.MISMATCH_ABS,)
TOKEN_LAG_SOURCE = "token lag (every method)"  # the staleness source: the plugin's own log
RECOMPUTED_KEYS = (keys.full(keys.RECOMPUTED), keys.full(keys.RECOMPUTED, "avg"))
EXACT_TOKEN_SHARE_KEYS = (
    keys.full(keys.EXACT_TOKEN_SHARE, "avg"),
    keys.full(keys.EXACT_TOKEN_SHARE),
)
# Errors against the recompute, ``<scope>/compute_logp/<method>/<metric>/avg`` (method may nest).
APPROX_TABLE_METRICS = (  # shown in report.md; report.json has every one found
    keys.ABS_ERROR,
    keys.REL_ERROR,
    keys.IMPORTANCE_WEIGHT_ABS_ERROR,
    keys.BEHAVE_IMP_WEIGHT_ABS_ERROR,
)
APPROX_ERROR_METRICS = tuple(
    dict.fromkeys((*APPROX_TABLE_METRICS, *keys.ERROR_STATS, *ak.ERROR_STATS))
)
APPROX_ERROR_RE = re.compile(
    rf"(?:^|/){keys.PROX_SCOPE}/(?P<method>.+)/(?P<metric>{'|'.join(APPROX_ERROR_METRICS)})/avg$"
)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(statistics.fmean(values)) if values else None


def resolve_warmup(n_steps: int, warmup: int | None) -> int:
    """Steps dropped from step-time means: ``warmup`` if given, else 1 when there are > 2 steps."""
    if warmup is None:
        return 1 if n_steps > 2 else 0
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    return min(warmup, max(n_steps - 1, 0))


def summarize_timing(
    per_step: Mapping[int, Mapping[str, float]],
    warmup: int | None,
    wall_time: Mapping[int, float] | None = None,
) -> TimingSummary:
    """The one reduction of a run's step times (``per_step``: step -> stage -> s, the pivot of
    :meth:`RunData.step_times` or :meth:`RunRecord.step_times`): means after the warm-up.

    Means, not medians: the mean is what a run costs (total time / steps), and it carries the
    stages that run on some steps only (``hybrid``'s recompute, evaluations, checkpoints), which a
    median sets to 0. A stage absent from a step counts 0 s, so the parts add up to the step time.
    Report.md's per-run tables and every per-seed summary behind the across-seeds intervals read
    this one number.
    """
    steps = list(per_step)
    skip = resolve_warmup(len(steps), warmup)
    used = steps[skip:]
    logged = sorted({k for s in per_step.values() for k in s})
    if not used:
        return TimingSummary(len(steps), skip if steps else 0, 0, logged_parts=logged)
    rows = [per_step[s] for s in used]
    has_total = any(t in logged for t in ak.TIME_TOTAL_PARTS)
    parts = {name: _mean(r.get(name, 0.0) for r in rows) for name in ak.NAMED_TIME_PARTS}
    others = sorted(
        {k for r in rows for k in r} - set(ak.NAMED_TIME_PARTS) - set(ak.TIME_TOTAL_PARTS)
    )
    other_parts = {k: _mean(r.get(k, 0.0) for r in rows) for k in others}
    parts[TIME_OTHER] = sum(other_parts.values(), 0.0)
    # Cross-check from the event files: wall time between consecutive commits.
    wall = wall_time or {}
    deltas = [wall[s] - wall[s - 1] for s in used if s - 1 in wall and s in wall]
    return TimingSummary(
        timed_steps=len(steps),
        warmup_skipped=skip,
        steps_used=len(used),
        first_step_used=used[0],
        step_time_s=_mean(step_total(r) for r in rows),
        trainer_compute_s=_mean(
            r.get(ak.TIME_RECOMPUTE, 0.0) + r.get(ak.TIME_TRAIN, 0.0) for r in rows
        ),
        parts_s=parts,
        other_parts_s=other_parts,
        logged_parts=logged,
        commit_interval_s=_mean(deltas),
        step_time_source="timeperf/total" if has_total else "sum of timeperf/* stages per step",
    )


def summarize_reward(
    series: dict[int, float] | None, key: str | None, last_n: int
) -> RewardSummary:
    if not series:
        return RewardSummary(key=key)
    steps = sorted(series)
    best_step = max(steps, key=lambda s: (series[s], -s))  # earliest step reaching the best
    tail = [series[s] for s in steps[-max(1, last_n) :]]
    return RewardSummary(
        key=key,
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


def lag_token_series(data: RunData) -> list[tuple[str, dict[int, float]]]:
    """(bucket label, step -> tokens) per token-lag bucket, "7" before ">=8"; when a bucket is
    logged under several tags, the least-prefixed one (eval tags left out)."""
    bins: dict[tuple[int, int], tuple[str, dict[int, float]]] = {}
    for tag in sorted(data.scalars, key=lambda t: (-len(t), t)):
        m = TOKEN_LAG_RE.search(tag)
        if not m or is_eval(tag):
            continue
        is_ge, lag = (1 if m.group(1) else 0), int(m.group(2))
        bins[(lag, is_ge)] = (f">={lag}" if is_ge else str(lag), data.scalars[tag])
    return [bins[k] for k in sorted(bins)]


def _staleness_histogram(data: RunData) -> StalenessHistogram | None:
    ordered = [(label, sum(series.values())) for label, series in lag_token_series(data)]
    if not ordered:
        return None
    total = sum(c for _, c in ordered)
    return StalenessHistogram(
        labels=[lbl for lbl, _ in ordered],
        counts=[c for _, c in ordered],
        shares=[(c / total) if total > 0 else None for _, c in ordered],
        total=total,
    )


def summarize_staleness(data: RunData) -> StalenessSummary:
    """Token lag as the loss sees it (the plugin's every-method log), else AReaL's version stats."""
    avg_tag, max_tag = data.find(TOKEN_LAG_AVG_KEYS), data.find(TOKEN_LAG_MAX_KEYS)
    source = TOKEN_LAG_SOURCE if avg_tag else None
    if source is None:
        avg_tag, max_tag = data.find(ak.STALENESS_AVG_KEYS), data.find(ak.STALENESS_MAX_KEYS)
        source = "areal version_stats" if (avg_tag or max_tag) else None
    mismatch = data.find(MISMATCH_KEYS)
    mismatch_values = list(data.scalars[mismatch].values()) if mismatch else []
    return StalenessSummary(
        source=source,
        avg_key=avg_tag,
        max_key=max_tag,
        avg=_mean(data.scalars[avg_tag].values()) if avg_tag else None,
        max=max(data.scalars[max_tag].values()) if max_tag else None,
        histogram=_staleness_histogram(data),
        mismatch_key=mismatch,
        mismatch_avg=_mean(mismatch_values) if mismatch_values else None,
        mismatch_max=max(mismatch_values) if mismatch_values else None,
    )


def mismatch_steps(data: RunData) -> dict[int, dict[str, float]]:
    """Step -> the train-inference mismatch monitor's values that step: ``abs_dlogp``,
    ``dlogp``, ``outside_clip`` (averages over the fresh tokens) and ``n_tokens``."""
    tags = {s.split("/")[-1]: keys.LAG_PREFIX + s for s in keys.MISMATCH_STATS}
    tags["n_tokens"] = keys.LAG_PREFIX + keys.MISMATCH_TOKENS
    steps: dict[int, dict[str, float]] = {}
    for name, tag in tags.items():
        for step, value in data.scalars.get(tag, {}).items():
            steps.setdefault(int(step), {})[name] = float(value)
    return dict(sorted(steps.items()))


def summarize_approx(data: RunData) -> ApproxSummary:
    methods: dict[str, dict[str, ApproxMetric]] = {}
    for tag, series in data.scalars.items():
        m = APPROX_ERROR_RE.search(tag)
        if not m or not series or is_eval(tag):
            continue
        entry = methods.setdefault(m.group("method"), {})
        prev = entry.get(m.group("metric"))
        if prev is not None and len(prev.key) <= len(tag):
            continue  # keep the least-prefixed duplicate
        vals = list(series.values())
        entry[m.group("metric")] = ApproxMetric(
            tag, float(statistics.fmean(vals)), max(vals), series[max(series)], len(vals)
        )
    rec_tag, exact_tag = data.find(RECOMPUTED_KEYS), data.find(EXACT_TOKEN_SHARE_KEYS)
    rec = data.scalars[rec_tag] if rec_tag else {}
    n_rec = sum(1 for v in rec.values() if v > 0)
    return ApproxSummary(
        methods=dict(sorted(methods.items())),
        recomputed_key=rec_tag,
        recomputed_steps=n_rec if rec_tag else None,
        recomputed_step_share=n_rec / len(rec) if rec else None,
        exact_token_share_key=exact_tag,
        exact_token_share=_mean(data.scalars[exact_tag].values()) if exact_tag else None,
    )


def reward_tags(data: RunData) -> tuple[str | None, str | None]:
    """The run's (training reward tag, held-out reward tag, from the eval tracker's tags)."""
    eval_tags = [t for t in data.scalars if is_eval(t)]
    return data.find(ak.REWARD_KEYS), find_tag(eval_tags, ak.EVAL_REWARD_KEYS, allow_eval=True)


def summarize_run(data: RunData, label: str, warmup: int | None, last_n: int) -> RunSummary:
    """Everything the report shows about one run, without the comparison to the baseline."""
    reward_key, eval_key = reward_tags(data)
    all_steps = sorted({s for series in data.scalars.values() for s in series})
    return RunSummary(
        label=label,
        run_dir=data.run_dir,
        event_files=data.event_files,
        skipped_event_files=data.skipped_files,
        n_tags=len(data.scalars),
        n_steps=len(all_steps),
        last_step=all_steps[-1] if all_steps else None,
        timing=summarize_timing(data.step_times(), warmup, data.wall_time),
        reward=summarize_reward(data.scalars.get(reward_key), reward_key, last_n),
        eval_reward=summarize_reward(data.scalars.get(eval_key), eval_key, last_n),
        staleness=summarize_staleness(data),
        approx=summarize_approx(data),
    )


def versus_baseline(run: RunSummary, base: RunSummary) -> VersusBaseline:
    """Saving of ``run`` relative to ``base`` (both from this invocation)."""
    t, b = run.timing.step_time_s, base.timing.step_time_s
    rb = base.timing.parts_s.get(ak.TIME_RECOMPUTE)
    rr = run.timing.parts_s.get(ak.TIME_RECOMPUTE)
    timed = t is not None and b is not None and b > 0
    return VersusBaseline(
        baseline=base.label,
        step_time_ratio=t / b if timed else None,
        speedup=b / t if timed and t > 0 else None,
        saved_s_per_step=b - t if timed else None,
        baseline_recompute_logp_s=rb,
        recompute_logp_s=rr,
        recompute_removed_share=(
            1.0 - rr / rb if rb is not None and rr is not None and rb > 0 else None
        ),
    )


def with_baseline(runs: list[RunSummary]) -> list[RunSummary]:
    """The runs with ``vs_baseline`` set against the first one."""
    return [replace(run, vs_baseline=versus_baseline(run, runs[0])) for run in runs]
