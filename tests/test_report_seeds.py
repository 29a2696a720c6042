"""Tests for areal_a3po.report across seeds (arms, intervals, verdicts, time to target, the
staleness sweep, the kept records) and for the docs built from kept records, on REAL tensorboard
logs written by AReaL's StatsLogger (``tests/report_logs.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from areal_a3po import report as rp
from tests import report_logs as F
from tests.report_logs import torch  # skips this module without torch, tensorboard, matplotlib


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Three arms x three seeds: 'same' equals the baseline, 'fast' skips the recompute."""
    root = tmp_path_factory.mktemp("seeds")
    arms = {"recompute": (0.5, 1.0, 0.5), "same": (0.5, 1.0, 0.5), "fast": (0.0, 1.0, 0.8)}
    dirs, labels, seeds = [], [], []
    for seed in (1, 2, 3):  # interleaved, as a3po compare --seeds runs them
        for label, (rc, tr, rw) in arms.items():
            dirs.append(F.write_run(root, f"{label}_s{seed}", F.seed_run_stats(rc, tr, rw, seed)))
            labels.append(label)
            seeds.append(seed)
    return dirs, labels, seeds


def test_compare_seeds_known_saving_detected_identical_within_noise(seed_runs, tmp_path):
    dirs, labels, seeds = seed_runs
    rep = rp.compare(F.runs(dirs, labels, seeds), str(tmp_path), last_n=2)
    arms = {a.label: a for a in rep.arms}
    assert list(arms) == ["recompute", "same", "fast"] and arms["fast"].seeds == [1, 2, 3]
    fast, same = arms["fast"], arms["same"]
    ratio = fast.ratio["trainer_compute"]  # 1.0 / 1.5 s per step
    assert ratio.has_interval and ratio.high < 1.0
    torch.testing.assert_close(ratio.estimate, 1.0 / 1.5, rtol=0.03, atol=0.0)
    assert fast.verdicts["faster (trainer_compute)"] == "faster"
    assert same.verdicts["faster (trainer_compute)"] == "within noise"
    noninferior = "not worse than baseline by more than 0.05"
    assert fast.verdicts["reward"] == noninferior and same.verdicts["reward"] == noninferior
    # last-2 mean of the ramp = 0.9 x final reward; arms differ by 0.3 in final reward
    torch.testing.assert_close(fast.reward_difference.estimate, 0.9 * 0.3, rtol=0.0, atol=1e-6)
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert "## Across seeds (baseline arm: recompute)" in md and "within noise" in md
    assert os.path.getsize(rep.paths["reward_seeds"]) > 0
    assert [r.label for r in rep.runs][:3] == ["recompute s1", "same s1", "fast s1"]
    js = json.load(open(rep.paths["report_json"], encoding="utf-8"))
    assert js["arms"][2]["verdicts"]["reward"] == noninferior
    (sitting,) = js["sittings"]  # the nine runs were logged one after another
    assert len(sitting["runs"]) == 9 and sitting["start"] <= sitting["end"]
    assert "What an interval covers" in md and "training reward, mean of the last 2" in md


def test_compare_one_seed_per_arm_reads_cleanly_without_intervals(seed_runs, tmp_path):
    dirs, labels, _ = seed_runs
    notes = {"recompute": "the baseline", "fast": "a fast one"}
    rep = rp.compare(
        F.runs(dirs[:3], labels[:3], providers=["recompute", "same", "fast"]), str(tmp_path),
        last_n=2, provider_notes=notes,
    )  # fmt: skip
    fast = rep.arms[2]
    assert fast.ratio["trainer_compute"].low is None
    assert "no interval" in fast.verdicts["faster (trainer_compute)"]  # report.json keeps it
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    # report.md: one sentence instead of a cell per metric saying there is no interval
    assert "no interval" not in md and "One seed per arm" in md and "--seeds 1,2,3,4,5" in md
    assert "- `recompute`: the baseline\n- `same`\n- `fast`: a fast one\n" in md
    assert "reward_seeds" not in rep.paths
    two = rp.compare(F.runs(dirs[:6], labels[:6], [1] * 3 + [2] * 3), str(tmp_path / "two"))
    md2 = open(two.paths["report_md"], encoding="utf-8").read()
    assert "One seed per arm" not in md2 and "no interval (2 paired seeds" in md2


