"""Tests for areal_a3po.report on REAL tensorboard logs written by AReaL's StatsLogger.

The stats dicts are produced the way AReaL's trainer produces them: values go into
``areal.utils.stats_tracker.DistributedStatsTracker`` (scopes ``ppo_actor`` / ``update`` /
``compute_logp`` / ``version_stats``, the ``eval-rollout`` tracker, ``timeperf/*`` scalars as
``record_timing`` stores them), are exported (``*__count`` keys included), merged like
``export_all`` and handed to ``StatsLogger.commit(epoch, step, global_step, stats)`` with
tensorboard enabled. Timings are fed as exact binary fractions so float32 storage is exact.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")
pytest.importorskip("matplotlib")

from areal_a3po import report as rp  # noqa: E402

# ------------------------------------------------------------------ what the fake runs log

N_STEPS = 5
# seconds per trainer stage per step; step 0 is the (slow) warm-up step
BASE_TIMES = {
    "rollout": [8.0, 2.0, 2.5, 3.0, 2.5],
    "recompute_logp": [4.0, 1.0, 1.0, 1.5, 1.0],
    "compute_advantage": [0.5, 0.25, 0.25, 0.25, 0.25],
    "train_step": [6.0, 3.0, 3.0, 3.0, 3.0],
    "update_weights": [1.0, 0.5, 0.5, 0.5, 0.5],
}
A3PO_TIMES = {  # no recompute_logp stage at all (AReaL only times it when it recomputes)
    "rollout": [8.0, 2.0, 2.0, 2.5, 2.0],
    "compute_advantage": [0.5, 0.25, 0.25, 0.25, 0.25],
    "train_step": [6.25, 3.25, 3.25, 3.25, 3.25],
    "update_weights": [1.0, 0.5, 0.5, 0.5, 0.5],
}
# per-sequence task rewards of each step's batch (4 sequences)
BASE_REWARDS = [[0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]]
A3PO_REWARDS = [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]]
BASE_EVAL = {1: [0.5, 1.0], 3: [1.0, 1.0]}  # eval rollouts' rewards on eval steps
BASE_STALENESS = [(0.5, 1.0), (1.0, 2.0), (1.25, 3.0), (1.0, 2.0), (0.75, 2.0)]  # theta avg, max
# per-token lag of the a3po run (our provider's histogram/avg/max keys)
A3PO_LAGS = [[0, 0, 1, 1, 2], [0, 1, 1, 2, 3], [1, 1, 2, 9, 0], [0, 1, 2, 2, 8], [0, 1, 1, 1, 1]]
A3PO_RECOMPUTED = [1, 0, 1, 0, 0]
A3PO_ABS_ERR = {0: [0.5, 0.25, 0.25, 0.0, 0.0], 2: [0.125, 0.125, 0.25, 0.5, 0.0]}


def _export(*trackers) -> dict:
    stats = {}
    for tr in trackers:
        stats.update(tr.export())
    return stats


def _tracker_with_times_and_reward(times: dict, rewards: dict, step: int):
    """A stats tracker holding one step's stage times and per-sequence task rewards."""
    from areal.utils.stats_tracker import DistributedStatsTracker

    tr = DistributedStatsTracker()
    tr.scalar(**{f"timeperf/{k}": v[step] for k, v in times.items()})
    with tr.scope("ppo_actor"):
        r = torch.tensor(rewards[step], dtype=torch.float32)
        tr.denominator(n_seqs=torch.ones_like(r, dtype=torch.bool))
        tr.stat(task_reward=r, denominator="n_seqs")
    return tr


def _base_stats(step: int) -> dict:
    from areal.utils.stats_tracker import DistributedStatsTracker

    tr = _tracker_with_times_and_reward(BASE_TIMES, BASE_REWARDS, step)
    with tr.scope("ppo_actor"):
        tr.scalar(eps_clip=0.2)
        with tr.scope("update"), tr.scope("version_stats"):
            avg, mx = BASE_STALENESS[step]
            tr.scalar(sample_staleness_theta_avg=avg, sample_staleness_theta_max=mx)
    ev = DistributedStatsTracker("eval-rollout")
    for r in BASE_EVAL.get(step, []):
        ev.scalar(reward=r)
    return _export(tr, ev)


def _a3po_stats(step: int) -> dict:
    from areal.utils.stats_tracker import ReduceType

    tr = _tracker_with_times_and_reward(A3PO_TIMES, A3PO_REWARDS, step)
    with tr.scope("ppo_actor"):
        lag = torch.tensor(A3PO_LAGS[step])
        with tr.scope("a3po"):  # the token lag, as the plugin logs it for every method
            tr.denominator(n_tokens=torch.ones_like(lag, dtype=torch.bool))
            tr.stat(token_lag=lag.float(), denominator="n_tokens")
            counts = {f"token_lag_{k}": (lag == k).float() for k in range(8)}
            counts["token_lag_ge8"] = (lag >= 8).float()
            tr.stat(**counts, denominator="n_tokens", reduce_type=ReduceType.SUM)
        with tr.scope("update"), tr.scope("compute_logp"):
            tr.denominator(n_valid_tokens=torch.ones_like(lag, dtype=torch.bool))
            tr.stat(exact_token_share=(lag <= 1).float(), denominator="n_valid_tokens")
            tr.scalar(recomputed=A3PO_RECOMPUTED[step])
            if step in A3PO_ABS_ERR:
                err = torch.tensor(A3PO_ABS_ERR[step], dtype=torch.float32)
                tr.stat(
                    **{
                        "a3po/abs_error": err,
                        "a3po/rel_error": 2 * err,
                        "a3po/importance_weight_abs_error": err / 2,
                        "a3po/behave_imp_weight_abs_error": err / 4,
                    },
                    denominator="n_valid_tokens",
                )
    return _export(tr)


