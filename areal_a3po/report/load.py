"""Read a run's tensorboard event files into :class:`RunData` and find tags in it.

AReaL's ``areal.utils.stats_logger.StatsLogger`` (enabled by ``stats_logger.tensorboard.path``)
opens one ``tensorboardX.SummaryWriter(log_dir=<tensorboard.path>)`` per process lifetime, so a
run's directory holds flat ``events.out.tfevents.<unix_time>.<hostname>`` files (a recovered run
adds one more file to the same directory). On every ``commit(epoch, step, global_step, stats)`` it
writes each key of the exported stats dict as a scalar tag at step
``max(global_step, last_step + 1)``, dropping the ``*__count`` keys (tag names: ``areal_keys`` and
``areal_a3po.keys``). Tags are matched by suffix (:func:`find_tag`), so extra scopes in front of
AReaL's keys do not matter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from areal_a3po.report.areal_keys import EVAL_PREFIXES, TIME_TOTAL_PARTS, TIMEPERF_PREFIX

EVENT_FILE_MARKER = "tfevents"  # tensorboardX: events.out.tfevents.<time>.<host>[suffix]

Series = dict[int, float]  # step -> value


@dataclass
class RunData:
    """All scalars of one run: tag -> step -> value, plus step -> wall time of the commit."""

    run_dir: str
    event_files: list[str]
    scalars: dict[str, Series]
    wall_time: dict[int, float]
    skipped_files: list[str] = field(default_factory=list)

    def find(self, keys: Iterable[str], *, allow_eval: bool = False) -> str | None:
        """The tag for the first of ``keys`` this run logged (see :func:`find_tag`)."""
        return find_tag(self.scalars, keys, allow_eval=allow_eval)

    def step_times(self) -> dict[int, dict[str, float]]:
        """Step -> {stage: seconds} for every step that has at least one ``timeperf/*`` value."""
        per_step: dict[int, dict[str, float]] = {}
        for name, tag in timeperf_parts(self.scalars).items():
            for step, value in self.scalars[tag].items():
                per_step.setdefault(step, {})[name] = value
        return dict(sorted(per_step.items()))


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


def is_eval(tag: str) -> bool:
    """Whether ``tag`` belongs to an evaluation tracker (kept apart from training tags)."""
    return tag.startswith(EVAL_PREFIXES)


def _matches(tag: str, key: str) -> bool:
    return tag == key or tag.endswith("/" + key)


def find_tag(tags: Iterable[str], keys: Iterable[str], *, allow_eval: bool = False) -> str | None:
    """First tag matching ``keys`` in order: an exact match, else the shortest suffix match.

    A key is tried with its leading scopes dropped too (``ppo_actor/update/x/avg`` also matches
    ``<anything>/update/x/avg`` and ``<anything>/x/avg``), so extra or missing scopes are fine;
    the last two components of a key are always required.
    """
    tags = [t for t in tags if allow_eval or not is_eval(t)]
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


def timeperf_parts(tags: Iterable[str]) -> dict[str, str]:
    """Stage name -> tag for every ``timeperf/<stage>`` tag (unprefixed tags win)."""
    parts: dict[str, str] = {}
    for tag in sorted(tags, key=lambda t: (len(t), t)):
        idx = tag.find(TIMEPERF_PREFIX)
        if idx < 0 or (idx > 0 and tag[idx - 1] != "/"):
            continue
        parts.setdefault(tag[idx + len(TIMEPERF_PREFIX) :], tag)
    return parts


def step_total(stages: dict[str, float]) -> float:
    """Seconds of one step: ``timeperf/total`` when logged, else the sum of its stages."""
    for total in TIME_TOTAL_PARTS:
        if total in stages:
            return stages[total]
    return sum(v for k, v in stages.items() if k not in TIME_TOTAL_PARTS)
