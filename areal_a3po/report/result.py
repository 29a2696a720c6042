"""The :class:`Report` type: what ``compare`` (``build``) produces and ``render`` writes out.

Kept apart from both, so that ``build`` imports ``render`` and ``render`` imports this type
without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from areal_a3po.report import stats
from areal_a3po.report.columns import flat_row
from areal_a3po.report.over_cap import OverCap
from areal_a3po.report.record import RunRecord
from areal_a3po.report.seeds import ArmSeeds
from areal_a3po.report.summaries import RunSummary
from areal_a3po.report.sweep import Sweep


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
