"""benchmarks/update_docs.py on kept studies: the Choosing table, the recommendation, repeated and
withdrawn studies, held-out rewards of record and the evaluation variance, from records written
by ``a3po compare`` on REAL tensorboard logs of AReaL's StatsLogger (``tests/report_logs.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from areal_a3po import report as rp
from tests import report_logs as F
from tests.report_logs import torch  # noqa: F401  skips this module without torch, tensorboard


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Three arms x three seeds (:func:`tests.report_logs.write_seed_runs`)."""
    return F.write_seed_runs(tmp_path_factory.mktemp("seeds"))


def test_update_docs_builds_choosing_table_and_recommendation_from_kept_records(
    seed_runs, tmp_path, monkeypatch
):
    """benchmarks/update_docs.py on a kept study: rows, verdicts and the recommended provider."""
    import shutil
    import sys

    from areal_a3po.report import stats as report_stats
    from areal_a3po.report.text import interval_text

    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "benchmarks")))
    import studies
    import update_docs

    dirs, labels, seeds = seed_runs
    names = {"recompute": "recompute", "same": "a3po-step", "fast": "a3po"}
    out = tmp_path / "out"
    rp.compare(F.runs(dirs, [names[x] for x in labels], seeds), str(out), last_n=2)
    kept = tmp_path / "kept"
    shutil.copytree(out / rp.RECORDS_DIR, kept / "tiny-mb4" / studies.RUNS)
    meta = {
        "providers": ["recompute", "a3po", "a3po-step", "loglinear"],
        "command": ["-m", "areal_a3po.cli", "compare", "--seeds", "1,2,3"],
        "started_utc": "t0", "finished_utc": "t1",
        "machine": {"cpus": 2, "platform": "test"},
    }  # fmt: skip
    (kept / "tiny-mb4" / studies.STUDY_JSON).write_text(json.dumps(meta))
    monkeypatch.setattr(studies, "KEPT", kept)
    monkeypatch.setattr(update_docs, "KEPT", kept)

    assert studies.recommended() == "a3po"  # faster and non-inferior; a3po-step is within noise
    assert studies.providers(studies.STUDIES["smollm2-mb4"]) == ["recompute", "a3po"]
    table = update_docs.choosing()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    row = next(r for r in rows if r[2] == "a3po" and r[3] == "4")
    assert row[5] == "3" and row[7].startswith("0.6")  # seeds; trainer ratio 1.0 / 1.5 s
    assert row[9] == "trainer: faster; reward: not worse than recompute by more than 0.05"
    assert "not yet run" in table  # tiny-mb1 and the others have no kept data here
    block = update_docs.study_block(studies.STUDIES["tiny-mb4"], tmp_path / "plots")
    assert block.startswith("Ran t0 to t1 on 2 CPUs (test): `a3po compare --seeds 1,2,3`.")
    assert "paired t-interval" not in block and "Student-t" in block
    assert (tmp_path / "plots" / update_docs.PLOT).is_file()
    assert "not yet run" in update_docs.repeat()
    # the README's switch quotes the same row
    assert update_docs.value("choice:tiny-mb4:a3po:ratio") == row[7]
    assert update_docs.value("choice:tiny-mb4:a3po:verdict") == row[9]
    assert update_docs.value("choice:tiny-mb4-repeat:a3po:reward") == "not yet run"
    with pytest.raises(ValueError, match="tiny-mb4 has no arm behave"):
        update_docs.value("choice:tiny-mb4:behave:ratio")
    arms = {a.label: a for a in studies.study_arms(studies.STUDIES["tiny-mb4"])}
    train = [
        {s: x.time_s["train_step"] for s, x in arms[k].per_seed.items()} for k in names.values()
    ]
    assert update_docs.value("stage_ratio:tiny-mb4:a3po:train_step") == interval_text(
        report_stats.ratio_ci(train[2], train[0])
    )
    # a study of "the recommended provider" run with --provider another says so
    shutil.copytree(kept / "tiny-mb4", kept / "tiny-stale8")
    for path in (kept / "tiny-stale8" / studies.RUNS).glob("a3po_seed*.json"):
        path.unlink()  # the arms: recompute and a3po-step
    given = dict(meta, providers=["recompute", "a3po-step", "behave"])
    (kept / "tiny-stale8" / studies.STUDY_JSON).write_text(json.dumps(given))
    stale8 = update_docs.study_block(studies.STUDIES["tiny-stale8"], tmp_path / "plots8")
    assert (
        "The provider under test, `a3po-step`, was given with `--provider`: tiny-mb4's kept data "
        "recommends `a3po`." in stale8
    )
    assert stale8.startswith("Ran t0 to t1 ") and "one invocation" in stale8  # one sitting
    # seed 3 logged two hours later (the study was resumed): two sittings, and the block says so
    for path in (kept / "tiny-stale8" / studies.RUNS).glob("*_seed3.json"):
        rec = json.loads(path.read_text())
        rec["wall_time"] = {k: v + 7200.0 for k, v in rec["wall_time"].items()}
        path.write_text(json.dumps(rec))
    resumed = update_docs.study_block(studies.STUDIES["tiny-stale8"], tmp_path / "plots8")
    assert resumed.startswith("Ran in 2 sittings (listed below), the last t0 to t1, on 2 CPUs")
    assert ": recompute s3, a3po-step s3. What an interval covers" in resumed
    assert "one invocation" not in resumed


