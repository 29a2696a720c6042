"""``areal.utils.network``: loopback mode for single-machine runs (``AREAL_A3PO_LOOPBACK=1``).

AReaL's ``gethostip`` deliberately skips 127.* addresses, so without this a single-machine run
advertises its servers and workers on the external interface. With the flag set, every
``from areal.utils.network import gethostip`` made after the patch returns 127.0.0.1.

With the flag set, ``find_free_ports`` also draws its candidates from the OS's entropy
(``random.SystemRandom``) instead of the global ``random`` that AReaL seeds with ``config.seed``:
two runs started together on one machine with the same seed drew the same ports and collided
(observed here). Port draws then no longer consume the seeded global stream either.
"""

from __future__ import annotations

import os
import random
from types import ModuleType

from areal_a3po.coupling import gate

LOOPBACK_ENV = "AREAL_A3PO_LOOPBACK"
LOOPBACK_IP = "127.0.0.1"


def loopback_enabled() -> bool:
    return os.environ.get(LOOPBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _loopback_gethostip(*_args, **_kwargs) -> str:
    return LOOPBACK_IP


def patch(module: ModuleType) -> None:
    if not loopback_enabled():
        return
    module.gethostip = _loopback_gethostip
    gate.record("areal.utils.network.gethostip", f"{LOOPBACK_ENV}=1: returns {LOOPBACK_IP}")
    find = getattr(module, "find_free_ports", None)
    if getattr(module, "random", None) is random and find and gate.reads_name(find, "random"):
        module.random = random.SystemRandom()  # the module's only use: random.randint
        gate.record(
            "areal.utils.network.find_free_ports",
            f"{LOOPBACK_ENV}=1: ports drawn with random.SystemRandom, not the seeded global random",
        )
