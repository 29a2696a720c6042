"""Run AReaL's own vLLM server module (``areal.engine.vllm_ext.areal_vllm_server``) on vLLM 0.32 CPU.

    python -m areal_a3po.vllm_cpu.server <the same flags AReaL passes to areal_vllm_server>

Applies :mod:`areal_a3po.vllm_cpu.compat`, then executes AReaL's module as ``__main__``, unchanged.
AReaL's server module itself never calls ``gethostip``; bind it to loopback with ``--host 127.0.0.1``
(``VLLM_HOST_IP`` defaults to 127.0.0.1 here for vLLM's internal sockets). vLLM's engine-core processes are spawned
and re-import *this* module as ``__mp_main__``; its top level therefore imports nothing.
"""

from __future__ import annotations

import os
import runpy
import sys

AREAL_SERVER_MODULE = "areal.engine.vllm_ext.areal_vllm_server"


def main() -> None:
    from areal_a3po.vllm_cpu import compat

    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    changes = compat.install()
    print(f"[a3po.vllm_cpu] compat shims: {changes or 'none needed'}", file=sys.stderr, flush=True)
    runpy.run_module(AREAL_SERVER_MODULE, run_name="__main__", alter_sys=False)


if __name__ == "__main__":
    main()
