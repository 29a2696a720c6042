"""vLLM worker extension for AReaL's disk weight updates on the CPU backend (embedded default only).

Selected with ``vllm.worker_extension_cls: areal_a3po.testbeds.vllm_cpu.worker_extension.CPUDiskWeightUpdateExtension``;
vLLM mixes the class into its worker, so ``self`` is the (CPU) worker.

Why not AReaL's ``VLLMWorkerExtension`` (or a subclass of it):
- Its ``areal_update_weights`` calls ``model_loader.load_weights``, which fails on CPU: vLLM CPU
  repacks Linear weights at load time and leaves parameters of size 0 ("Attempted to load weight
  (torch.Size([64, 128])) into parameter (torch.Size([0]))", reproduced with vLLM 0.32.0 CPU).
  vLLM 0.32's own ``reload_weights(weights_path=...)`` reloads in place through the layers' weight
  loaders, re-runs the post-load processing, and works on CPU.
- Importing it imports the ``areal`` package (``areal/__init__`` pulls in the trainer stack and
  flask) into vLLM's engine processes: seconds of extra start-up per process on 2 cores, and a
  crash of vLLM CPU's kernel registration on flask proxy objects was reported for AReaL imported
  in the engine process (not reproduced in a plain offline ``LLM`` check here). Subclassing would
  import it too, so this class stands alone and imports nothing from AReaL (nothing heavy at all).

Only the RPC that AReaL's server calls for disk updates (``/areal_update_weights`` ->
``collective_rpc("areal_update_weights", args=(path,))``) is provided; the XCCL and LoRA RPCs are not
used by the embedded default.
"""

from __future__ import annotations

import logging
import time
import traceback

# Under "vllm." so that vLLM's logging configuration (handler, format, level) applies to it.
logger = logging.getLogger("vllm.a3po_cpu_worker_extension")


class CPUDiskWeightUpdateExtension:
    """Answers AReaL's ``areal_update_weights`` RPC with vLLM's in-place ``reload_weights``."""

    def areal_update_weights(self, model_path: str):
        tik = time.perf_counter()
        try:
            self.reload_weights(weights_path=model_path)
        except Exception as e:  # reported back to AReaL's HTTP handler as (success, message)
            msg = f"reload_weights({model_path!r}) failed: {type(e).__name__}: {e}"
            logger.error("%s\n%s", msg, traceback.format_exc())
            return False, msg
        logger.info("reloaded weights from %s in %.2fs", model_path, time.perf_counter() - tik)
        return True, "Success"
