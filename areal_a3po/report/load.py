"""Read a run's tensorboard event files into :class:`RunData` and find tags in it.

AReaL's ``areal.utils.stats_logger.StatsLogger`` (enabled by ``stats_logger.tensorboard.path``)
opens one ``tensorboardX.SummaryWriter(log_dir=<tensorboard.path>)`` per process lifetime, so a
run's directory holds flat ``events.out.tfevents.<unix_time>.<hostname>`` files (a recovered run
adds one more file to the same directory). On every ``commit(epoch, step, global_step, stats)`` it
writes each key of the exported stats dict as a scalar tag at step
``max(global_step, last_step + 1)``, dropping the ``*__count`` keys (tag names: ``areal_keys`` and
``areal_a3po.keys``). Tags are matched by suffix (:func:`find_tag`), so extra scopes in front of
AReaL's keys do not matter.

Damaged inputs are named, never mixed silently (:func:`data_notes` gives the report's lines): a
truncated or corrupt event file (its records before the damage are used), event files of an earlier
run that restarted in the same directory (ignored), values an interrupted sitting logged after the
checkpoint its resumed sitting continued from (dropped), runs with fewer steps than the others,
runs of different experiments; a run directory whose files hold no scalar raises
:class:`RunDataError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from areal_a3po.report.areal_keys import EVAL_PREFIXES, TIME_TOTAL_PARTS, TIMEPERF_PREFIX

EVENT_FILE_MARKER = "tfevents"  # tensorboardX: events.out.tfevents.<time>.<host>[suffix]
TENSORBOARD_DIR = "tensorboard"  # AReaL's recipes: <fileroot>/tensorboard/<experiment>/<trial>

Series = dict[int, float]  # step -> value


class RunDataError(ValueError):
    """A run's logs cannot be compared; the message names the path and what to do."""