def test_kept_records_rebuild_the_same_arms_without_event_files(seed_runs, tmp_path):
    """report/runs/*.json hold what the across-seeds sections use: the same arms from them."""
    from areal_a3po.report.seeds import group_records, summarize_arms

    dirs, labels, seeds = seed_runs
    rep = rp.compare(F.runs(dirs, labels, seeds), str(tmp_path), last_n=2, target=0.4)
    records = rp.read_records(str(tmp_path / rp.RECORDS_DIR))
    assert len(records) == 9 and {r.arm for r in records} == {"recompute", "same", "fast"}
    assert all(
        os.path.getsize(tmp_path / rp.RECORDS_DIR / f) < 4000
        for f in os.listdir(tmp_path / rp.RECORDS_DIR)
    )  # compact: per-step scalars only
    for rec in records:  # when each step was logged: one time per step, in step order
        times = [rec.wall_time[s] for s in sorted(rec.wall_time)]
        assert len(times) == F.N_STEPS and times == sorted(times)
    order = {a.label: i for i, a in enumerate(rep.arms)}
    grouped = group_records(sorted(records, key=lambda r: (order[r.arm], r.seed)))
    again = summarize_arms(grouped, None, 2, target=0.4)
    assert [a.label for a in again] == [a.label for a in rep.arms]
    for a, b in zip(again, rep.arms, strict=True):
        assert a.per_seed == b.per_seed and a.ratio == b.ratio and a.verdicts == b.verdicts


def test_time_to_target_cumulative_step_time_and_ratio(seed_runs, tmp_path):
    dirs, labels, seeds = seed_runs
    rep = rp.compare(F.runs(dirs, labels, seeds), str(tmp_path), last_n=2, target=0.4)
    base, fast = rep.arms[0], rep.arms[2]
    # recompute: reward 0.5*(k+1)/5 + 0.01*seed, last-2 mean >= 0.4 first at step 4 (all 5 steps)
    rec = rp.read_records(str(tmp_path / rp.RECORDS_DIR))
    r1 = next(r for r in rec if r.arm == "recompute" and r.seed == 1)
    expected = sum(sum(v.values()) for v in r1.step_times().values())
    torch.testing.assert_close(base.per_seed[1].time_to_target_s, expected, rtol=1e-9, atol=0.0)
    assert fast.reached == 3 and fast.time_to_target_ratio.high < 1.0
    assert fast.verdicts["time to target"] == "faster"
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert "Time to reward 0.4" in md and "Target reward (time to target): 0.4." in md


def test_held_out_reward_is_the_reward_of_record_when_every_run_evaluated(tmp_path):
    def make(final: float, seed: int):
        def stats_at(step: int) -> dict:
            out = {"timeperf/train_step": 1.0 + 0.01 * seed, "ppo_actor/task_reward/avg": 0.9}
            if step in (2, 4):
                out["eval-rollout/reward"] = final * step / 4 + 0.001 * seed
            return out

        return stats_at

    dirs, labels, seeds = [], [], []
    for seed in (1, 2, 3):
        for label, final in (("recompute", 0.5), ("a3po", 0.48)):
            dirs.append(F.write_run(tmp_path / "runs", f"{label}{seed}", make(final, seed)))
            labels.append(label)
            seeds.append(seed)
    rep = rp.compare(F.runs(dirs, labels, seeds), str(tmp_path / "out"), margin=0.05)
    a3po = rep.arms[1]
    # two evaluations per run, fewer than LAST_EVALS: the mean of both, and the name says so
    assert a3po.reward_source == (
        "held-out reward, mean of the last 3 evaluations (all of a run's where it has fewer; "
        "the fewest: 2)"
    )
    # mean of final/2 and final: 0.75 x the final rewards' difference of -0.02
    torch.testing.assert_close(a3po.reward_difference.estimate, -0.015, rtol=0.0, atol=1e-6)
    assert a3po.verdicts["reward"] == "not worse than baseline by more than 0.05"
    tight = rp.compare(F.runs(dirs, labels, seeds), str(tmp_path / "out2"), margin=0.01)
    # -0.015 with a tight interval: beyond a 0.01 margin as a whole, inferiority established
    assert tight.arms[1].verdicts["reward"] == "worse than baseline by more than 0.01"
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert "reward of record: held-out reward, mean of the last 3 evaluations" in md


def _eval_records(evals: dict[str, list[list[float]]], every: int = 5):
    """RunRecords whose held-out reward per seed is the given list, one evaluation per ``every``
    steps (step 0 first), with one timed stage of 1 s per step."""
    from areal_a3po.report.record import RunRecord

    out = []
    for arm, per_seed in evals.items():
        for seed, values in enumerate(per_seed, 1):
            steps = range(every * (len(values) - 1) + 1)
            out.append(
                RunRecord(
                    arm, seed,
                    stages={"train_step": {s: 1.0 for s in steps}},
                    reward={s: 0.9 for s in steps},
                    eval_reward={every * i: v for i, v in enumerate(values)},
                )
            )  # fmt: skip
    return out


