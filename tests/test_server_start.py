"""A rollout server that dies during start-up ends AReaL's wait at once (areal 1.0.4, AReaL 2.0.0).

AReaL's real ``RemoteInfEngine`` with its vLLM backend, as ``launch_server`` calls it: the
server's process is a real child that exits with code 3 (no vLLM: a server that fails to start
is all the case needs), and nothing listens at the address.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _engine(setup_timeout: float):
    from areal.api.cli_args import InferenceEngineConfig
    from areal.engine.vllm_remote import VLLMBackend
    from areal.infra.remote_inf_engine import RemoteInfEngine

    return RemoteInfEngine(InferenceEngineConfig(setup_timeout=setup_timeout), VLLMBackend())


def test_wait_for_server_process_exited_raises_at_once_naming_code():
    from areal_a3po.coupling import gate
    from areal_a3po.coupling.remote_inf_engine import ServerExitedError

    engine = _engine(setup_timeout=300)  # imports (and so patches) AReaL's module first
    key = "areal.infra.remote_inf_engine.RemoteInfEngine._wait_for_server"
    (detail,) = [p.detail for p in gate.applied_patch_points() if p.target == key]
    if "AReaL polls" in detail:
        pytest.skip("this AReaL polls the server process itself (AReaL main)")
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    process.wait(timeout=30)
    start = time.monotonic()
    with pytest.raises(
        ServerExitedError, match=r"pid \d+\) exited with code 3 .*setup_timeout=300"
    ):
        engine._wait_for_server(_free_address(), process=process)
    assert time.monotonic() - start < 30  # not setup_timeout (300 s)
    assert "check_health" not in vars(engine)  # AReaL's own probe is back
    assert isinstance(ServerExitedError("x"), TimeoutError)  # launch_server's clean-up runs


def test_wait_for_server_without_process_keeps_areal_timeout():
    engine = _engine(setup_timeout=1)
    with pytest.raises(TimeoutError, match="server launch failed"):
        engine._wait_for_server(_free_address())
