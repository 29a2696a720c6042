"""``benchmarks/validity.py``: the SmolLM2 testbed is valid when the recompute twin learns on
held-out data, judged on constructed run records (``RunRecord`` as ``a3po compare`` keeps them).

Per seed the gain is the mean of the last 3 held-out evaluations minus the untrained score; across
seeds a 95 % Student-t interval, "valid" only with its lower bound above 0, no interval under 3
seeds. ``run`` is checked with a stand-in for the runner that writes AReaL's tensorboard tags.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy import stats as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import validity  # noqa: E402

from areal_a3po.report.record import RunRecord, read_records, write_records  # noqa: E402

pytestmark = pytest.mark.version_independent

UNTRAINED = 0.14
STEPS = (0, 4, 9, 14, 19)  # AReaL's evaluator in a 20-step run: after the first, then every 5


def _record(seed: int, evals: tuple[float, ...], arm: str = "recompute") -> RunRecord:
    return RunRecord(
        arm=arm, seed=seed, provider=arm, eval_reward_key="eval-rollout/reward",
        eval_reward=dict(zip(STEPS, evals, strict=True)),
    )  # fmt: skip


def _t_interval(gains: list[float]) -> tuple[float, float]:
    n = len(gains)
    mean = sum(gains) / n
    sd = (sum((g - mean) ** 2 for g in gains) / (n - 1)) ** 0.5
    return st.t.interval(0.95, n - 1, loc=mean, scale=sd / n**0.5)


# Step 0 and 4 evaluations are far off: a reward of record that read them would differ.
LEARNS = {1: (0.0, 0.9, 0.25, 0.27, 0.29), 2: (0.9, 0.0, 0.22, 0.24, 0.23),
          3: (0.0, 0.0, 0.30, 0.26, 0.28), 4: (0.5, 0.5, 0.21, 0.25, 0.26),
          5: (0.1, 0.1, 0.24, 0.22, 0.27)}  # fmt: skip
MIXED = {1: (0.2, 0.2, 0.25, 0.24, 0.25), 2: (0.2, 0.2, 0.10, 0.12, 0.09),
         3: (0.2, 0.2, 0.28, 0.29, 0.30), 4: (0.2, 0.2, 0.14, 0.10, 0.12),
         5: (0.2, 0.2, 0.15, 0.16, 0.13)}  # fmt: skip


def test_analyse_interval_above_zero_says_valid():
    result = validity.analyse([_record(s, e) for s, e in LEARNS.items()], UNTRAINED)
    gains = [sum(e[-3:]) / 3 - UNTRAINED for e in LEARNS.values()]
    assert [g.gain for g in result.seeds] == pytest.approx(gains)
    assert result.gain.estimate == pytest.approx(sum(gains) / 5)
    low, high = _t_interval(gains)
    assert (result.gain.low, result.gain.high) == pytest.approx((low, high))
    assert low > 0
    assert result.verdict == validity.VALID and result.valid


def test_analyse_interval_holding_zero_says_not_valid_with_numbers():
    result = validity.analyse([_record(s, e) for s, e in MIXED.items()], UNTRAINED)
    gains = [sum(e[-3:]) / 3 - UNTRAINED for e in MIXED.values()]
    low, high = _t_interval(gains)
    assert low < 0 < sum(gains) / 5  # gains on average, but the interval holds 0
    assert not result.valid
    assert result.verdict.startswith(validity.NOT_VALID + ":")
    assert f"{sum(gains) / 5:+.3f} [{low:+.3f}, {high:+.3f}]" in result.verdict
    assert "over 5 seeds" in result.verdict


def test_analyse_two_seeds_gives_no_interval_and_not_valid():
    records = [_record(s, LEARNS[s]) for s in (1, 2)]
    result = validity.analyse(records, UNTRAINED)
    assert all(g.gain > 0.08 for g in result.seeds)  # large gains, still no claim
    assert not result.gain.has_interval and result.gain.n_seeds == 2
    assert not result.valid
    assert (
        result.verdict
        == f"{validity.NOT_VALID}: no interval (2 paired seeds; an interval needs >= 3)"
    )


def test_reward_of_record_fewer_than_three_evaluations_raises():
    short = RunRecord(arm="recompute", seed=1, provider="recompute",
                      eval_reward={0: 0.2, 4: 0.3})  # fmt: skip
    with pytest.raises(ValueError, match="2 held-out evaluations"):
        validity.analyse([short, _record(2, LEARNS[2]), _record(3, LEARNS[3])], UNTRAINED)


def test_analyse_other_arm_or_repeated_seed_raises():
    with pytest.raises(ValueError, match="recompute twin only"):
        validity.analyse([_record(1, LEARNS[1]), _record(2, LEARNS[2], arm="a3po-step")], 0.1)
    with pytest.raises(ValueError, match="one record per seed"):
        validity.analyse([_record(1, LEARNS[1]), _record(1, LEARNS[2])], 0.1)


def _untrained_json(path: Path, score: float, digest: str | None = None) -> Path:
    from areal_a3po.testbeds.smollm2 import task as gym_task

    result = {"config": dict(gym_task.TASK_CONFIG), "greedy": {"pass_rate": score},
              "heldout": {"digest": digest or gym_task.heldout_digest()}}  # fmt: skip
    path.write_text(json.dumps({"results": [result]}))
    return path


def test_untrained_score_of_another_heldout_set_is_refused(tmp_path):
    good = _untrained_json(tmp_path / "good.json", 0.2)
    assert validity.untrained_score(good) == 0.2
    stale = _untrained_json(tmp_path / "stale.json", 0.2, digest="0" * 64)
    with pytest.raises(ValueError, match="rerun benchmarks/smollm2_pass_rate.py"):
        validity.untrained_score(stale)


def test_kept_untrained_score_is_of_the_current_heldout_set():
    score = validity.untrained_score()  # raises if the held-out set changed since it was measured
    kept = json.loads(validity.UNTRAINED.read_text())
    (greedy,) = [r["greedy"] for r in kept["results"]]
    assert 0.0 < score < 1.0 and score == greedy["pass_rate"]
    assert sum(greedy["scores"]) / len(greedy["scores"]) == pytest.approx(score, abs=1e-4)


def test_markdown_kept_records_show_per_seed_gains_and_verdict(tmp_path):
    untrained = _untrained_json(tmp_path / "u.json", UNTRAINED)
    assert validity.markdown(tmp_path, untrained).startswith("*Not yet run")
    write_records([_record(s, e) for s, e in LEARNS.items()], str(tmp_path / validity.RUNS))
    md = validity.markdown(tmp_path, untrained)
    assert "| step 0 | step 4 | step 9 | step 14 | step 19 |" in md.replace("  ", " ")
    assert f"**{validity.VALID}**" in md
    assert "+0.130" in md  # seed 1: (0.25 + 0.27 + 0.29) / 3 - 0.14
    assert "0.1400" in md


def test_summary_quotes_verdict_gain_interval_and_seeds(tmp_path):
    untrained = _untrained_json(tmp_path / "u.json", UNTRAINED)
    assert validity.summary(tmp_path, untrained) == "not yet run"
    write_records([_record(s, e) for s, e in LEARNS.items()], str(tmp_path / validity.RUNS))
    result = validity.analyse([_record(s, e) for s, e in LEARNS.items()], UNTRAINED)
    g = result.gain
    assert validity.summary(tmp_path, untrained) == (
        f"{validity.VALID} (held-out gain {g.estimate:+.3f} [{g.low:+.3f}, {g.high:+.3f}], 5 seeds)"
    )


def test_run_keeps_one_record_per_seed_and_prints_expected_time(tmp_path, monkeypatch, capsys):
    """``run`` with the runner replaced by one that writes AReaL's tags in its layout."""
    from tensorboardX import SummaryWriter

    from areal_a3po.compare import runner

    calls = []

    def fake_run_arm(provider, out_dir, *, steps, staleness, seed, label, extra_overrides,
                     testbed, **_):  # fmt: skip
        calls.append((provider, seed, label, testbed, steps, list(extra_overrides)))
        run_dir = Path(out_dir) / label / "areal" / "tensorboard" / "a3po-cpu-smollm2" / label
        writer = SummaryWriter(log_dir=str(run_dir))
        for step in range(steps):
            writer.add_scalar("timeperf/train_step", 60.0, step)
            writer.add_scalar("ppo_actor/task_reward/avg", 0.2, step)
            if step in STEPS:
                writer.add_scalar("eval-rollout/reward", LEARNS[seed][STEPS.index(step)], step)
        writer.close()
        return runner.ArmResult(provider, label, str(run_dir), steps, seed, staleness)

    monkeypatch.setattr(runner, "run_arm", fake_run_arm)
    monkeypatch.setattr(validity, "untrained_score", lambda *_: UNTRAINED)
    kept = tmp_path / "kept"
    assert validity.run([1, 2, 3], 20, tmp_path / "out", kept) == 0
    assert [c[:4] for c in calls] == [("recompute", s, f"recompute_seed{s}", "smollm2")
                                      for s in (1, 2, 3)]  # fmt: skip
    assert all(c[4] == 20 and c[5] == ["actor.ppo_n_minibatches=4"] for c in calls)
    printed = capsys.readouterr().out
    assert f"expected ~{validity.expected_seconds(3, 20) / 60:.0f} min" in printed
    records = read_records(str(kept / validity.RUNS))
    assert [(r.arm, r.seed) for r in records] == [("recompute", 1), ("recompute", 2),
                                                  ("recompute", 3)]  # fmt: skip
    assert records[0].eval_reward == dict(zip(STEPS, LEARNS[1], strict=True))
    meta = json.loads((kept / validity.META_JSON).read_text())
    assert meta["seeds"] == [1, 2, 3] and meta["steps"] == 20
    assert printed.rstrip().endswith(validity.VALID)
    # A later session (its run directory gone) adds seeds: the kept seeds stay, with both sittings
    assert validity.run([3, 4, 5], 20, tmp_path / "other", kept) == 0
    assert [r.seed for r in read_records(str(kept / validity.RUNS))] == [1, 2, 3, 4, 5]
    meta = json.loads((kept / validity.META_JSON).read_text())
    assert meta["seeds"] == [1, 2, 3, 4, 5]
    assert [x["seeds"] for x in meta["sittings"]] == [[1, 2, 3], [3, 4, 5]]
    assert "(seeds 1, 2, 3); " in validity.markdown(kept)
    # A meta kept before sittings were recorded counts as one sitting, not none
    del meta["sittings"]
    (kept / validity.META_JSON).write_text(json.dumps(meta))
    assert validity.run([5], 20, tmp_path / "third", kept) == 0
    meta = json.loads((kept / validity.META_JSON).read_text())
    assert [x["seeds"] for x in meta["sittings"]] == [[1, 2, 3, 4, 5], [5]]


def test_run_too_few_steps_for_three_evaluations_refuses_before_running(tmp_path, monkeypatch):
    from areal_a3po.compare import runner

    monkeypatch.setattr(runner, "run_arm", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setattr(validity, "untrained_score", lambda: UNTRAINED)
    with pytest.raises(SystemExit, match="give 2 held-out evaluations"):
        validity.run([1, 2, 3], 9, tmp_path / "out", tmp_path / "kept")