def test_held_out_reward_of_record_many_evaluations_is_mean_of_last_evals_not_the_final():
    """Five evaluations per run: the reward of record is the mean of the last LAST_EVALS (3), and
    time to target the first step where that window's mean reaches the target."""
    from areal_a3po.report import stats
    from areal_a3po.report.seeds import (
        LAST_EVALS,
        group_records,
        held_out_source,
        summarize_arms,
    )

    assert LAST_EVALS == 3
    base = [[0.1, 0.2, 0.3, 0.3, 0.3], [0.1, 0.2, 0.2, 0.3, 0.4], [0.1, 0.3, 0.3, 0.2, 0.4]]
    # the final evaluation alone would put this arm 0.2 below the baseline on every seed
    arm = [[0.1, 0.4, 0.4, 0.4, 0.1], [0.1, 0.4, 0.3, 0.3, 0.2], [0.1, 0.3, 0.4, 0.4, 0.2]]
    arms = summarize_arms(group_records(_eval_records({"recompute": base, "a3po": arm})), None, 5,
                          target=0.3)  # fmt: skip
    b, a = arms
    assert a.held_out and a.reward_source == held_out_source() == (
        "held-out reward, mean of the last 3 evaluations"
    )
    for x, values in ((b, base), (a, arm)):
        for seed, v in enumerate(values, 1):
            torch.testing.assert_close(x.per_seed[seed].reward, sum(v[-3:]) / 3, rtol=0, atol=1e-12)
    assert a.reward_difference.estimate == pytest.approx(0.0, abs=1e-12)
    assert a.verdicts["reward"] == stats.NO_CLAIM  # not "worse by more than 0.05" (final alone)
    # time to target 0.3: the window's mean first at or above it; one second per step
    # baseline seed 1: windows 0.1, 0.15, 0.2, 0.267, 0.3 -> step 20 (21 steps of 1 s)
    assert b.per_seed[1].time_to_target_s == pytest.approx(21.0)
    assert a.per_seed[1].time_to_target_s == pytest.approx(11.0)  # (0.1 + 0.4 + 0.4) / 3 at 10
    assert summarize_arms(group_records(_eval_records({"x": base})), None, 5, last_evals=1)[
        0
    ].per_seed[2].reward == pytest.approx(0.4)  # the window is a parameter: 1 = the final one


def test_cli_set_with_run_dirs_refused(seed_runs, tmp_path):
    from areal_a3po import cli

    dirs, _, _ = seed_runs
    with pytest.raises(SystemExit, match="--set applies to the runs the embedded default starts"):
        cli.main(
            ["compare", *dirs[:2], "--set", "actor.ppo_n_minibatches=4", "--out", str(tmp_path)]
        )


def test_cli_set_bad_key_refused_by_areal_before_any_arm_starts(tmp_path):
    """``--set`` goes through AReaL's own config loader first: its error names the key."""
    from areal_a3po import cli

    argv = ["compare", "--set", "actor.ppo_n_minibatchez=4", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match=r"AReaL refuses .*actor\.ppo_n_minibatchez"):
        cli.main([*argv, "--steps", "1", "--no-progress"])
    assert not (tmp_path / "o").exists()  # no arm, no model built
    with pytest.raises(SystemExit, match="could not be converted to Integer"):
        cli.main(["compare", "--set", "actor.ppo_n_minibatches=four", "--out", str(tmp_path)])


def test_compare_seeds_duplicate_seed_in_arm_raises(seed_runs, tmp_path):
    dirs, labels, _ = seed_runs
    with pytest.raises(ValueError, match="two runs of arm 'recompute' have seed 1"):
        rp.compare(F.runs(dirs[:6], labels[:6], [1] * 6), str(tmp_path))


def test_cli_compare_run_dirs_with_seeds_groups_arms(seed_runs, tmp_path, capsys):
    from areal_a3po import cli

    dirs, labels, seeds = seed_runs
    argv = ["compare", *dirs, "--labels", ",".join(labels), "--seeds", ",".join(map(str, seeds))]
    assert cli.main([*argv, "--out", str(tmp_path), "--last", "2"]) == 0
    js = json.load(open(tmp_path / "report" / "report.json", encoding="utf-8"))
    assert [a["label"] for a in js["arms"]] == ["recompute", "same", "fast"]
    assert [a["seeds"] for a in js["arms"]] == [[1, 2, 3]] * 3
    assert js["arms"][2]["verdicts"]["faster (trainer_compute)"] == "faster"


