"""The CPU entry script leaves no process behind when its controller ends (normally or not).

AReaL stops its workers in ``PPOTrainer.__exit__``; an error while ``PPOTrainer(...)`` is built
skips it, and the scheduler's ``__del__`` fallback does not finish at interpreter shutdown
(docs/troubleshooting.md, "Faults"). ``areal_a3po.testbeds.entry.stop_leftover_processes`` runs in
the entry script's ``finally``; here it runs in a fresh interpreter (it stops every descendant of
the process that calls it) with a child that ignores SIGTERM, as a stuck worker would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from areal_a3po.compare import procs

pytestmark = pytest.mark.version_independent

SCRIPT = """
import json, subprocess, sys
from areal_a3po.testbeds.entry import stop_leftover_processes
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
        found = procs.processes_mentioning(marker)
        assert [int(line.split()[0]) for line in found] == [proc.pid]
        assert found[0].endswith(marker)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert procs.processes_mentioning(marker) == []


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
    while not any(
        "areal_a3po.testbeds.tiny.train" in p for p in procs.processes_mentioning(str(out))
    ):
        assert compare.poll() is None and time.monotonic() < deadline, compare.stdout.read()
        time.sleep(0.5)
    os.kill(compare.pid, getattr(signal, sig))
    text, _ = compare.communicate(timeout=120)
    assert compare.returncode == 130, text[-2000:]
    assert f"a3po compare: interrupted ({sig})" in text and "Run the same command again" in text
    assert procs.processes_mentioning(str(out)) == []


def test_launch_bounded_past_its_limit_is_ended_by_timeout(tmp_path):
    """coreutils timeout ends a launch at its limit (exit 124), output in the log."""
    cmd = ["sh", "-c", "echo started; exec sleep 60"]
    proc = procs.launch_bounded(cmd, 5, tmp_path / "run.log")
    assert os.getpgid(proc.pid) == proc.pid  # leads its own group
    assert proc.wait(timeout=30) == 124
    assert (tmp_path / "run.log").read_text() == "started\n"


def test_stop_group_child_ignoring_sigterm_leaves_no_member(tmp_path):
    """stop_group ends the whole group: a child that ignores SIGTERM is killed after the grace."""
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    marker = str(tmp_path)
    proc = procs.launch_bounded([sys.executable, "-c", parent, marker], 120, tmp_path / "log")
    deadline = time.monotonic() + 30
    while len(psutil.Process(proc.pid).children(recursive=True)) < 2:  # timeout -> parent -> child
        assert time.monotonic() < deadline
        time.sleep(0.1)
    procs.stop_group(proc, grace_s=1.0)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
