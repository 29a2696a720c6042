"""The CPU entry script leaves no process behind when its controller ends (normally or not).

AReaL stops its workers in ``PPOTrainer.__exit__``; an error while ``PPOTrainer(...)`` is built
skips it, and the scheduler's ``__del__`` fallback does not finish at interpreter shutdown
(docs/troubleshooting.md, "Faults"). ``areal_a3po.embedded.train.stop_leftover_processes`` runs in
the entry script's ``finally``; here it runs in a fresh interpreter (it stops every descendant of
the process that calls it) with a child that ignores SIGTERM, as a stuck worker would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from tests import harness as H

pytestmark = pytest.mark.version_independent

SCRIPT = """
import json, subprocess, sys
from areal_a3po.embedded.train import stop_leftover_processes
polite = subprocess.Popen(["sleep", "120"])
stubborn = subprocess.Popen(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
     "print('ready', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
stubborn.stdout.readline()
left = stop_leftover_processes(grace_s=1.0)
print(json.dumps({"pids": [polite.pid, stubborn.pid], "left": left}))
"""


def test_processes_mentioning_long_command_line_with_columns_set_finds_it(tmp_path, monkeypatch):
    """The "no process left" asserts must be able to fail: a run dir deep in a long command line
    is found even where ``$COLUMNS`` is set (``ps -eo args`` would cut the line there)."""
    monkeypatch.setenv("COLUMNS", "80")
    marker = str(tmp_path / ("d" * 120) / "run")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        found = H.processes_mentioning(marker)
        assert [int(line.split()[0]) for line in found] == [proc.pid]
        assert found[0].endswith(marker)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert H.processes_mentioning(marker) == []


def test_stop_leftover_processes_terminates_then_kills_every_descendant():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    polite, stubborn = out["pids"]
    assert [int(line.split()[0]) for line in out["left"]] == [polite, stubborn]
    assert "sleep 120" in out["left"][0]
    # the stubborn one ignores SIGTERM: only the SIGKILL after the grace period ends it
    assert not any(psutil.pid_exists(pid) for pid in (polite, stubborn))


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_compare_signal_while_arm_runs_stops_arm_group_and_says_rerun(tmp_path, sig):
    """``a3po compare`` started as ``cmd &`` starts it (SIGINT ignored), then signalled while
    AReaL's controller of the first arm is up: exit 130, the resume hint, no arm process left."""
    import os
    import signal
    import time

    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "areal_a3po.cli", "compare", "--providers", "a3po"]
    cmd += ["--steps", "1", "--seeds", "31", "--out", str(out), "--no-progress"]
    compare = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 120
    # the arm's controller (AReaL's entry script, its own session) names the out dir
    # (the wait is also the helper's positive control: it does see an arm's processes)
    while not any("areal_a3po.embedded.train" in p for p in H.processes_mentioning(str(out))):
        assert compare.poll() is None and time.monotonic() < deadline, compare.stdout.read()
        time.sleep(0.5)
    os.kill(compare.pid, getattr(signal, sig))
    text, _ = compare.communicate(timeout=120)
    assert compare.returncode == 130, text[-2000:]
    assert f"a3po compare: interrupted ({sig})" in text and "Run the same command again" in text
    assert H.processes_mentioning(str(out)) == []
