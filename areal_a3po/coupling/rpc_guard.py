"""Coupling for ``areal.infra.rpc.guard.app``: worker servers bind 127.0.0.1 in loopback mode.

What: with ``AREAL_A3PO_LOOPBACK=1``, ``configure_state_from_args`` maps a ``--host`` of
``0.0.0.0`` / ``::`` to ``127.0.0.1`` before AReaL's RPC worker (``areal.infra.rpc.rpc_server``) or
guard binds its HTTP server; every other host is left as given. Without loopback mode the original
function runs unchanged.

Why: AReaL's schedulers start workers with ``--host 0.0.0.0`` where no config reaches: the local
scheduler hard-codes it for forked workers (the ``eval-rollout`` worker forked from each rollout
worker is created even without a validation set), and the RPC server's default is ``0.0.0.0``.
On a single machine in loopback mode nothing must listen on the external interfaces. The workers
import ``configure_state_from_args`` by name from this module after it has executed, so they get
the wrapped function.
"""

from __future__ import annotations

import functools

from areal_a3po.coupling import gate, network

WILDCARD_HOSTS = ("0.0.0.0", "::")
_MARK = "__a3po_loopback__"


def patch(module) -> None:
    """Wrap ``module.configure_state_from_args`` (idempotent)."""
    original = module.configure_state_from_args
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def configure_state_from_args(state, args):
        if network.loopback_enabled() and getattr(args, "host", None) in WILDCARD_HOSTS:
            args.host = network.LOOPBACK_IP
        return original(state, args)

    setattr(configure_state_from_args, _MARK, True)
    module.configure_state_from_args = configure_state_from_args
    gate.record(
        f"{module.__name__}.configure_state_from_args",
        f"workers given --host 0.0.0.0 bind {network.LOOPBACK_IP} with {network.LOOPBACK_ENV}=1",
    )
