"""``a3po compare`` on damaged inputs: each case is a line in the report or an error naming the path.

Event files are written by ``tensorboardX.SummaryWriter``, the writer of AReaL's ``StatsLogger``,
in AReaL's layout ``<fileroot>/tensorboard/<experiment>/<trial>``; the comparison runs through the
command line (``areal_a3po.cli.main``), as a user types it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from areal_a3po import cli, testbeds
from areal_a3po.report.load import RunDataError, load_scalars

pytestmark = pytest.mark.version_independent

STEPS = 6


def _write_run(
    run_dir: Path,
    steps: int = STEPS,
    start: int = 0,
    reward0: float = 0.5,
    evals: dict[int, float] | None = None,
) -> Path:
    """One sitting of a run (one writer, as one StatsLogger); ``evals``: step -> held-out reward."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir))
    for step in range(start, start + steps):
        writer.add_scalar("rollout/reward", reward0 + 0.01 * step, step)
        writer.add_scalar("timeperf/train_step", 1.0, step)
        writer.add_scalar("timeperf/total", 2.0, step)
        if step in (evals or {}):
            writer.add_scalar("eval-rollout/reward", evals[step], step)
    writer.close()
    return run_dir


def _only_event_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("events.out.tfevents.*")
    return path


@pytest.fixture
def tb(tmp_path) -> Path:
    root = tmp_path / "fileroot" / "tensorboard"
    _write_run(root / "exp" / "recompute")
    return root


def _compare(tmp_path, *runs: Path) -> tuple[int, str, list[str]]:
    out = tmp_path / "out"
    rc = cli.main(["compare", *map(str, runs), "--out", str(out)])
    report = out / "report" / "report.json"
    notes = json.loads(report.read_text())["notes"] if report.exists() else []
    return rc, str(out), notes


def test_compare_truncated_event_file_reports_the_damage_and_uses_what_was_read(tb, tmp_path):
    run = _write_run(tb / "exp" / "a3po")
    path = _only_event_file(run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    rc, _, notes = _compare(tmp_path, tb / "exp" / "recompute", run)
    assert rc == 0
    damaged = [n for n in notes if "damaged event file" in n]
    assert damaged == [
        f"a3po: damaged event file {path}: has truncated record in data after 12 good "
        "records; the scalars after it are lost"
    ]
    assert any(n.startswith(f"a3po: 4 steps logged, {STEPS} in recompute") for n in notes)


@pytest.mark.parametrize("case", ["empty_dir", "header_only_file", "missing"])
def test_compare_run_without_scalars_is_an_error_naming_the_path(tb, tmp_path, capsys, case):
    run = tb / "exp" / "a3po"
    if case == "empty_dir":
        run.mkdir(parents=True)
    elif case == "header_only_file":
        _only_event_file(_write_run(run, steps=0))
    rc, out, _ = _compare(tmp_path, tb / "exp" / "recompute", run)
    err = capsys.readouterr().err
    assert rc == 2 and not (Path(out) / "report" / "report.md").exists()
    assert err.startswith("a3po compare: error: ") and str(run) in err, err
    assert "Traceback" not in err


def test_compare_run_with_fewer_steps_gets_a_line(tb, tmp_path):
    run = _write_run(tb / "exp" / "a3po", steps=3)
    rc, _, notes = _compare(tmp_path, tb / "exp" / "recompute", run)
    assert rc == 0
    assert [n for n in notes if "steps logged" in n] == [
        f"a3po: 3 steps logged, {STEPS} in recompute ({run}): its final and last-N rewards are "
        "at earlier steps; finish or rerun it to compare at equal length"
    ]


def test_compare_runs_of_different_experiments_get_a_line(tb, tmp_path):
    run = _write_run(tb / "other-exp" / "a3po")
    rc, _, notes = _compare(tmp_path, tb / "exp" / "recompute", run)
    assert rc == 0
    assert (
        "runs of different experiments (exp: recompute; other-exp: a3po): compared as given; "
        "check that they ran the same task and model"
    ) in notes


def test_load_restarted_run_in_same_dir_ignores_the_earlier_run(tb):
    """Without a checkpoint AReaL starts over at step 0: the older file's steps must not mix in."""
    run = _write_run(tb / "exp" / "a3po", steps=STEPS)
    old = _only_event_file(run)
    time.sleep(1.1)  # tensorboardX names files by the second
    _write_run(run, steps=4, reward0=0.1)
    data = load_scalars(str(run))
    assert data.superseded_files == [str(old)]
    assert data.scalars["rollout/reward"] == pytest.approx({s: 0.1 + 0.01 * s for s in range(4)})


def test_load_resumed_run_merges_the_relogged_steps(tb):
    """AReaL's recover from step 2: the new file logs steps 3.. again; the newest value wins."""
    run = _write_run(tb / "exp" / "a3po", steps=5)  # killed after logging step 4
    time.sleep(1.1)
    _write_run(run, steps=STEPS - 3, start=3, reward0=0.2)
    data = load_scalars(str(run))
    assert data.superseded_files == [] and len(data.event_files) == 2
    expected = {s: 0.5 + 0.01 * s for s in range(3)} | {s: 0.2 + 0.01 * s for s in range(3, 6)}
    assert data.scalars["rollout/reward"] == pytest.approx(expected)


def test_load_resumed_run_drops_what_the_interrupted_sitting_logged_after_the_checkpoint(
    tb, tmp_path
):
    """areal 1.0.4 / 2.0.0 save the recover checkpoint before the evaluator's check, so a run
    resumed from step 2 evaluates at 3 where the interrupted sitting evaluated at 4: that orphan
    of weights trained again must not become the run's last evaluation."""
    run = _write_run(tb / "exp" / "a3po", steps=5, evals={0: 0.3, 4: 0.9})  # killed after 4
    time.sleep(1.1)  # tensorboardX names files by the second
    _write_run(run, steps=STEPS - 3, start=3, reward0=0.2, evals={3: 0.4})  # from step 2's
    data = load_scalars(str(run))
    assert data.scalars["eval-rollout/reward"] == pytest.approx({0: 0.3, 3: 0.4})
    assert data.superseded_files == [] and len(data.orphaned) == 1
    # rollout/reward, timeperf/train_step, timeperf/total at 3 and 4, eval-rollout/reward at 4
    assert data.orphaned[0].endswith(": 7 values at steps >= 3"), data.orphaned
    rc, _, notes = _compare(tmp_path, tb / "exp" / "recompute", run)
    assert rc == 0
    assert [n for n in notes if "resumed from a recover checkpoint" in n] == [
        "a3po: resumed from a recover checkpoint; dropped what the interrupted sitting logged "
        f"after it, as the resumed one trains those steps again: {data.orphaned[0]}"
    ]


def test_load_directory_without_event_files_raises(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "run")):
        load_scalars(str(tmp_path / "run"))
    _write_run(tmp_path / "hdr", steps=0)
    with pytest.raises(RunDataError, match="hold no scalar"):
        load_scalars(str(tmp_path / "hdr"))


