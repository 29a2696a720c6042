"""The AReaL coupling: the only package that knows AReaL's internals (checked on areal 1.0.4).

AReaL has no plugin API, so the plugin patches AReaL modules right after they execute
(:mod:`areal_a3po._bootstrap` calls :func:`patch_module` from an import hook, in every process).
One module here per AReaL module patched; :data:`PATCHERS` is the whole list:

=============================  =========================================================
AReaL module                   what changes (module here)
=============================  =========================================================
``areal.api.cli_args``         ``PPOActorConfig`` gains ``actor.a3po``, validates the provider,
                               asks it whether the recompute runs (:mod:`.config`);
                               ``vLLMConfig.build_cmd_from_args`` names the CPU bridge when vLLM
                               is the CPU build (:mod:`.vllm`); ``vLLMConfig`` gains
                               ``vllm.logprobs_mode`` (``--logprobs-mode processed_logprobs``
                               where vLLM accepts it), ``load_expr_config`` warns when
                               top-p/top-k renormalise vLLM's log-probs (:mod:`.vllm_logprobs`)
``areal.trainer.ppo.actor``    versions rolled with logprobs, minibatch index for providers,
                               the plugin's loss and metrics (:mod:`.actor`); stats exports fed
                               to ``hybrid``'s calibrators (:mod:`.stats`)
``areal.utils.network``        ``gethostip`` -> 127.0.0.1 with ``AREAL_A3PO_LOOPBACK=1``; then
                               also torch's c10d TCPStore server binds the loopback address,
                               not ``::`` (:mod:`.network`)
``areal.infra.rpc.guard.app``  worker servers bind 127.0.0.1, not 0.0.0.0, with
                               ``AREAL_A3PO_LOOPBACK=1`` (:mod:`.rpc_guard`)
areal.infra.remote_inf_engine  generated tokens labelled with the weight version their request
                               was built with, not one read after the round trip (AReaL PR
                               #1569; only where ``agenerate`` reads it twice); a server
                               process that exits during start-up ends the wait at once
                               (:mod:`.remote_inf_engine`)
``areal.utils.recover``        ``hybrid``'s calibration state saved beside AReaL's recover
                               checkpoint and restored with it; the evaluator's state saved as
                               of after the checkpointed step's check (:mod:`.recover`)
=============================  =========================================================

Whether AReaL is patched at all is decided by :mod:`.gate`. When a future AReaL ships a plugin
API, this package is the one to rewrite.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from areal_a3po.coupling import (
    actor,
    config,
    gate,
    network,
    recover,
    remote_inf_engine,
    rpc_guard,
    stats,
    vllm,
    vllm_logprobs,
)

PATCHERS: dict[str, tuple[Callable[[ModuleType], None], ...]] = {
    "areal.api.cli_args": (config.patch, vllm_logprobs.patch, vllm.patch),
    "areal.trainer.ppo.actor": (actor.patch, stats.patch),
    "areal.utils.network": (network.patch,),
    "areal.infra.rpc.guard.app": (rpc_guard.patch,),
    "areal.infra.remote_inf_engine": (remote_inf_engine.patch,),
    "areal.utils.recover": (recover.patch,),
}

_PATCHED: set[str] = set()


def hooked() -> bool:
    """Whether this process's AReaL config module carries the plugin."""
    return "areal.api.cli_args" in _PATCHED


def patch_module(module: ModuleType) -> None:
    """Entry point of the import hook: patch one freshly imported AReaL module (idempotent)."""
    name = module.__name__
    if name in _PATCHED:
        return
    if not gate.areal_supported():
        gate.refuse(module)
        return
    for patch in PATCHERS[name]:
        patch(module)
    _PATCHED.add(name)


__all__ = ["PATCHERS", "hooked", "patch_module"]
