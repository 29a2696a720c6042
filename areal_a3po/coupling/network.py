"""``areal.utils.network``: loopback mode for single-machine runs (``AREAL_A3PO_LOOPBACK=1``).

AReaL's ``gethostip`` deliberately skips 127.* addresses, so without this a single-machine run
advertises its servers and workers on the external interface. With the flag set, every
``from areal.utils.network import gethostip`` made after the patch returns 127.0.0.1.
"""

from __future__ import annotations

import os
from types import ModuleType

from areal_a3po.coupling import gate

LOOPBACK_ENV = "AREAL_A3PO_LOOPBACK"
LOOPBACK_IP = "127.0.0.1"


def loopback_enabled() -> bool:
    return os.environ.get(LOOPBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _loopback_gethostip(*_args, **_kwargs) -> str:
    return LOOPBACK_IP


def patch(module: ModuleType) -> None:
    if loopback_enabled():
        module.gethostip = _loopback_gethostip
        gate.record("areal.utils.network.gethostip", f"{LOOPBACK_ENV}=1: returns {LOOPBACK_IP}")
