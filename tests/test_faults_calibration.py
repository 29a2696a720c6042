"""``hybrid``'s decision state across a resume (AReaL's recover): restored, or re-derived.

The calibrators here are the plugin's own (``areal_a3po.calibration``, no AReaL); the statistics fed
to them have the key the workers export. The state file goes through the coupling's atomic writer
and reader (``areal_a3po.coupling.recover``), the file a resumed process reads. The end-to-end path
through AReaL's ``RecoverHandler`` is ``tests/test_faults_resume.py``.
"""

from __future__ import annotations

import gc
import json

import pytest

from areal_a3po import calibration
from areal_a3po.config import A3POConfig
from areal_a3po.coupling import recover

pytestmark = pytest.mark.version_independent

THRESHOLD = 0.05
# error of the fallback on each step, used only where that step recomputes
ERRORS = [0.09, 0.09, 0.08, 0.02, 0.01, 0.07, 0.01, 0.01, 0.03, 0.2, 0.06, 0.01]


def _options(**kw) -> A3POConfig:
    return A3POConfig(**{"calibration_interval": 3, "error_threshold": THRESHOLD, **kw})


def _error(cal: calibration.Calibrator, value: float) -> dict[str, float]:
    """The fallback's error as the workers export it (``ppo_actor/update/compute_logp/...``)."""
    return {f"ppo_actor/update/{cal.error_key}": value}


def _run(cal: calibration.Calibrator, steps: range) -> list[bool]:
    """The trainer's order per step: decide, (train), export the statistics."""
    out = []
    for step in steps:
        recompute = cal.decide()
        assert cal.step == step
        cal.observe(_error(cal, ERRORS[step]) if recompute else {"other/avg": 1.0})
        out.append(recompute)
    return out


@pytest.fixture(autouse=True)
def _fresh_process():
    """Each test is one process: no calibrator of another test alive, no resume point."""
    gc.collect()
    calibration.resume(None)
    recover._PENDING = None
    yield
    calibration.resume(None)
    recover._PENDING = None


def test_calibrator_resumed_at_every_step_decides_like_uninterrupted_run():
    whole = _run(calibration.Calibrator(_options()), range(len(ERRORS)))
    gc.collect()
    assert whole == [True, True, True, True, False, False, True, False, False, True, True, True]
    for g in range(len(ERRORS) - 1):
        calibration.resume(None)  # the first process: a fresh run
        first = calibration.Calibrator(_options())
        before = _run(first, range(g + 1))
        saved = (json.loads(json.dumps(first.state_dict())),)  # through JSON, as on disk
        del first  # the killed process
        gc.collect()
        calibration.resume(calibration.ResumePoint(g, saved))
        second = calibration.Calibrator(_options())  # created after the resume, as in AReaL
        assert second.resumed.startswith(f"restored at global step {g}"), second.resumed
        after = _run(second, range(g + 1, len(ERRORS)))
        assert before + after == whole, g


def test_calibrator_live_at_resume_continues_at_checkpointed_step():
    first = calibration.Calibrator(_options())
    _run(first, range(5))
    saved = (first.state_dict(),)
    del first
    gc.collect()
    live = calibration.Calibrator(_options())  # already created when AReaL's recover loads
    lines = calibration.resume(calibration.ResumePoint(4, saved))
    assert lines == [live.resumed] and live.step == 4 and not live.escalated
    assert _run(live, range(5, 8)) == [False, True, False]


def test_calibrator_unobserved_calibration_step_is_rederived_by_recomputing():
    """Killed between AReaL's checkpoint of step 3 (a calibration step) and its statistics' export."""
    first = calibration.Calibrator(_options())
    _run(first, range(3))
    assert first.decide() is True  # step 3 recomputes; the process dies before observe()
    saved = (first.state_dict(),)
    assert saved[0]["observed_step"] == 2 and saved[0]["recomputed"] is True
    calibration.resume(calibration.ResumePoint(3, saved))
    cal = calibration.Calibrator(_options())
    assert "re-derived at global step 3 (step 3 was a calibration step" in cal.resumed
    assert cal.escalated and cal.last_error == pytest.approx(ERRORS[2])
    assert cal.decide() is True and cal.step == 4  # one extra recompute measures the error again


def test_calibrator_unobserved_plain_step_is_restored():
    """Step 4 ran the fallback only: its statistics carry no error, so nothing was lost."""
    first = calibration.Calibrator(_options())
    _run(first, range(4))
    assert first.decide() is False
    calibration.resume(calibration.ResumePoint(4, (first.state_dict(),)))
    cal = calibration.Calibrator(_options())
    assert cal.resumed.startswith("restored at global step 4") and not cal.escalated


@pytest.mark.parametrize(
    ("saved_options", "saved_step", "why"),
    [
        (None, None, "no saved state for these actor.a3po options"),
        ({"error_threshold": 0.5}, 4, "no saved state for these actor.a3po options"),
        ({}, 2, "the saved state is of step 2, AReaL's checkpoint of step 4"),
    ],
)
def test_calibrator_without_matching_state_rederives(saved_options, saved_step, why):
    saved = ()
    if saved_options is not None:
        first = calibration.Calibrator(_options(**saved_options))
        _run(first, range(saved_step + 1))
        saved = (first.state_dict(),)
    calibration.resume(calibration.ResumePoint(4, saved))
    cal = calibration.Calibrator(_options())
    assert cal.resumed == f"re-derived at global step 4 ({why}): step 5 recomputes"
    assert cal.escalated and cal.step == 4 and cal.decisions == []


def test_state_file_written_atomically_and_rewritten_after_observe(tmp_path):
    path = str(tmp_path / "recover_info" / recover.STATE_FILE)
    cal = calibration.Calibrator(_options())
    _run(cal, range(3))
    assert cal.decide() is True  # step 3 trains; AReaL checkpoints before exporting its stats
    recover.write_state(path, 3)
    recover._PENDING = (path, 3)
    recover.after_observe()  # an export before step 3's statistics: nothing observed yet
    assert json.loads(open(path).read())["calibrators"][0]["observed_step"] == 2
    cal.observe(_error(cal, 0.3))
    recover.after_observe()
    payload = json.loads(open(path).read())
    assert payload["global_step"] == 3 and recover._PENDING is None
    assert payload["calibrators"][0] | {"options": None} == {
        "format": calibration.STATE_FORMAT, "options": None, "step": 3, "recomputed": True,
        "observed_step": 3, "escalated": True, "last_error": 0.3,
    }  # fmt: skip
    assert [p.name for p in (tmp_path / "recover_info").iterdir()] == [recover.STATE_FILE]
    assert recover.read_state(path) == tuple(payload["calibrators"])


@pytest.mark.parametrize("content", ["", "{", '{"calibrators": 3}', "[]"])
def test_state_file_damaged_is_ignored_so_the_state_is_rederived(tmp_path, content):
    path = tmp_path / recover.STATE_FILE
    path.write_text(content)
    assert recover.read_state(str(path)) is None
    assert recover.read_state(str(tmp_path / "missing.json")) is None
