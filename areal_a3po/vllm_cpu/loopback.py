"""Loopback mode: make AReaL advertise 127.0.0.1 instead of the machine's external address.

``areal.utils.network.gethostip()`` deliberately skips every 127.* address, so servers, workers and
weight-update endpoints would otherwise be advertised on the external interface. The embedded
default must stay on 127.0.0.1, so every process it starts sets ``AREAL_A3PO_LOOPBACK=1`` and calls
:func:`apply` before (or right after) importing AReaL. Outside that mode nothing is changed.
"""

from __future__ import annotations

import os
import sys

ENV = "AREAL_A3PO_LOOPBACK"
LOOPBACK_IP = "127.0.0.1"


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _loopback_gethostip(*_args, **_kwargs) -> str:
    return LOOPBACK_IP


_loopback_gethostip.__a3po_loopback__ = True


def apply(force: bool = False) -> bool:
    """Patch ``areal.utils.network.gethostip`` (and every already imported ``from ... import gethostip``).

    Only when ``AREAL_A3PO_LOOPBACK`` is set (or ``force``). Returns whether the patch is active.
    """
    if not (force or enabled()):
        return False
    import areal.utils.network as network

    original = network.gethostip
    if getattr(original, "__a3po_loopback__", False):
        original = getattr(network, "_a3po_original_gethostip", original)
    else:
        network._a3po_original_gethostip = original
    network.gethostip = _loopback_gethostip
    # Modules that did `from areal.utils.network import gethostip` hold their own reference.
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("areal"):
            continue
        if getattr(module, "gethostip", None) is original:
            module.gethostip = _loopback_gethostip
    return True
