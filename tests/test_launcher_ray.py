"""The CPU recipe's ``single-controller, Ray`` header line on a local Ray head bound to 127.0.0.1.

The test starts the head (``ray start --head --block`` in its own process group, with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: Ray's single-node mode, where every Ray service uses
127.0.0.1; ``--node-ip-address=127.0.0.1`` alone is replaced by the external address), runs the
a3po twin through :func:`areal_a3po.compare.runner.run_arm` (the header line run as written, AReaL's
``RayScheduler`` creating the actor and rollout workers as Ray actors), and stops the head's
process group. The plugin is active in the Ray workers: the a3po stats come from the actor
worker's ``ppo_update`` and AReaL's ``compute_logp`` forward never runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from areal_a3po.compare import procs, runner
from tests import harness as H

STEPS = 3
ARM = runner.default_providers()[1]  # the A-3PO twin's own method: its header line as written
A3PO_STAT = f"ppo_actor/update/compute_logp/{ARM}/approx_logp/avg"
HEAD_START_LIMIT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,args="], capture_output=True, text=True)
    return [ln for ln in out.stdout.splitlines() if ln.split(None, 1)[0] == str(pgid)]


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 in its own process group; stopped (whole group) afterwards."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="a3ray-", dir="/tmp")  # short: Ray's socket path limit
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    ray_bin = Path(sys.executable).parent / "ray"
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--num-cpus=4", "--memory=12000000000",
           "--object-store-memory=300000000", "--include-dashboard=false",
           "--disable-usage-stats", f"--temp-dir={temp_dir}"]  # fmt: skip
    log = open(Path(temp_dir) / "head.log", "wb")
    head = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + HEAD_START_LIMIT_S
        while True:
            assert head.poll() is None, (Path(temp_dir) / "head.log").read_text()[-3000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Ray head did not listen in time"
                time.sleep(1)
        yield {"address": f"127.0.0.1:{port}", "pgid": head.pid, "temp_dir": temp_dir}
    finally:
        procs.stop_group(head, grace_s=10.0)
        log.close()
    assert not _group_members(head.pid), _group_members(head.pid)


@pytest.mark.slow
@pytest.mark.skipif(
    not H.on_areal_1_0(),
    reason="the Ray path is checked with areal 1.0.4 (one end-to-end run per CI, not per leg)",
)
def test_ray_header_line_trains_with_plugin_in_ray_workers(ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_head["address"])
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    res = runner.run_arm(
        ARM, tmp_path, steps=STEPS, label="a3po_ray", progress=False, scheduler="ray"
    )
    launched = (tmp_path / "a3po_ray" / "launch_cmd.txt").read_text()
    assert "scheduler.type=ray" in launched
    from areal_a3po.report import load_scalars

    s = load_scalars(res.run_dir).scalars
    assert set(s["timeperf/train_step"]) == set(range(STEPS))
    assert set(s[A3PO_STAT]) == set(range(STEPS))  # computed in the Ray actor worker
    assert "timeperf/recompute_logp" not in s  # compute_logp never ran
    log = (tmp_path / "a3po_ray" / "controller.log").read_text(errors="replace")
    assert "RayScheduler" in log or "RayRPCServer" in log
    bridge = "-m areal_a3po.testbeds.vllm_cpu.server"
    assert "Launching vLLM server with command:" in log and bridge in log
    print(f"ray arm: first step {res.first_step_s:.0f}s, train {res.train_s:.1f}s "
          f"for {STEPS - 1} steps, total {res.total_s:.0f}s, rewards {res.rewards}")  # fmt: skip
