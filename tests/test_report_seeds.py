"""Tests for areal_a3po.report across seeds (arms, intervals, verdicts, time to target, the
staleness sweep, the kept records, sittings, planned seeds), on REAL tensorboard logs written by
AReaL's StatsLogger (``tests/report_logs.py``). The docs built from kept records:
``tests/test_docs_studies.py``.
"""

from __future__ import annotations

import json
import os

import pytest

from areal_a3po import report as rp
from tests import report_logs as F
from tests.report_logs import torch  # skips this module without torch, tensorboard, matplotlib


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Three arms x three seeds (:func:`tests.report_logs.write_seed_runs`)."""
    return F.write_seed_runs(tmp_path_factory.mktemp("seeds"))


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
    arms = summarize_arms(group_records(F.eval_records({"recompute": base, "a3po": arm})), None, 5,
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
    assert summarize_arms(group_records(F.eval_records({"x": base})), None, 5, last_evals=1)[
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