def test_cli_compare_run_dirs_per_run_option_count_differs_one_line_error(seed_runs, tmp_path):
    """Each RUN gets one record: a per-run option with another count is refused, naming it."""
    from areal_a3po import cli

    dirs, _, _ = seed_runs
    for option, value, what in (("--labels", "a,b", "labels"), ("--seeds", "1,2", "seeds"),
                                ("--staleness", "1,2", "staleness caps")):  # fmt: skip
        with pytest.raises(SystemExit, match=f"a3po compare: got 2 {what} for 3 run directories"):
            cli.main(["compare", *dirs[:3], option, value, "--out", str(tmp_path)])
    assert not (tmp_path / "report").exists()


def test_compare_staleness_sweep_table_each_provider_vs_baseline_at_same_point(tmp_path):
    """Two staleness points x (recompute, a3po) x two seeds: one row per point, lag shown."""

    def stats_at(recompute: float, reward: float, lag: int, seed: int):
        base = F.seed_run_stats(recompute, 1.0, reward, seed)

        def make(step: int) -> dict:
            out = base(step)
            out |= {
                "ppo_actor/a3po/token_lag/avg": float(lag),
                "ppo_actor/a3po/token_lag/max": 2.0 * lag,
            }
            return out

        return make

    dirs, labels, seeds, sweep = [], [], [], []
    for seed in (1, 2, 3):
        for k in (2, 8):
            for provider, rc, rw in (
                ("recompute", 0.5, 0.5 if k == 2 else 0.1),
                ("a3po", 0.0, 0.5),
            ):
                name = f"{provider}_s{k}_seed{seed}"
                dirs.append(F.write_run(tmp_path / "runs", name, stats_at(rc, rw, k // 2, seed)))
                labels.append(f"{provider}_s{k}")
                seeds.append(seed)
                sweep.append((provider, k))
    runs = F.runs(dirs, labels, seeds, [p for p, _ in sweep], [k for _, k in sweep])
    rep = rp.compare(runs, str(tmp_path / "out"), last_n=2)
    assert rep.sweep.points == [2, 8] and rep.sweep.providers == ["recompute", "a3po"]
    at8 = rep.sweep.cells[8]["a3po"]
    assert at8.arm.ratio["step_time"].high < 1.0  # no recompute stage: faster at every point
    assert at8.arm.reward_difference.estimate > 0  # recompute's reward fell at staleness 8 here
    torch.testing.assert_close(at8.token_lag_mean, 4.0, rtol=0.0, atol=1e-6)
    assert rep.sweep.lag_spread(8) == 0.0
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert "## Staleness sweep (each provider vs recompute at the same staleness)" in md
    assert "<br>lag 4.00 (max 8)" in md and "trainer 1 (baseline)" in md
    assert os.path.getsize(rep.paths["reward_vs_staleness"]) > 0
    js = json.load(open(rep.paths["report_json"], encoding="utf-8"))
    assert js["sweep"]["points"] == [2, 8]


# ------------------------------------------------------------------ docs from kept records


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


def _timed_record(arm: str, seed: int, times: list[float]):
    from areal_a3po.report.record import RunRecord

    return RunRecord(arm=arm, seed=seed, wall_time=dict(enumerate(times)))


def test_sittings_pause_of_30_min_or_more_starts_one_and_a_continued_run_is_named():
    from areal_a3po.report.sittings import SITTING_GAP_S, sittings, sittings_text, split_runs

    t0 = 1764590400.0  # 2025-12-01 12:00 UTC
    gap = SITTING_GAP_S
    records = [
        _timed_record("recompute", 1, [t0, t0 + 90, t0 + 180]),
        _timed_record("a3po-step", 1, [t0 + 500, t0 + 600]),
        # the next run starts just under the gap after the last step: the same sitting
        _timed_record("recompute", 2, [t0 + 600 + gap - 1, t0 + 700 + gap]),
        # interrupted after step 1, continued from its checkpoint in a later session
        _timed_record("a3po-step", 2, [t0 + 800 + gap, t0 + 900 + gap, t0 + 900 + 3 * gap]),
        _timed_record("recompute", 3, [t0 + 1000 + 3 * gap]),
    ]
    parts = sittings(records)
    assert [p.runs for p in parts] == [
        ("recompute s1", "a3po-step s1", "recompute s2", "a3po-step s2"),
        ("a3po-step s2", "recompute s3"),
    ]
    assert (parts[0].start, parts[0].end) == (t0, t0 + 900 + gap)
    assert split_runs(parts) == ["a3po-step s2"]
    text = sittings_text(parts)
    assert text.startswith("The runs took 2 sittings (first to last logged step; a pause of 30 min")
    assert "1. 2025-12-01 12:00 to 12:45 UTC: recompute s1, a3po-step s1, recompute s2" in text
    assert "2. 2025-12-01 13:45 to 13:46 UTC: a3po-step s2, recompute s3." in text
    assert "a3po-step s2 continued from a checkpoint in a later sitting." in text
    assert sittings_text(parts[:1]) == "" and sittings([_timed_record("x", 1, [])]) == []


def test_arms_tables_no_claim_plans_seeds_equal_and_seen_and_below_zero_says_worse():
    """Planned seeds where the verdict is "no claim", under equal arms and under the difference
    seen ("never" at or below -margin), with what they assume; an interval wholly below 0 (but
    not below -margin) reads "worse than baseline" and plans nothing."""
    from areal_a3po.report import stats
    from areal_a3po.report.record import RunRecord
    from areal_a3po.report.render_arms import PLAN_COLUMNS, arms_tables, planning_text
    from areal_a3po.report.seeds import group_records, summarize_arms

    base = [0.41, 0.55, 0.38, 0.60, 0.47]
    shifts = {
        "a3po-step": [-0.10, 0.08, -0.05, 0.10, 0.02],  # mean 0.01: the interval holds 0
        "behave": [-0.20, -0.01, -0.15, -0.05, -0.12],  # below 0, but not beyond -0.05
        "a3po": [-0.30, 0.25, -0.20, 0.15, -0.20],  # mean -0.06, the interval holds 0
    }
    records = [RunRecord("recompute", s, reward={0: r}) for s, r in enumerate(base, 1)]
    for arm, d in shifts.items():
        records += [
            RunRecord(arm, s, reward={0: r + x})
            for s, (r, x) in enumerate(zip(base, d, strict=True), 1)
        ]
    arms = summarize_arms(group_records(records), None, 1)
    by = {a.label: a for a in arms}
    assert [a.verdicts["reward"] for a in arms[1:]] == [stats.NO_CLAIM, stats.WORSE, stats.NO_CLAIM]
    step = by["a3po-step"].reward_difference
    equal = stats.seeds_for_noninferiority(step, 0.05)
    seen = stats.seeds_for_noninferiority(step, 0.05, true_difference=step.estimate)
    text = "\n".join(arms_tables(arms, 0.05, None))
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in text.splitlines()]
    header = next(c for c in cells if c[0] == "arm" and "reward" in c)
    assert header[1] == "reward of record per seed (training reward, mean of the last 1 steps)"
    assert tuple(header[-2:]) == PLAN_COLUMNS
    row = {c[0]: c for c in cells if len(c) == 7}  # the reward table
    assert row["a3po-step"][-2:] == [str(equal), str(seen)] and equal > seen > 5
    assert row["behave"][-3:] == ["worse than baseline", "", ""]
    assert row["a3po"][-1] == "never" and row["a3po"][-2].isdigit()
    assert "n/a: below the baseline" not in text
    assert "two-sided 95 % interval's lower bound (a one-sided 2.5 % test) clears -0.05" in text
    assert "with 80 % probability, if the arms were equal" in text
    assert "from 5 seeds that spread is known only to within 0.60 to 2.87 times itself" in text
    assert planning_text(by["a3po-step"]) == (
        "planned seeds for one at 80 % power, 95 % two-sided (2.5 % one-sided) interval, spread "
        f"seen: {equal} if the arms are equal, {seen} if the difference seen is true"
    )
    assert planning_text(by["behave"]) == ""
    assert planning_text(by["a3po"]).endswith("never if the difference seen is true")


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
    records = _eval_records({"recompute": base, "a3po-step": arm})
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
    records = _eval_records({"recompute": base, "a3po-step": base})
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
    _kept_study(kept, "smollm2-mb4", _eval_records(runs), list(runs))
    _, update_docs = _update_docs(kept, monkeypatch)
    binomial = 0.2 * 0.8 / EVAL_SIZE  # every run's mean is 0.2
    for arm, series in [(None, [x for v in runs.values() for x in v]), *runs.items()]:
        within = statistics.fmean(statistics.variance(x) for x in series)
        name = "eval_variance:smollm2-mb4" + (f":{arm}" if arm else "")
        assert update_docs.value(name) == f"{within / binomial:.1f}"
    assert update_docs.value("eval_variance:smollm2-mb4:a3po-step") != update_docs.value(
        "eval_variance:smollm2-mb4:recompute"
    )