def _kept_study(kept, name: str, records, providers: list[str]) -> None:
    from areal_a3po.report.record import write_records

    write_records(records, str(kept / name / "runs"))
    meta = {
        "providers": providers,
        "command": ["-m", "areal_a3po.cli", "compare", "--seeds", "1,2,3"],
        "started_utc": "t0", "finished_utc": "t1",
        "machine": {"cpus": 2, "platform": "test"},
    }  # fmt: skip
    (kept / name / "study.json").write_text(json.dumps(meta))


def _update_docs(kept, monkeypatch):
    import sys

    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "benchmarks")))
    import studies
    import update_docs

    monkeypatch.setattr(studies, "KEPT", kept)
    monkeypatch.setattr(update_docs, "KEPT", kept)
    return studies, update_docs


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_update_docs_choosing_repeated_study_rows_are_labelled_as_the_repeat(
    seed_runs, tmp_path, monkeypatch
):
    """A study with ``repeat_of`` has its own rows in the Choosing table, labelled as the repeat,
    after the rows of the study it repeats."""
    import shutil

    dirs, labels, seeds = seed_runs
    names = {"recompute": "recompute", "same": "a3po-step", "fast": "a3po"}
    out = tmp_path / "out"
    rp.compare(F.runs(dirs, [names[x] for x in labels], seeds), str(out), last_n=2)
    kept = tmp_path / "kept"
    providers = ["recompute", "a3po", "a3po-step", "loglinear"]
    for name in ("tiny-mb4", "tiny-mb4-repeat"):
        shutil.copytree(out / rp.RECORDS_DIR, kept / name / "runs")
        _kept_study(kept, name, [], providers)
    # the repeat: a3po-step's seed 2 a little lower, so that its row differs from the first's
    path = kept / "tiny-mb4-repeat" / "runs" / "a3po-step_seed2.json"
    rec = json.loads(path.read_text())
    rec["reward"] = {k: v - 0.02 for k, v in rec["reward"].items()}
    path.write_text(json.dumps(rec))
    _, update_docs = _update_docs(kept, monkeypatch)
    rows = _rows(update_docs.choosing())
    first = [r for r in rows if r[0] == "tiny-mb4"]
    again = [r for r in rows if r[0] == "tiny-mb4-repeat (repeat of tiny-mb4)"]
    assert [r[2] for r in first] == [r[2] for r in again] == ["a3po", "a3po-step"]
    assert rows.index(again[0]) == rows.index(first[-1]) + 1
    assert all(r[6] == "training reward, mean of the last 5 steps" for r in first + again)
    assert first[0][7:] == again[0][7:]  # a3po: the same records, the same row
    assert first[1][8] != again[1][8]  # a3po-step: the repeat's own reward difference
    assert again[1][8] == update_docs.value("choice:tiny-mb4-repeat:a3po-step:reward")