def _reward_only_stats(step: int) -> dict:
    return {"ppo_actor/task_reward/avg": 0.25 * step, "ppo_actor/eps_clip": 0.2}


def _write_run(root, name: str, make_stats, n_steps: int = N_STEPS) -> str:
    """Drive AReaL's StatsLogger (tensorboard on) exactly as RLTrainer does; return the run dir."""
    from areal.api import FinetuneSpec
    from areal.api.cli_args import BaseExperimentConfig, StatsLoggerConfig, TensorBoardConfig
    from areal.utils.stats_logger import StatsLogger

    run_dir = os.path.join(str(root), name)
    cfg = BaseExperimentConfig(
        experiment_name="a3po-report-test",
        trial_name=name,
        stats_logger=StatsLoggerConfig(
            experiment_name="a3po-report-test",
            trial_name=name,
            fileroot=os.path.join(str(root), "fileroot"),
            tensorboard=TensorBoardConfig(path=os.path.join(run_dir, "tensorboard")),
        ),
    )
    logger = StatsLogger(
        cfg, FinetuneSpec(total_train_epochs=1, dataset_size=4 * n_steps, train_batch_size=4)
    )
    for step in range(n_steps):
        logger.commit(epoch=0, step=step, global_step=step, data=make_stats(step))
    logger.close()
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": _write_run(root, "recompute", _base_stats),
        "a3po": _write_run(root, "a3po", _a3po_stats),
        "bare": _write_run(root, "bare", _reward_only_stats, n_steps=3),
    }


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return rp.compare(
        [runs["base"], runs["a3po"]], str(out), labels=["recompute", "a3po"], last_n=3
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
    assert sorted(data.scalars["timeperf/train_step"]) == list(range(N_STEPS))
    base = rp.load_scalars(runs["base"])
    assert "ppo_actor/update/version_stats/sample_staleness_theta_avg" in base.scalars
    assert sorted(base.scalars["eval-rollout/reward"]) == sorted(BASE_EVAL)


def test_compare_dir_without_event_files_raises_naming_dir(tmp_path):
    empty = tmp_path / "no_events_here"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not an event file")
    with pytest.raises(FileNotFoundError, match="no_events_here"):
        rp.compare([str(empty)], str(tmp_path / "out"))


def test_compare_missing_dir_raises_naming_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        rp.compare([str(tmp_path / "does_not_exist")], str(tmp_path / "out"))


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
    rep = rp.compare([runs["base"], runs["a3po"]], str(tmp_path), warmup=0)
    base = rep.table[0]
    assert base["warmup_skipped"] == 0 and base["timed_steps_used"] == N_STEPS
    assert base["step_time_s"] == pytest.approx((19.5 + 29.5) / 5)
    assert base["recompute_logp_s"] == pytest.approx((4.0 + 4.5) / 5)


def test_baseline_without_recompute_removed_share_is_none(runs, tmp_path):
    rep = rp.compare([runs["a3po"], runs["base"]], str(tmp_path), labels=["a3po", "recompute"])
    assert rep.baseline == "a3po"
    assert _row(rep, "recompute")["recompute_removed_share"] is None
    assert _row(rep, "recompute")["step_time_ratio"] == pytest.approx(7.375 / 6.125)


# ------------------------------------------------------------------ reward, staleness, approx


def test_reward_final_best_and_last_n_spread_equal_logged(report):
    base_avg = [statistics.fmean(r) for r in BASE_REWARDS]  # .25 .5 .75 .75 1.0
    a3po_avg = [statistics.fmean(r) for r in A3PO_REWARDS]  # .25 .25 .5 .75 .75
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
    lags = Counter(x for step in A3PO_LAGS for x in step)
    expected = [float(lags.get(k, 0)) for k in range(8)] + [
        float(sum(v for k, v in lags.items() if k >= 8))
    ]
    assert st.histogram.labels == [str(k) for k in range(8)] + [">=8"]
    assert st.histogram.counts == expected
    assert st.histogram.total == 25
    assert sum(st.histogram.shares) == pytest.approx(1.0)
    per_step_avg = [statistics.fmean(s) for s in A3PO_LAGS]
    assert st.avg == pytest.approx(statistics.fmean(per_step_avg))
    assert st.max == pytest.approx(9.0)


def test_staleness_areal_fallback_when_ours_absent(report):
    st = _run(report, "recompute").staleness
    assert st.source == "areal version_stats"
    assert st.histogram is None
    assert st.avg == pytest.approx(statistics.fmean(a for a, _ in BASE_STALENESS))
    assert st.max == pytest.approx(3.0)


def test_approx_error_and_recomputed_share_equal_logged(report):
    ap = _run(report, "a3po").approx
    assert list(ap.methods) == ["a3po"]
    abs_err = ap.methods["a3po"]["abs_error"]
    assert abs_err.n_steps == 2
    expected = statistics.fmean(statistics.fmean(v) for v in A3PO_ABS_ERR.values())
    assert abs_err.mean == pytest.approx(expected)
    assert ap.methods["a3po"]["rel_error"].mean == pytest.approx(2 * expected)
    assert ap.methods["a3po"]["behave_imp_weight_abs_error"].mean == pytest.approx(expected / 4)
    assert ap.recomputed_steps == 2
    assert ap.recomputed_step_share == pytest.approx(2 / 5)
    exact = [statistics.fmean(1.0 if x <= 1 else 0.0 for x in s) for s in A3PO_LAGS]
    assert ap.exact_token_share == pytest.approx(statistics.fmean(exact))
    row = _row(report, "a3po")
    assert row["approx_abs_error"] == pytest.approx(expected) and row["approx_method"] == "a3po"
    base = _row(report, "recompute")
    assert base["approx_abs_error"] is None and base["recomputed_step_share"] is None


# ------------------------------------------------------------------ missing keys


def test_missing_keys_give_na_not_crash(runs, tmp_path, capsys):
    rep = rp.compare([runs["base"], runs["bare"]], str(tmp_path), labels=["base", "bare"])
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
    rep = rp.compare([runs["base"], runs["bare"]], str(tmp_path))
    assert "staleness_hist" not in rep.paths
    assert not (tmp_path / rp.PLOT_STALENESS).exists()
    assert any("staleness histogram not written" in n for n in rep.notes)


def test_labels_length_mismatch_raises(runs, tmp_path):
    with pytest.raises(ValueError, match="labels"):
        rp.compare([runs["base"], runs["a3po"]], str(tmp_path), labels=["only-one"])


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
    named = [c for section in sections for _, c in section if isinstance(c, str)]
    named += [f"{f}_{n}" for f, _ in columns.REWARD_SPLITS for _, n in render.REWARD_SECTION]
    assert named and not [k for k in named if k not in columns.METRIC]


def test_default_labels_duplicate_dir_names_all_numbered(runs, tmp_path):
    import shutil

    dirs = [tmp_path / side / "recompute" for side in ("x", "y")]
    for d in dirs:
        shutil.copytree(runs["base"], d)
    rep = rp.compare([str(d) for d in dirs], str(tmp_path / "out"))
    assert [r.label for r in rep.runs] == ["recompute#0", "recompute#1"]
    assert rep.baseline == "recompute#0"


# ------------------------------------------------------------------ arms across seeds


def _seed_run_stats(recompute: float, train: float, reward: float, seed: int):
    """Stage times with 2 % noise and a reward ramp ending at ``reward``, for one seed."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(step: int) -> dict:
        noise = 1.0 + 0.02 * rng.standard_normal(3)
        times = {"rollout": 0.05 * noise[0], "train_step": train * noise[1]}
        if recompute:
            times["recompute_logp"] = recompute * noise[2]
        r = reward * (step + 1) / N_STEPS + 0.01 * seed
        return {**{f"timeperf/{k}": v for k, v in times.items()}, "ppo_actor/task_reward/avg": r}

    return make


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Three arms x three seeds: 'same' equals the baseline, 'fast' skips the recompute."""
    root = tmp_path_factory.mktemp("seeds")
    arms = {"recompute": (0.5, 1.0, 0.5), "same": (0.5, 1.0, 0.5), "fast": (0.0, 1.0, 0.8)}
    dirs, labels, seeds = [], [], []
    for seed in (1, 2, 3):  # interleaved, as a3po compare --seeds runs them
        for label, (rc, tr, rw) in arms.items():
            dirs.append(_write_run(root, f"{label}_s{seed}", _seed_run_stats(rc, tr, rw, seed)))
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
            dirs.append(_write_run(tmp_path / "runs", f"{label}{seed}", make(final, seed)))
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
        base = _seed_run_stats(recompute, 1.0, reward, seed)

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
                dirs.append(_write_run(tmp_path / "runs", name, stats_at(rc, rw, k // 2, seed)))
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


def test_over_cap_counts_tokens_and_steps_above_the_staleness_cap(runs, tmp_path):
    """A3PO_LAGS with cap 2: lags 3, 9, 8 at steps 1, 2, 3 (3 of 25 tokens); the base run has none."""
    rep = rp.compare(
        [runs["base"], runs["a3po"]], str(tmp_path), labels=["recompute", "a3po"], caps=[2, 2]
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
    rep9 = rp.compare([runs["a3po"]], str(tmp_path / "r9"), labels=["a3po"], caps=[9])
    assert rep9.over_cap == []
    with pytest.raises(ValueError, match="2 staleness caps for 1 run"):
        rp.compare([runs["a3po"]], str(tmp_path / "bad"), caps=[2, 2])


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
