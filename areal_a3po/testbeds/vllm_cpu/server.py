"""Run AReaL's own vLLM server module (``areal.engine.vllm_ext.areal_vllm_server``) on vLLM 0.32 CPU.

    python -m areal_a3po.testbeds.vllm_cpu.server <the same flags AReaL passes to areal_vllm_server>

Applies :mod:`areal_a3po.testbeds.vllm_cpu.compat`, then executes AReaL's module source, unchanged, as
``__main__`` (its ``if __name__ == "__main__"`` block parses the flags and serves).

How it is executed, and why:
- The source file is located with ``importlib.util.find_spec("areal")`` and executed with
  ``exec``, without importing the ``areal`` package: ``areal/__init__.py`` pulls in the whole
  trainer stack (~10 s on 2 cores, flask, ...), none of which the server module uses (it imports
  only vLLM and FastAPI).
- ``sys.modules["__main__"]`` stays *this* module: vLLM spawns its engine-core and worker
  processes, which re-import ``__main__`` as ``__mp_main__``; they must get this module (whose top
  level imports nothing) rather than AReaL's (whose imports only work after the shims).

AReaL's server module never calls ``gethostip``; bind it to loopback with ``--host 127.0.0.1``
(``VLLM_HOST_IP`` defaults to 127.0.0.1 here for vLLM's internal sockets).
"""

from __future__ import annotations

import os
import sys

AREAL_SERVER_MODULE = "areal.engine.vllm_ext.areal_vllm_server"


def areal_server_source() -> str:
    """Path of AReaL's server module file, found without executing ``areal/__init__.py``."""
    import importlib.util

    spec = importlib.util.find_spec("areal")  # top-level find_spec does not import the package
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("AReaL is not installed")
    rel = AREAL_SERVER_MODULE.split(".")[1:]
    for root in spec.submodule_search_locations:
        path = os.path.join(root, *rel[:-1], rel[-1] + ".py")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{AREAL_SERVER_MODULE} not found under {list(spec.submodule_search_locations)}"
    )


def main() -> None:
    import builtins

    from areal_a3po.testbeds.vllm_cpu import compat

    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    changes = compat.install()
    print(f"[a3po.vllm_cpu] compat shims: {changes or 'none needed'}", file=sys.stderr, flush=True)
    path = areal_server_source()
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec")
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
    exec(code, namespace)  # noqa: S102 - AReaL's installed module, run as its own __main__


if __name__ == "__main__":
    main()
