"""Tests for areal_a3po.report on one run per arm: REAL tensorboard logs written by AReaL's
StatsLogger (``tests/report_logs.py`` writes them). Arms across seeds: ``test_report_seeds.py``.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter

import pytest

from areal_a3po import report as rp
from tests import report_logs as F
from tests.report_logs import torch  # skips this module without torch, tensorboard, matplotlib


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": F.write_run(root, "recompute", F.base_stats),
        "a3po": F.write_run(root, "a3po", F.a3po_stats),
        "bare": F.write_run(root, "bare", F.reward_only_stats, n_steps=3),
    }


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return rp.compare(
        F.runs([runs["base"], runs["a3po"]], labels=["recompute", "a3po"]), str(out), last_n=3
    )


def _row(rep, label):
    return next(r for r in rep.table if r["label"] == label)


def _run(rep, label):
    return next(r for r in rep.runs if r.label == label)


# ------------------------------------------------------------------ reading


def test_load_scalars_statslogger_run_has_areal_tag_names(runs):
    data = rp.load_scalars(runs["a3po"])
    assert len(data.event_files) == 1
    assert os.path.basename(os.path.dirname(data.event_files[0])) == "tensorboard"
    assert "events.out.tfevents." in os.path.basename(data.event_files[0])
    tags = set(data.scalars)
    assert "timeperf/train_step" in tags
    assert "ppo_actor/task_reward/avg" in tags
    assert "ppo_actor/a3po/token_lag_ge8" in tags
    assert "ppo_actor/update/compute_logp/a3po/abs_error/avg" in tags
    assert not any(t.endswith("__count") for t in tags)  # StatsLogger drops counters
    assert sorted(data.scalars["timeperf/train_step"]) == list(range(F.N_STEPS))
    base = rp.load_scalars(runs["base"])
    assert "ppo_actor/update/version_stats/sample_staleness_theta_avg" in base.scalars
    assert sorted(base.scalars["eval-rollout/reward"]) == sorted(F.BASE_EVAL)


def test_compare_dir_without_event_files_raises_naming_dir(tmp_path):
    empty = tmp_path / "no_events_here"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not an event file")
    with pytest.raises(FileNotFoundError, match="no_events_here"):
        rp.compare(F.runs([empty]), str(tmp_path / "out"))


def test_compare_missing_dir_raises_naming_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        rp.compare(F.runs([tmp_path / "does_not_exist"]), str(tmp_path / "out"))


def test_find_tag_extra_prefix_matches_by_suffix():
    tags = ["trial0/ppo_actor/task_reward/avg", "eval-rollout/task_reward/avg", "x/y"]
    assert rp.find_tag(tags, rp.REWARD_KEYS) == "trial0/ppo_actor/task_reward/avg"
    assert rp.find_tag(["x/y"], rp.REWARD_KEYS) is None


# ------------------------------------------------------------------ timing and saving


def test_step_time_default_warmup_equals_hand_mean(report):
    base, a3po = _row(report, "recompute"), _row(report, "a3po")
    # steps 1..4 (step 0 skipped as warm-up):
    # base: 6.75, 7.25, 8.25, 7.25 -> 7.375 ; a3po: 6.0, 6.0, 6.5, 6.0 -> 6.125
    assert base["warmup_skipped"] == 1 and a3po["warmup_skipped"] == 1
    assert base["timed_steps_used"] == 4
    assert base["step_time_s"] == pytest.approx(7.375)
    assert a3po["step_time_s"] == pytest.approx(6.125)
    assert _run(report, "recompute").timing.trainer_compute_s == pytest.approx(1.125 + 3.0)
    assert base["rollout_s"] == pytest.approx(2.5)
    assert base["recompute_logp_s"] == pytest.approx(1.125)
    assert base["train_step_s"] == pytest.approx(3.0)
    assert base["update_weights_s"] == pytest.approx(0.5)
    assert base["other_s"] == pytest.approx(0.25)  # compute_advantage
    assert a3po["train_step_s"] == pytest.approx(3.25)
    assert a3po["recompute_logp_s"] == 0.0 and a3po["recompute_logp_logged"] is False


def test_saving_vs_baseline_no_recompute_removes_full_share(report):
    base, a3po = _row(report, "recompute"), _row(report, "a3po")
    assert a3po["step_time_ratio"] == pytest.approx(6.125 / 7.375)
    assert a3po["speedup"] == pytest.approx(7.375 / 6.125)
    assert a3po["recompute_removed_share"] == pytest.approx(1.0)
    assert base["step_time_ratio"] == pytest.approx(1.0)
    assert base["recompute_removed_share"] == pytest.approx(0.0)
    assert _run(report, "a3po").vs_baseline.saved_s_per_step == pytest.approx(1.25)


def test_step_time_warmup_zero_includes_first_step(runs, tmp_path):
    rep = rp.compare(F.runs([runs["base"], runs["a3po"]]), str(tmp_path), warmup=0)
    base = rep.table[0]
    assert base["warmup_skipped"] == 0 and base["timed_steps_used"] == F.N_STEPS
    assert _run(rep, "recompute").timing.first_step_used == 0
    assert base["step_time_s"] == pytest.approx((19.5 + 29.5) / 5)
    assert base["recompute_logp_s"] == pytest.approx((4.0 + 4.5) / 5)


def test_recompute_on_some_steps_removed_share_is_the_mean_saving(runs, tmp_path):
    """A run that recomputes on step 2 only of the timed steps 1..4 (as ``hybrid`` does between
    calibrations): the mean is what it pays, 0.25 s of recompute per step against the baseline's
    1.125 s; a median would read 0 s and "100 % removed"."""

    def partial(step: int) -> dict:
        times = {k: list(v) for k, v in F.BASE_TIMES.items()}
        times["recompute_logp"] = [4.0, 0.0, 1.0, 0.0, 0.0]
        tr = F.tracker_with_times_and_reward(times, F.BASE_REWARDS, step)
        stats = tr.export()
        if times["recompute_logp"][step] == 0.0:  # AReaL times the stage only when it runs
            del stats["timeperf/recompute_logp"]
        return stats

    part = F.write_run(tmp_path / "logs", "partial", partial)
    rep = rp.compare(F.runs([runs["base"], part], labels=["recompute", "partial"]), str(tmp_path))
    row = _row(rep, "partial")
    assert row["recompute_logp_s"] == pytest.approx(0.25)
    assert row["recompute_removed_share"] == pytest.approx(1.0 - 0.25 / 1.125)


def test_baseline_without_recompute_removed_share_is_none(runs, tmp_path):
    rep = rp.compare(
        F.runs([runs["a3po"], runs["base"]], labels=["a3po", "recompute"]), str(tmp_path)
    )
    assert rep.baseline == "a3po"
    assert _row(rep, "recompute")["recompute_removed_share"] is None
    assert _row(rep, "recompute")["step_time_ratio"] == pytest.approx(7.375 / 6.125)


# ------------------------------------------------------------------ reward, staleness, approx


def test_reward_final_best_and_last_n_spread_equal_logged(report):
    base_avg = [statistics.fmean(r) for r in F.BASE_REWARDS]  # .25 .5 .75 .75 1.0
    a3po_avg = [statistics.fmean(r) for r in F.A3PO_REWARDS]  # .25 .25 .5 .75 .75
    base, a3po = _row(report, "recompute"), _row(report, "a3po")
    assert base["reward_key"] == "ppo_actor/task_reward/avg"
    assert base["reward_final"] == pytest.approx(1.0)
    assert base["reward_best"] == pytest.approx(1.0) and base["reward_best_step"] == 4
    assert base["reward_last_n"] == 3
    assert base["reward_last_mean"] == pytest.approx(statistics.fmean(base_avg[-3:]))
    assert base["reward_last_std"] == pytest.approx(statistics.pstdev(base_avg[-3:]))
    assert base["reward_last_min"] == pytest.approx(0.75)
    assert base["reward_last_max"] == pytest.approx(1.0)
    assert a3po["reward_final"] == pytest.approx(0.75)
    assert a3po["reward_best"] == pytest.approx(0.75) and a3po["reward_best_step"] == 3
    assert a3po["reward_last_mean"] == pytest.approx(statistics.fmean(a3po_avg[-3:]))


def test_eval_reward_present_only_in_baseline_else_none(report):
    base, a3po = _row(report, "recompute"), _row(report, "a3po")
    assert base["eval_reward_final"] == pytest.approx(1.0)  # step 3: mean(1.0, 1.0)
    assert base["eval_reward_best"] == pytest.approx(1.0)
    assert _run(report, "recompute").eval_reward.n_points == 2
    assert _run(report, "recompute").eval_reward.key == "eval-rollout/reward"
    assert a3po["eval_reward_final"] is None and a3po["eval_reward_best"] is None


def test_staleness_ours_histogram_counts_equal_fed_lags(report):
    st = _run(report, "a3po").staleness
    assert st.source == "token lag (every method)"
    lags = Counter(x for step in F.A3PO_LAGS for x in step)
    expected = [float(lags.get(k, 0)) for k in range(8)] + [
        float(sum(v for k, v in lags.items() if k >= 8))
    ]
    assert st.histogram.labels == [str(k) for k in range(8)] + [">=8"]
    assert st.histogram.counts == expected
    assert st.histogram.total == 25
    assert sum(st.histogram.shares) == pytest.approx(1.0)
    per_step_avg = [statistics.fmean(s) for s in F.A3PO_LAGS]
    assert st.avg == pytest.approx(statistics.fmean(per_step_avg))
    assert st.max == pytest.approx(9.0)


def test_staleness_mismatch_beside_the_lag_equals_fed_values(report):
    st = _run(report, "a3po").staleness
    per_step = [statistics.fmean(abs(x) for x in step) for step in F.A3PO_MISMATCH]
    assert st.mismatch_key == "ppo_actor/a3po/mismatch/abs_dlogp"
    assert st.mismatch_avg == pytest.approx(statistics.fmean(per_step))
    assert st.mismatch_max == pytest.approx(max(per_step))
    assert _run(report, "recompute").staleness.mismatch_avg is None  # not logged: no value
    out = os.path.dirname(report.paths["report_md"])
    kept = {r.arm: r for r in rp.read_records(os.path.join(out, rp.RECORDS_DIR))}
    assert list(kept["a3po"].mismatch.values()) == pytest.approx(per_step)  # the record keeps it
    assert kept["recompute"].mismatch == {}
    with open(report.paths["report_md"], encoding="utf-8") as fh:
        section = fh.read().split("## Staleness")[1].split("\n## ")[0]
    assert "train-inference mismatch, lag 0" in section and "It is not staleness" in section


def test_staleness_areal_fallback_when_ours_absent(report):
    st = _run(report, "recompute").staleness
    assert st.source == "areal version_stats"
    assert st.histogram is None
    assert st.avg == pytest.approx(statistics.fmean(a for a, _ in F.BASE_STALENESS))
    assert st.max == pytest.approx(3.0)


def test_approx_error_and_recomputed_share_equal_logged(report):
    ap = _run(report, "a3po").approx
    assert list(ap.methods) == ["a3po"]
    abs_err = ap.methods["a3po"]["abs_error"]
    assert abs_err.n_steps == 2
    expected = statistics.fmean(statistics.fmean(v) for v in F.A3PO_ABS_ERR.values())
    assert abs_err.mean == pytest.approx(expected)
    assert ap.methods["a3po"]["rel_error"].mean == pytest.approx(2 * expected)
    assert ap.methods["a3po"]["behave_imp_weight_abs_error"].mean == pytest.approx(expected / 4)
    assert ap.recomputed_steps == 2
    assert ap.recomputed_step_share == pytest.approx(2 / 5)
    exact = [statistics.fmean(1.0 if x <= 1 else 0.0 for x in s) for s in F.A3PO_LAGS]
    assert ap.exact_token_share == pytest.approx(statistics.fmean(exact))
    row = _row(report, "a3po")
    assert row["approx_abs_error"] == pytest.approx(expected) and row["approx_method"] == "a3po"
    base = _row(report, "recompute")
    assert base["approx_abs_error"] is None and base["recomputed_step_share"] is None


# ------------------------------------------------------------------ missing keys


def test_missing_keys_give_na_not_crash(runs, tmp_path, capsys):
    rep = rp.compare(F.runs([runs["base"], runs["bare"]], labels=["base", "bare"]), str(tmp_path))
    assert capsys.readouterr().out == ""  # the library prints nothing
    bare = _row(rep, "bare")
    for key in (
        "step_time_s",
        "rollout_s",
        "recompute_logp_s",
        "step_time_ratio",
        "speedup",
        "recompute_removed_share",
        "eval_reward_final",
        "staleness_avg",
        "staleness_max",
        "approx_abs_error",
        "recomputed_step_share",
        "exact_token_share",
    ):
        assert bare[key] is None, key
    assert bare["reward_final"] == pytest.approx(0.5)  # logged values 0, .25, .5
    text = rp.format_table(rep)
    bare_col = [
        line.split("|")[-2].strip() for line in text.splitlines() if "step time (s)" in line
    ]
    assert bare_col == ["n/a"]
    assert any("bare" in n and "timeperf" in n for n in rep.notes)


def test_no_histogram_anywhere_skips_staleness_plot(runs, tmp_path):
    rep = rp.compare(F.runs([runs["base"], runs["bare"]]), str(tmp_path))
    assert "staleness_hist" not in rep.paths
    assert not (tmp_path / rp.PLOT_STALENESS).exists()
    assert any("staleness histogram not written" in n for n in rep.notes)


# ------------------------------------------------------------------ outputs


def test_outputs_pngs_valid_nonzero(report):
    for key in ("reward_vs_step", "reward_vs_time", "step_time_breakdown", "staleness_hist"):
        path = report.paths[key]
        with open(path, "rb") as fh:
            head = fh.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n", key
        assert head[12:16] == b"IHDR"
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert width > 100 and height > 100
        assert os.path.getsize(path) > 1000


def test_report_json_round_trips(report):
    with open(report.paths["report_json"], encoding="utf-8") as fh:
        loaded = json.load(fh)
    from areal_a3po.report import render

    assert loaded == render.json_dict(report)
    assert loaded["table"] == report.table
    assert loaded["baseline"] == "recompute"
    assert loaded["table"][1]["recompute_removed_share"] == pytest.approx(1.0)
    assert loaded["runs"][1]["staleness"]["histogram"]["total"] == 25


def test_report_md_and_format_table_show_numbers(report):
    text = rp.format_table(report)
    assert "| metric" in text and "recompute" in text and "a3po" in text
    assert "7.375" in text and "6.125" in text and "100.0%" in text
    assert "0.000 (not run)" in text
    with open(report.paths["report_md"], encoding="utf-8") as fh:
        md = fh.read()
    assert text in md
    for section in (
        "## Step time",
        "## Saving vs baseline",
        "## Reward",
        "## Staleness",
        "## Proximal",
    ):
        assert section in md
    assert "(staleness_hist.png)" in md


def test_load_scalars_recovered_run_two_files_merge_later_wins(tmp_path):
    # A recovered run: a second writer (new StatsLogger) appends a file to the same directory
    # and re-logs from the last committed step on.
    from tensorboardX import SummaryWriter

    tb = tmp_path / "recovered" / "tensorboard"
    first = SummaryWriter(log_dir=str(tb), filename_suffix=".first")
    for step in range(3):
        first.add_scalar("ppo_actor/task_reward/avg", 0.25 * step, step)
    first.close()
    second = SummaryWriter(log_dir=str(tb), filename_suffix=".second")
    for step in range(2, 5):
        second.add_scalar("ppo_actor/task_reward/avg", 0.5 + 0.125 * step, step)
    second.close()
    data = rp.load_scalars(str(tmp_path / "recovered"))
    assert len(data.event_files) == 2
    series = data.scalars["ppo_actor/task_reward/avg"]
    assert sorted(series) == [0, 1, 2, 3, 4]
    assert series[1] == pytest.approx(0.25)
    assert series[2] == pytest.approx(0.75)  # re-logged by the later file
    assert series[4] == pytest.approx(1.0)


# ------------------------------------------------------------------ one declaration

# Keys of report.json's table rows before the split into a package: consumers (the end-to-end
# test, scripts) read them, so the rows stay a superset.
PUBLISHED_TABLE_KEYS = (
    "label run_dir steps timed_steps_used warmup_skipped step_time_s rollout_s recompute_logp_s "
    "train_step_s update_weights_s other_s recompute_logp_logged step_time_ratio speedup "
    "recompute_removed_share reward_key reward_final reward_best reward_best_step reward_last_n "
    "reward_last_mean reward_last_std reward_last_min reward_last_max eval_reward_final "
    "eval_reward_best staleness_avg staleness_max staleness_source approx_abs_error "
    "approx_method recomputed_step_share exact_token_share"
).split()


def test_metrics_declaration_drives_json_rows_and_summary_table(report):
    from areal_a3po.report import columns

    keys = [m.key for m in rp.METRICS]
    assert len(keys) == len(set(keys)), "a metric key is declared twice"
    assert set(PUBLISHED_TABLE_KEYS) <= set(keys)
    for row in report.table:
        assert list(row) == keys
    titles = [line.split("|")[1].strip() for line in rp.format_table(report).splitlines()[2:-2]]
    assert titles == [m.label.replace("last-N", "last-3").strip() for m in rp.TABLE_COLUMNS]
    # every summary-table row is a declared metric with a label, and only those
    assert all(m.label for m in rp.TABLE_COLUMNS)
    assert len(rp.TABLE_COLUMNS) == sum(1 for m in rp.METRICS if m.label is not None)
    with pytest.raises(ValueError, match="kind"):
        columns.fmt(1.0, "percent")


def test_markdown_sections_name_only_declared_metrics():
    from areal_a3po.report import columns, render

    sections = (
        render.RUNS_SECTION,
        render.STEP_TIME_SECTION,
        render.SAVING_SECTION,
        render.STALENESS_SECTION,
        render.RECOMPUTED_SECTION,
    )
    named = [c if isinstance(c, str) else c[1] for section in sections for c in section]
    named = [k for k in named if isinstance(k, str)]
    named += [f"{f}_{n}" for f, _ in columns.REWARD_SPLITS for n in render.REWARD_SECTION]
    assert named and not [k for k in named if k not in columns.METRIC]
    titled = [c for section in sections for c in section if isinstance(c, str)]
    titled += [f"{f}_{n}" for f, _ in columns.REWARD_SPLITS for n in render.REWARD_SECTION]
    assert all(columns.METRIC[k].header for k in titled)  # each titled where it is declared


def test_default_labels_duplicate_dir_names_all_numbered(runs, tmp_path):
    import shutil

    dirs = [tmp_path / side / "recompute" for side in ("x", "y")]
    for d in dirs:
        shutil.copytree(runs["base"], d)
    rep = rp.compare(F.runs(dirs), str(tmp_path / "out"))
    assert [r.label for r in rep.runs] == ["recompute#0", "recompute#1"]
    assert rep.baseline == "recompute#0"


def test_over_cap_counts_tokens_and_steps_above_the_staleness_cap(runs, tmp_path):
    """F.A3PO_LAGS with cap 2: lags 3, 9, 8 at steps 1, 2, 3 (3 of 25 tokens); the base run has none."""
    rep = rp.compare(
        F.runs([runs["base"], runs["a3po"]], labels=["recompute", "a3po"], caps=[2, 2]),
        str(tmp_path),
    )
    (over,) = rep.over_cap
    assert (over.label, over.cap, over.n_steps, over.max_lag) == ("a3po", 2, 5, 9)
    assert over.tokens_at == {1: 1.0, 2: 1.0, 3: 1.0}
    torch.testing.assert_close(over.share, 3 / 25, rtol=0.0, atol=1e-9)
    torch.testing.assert_close(over.tokens_per_step, 5.0, rtol=0.0, atol=1e-9)
    md = open(rep.paths["report_md"], encoding="utf-8").read()
    assert (
        "- a3po: 12.00% of trained tokens at lag > 2 (max 9), at steps 1 (1 tokens), "
        "2 (1 tokens), 3 (1 tokens) of 5; a step trains 5 tokens on average." in md
    )
    assert "Why: AReaL's staleness cap counts samples" in md
    assert json.load(open(rep.paths["report_json"]))["over_cap"][0]["tokens_at"] == {
        "1": 1.0,
        "2": 1.0,
        "3": 1.0,
    }
    rep9 = rp.compare(F.runs([runs["a3po"]], labels=["a3po"], caps=[9]), str(tmp_path / "r9"))
    assert rep9.over_cap == []


def test_over_cap_from_kept_record_equals_the_one_from_logs(runs, tmp_path):
    """over_cap reads the kept record (token-lag buckets per step), so it is rebuilt from
    report/runs/*.json alone; a record kept before the buckets loads and gives none."""
    from pathlib import Path

    from areal_a3po.report.over_cap import over_cap

    rep = rp.compare(
        F.runs([runs["base"], runs["a3po"]], labels=["recompute", "a3po"], caps=[2, 2]),
        str(tmp_path),
    )
    kept = {r.arm: r for r in rp.read_records(os.path.join(str(tmp_path), rp.RECORDS_DIR))}
    assert kept["a3po"].lag_tokens and not kept["recompute"].lag_tokens
    assert over_cap(kept["a3po"], "a3po", 2) == rep.over_cap[0]
    old = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "tiny-mb4" / "runs"
    (record, *_) = rp.read_records(str(old))
    assert record.lag_tokens == {} and over_cap(record, record.arm, 0) is None
