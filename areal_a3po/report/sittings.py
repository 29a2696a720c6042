"""When the runs of a comparison ran: its sittings, from the commit times each record keeps.

``a3po compare`` run again with the same ``--out`` resumes: runs an earlier invocation finished
are kept and skipped, an interrupted run continues from its checkpoint or starts over. A study
that took several invocations ran in several *sittings*, and the machine's state between them is
then part of the variation between seeds, as between invocations. The report says so, with each
sitting's times and runs, instead of calling the intervals one invocation's.

A sitting ends where no step was logged for :data:`SITTING_GAP_S`: far longer than a step or an
arm's start-up (minutes on the CPU testbeds), far shorter than a pause between sessions.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from areal_a3po.report.record import RunRecord

SITTING_GAP_S = 1800.0


@dataclass(frozen=True)
class Sitting:
    """A stretch of logged steps with no pause of :data:`SITTING_GAP_S` or more."""

    start: float  # unix time of its first logged step
    end: float  # unix time of its last logged step
    runs: tuple[str, ...]  # "arm s<seed>", in the order their first step here was logged


def run_name(rec: RunRecord) -> str:
    return f"{rec.arm} s{rec.seed}"


def sittings(records: Iterable[RunRecord], gap_s: float = SITTING_GAP_S) -> list[Sitting]:
    """The sittings of ``records``' logged steps; [] when no record kept commit times."""
    commits = sorted((t, run_name(r)) for r in records for t in r.wall_time.values())
    groups: list[list[tuple[float, str]]] = []
    for t, name in commits:
        if not groups or t - groups[-1][-1][0] >= gap_s:
            groups.append([])
        groups[-1].append((t, name))
    return [Sitting(g[0][0], g[-1][0], tuple(dict.fromkeys(n for _, n in g))) for g in groups]


def split_runs(parts: list[Sitting]) -> list[str]:
    """Runs with steps logged in more than one sitting (continued from a checkpoint)."""
    counts = Counter(name for s in parts for name in s.runs)
    return [name for name, n in counts.items() if n > 1]


def _utc(t: float, fmt: str) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(fmt)


def sittings_text(parts: list[Sitting]) -> str:
    """What the intervals cover when the runs took several sittings; "" for one sitting."""
    if len(parts) < 2:
        return ""
    day = "%Y-%m-%d"
    listed = "; ".join(
        f"{i}. {_utc(s.start, f'{day} %H:%M')} to "
        f"{_utc(s.end, '%H:%M' if _utc(s.end, day) == _utc(s.start, day) else f'{day} %H:%M')} "
        f"UTC: {', '.join(s.runs)}"
        for i, s in enumerate(parts, 1)
    )
    split = split_runs(parts)
    continued = (
        f" {', '.join(split)} continued from a checkpoint in a later sitting." if split else ""
    )
    return (
        f"The runs took {len(parts)} sittings (first to last logged step; a pause of "
        f"{SITTING_GAP_S / 60:.0f} min or more without a logged step starts a new one): "
        f"{listed}.{continued} What an interval covers: the variation between seeds on one "
        "machine, with the machine's state between sittings in it, as between invocations."
    )
