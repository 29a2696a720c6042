"""``areal.utils.network``: loopback mode for single-machine runs (``AREAL_A3PO_LOOPBACK=1``).

AReaL's ``gethostip`` deliberately skips 127.* addresses, so without this a single-machine run
advertises its servers and workers on the external interface. With the flag set, every
``from areal.utils.network import gethostip`` made after the patch returns 127.0.0.1.

With the flag set, ``find_free_ports`` also draws its candidates from the OS's entropy
(``random.SystemRandom``) instead of the global ``random`` that AReaL seeds with ``config.seed``:
two runs started together on one machine with the same seed drew the same ports and collided
(observed here). Port draws then no longer consume the seeded global stream either.

And torch's c10d ``TCPStore`` server (the controller's placeholder gloo group, the trainer's
``MASTER_PORT`` store, weight-update groups), which listens on every interface (``::``) whatever
host it is given, listens on the loopback address its clients resolve instead: rank 0 binds the
socket and hands it over (``master_listen_fd``). A host that resolves elsewhere (several nodes) is
left to torch.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import random
import socket
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
    _patch_c10d_store()


def _loopback_listen_fd(hostname: str, port: int) -> int | None:
    """A socket bound to ``hostname:port`` (its first address) when that address is loopback,
    as a file descriptor for ``TCPStore(master_listen_fd=...)``; None where torch should bind
    (not loopback, or the port is taken, e.g. by this process's own multi-tenant store)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            hostname, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror:
        return None
    if not ipaddress.ip_address(address[0]).is_loopback:
        return None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        return None
    return sock.detach()


def _patch_c10d_store() -> None:
    rendezvous = importlib.import_module("torch.distributed.rendezvous")
    names = ("_create_c10d_store", "_torchelastic_use_agent_store", "TCPStore")
    if not all(hasattr(rendezvous, n) for n in names):  # another torch: left as it is
        return
    create = rendezvous._create_c10d_store
    if getattr(create, "__wrapped__", None) is not None:
        return

    def create_on_loopback(hostname, port, rank, world_size, timeout, use_libuv=True):
        serves = rank == 0 and not rendezvous._torchelastic_use_agent_store()
        fd = _loopback_listen_fd(hostname, port) if serves else None
        if fd is None:
            return create(hostname, port, rank, world_size, timeout, use_libuv)
        return rendezvous.TCPStore(
            host_name=hostname, port=port, world_size=world_size, is_master=True,
            timeout=timeout, multi_tenant=True, master_listen_fd=fd, use_libuv=use_libuv,
        )  # fmt: skip

    create_on_loopback.__wrapped__ = create
    rendezvous._create_c10d_store = create_on_loopback
    gate.record(
        "torch.distributed.rendezvous._create_c10d_store",
        f"{LOOPBACK_ENV}=1: rank 0's TCPStore listens on the loopback address, not on every interface",
    )
