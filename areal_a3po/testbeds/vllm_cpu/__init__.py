"""CPU compatibility bridge between AReaL 1.0.4's vLLM server and vLLM 0.32 (CPU build).

Used whenever the installed vLLM is the CPU build: AReaL's launchers then start :mod:`.server`
instead of AReaL's server module (``areal_a3po/coupling/vllm.py``); the CPU recipes
(``recipes/cpu_tiny_*.yaml``) also name :mod:`.worker_extension`. A GPU setup with the vLLM version
AReaL pins never uses it. Nothing here edits AReaL's or vLLM's installed files:

- :mod:`.compat`            import-time shims applied in the API-server process (moved vLLM modules,
                            AReaL's ``/areal_*`` routes actually mounted, ``pause_generation`` keyword).
- :mod:`.server`            ``python -m areal_a3po.testbeds.vllm_cpu.server ...``: applies the
                            shims, then runs ``areal.engine.vllm_ext.areal_vllm_server``
                            unchanged as ``__main__``.
- :mod:`.worker_extension`  ``vllm.worker_extension_cls`` for disk weight updates on CPU
                            (vLLM's ``reload_weights``; imports nothing from AReaL).

Loopback (``AREAL_A3PO_LOOPBACK=1``) is not part of the bridge: the plugin's import hook applies it
in every AReaL process (areal_a3po.coupling.network, .rpc_guard).

This package's import is free of side effects and of heavy imports (vLLM's spawned engine processes
import it).
"""

WORKER_EXTENSION_CLS = "areal_a3po.testbeds.vllm_cpu.worker_extension.CPUDiskWeightUpdateExtension"
SERVER_MODULE = "areal_a3po.testbeds.vllm_cpu.server"

__all__ = ["SERVER_MODULE", "WORKER_EXTENSION_CLS"]
