"""The processes a run starts: launched bounded in their own session, found, and stopped.

One place for what the runner, the fault study (``benchmarks/faults.py``) and the tests do with
an AReaL launch line: start it under coreutils ``timeout`` as the leader of a new process group
(AReaL's workers and the vLLM server join that group), stop the whole group, and list what is
still running that mentions a run directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TIMEOUT_KILL_AFTER_S = 15  # timeout(1) sends SIGKILL this long after its SIGTERM
STOP_GRACE_S = 20.0  # SIGTERM to SIGKILL in stop_group


def launch_bounded(
    cmd: Sequence[str],
    limit_s: float,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    append: bool = False,
) -> subprocess.Popen:
    """Start ``cmd`` in its own session, output to ``log_path``, ended after ``limit_s`` seconds.

    coreutils ``timeout`` bounds it even if the caller is killed without cleaning up; the
    returned process leads the group (``os.killpg(proc.pid, ...)`` or :func:`stop_group`).
    """
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(
            ["timeout", f"--kill-after={TIMEOUT_KILL_AFTER_S}", str(int(limit_s)), *cmd],
            cwd=None if cwd is None else str(cwd),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group ``proc`` leads, then SIGKILL to what is left of it."""
    pgid = proc.pid  # start_new_session: the launched process leads its own group
    for sig, grace in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(pgid, 0)  # workers and vLLM may outlive the controller
            except ProcessLookupError:
                break
            time.sleep(0.5)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, whole command line) of every other process whose command line mentions ``text``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        args = " ".join(proc.info["cmdline"] or [])
        if text in args and proc.info["pid"] != os.getpid():
            found.append((proc.info["pid"], args))
    return found


def processes_mentioning(text: str) -> list[str]:
    """'pid args' of every running process whose command line mentions ``text`` (e.g. a run dir).

    Reads each command line whole through psutil (``/proc``): ``ps -eo args`` cuts lines at
    ``$COLUMNS`` when that is set, so a long run dir would never match and a "no process left"
    check could not fail.
    """
    return [f"{pid} {args}" for pid, args in _mentioning(text)]


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL every process :func:`processes_mentioning` finds (a fault's leftovers)."""
    import psutil

    for pid, _ in _mentioning(text):
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