@dataclass
class RunData:
    """All scalars of one run: tag -> step -> value, plus step -> wall time of the commit."""

    run_dir: str
    event_files: list[str]
    scalars: dict[str, Series]
    wall_time: dict[int, float]
    skipped_files: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)  # "path: what is damaged"
    superseded_files: list[str] = field(default_factory=list)  # an earlier run's, ignored
    orphaned: list[str] = field(default_factory=list)  # "path: n values at steps >= k", dropped
    experiment: str | None = None  # <experiment> of .../tensorboard/<experiment>/<trial>

    def find(self, keys: Iterable[str], *, allow_eval: bool = False) -> str | None:
        """The tag for the first of ``keys`` this run logged (see :func:`find_tag`)."""
        return find_tag(self.scalars, keys, allow_eval=allow_eval)

    def step_times(self) -> dict[int, dict[str, float]]:
        """Step -> {stage: seconds} for every step that has at least one ``timeperf/*`` value."""
        return pivot(
            {name: self.scalars[tag] for name, tag in timeperf_parts(self.scalars).items()}
        )


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

    Files are merged oldest first (by first event wall time). A later file that starts at step
    k (a run recovered from the checkpoint of step k - 1) orphans every value the earlier files
    logged at step k or later, in every tag: those steps are trained again, and what the
    interrupted sitting logged for them (an evaluation that the resumed one logs at other steps,
    say) describes weights that no longer exist.
    """
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    loaded = []
    skipped = []
    damaged = []
    for path in find_event_files(run_dir):
        try:
            acc = EventAccumulator(path, size_guidance={SCALARS: 0})
            acc.Reload()
            per_tag = {tag: acc.Scalars(tag) for tag in acc.Tags().get("scalars", [])}
        except Exception as exc:  # noqa: BLE001 - a corrupt file is reported, not fatal
            skipped.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        damage = record_damage(path)
        if damage is not None:
            damaged.append(f"{path}: {damage}")
        if not any(per_tag.values()):
            continue  # a header only (the run stopped before its first commit)
        first = min(ev.wall_time for evs in per_tag.values() for ev in evs)
        loaded.append((first, path, per_tag))
    if not loaded:
        raise RunDataError(
            f"{run_dir}: its event files hold no scalar (the run stopped before its first "
            "step, or the files are damaged); rerun it or leave it out of the comparison"
            + (": " + "; ".join(skipped + damaged) if skipped or damaged else "")
        )
    loaded.sort(key=lambda item: (item[0], item[1]))
    superseded = []
    for i in range(1, len(loaded)):  # a file restarting at the earliest step so far: a new run
        first_step = min(ev.step for evs in loaded[i][2].values() for ev in evs)
        earlier = min(ev.step for _, _, pt in loaded[:i] for evs in pt.values() for ev in evs)
        if first_step <= earlier:
            superseded = [p for _, p, _ in loaded[:i]]
    loaded = [item for item in loaded if item[1] not in superseded]
    orphaned = []
    for i in range(1, len(loaded)):  # a resumed sitting logs again from step k (checkpoint + 1):
        k = min(ev.step for evs in loaded[i][2].values() for ev in evs)
        for _, path, per_tag in loaded[:i]:  # what the earlier ones logged from k on is orphaned
            n = sum(ev.step >= k for evs in per_tag.values() for ev in evs)
            if n:
                for tag, evs in per_tag.items():
                    per_tag[tag] = [ev for ev in evs if ev.step < k]
                orphaned.append(f"{path}: {n} values at steps >= {k}")

    scalars, wall = _merge([per_tag for _, _, per_tag in loaded])
    return RunData(
        run_dir=run_dir,
        event_files=[p for _, p, _ in loaded],
        scalars=scalars,
        wall_time=wall,
        skipped_files=skipped,
        damaged_files=damaged,
        superseded_files=superseded,
        orphaned=orphaned,
        experiment=experiment_of(run_dir),
    )


def _merge(files: list[dict]) -> tuple[dict[str, Series], dict[int, float]]:
    """(tag -> step -> value, step -> wall time) of event files, oldest first: later ones win."""
    scalars: dict[str, Series] = {}
    wall: dict[int, float] = {}
    for per_tag in files:
        for tag, events in per_tag.items():
            series = scalars.setdefault(tag, {})
            for ev in events:
                series[int(ev.step)] = float(ev.value)
                wall[int(ev.step)] = float(ev.wall_time)
    return scalars, wall


def record_damage(path: str) -> str | None:
    """What is wrong with an event file's record framing (truncated, bad checksum), or None.

    Tensorboard's loader stops quietly at the first bad record; its own record reader says why.
    """
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    reader = pywrap_tensorflow.PyRecordReader_New(path)
    n = 0
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return None
        except errors.DataLossError as exc:
            text = exc.message.replace(path, "").strip()
            return f"{text} after {n} good records; the scalars after it are lost"
        n += 1


def experiment_of(run_dir: str) -> str | None:
    """``<experiment>`` when ``run_dir`` is ``.../tensorboard/<experiment>/<trial>`` (AReaL's layout)."""
    parts = os.path.normpath(os.path.abspath(run_dir)).split(os.sep)
    if len(parts) >= 3 and parts[-3] == TENSORBOARD_DIR:
        return parts[-2]
    return None


def data_notes(datas: list[RunData], labels: list[str]) -> list[str]:
    """The report's lines on damaged or mismatched inputs (one per finding, naming the path)."""
    notes = []
    for data, label in zip(datas, labels, strict=True):
        notes += [f"{label}: damaged event file {bad}" for bad in data.damaged_files]
        notes += [
            f"{label}: event file of an earlier run in the same directory ignored (the newest "
            f"run restarted from its first step): {path}"
            for path in data.superseded_files
        ]
        notes += [
            f"{label}: resumed from a recover checkpoint; dropped what the interrupted sitting "
            f"logged after it, as the resumed one trains those steps again: {what}"
            for what in data.orphaned
        ]
    steps = [len({s for series in d.scalars.values() for s in series}) for d in datas]
    longest = max(range(len(datas)), key=lambda i: steps[i])
    for data, label, n in zip(datas, labels, steps, strict=True):
        if n < steps[longest]:
            notes.append(
                f"{label}: {n} steps logged, {steps[longest]} in {labels[longest]} "
                f"({data.run_dir}): its final and last-N rewards are at earlier steps; "
                "finish or rerun it to compare at equal length"
            )
    experiments: dict[str, list[str]] = {}
    for data, label in zip(datas, labels, strict=True):
        if data.experiment is not None:
            experiments.setdefault(data.experiment, []).append(label)
    if len(experiments) > 1:
        notes.append(
            "runs of different experiments (" + "; ".join(
                f"{exp}: {', '.join(lbls)}" for exp, lbls in experiments.items()
            ) + "): compared as given; check that they ran the same task and model"
        )  # fmt: skip
    return notes


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


def pivot(stages: Mapping[str, Series]) -> dict[int, dict[str, float]]:
    """Stage -> step -> seconds as step -> {stage: seconds}, by step (the one step-time pivot)."""
    per_step: dict[int, dict[str, float]] = {}
    for name, series in stages.items():
        for step, value in series.items():
            per_step.setdefault(step, {})[name] = value
    return dict(sorted(per_step.items()))


def step_total(stages: dict[str, float]) -> float:
    """Seconds of one step: ``timeperf/total`` when logged, else the sum of its stages."""
    for total in TIME_TOTAL_PARTS:
        if total in stages:
            return stages[total]
    return sum(v for k, v in stages.items() if k not in TIME_TOTAL_PARTS)
