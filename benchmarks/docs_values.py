"""The inline values of the docs pages (``<!-- value: NAME -->``), each computed from kept data.

``update_docs.py`` fills them into docs/benchmarks.md, README.md, docs/metrics.md and
docs/compare.md: the report's own defaults and statistics, one provider's row of a kept study
(the README's switch), a stage's ratio, what the held-out window changes, the kept benches' lines.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from studies import KEPT, ROOT, RUNS, STUDIES, Study, expected_seconds, kept_dir, study_arms

from areal_a3po.mismatch import WARN_ABS_DLOGP, WARN_MIN_TOKENS
from areal_a3po.report import stats
from areal_a3po.report.defaults import BASELINE, LAST_EVALS, LAST_N, MARGIN
from areal_a3po.report.record import read_records
from areal_a3po.report.render_arms import planning_text
from areal_a3po.report.seeds import ArmSeeds, held_out_source, train_source
from areal_a3po.report.text import interval_text

DOC = ROOT / "docs" / "benchmarks.md"
BENCH = KEPT / "bench_trainer.txt"
BENCH_SMOLLM2 = KEPT / "bench_trainer_smollm2.txt"
NOT_RUN = "not yet run"


def verdict(a: ArmSeeds, study: Study | None = None) -> str:
    """An arm's verdicts in one cell (the choosing table, the repeat, the README's switch)."""
    if study is not None and study.withdrawn:
        return f"withdrawn: {study.withdrawn}"
    speed = a.verdicts.get("faster (trainer_compute)", "n/a")
    reward = a.verdicts.get("reward", "n/a").replace("baseline", BASELINE)
    if planned := planning_text(a):
        reward += f" ({planned})"
    return f"trainer: {speed}; reward: {reward}"


def _eval_size() -> int:
    from areal_a3po.testbeds.smollm2.task import EVAL_SIZE  # SmolLM2's held-out prompts

    return EVAL_SIZE


def _bench_value(pattern: str, path: Path = BENCH) -> str:
    if not path.exists():
        return NOT_RUN
    m = re.search(pattern, path.read_text())
    if not m:
        raise ValueError(f"{path}: no match for {pattern!r}: was it written by bench_trainer.py?")
    return m.group(1)


_RATIO = r"provider cost / recompute stage = (-?[0-9.e-]+(?: \[[^\]]*\])?)"
_EXTRA = r"loss-level extra (-?[0-9.]+ ms \[[^\]]*\])"
_RECOMPUTE = r"CPU time of this process:\n.*\nrecompute\s+([0-9.]+ ms)"
_MONITOR = r"monitor cost / recompute stage = (-?[0-9.e-]+(?: \[[^\]]*\])?)"


VALUES = {
    "margin": lambda: f"{MARGIN:g}",
    "confidence": lambda: f"{round(stats.CONFIDENCE * 100)} %",
    "min_seeds": lambda: str(stats.MIN_SEEDS),
    "power": lambda: f"{round(stats.POWER * 100)} %",
    "last_n": lambda: str(LAST_N),
    "last_evals": lambda: str(LAST_EVALS),
    "eval_size": lambda: str(_eval_size()),
    "train_record": lambda: train_source(LAST_N),
    "held_out_record": lambda: held_out_source(LAST_EVALS),
    "bench_cost_ratio": lambda: _bench_value(_RATIO),
    "bench_extra": lambda: _bench_value(_EXTRA),
    "bench_recompute": lambda: _bench_value(_RECOMPUTE),
    "bench_monitor_ratio": lambda: _bench_value(_MONITOR),
    "mismatch_warn": lambda: f"{WARN_ABS_DLOGP:g}",
    "mismatch_min_tokens": lambda: str(WARN_MIN_TOKENS),
    "bench_smollm2_cost_ratio": lambda: _bench_value(_RATIO, BENCH_SMOLLM2),
    "bench_smollm2_extra": lambda: _bench_value(_EXTRA, BENCH_SMOLLM2),
    "bench_smollm2_recompute": lambda: _bench_value(_RECOMPUTE, BENCH_SMOLLM2),
}


def _arm(value_name: str, study_name: str, provider: str) -> tuple[ArmSeeds, ArmSeeds] | None:
    """(the provider's arm, the baseline arm) of a kept study; None when it has not run."""
    arms = study_arms(STUDIES[study_name])
    if arms is None:
        return None
    arm = next((a for a in arms[1:] if a.label == provider), None)
    if arm is None:
        raise ValueError(f"value {value_name}: {study_name} has no arm {provider}")
    return arm, arms[0]


def _choice(study_name: str, provider: str, what: str) -> str:
    """One provider's row of a study, for the README's switch: ``ratio``, ``reward``, ``verdict``."""
    found = _arm(f"choice:{study_name}:{provider}", study_name, provider)
    if found is None:
        return NOT_RUN
    arm = found[0]
    if what == "ratio":
        return interval_text(arm.ratio.get("trainer_compute"))
    if what == "reward":
        return interval_text(arm.reward_difference)
    if what == "verdict":
        return verdict(arm, STUDIES[study_name])
    raise ValueError(f"value choice:...:{what}: one of ratio, reward, verdict")


def _stage_ratio(study_name: str, provider: str, stage: str) -> str:
    """One timed stage of a provider's arm over recompute's: per-seed means, paired t-interval."""
    found = _arm(f"stage_ratio:{study_name}:{provider}", study_name, provider)
    if found is None:
        return NOT_RUN
    cols = [{s: x.time_s[stage] for s, x in a.per_seed.items() if stage in x.time_s}
            for a in found]  # fmt: skip
    if not all(cols):
        raise ValueError(f"value stage_ratio:...:{stage}: not logged by both arms")
    return interval_text(stats.ratio_ci(*cols))


def _record(study_name: str) -> str:
    """The reward of record of a kept study's tables (its name, as the tables give it)."""
    arms = study_arms(STUDIES[study_name])
    return NOT_RUN if arms is None else arms[0].reward_source


def _window(study_name: str, provider: str, last_evals: str, what: str) -> str:
    """A provider's reward difference (``reward``) or the seeds planned for a claim if the arms
    were equal (``planned``), with the held-out reward of record over the last ``last_evals``
    evaluations: what the window changes (docs/compare.md)."""
    arms = study_arms(STUDIES[study_name], last_evals=int(last_evals))
    if arms is None:
        return NOT_RUN
    arm = next((a for a in arms[1:] if a.label == provider), None)
    if arm is None or not arm.held_out:
        raise ValueError(f"value window:{study_name}:{provider}: no held-out arm {provider}")
    if what == "reward":
        return interval_text(arm.reward_difference)
    if what == "planned":
        n = stats.seeds_for_noninferiority(arm.reward_difference, arm.margin)
        return f"more than {stats.MAX_PLANNED_SEEDS}" if n is None else str(n)
    raise ValueError(f"value window:...:{what}: one of reward, planned")


def _eval_variance_ratio(study_name: str, arm: str | None = None) -> str:
    """Within a run, the variance of its held-out evaluations over the binomial variance at the
    testbed's prompts: the mean over the study's runs (or one arm's) of each run's sample variance
    across its evaluations, over p (1 - p) / n at their mean score p."""
    from areal_a3po.testbeds.smollm2.task import EVAL_SIZE

    runs = kept_dir(STUDIES[study_name]) / RUNS
    if not runs.is_dir():
        return NOT_RUN
    series = [
        list(r.eval_reward.values()) for r in read_records(str(runs)) if arm is None or r.arm == arm
    ]
    if not series or any(len(x) < 2 for x in series):
        raise ValueError(f"value eval_variance:{study_name}: runs with fewer than 2 evaluations")
    within = statistics.fmean(statistics.variance(x) for x in series)
    p = statistics.fmean(v for x in series for v in x)
    return f"{within / (p * (1 - p) / EVAL_SIZE):.1f}"


def _fidelity_closest(name: str) -> str:
    """Per staleness, the provider closest to the recompute in a kept fidelity table, and whether
    the intervals across seeds separate it from the next (``areal_a3po.report.fidelity.closest``)."""
    from fidelity import KEPT as FIDELITY_KEPT  # the sibling script that keeps the tables

    from areal_a3po.report.fidelity import closest, load

    path = FIDELITY_KEPT / f"{name}.json"
    if not path.is_file():
        return NOT_RUN
    return " ".join(closest(load([str(path)])[0]))


def value(name: str) -> str:
    if name.startswith("fidelity_closest:"):
        return _fidelity_closest(name.split(":", 1)[1])
    if name.startswith("record:"):
        return _record(name.split(":", 1)[1])
    if name.startswith("window:"):
        return _window(*name.split(":")[1:])
    if name.startswith("eval_variance:"):
        return _eval_variance_ratio(*name.split(":")[1:])
    if name.startswith("mismatch:"):
        from mismatch import value as mismatch_value

        return mismatch_value(*name.split(":")[1:])
    if name.startswith("stage_ratio:"):
        return _stage_ratio(*name.split(":")[1:])
    if name.startswith("choice:"):
        return _choice(*name.split(":")[1:])
    if name.startswith("smollm2_compare_min:"):
        from smollm2_runs import compare_minutes

        return compare_minutes(int(name.split(":", 1)[1]))
    if name == "validity":
        from validity import summary

        return summary()
    if name.startswith("expected_h:"):
        return f"{expected_seconds(STUDIES[name.split(':', 1)[1]]) / 3600:.1f}"
    if name.startswith("target:"):
        return f"{STUDIES[name.split(':', 1)[1]].target:g}"
    if name not in VALUES:
        raise ValueError(f"{DOC}: unknown value '{name}' (known: {sorted(VALUES)})")
    return VALUES[name]()
