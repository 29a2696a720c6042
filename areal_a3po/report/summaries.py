"""The typed summaries of one run: :class:`RunSummary` and its parts (no computation here).

One ``RunSummary`` per run directory, i.e. per seed. Every field name is also its key in the
``runs`` section of report.json (``dataclasses.asdict``). ``columns.METRICS`` reads the report's
flat numbers out of these; an arm with several seeds is a list of ``RunSummary`` to which the same
getters apply. ``summarise`` computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from areal_a3po import keys

TIME_OTHER = "other"  # every timeperf/* stage not in NAMED_TIME_PARTS, summed


@dataclass(frozen=True)
class TimingSummary:
    """Median seconds per step after the warm-up (``summarise.summarize_timing`` says why)."""

    timed_steps: int
    warmup_skipped: int
    steps_used: int
    first_step_used: int | None = None
    step_time_s: float | None = None
    trainer_compute_s: float | None = None  # recompute_logp + train_step: the method's own cost
    parts_s: dict[str, float | None] = field(default_factory=dict)  # NAMED_TIME_PARTS + other
    other_parts_s: dict[str, float | None] = field(default_factory=dict)  # stages in "other"
    logged_parts: list[str] = field(default_factory=list)
    commit_interval_s: float | None = None  # median wall time between consecutive commits
    step_time_source: str | None = None


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

    def sole_abs_error(self) -> tuple[str | None, float | None]:
        """(method, mean abs error) when exactly one method logged errors, else (None, None)."""
        if len(self.methods) != 1:  # several methods (AReaL metrics mode): see report.md
            return None, None
        method, metrics = next(iter(self.methods.items()))
        err = metrics.get(keys.ABS_ERROR)
        return (method, err.mean) if err is not None else (None, None)


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
