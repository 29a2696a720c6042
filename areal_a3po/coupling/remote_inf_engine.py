"""``areal.infra.remote_inf_engine``: tokens keep the weight version that served them; a server
that dies during start-up ends the wait at once.

``RemoteInfEngine.agenerate`` in areal 1.0.4 and AReaL 2.0.0 reads ``get_version()`` twice per
generation request: once to build the request, once after the HTTP round trip to label the
returned tokens (``output_versions``). A weight update that lands in between (the trainer calls
``set_version`` once the servers have loaded the new weights, while the server has just aborted
or finished the request) labels tokens with a version that did not generate them, and A-3PO's
lag weight is a function of those labels. AReaL fixed it after 2.0.0 (PR #1569: the version is
read once per request and reused for the labels).

The patch, chosen by what ``agenerate`` reads (never by version string): with two
``get_version`` reads per request, the read after the response returns the version read for
the request (one context variable per ``agenerate`` call, armed when the module's
``arequest_with_retry`` returns). With one read (AReaL's own fix) nothing is patched. Each
corrected label is counted (:data:`CORRECTED`) and logged, so a run shows how often it happens.

``RemoteInfEngine._wait_for_server`` in areal 1.0.4 and AReaL 2.0.0 takes the server's process but
never looks at it: a server that dies during start-up is waited on until ``rollout.setup_timeout``
(measured: 10 min 40 s). Patched where the method does not poll the process (AReaL main does): the
health probe first checks the process and raises :class:`ServerExitedError` at once.
"""

from __future__ import annotations

import contextvars
import dis
import functools
import inspect
import time
from dataclasses import dataclass
from types import ModuleType

from areal_a3po.coupling import gate


@dataclass
class _Request:
    """The current generation request of one ``agenerate`` call."""

    version: int | None = None  # the version the request was built with
    answered: bool = False  # the HTTP round trip returned: the next read labels its tokens


@dataclass
class Corrections:
    """Labels the patch kept at the request's version (AReaL would have used a newer one)."""

    requests: int = 0  # generation round trips seen
    corrected: int = 0  # of them, answered after a weight update: labels kept


CORRECTED = Corrections()
_CURRENT: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "a3po_generation_request", default=None
)


def version_reads(fn) -> int:
    """How many times ``fn``'s own code calls ``.get_version`` (bytecode, no call)."""
    code = inspect.unwrap(fn).__code__
    return sum(
        1
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval == "get_version"
    )


def _per_call(agenerate):
    @functools.wraps(agenerate)
    async def _agenerate(self, *args, **kwargs):
        token = _CURRENT.set(_Request())
        try:
            return await agenerate(self, *args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return _agenerate


def _pinned(get_version):
    @functools.wraps(get_version)
    def _get_version(self):
        version = get_version(self)
        request = _CURRENT.get()
        if request is None:  # not inside agenerate
            return version
        if not request.answered:  # building the request: remember the version it is sent with
            request.version = version
            return version
        request.answered = False  # labelling the answer's tokens: the request's version
        CORRECTED.requests += 1
        if version != request.version:
            CORRECTED.corrected += 1
            gate.logger().info(
                f"areal-a3po: a weight update (version {version}) landed while a generation "
                f"request of version {request.version} was in flight; its tokens keep version "
                f"{request.version} ({CORRECTED.corrected} of {CORRECTED.requests} requests so far)"
            )
        return request.version

    return _get_version


def _answered(arequest):
    @functools.wraps(arequest)
    async def _arequest_with_retry(*args, **kwargs):
        result = await arequest(*args, **kwargs)
        request = _CURRENT.get()
        if request is not None:
            request.answered = True
        return result

    return _arequest_with_retry


class ServerExitedError(TimeoutError):
    """The inference server's process exited before the server became healthy.

    A ``TimeoutError``, so that AReaL's ``launch_server`` cleans up as after a start-up timeout
    (it catches that type, unregisters the server and re-raises).
    """


def _polling(wait_for_server):
    @functools.wraps(wait_for_server)
    def _wait_for_server(self, address: str, process=None):
        if process is None:
            return wait_for_server(self, address, process)
        probe, start = self.check_health, time.monotonic()

        def check_health(base_url: str) -> bool:
            code = process.poll()
            if code is not None:
                raise ServerExitedError(
                    f"the inference server process (pid {process.pid}) exited with code {code} "
                    f"{time.monotonic() - start:.0f} s into its start-up, before it answered at "
                    f"{address}; its own output is in the rollout worker's log (rollout.log). Not "
                    f"waiting out rollout.setup_timeout={self.config.setup_timeout}."
                )
            return probe(base_url)

        self.check_health = check_health  # AReaL's loop probes through self.check_health
        try:
            return wait_for_server(self, address, process)
        finally:
            del self.check_health

    return _wait_for_server


def patch(module: ModuleType) -> None:
    cls = getattr(module, "RemoteInfEngine", None)
    wait = getattr(cls, "_wait_for_server", None)
    target = "areal.infra.remote_inf_engine.RemoteInfEngine._wait_for_server"
    if wait is None or not gate.reads_name(wait, "check_health"):
        gate.record(target, "not patched: no _wait_for_server probing check_health")
    elif gate.reads_name(wait, "poll"):
        gate.record(target, "not patched: AReaL polls the server process itself")
    else:
        cls._wait_for_server = _polling(wait)
        gate.record(target, "a server process that exits during start-up ends the wait at once")
    _patch_versions(module, cls)


def _patch_versions(module: ModuleType, cls) -> None:
    agenerate = getattr(cls, "agenerate", None)
    target = "areal.infra.remote_inf_engine.RemoteInfEngine.agenerate"
    if agenerate is None or not gate.reads_name(agenerate, "arequest_with_retry"):
        gate.record(target, "not patched: no agenerate calling arequest_with_retry")
        return
    reads = version_reads(agenerate)
    if reads != 2:
        gate.record(target, f"not patched: get_version read {reads}x per request (AReaL pins it)")
        return
    cls.agenerate = _per_call(agenerate)
    cls.get_version = _pinned(cls.get_version)
    module.arequest_with_retry = _answered(module.arequest_with_retry)
    gate.record(target, "tokens labelled with the version their request was built with")