def test_update_docs_held_out_study_tables_name_the_mean_of_last_evals(tmp_path, monkeypatch):
    """A held-out study (smollm2-mb4) in every table: the Choosing row, the study block's
    paragraph and reward table, and the inline values name the reward of record; the window's
    values (docs/compare.md) give the final evaluation alone with last_evals 1."""
    from areal_a3po.report import stats
    from areal_a3po.report.text import interval_text

    base = [[0.1, 0.2, 0.3, 0.3, 0.3], [0.1, 0.2, 0.2, 0.3, 0.4], [0.1, 0.3, 0.3, 0.2, 0.4]]
    arm = [[0.1, 0.4, 0.4, 0.4, 0.1], [0.1, 0.4, 0.3, 0.3, 0.2], [0.1, 0.3, 0.4, 0.4, 0.2]]
    kept = tmp_path / "kept"
    records = F.eval_records({"recompute": base, "a3po-step": arm})
    _kept_study(kept, "smollm2-mb4", records, ["recompute", "a3po-step"])
    studies, update_docs = _update_docs(kept, monkeypatch)
    study = studies.STUDIES["smollm2-mb4"]
    # the kept smollm2-mb4 is withdrawn (its behaviour log-probs): the verdict is read unwithdrawn
    monkeypatch.setitem(studies.STUDIES, study.name, dataclasses.replace(study, withdrawn=None))
    source = "held-out reward, mean of the last 3 evaluations"
    row = next(r for r in _rows(update_docs.choosing()) if r[0] == "smollm2-mb4")
    last3 = stats.difference_ci({1: 0.3, 2: 0.8 / 3, 3: 1.0 / 3}, {1: 0.3, 2: 0.3, 3: 0.3})
    assert row[6] == source and row[8] == interval_text(last3) == "0.000 [-0.083, 0.083]"
    assert row[9].startswith("trainer: within noise; reward: no claim (planned seeds for one at ")
    block = update_docs.study_block(studies.STUDIES["smollm2-mb4"], tmp_path / "plots")
    assert f"reward of record: {source});" in block
    assert f"reward of record per seed ({source})" in block
    assert update_docs.value("record:smollm2-mb4") == source
    assert update_docs.value("window:smollm2-mb4:a3po-step:3:reward") == row[8]
    final = stats.difference_ci({1: 0.1, 2: 0.2, 3: 0.2}, {1: 0.3, 2: 0.4, 3: 0.4})
    assert update_docs.value("window:smollm2-mb4:a3po-step:1:reward") == interval_text(final)
    assert update_docs.value("window:smollm2-mb4:a3po-step:3:planned").isdigit()


def test_update_docs_withdrawn_study_keeps_its_numbers_and_says_withdrawn(tmp_path, monkeypatch):
    """A withdrawn study stays in the tables with its intervals, its verdict replaced by why."""
    base = [[0.1, 0.2, 0.3, 0.3, 0.3], [0.1, 0.2, 0.2, 0.3, 0.4], [0.1, 0.3, 0.3, 0.2, 0.4]]
    kept = tmp_path / "kept"
    records = F.eval_records({"recompute": base, "a3po-step": base})
    _kept_study(kept, "smollm2-mb4", records, ["recompute", "a3po-step"])
    studies, update_docs = _update_docs(kept, monkeypatch)
    study = dataclasses.replace(studies.STUDIES["smollm2-mb4"], withdrawn="a reason")
    monkeypatch.setitem(studies.STUDIES, study.name, study)
    row = next(r for r in _rows(update_docs.choosing()) if r[0] == "smollm2-mb4")
    assert row[8] == "0.000 [0.000, 0.000]" and row[9] == "withdrawn: a reason"
    assert update_docs.value("choice:smollm2-mb4:a3po-step:verdict") == "withdrawn: a reason"
    block = update_docs.study_block(study, tmp_path / "plots")
    assert "**Withdrawn**: a reason. Kept as it ran, no longer evidence." in block


def test_update_docs_eval_variance_constructed_runs_gives_ratio_to_binomial(tmp_path, monkeypatch):
    """Within-run variance of the held-out evaluations over p (1 - p) / EVAL_SIZE."""
    import statistics

    from areal_a3po.testbeds.smollm2.task import EVAL_SIZE

    runs = {"recompute": [[0.1, 0.3, 0.2], [0.2, 0.2, 0.2]], "a3po-step": [[0.0, 0.4, 0.2]] * 2}
    kept = tmp_path / "kept"
    _kept_study(kept, "smollm2-mb4", F.eval_records(runs), list(runs))
    _, update_docs = _update_docs(kept, monkeypatch)
    binomial = 0.2 * 0.8 / EVAL_SIZE  # every run's mean is 0.2
    for arm, series in [(None, [x for v in runs.values() for x in v]), *runs.items()]:
        within = statistics.fmean(statistics.variance(x) for x in series)
        name = "eval_variance:smollm2-mb4" + (f":{arm}" if arm else "")
        assert update_docs.value(name) == f"{within / binomial:.1f}"
    assert update_docs.value("eval_variance:smollm2-mb4:a3po-step") != update_docs.value(
        "eval_variance:smollm2-mb4:recompute"
    )