# ----------------------------------------------------------------------------- a study resumed


def test_run_arm_rerun_skips_complete_continues_interrupted_and_restarts_changed(
    tmp_path, monkeypatch
):
    """What an earlier ``a3po compare`` left decides: skip, relaunch in place, or start afresh.

    Launches are cut by the runner's own time bound (2 s: AReaL never starts), so the arm dir holds
    the launch command of a real invocation; the event files stand for the steps it logged.
    """
    from areal_a3po.compare import runner

    tiny = testbeds.get("tiny")  # an arm may run 2 s: AReaL never starts
    monkeypatch.setitem(
        testbeds.TESTBEDS, "tiny", replace(tiny, start_limit_s=2.0, step_limit_s=0.0)
    )
    with pytest.raises(runner.EmbeddedRunError, match="timed out"):
        runner.run_arm("a3po", tmp_path, steps=3, progress=False)
    arm = tmp_path / "a3po"
    launched = (arm / "launch_cmd.txt").read_text()
    run_dir = Path(json.loads((arm / "summary.json").read_text())["run_dir"])

    _write_run(run_dir, steps=2)  # interrupted after 2 of 3 steps: relaunched in place
    with pytest.raises(runner.EmbeddedRunError, match=r"after 2/3 steps"):
        runner.run_arm("a3po", tmp_path, steps=3, progress=False)
    assert json.loads((arm / "summary.json").read_text())["start"] == "continued"
    assert (arm / "launch_cmd.txt").read_text() == launched and len(list(run_dir.iterdir())) == 1

    time.sleep(1.1)
    _write_run(run_dir, steps=1, start=2)  # the resumed run logged the last step: complete
    log_before = (arm / "controller.log").read_bytes()
    res = runner.run_arm("a3po", tmp_path, steps=3, progress=False)
    assert res.start == "skipped" and res.rewards == pytest.approx([0.5, 0.51, 0.52])
    assert (arm / "controller.log").read_bytes() == log_before  # nothing was launched

    with pytest.raises(runner.EmbeddedRunError, match=r"after 0/4 steps"):
        runner.run_arm("a3po", tmp_path, steps=4, progress=False)  # another command: afresh
    assert not run_dir.exists() and "total_train_steps=4" in (arm / "launch_cmd.txt").read_text()
