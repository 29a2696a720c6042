"""Tests for areal_a3po.report across seeds (arms, intervals, verdicts, time to target, the
staleness sweep, the kept records) and for the docs built from kept records, on REAL tensorboard
logs written by AReaL's StatsLogger (``tests/report_logs.py``).
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
    rep = rp.compare(dirs, str(tmp_path), labels=labels, seeds=seeds, last_n=2)
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


def test_compare_one_seed_per_arm_says_no_interval(seed_runs, tmp_path):
    dirs, labels, _ = seed_runs
    rep = rp.compare(dirs[:3], str(tmp_path), labels=labels[:3], last_n=2)
    fast = rep.arms[2]
    assert fast.ratio["trainer_compute"].low is None
    assert "no interval" in fast.verdicts["faster (trainer_compute)"]
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert "no interval (1 paired seed; an interval needs >= 3)" in md
    assert "reward_seeds" not in rep.paths


def test_kept_records_rebuild_the_same_arms_without_event_files(seed_runs, tmp_path):
    """report/runs/*.json hold what the across-seeds sections use: the same arms from them."""
    from areal_a3po.report.seeds import group_records, summarize_arms

    dirs, labels, seeds = seed_runs
    rep = rp.compare(dirs, str(tmp_path), labels=labels, seeds=seeds, last_n=2, target=0.4)
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
    rep = rp.compare(dirs, str(tmp_path), labels=labels, seeds=seeds, last_n=2, target=0.4)
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
    rep = rp.compare(dirs, str(tmp_path / "out"), labels=labels, seeds=seeds, margin=0.05)
    a3po = rep.arms[1]
    assert a3po.reward_source == "held-out reward, final evaluation"
    torch.testing.assert_close(a3po.reward_difference.estimate, -0.02, rtol=0.0, atol=1e-6)
    assert a3po.verdicts["reward"] == "not worse than baseline by more than 0.05"
    tight = rp.compare(dirs, str(tmp_path / "out2"), labels=labels, seeds=seeds, margin=0.01)
    # -0.02 with a tight interval: beyond a 0.01 margin as a whole, inferiority established
    assert tight.arms[1].verdicts["reward"] == "worse than baseline by more than 0.01"


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
        rp.compare(dirs[:6], str(tmp_path), labels=labels[:6], seeds=[1] * 6)


def test_cli_compare_run_dirs_with_seeds_groups_arms(seed_runs, tmp_path, capsys):
    from areal_a3po import cli

    dirs, labels, seeds = seed_runs
    argv = ["compare", *dirs, "--labels", ",".join(labels), "--seeds", ",".join(map(str, seeds))]
    assert cli.main([*argv, "--out", str(tmp_path), "--last", "2"]) == 0
    js = json.load(open(tmp_path / "report" / "report.json", encoding="utf-8"))
    assert [a["label"] for a in js["arms"]] == ["recompute", "same", "fast"]
    assert [a["seeds"] for a in js["arms"]] == [[1, 2, 3]] * 3
    assert js["arms"][2]["verdicts"]["faster (trainer_compute)"] == "faster"


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
    rep = rp.compare(dirs, str(tmp_path / "out"), labels=labels, seeds=seeds, sweep=sweep, last_n=2)
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
    from areal_a3po.report.seeds import interval_text

    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "benchmarks")))
    import studies
    import update_docs

    dirs, labels, seeds = seed_runs
    names = {"recompute": "recompute", "same": "a3po-step", "fast": "a3po"}
    out = tmp_path / "out"
    rp.compare(dirs, str(out), labels=[names[x] for x in labels], seeds=seeds, last_n=2)
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
    row = next(r for r in rows if r[1] == "a3po" and r[2] == "4")
    assert row[4] == "3" and row[5].startswith("0.6")  # seeds; trainer ratio 1.0 / 1.5 s
    assert row[7] == "trainer: faster; reward: not worse than recompute by more than 0.05"
    assert "not yet run" in table  # tiny-mb1 and the others have no kept data here
    block = update_docs.study_block(studies.STUDIES["tiny-mb4"], tmp_path / "plots")
    assert block.startswith("Ran t0 to t1 on 2 CPUs (test): `a3po compare --seeds 1,2,3`.")
    assert "paired t-interval" not in block and "Student-t" in block
    assert (tmp_path / "plots" / update_docs.PLOT).is_file()
    assert "not yet run" in update_docs.repeat()
    # the README's switch quotes the same row
    assert update_docs.value("choice:tiny-mb4:a3po:ratio") == row[5]
    assert update_docs.value("choice:tiny-mb4:a3po:verdict") == row[7]
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


def test_arms_tables_no_claim_holding_zero_plans_seeds_and_below_zero_says_why():
    from areal_a3po.report import stats
    from areal_a3po.report.record import RunRecord
    from areal_a3po.report.render_arms import arms_tables
    from areal_a3po.report.seeds import group_records, summarize_arms

    base = [0.41, 0.55, 0.38, 0.60, 0.47]
    shifts = {
        "a3po-step": [-0.10, 0.08, -0.05, 0.10, -0.03],  # mean 0: the interval holds 0
        "behave": [-0.20, -0.01, -0.15, -0.05, -0.12],  # below 0, but not beyond -0.05
    }
    records = [RunRecord("recompute", s, reward={0: r}) for s, r in enumerate(base, 1)]
    for arm, d in shifts.items():
        records += [
            RunRecord(arm, s, reward={0: r + x})
            for s, (r, x) in enumerate(zip(base, d, strict=True), 1)
        ]
    arms = summarize_arms(group_records(records), None, 1)
    assert [a.verdicts["reward"] for a in arms[1:]] == [stats.NO_CLAIM, stats.NO_CLAIM]
    planned = stats.seeds_for_noninferiority(arms[1].reward_difference, 0.05)
    text = "\n".join(arms_tables(arms, 0.05, None))
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in text.splitlines()]
    row = {c[0]: c for c in cells if len(c) == 6}  # the reward table
    assert row["a3po-step"][-1] == str(planned) and planned > 5
    assert row["behave"][-1] == "n/a: below the baseline (interval under 0)"
    assert "from 5 seeds that spread is known only to within 0.60 to 2.87 times itself" in text
