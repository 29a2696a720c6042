"""Which AReaL the plugin patches, and what happens with any other.

An unsupported AReaL is left unpatched: one warning, and a recipe that asks for a plugin provider
fails when its config is built, naming the installed and the supported versions. Within the
supported range, each patch module picks its patch points by what the installed AReaL has
(attributes, signatures, the names a function reads), never by version string, and records them
here for ``a3po info`` (:func:`record`, :func:`applied_patch_points`).
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

from areal_a3po import registry
from areal_a3po.api import A3POConfigError

SUPPORTED_AREAL = ">=1.0.4,<2.1"  # tested: areal 1.0.4 (PyPI), AReaL 2.0.0 and main cbff54d

_WARNED = False


def logger():
    from areal.utils import logging

    return logging.getLogger("A3POCoupling")


def areal_version() -> str | None:
    try:
        return metadata.version("areal")
    except metadata.PackageNotFoundError:
        return None


def areal_supported() -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    v = areal_version()
    try:
        return v is not None and Version(v) in SpecifierSet(SUPPORTED_AREAL)
    except InvalidVersion:
        return False


def areal_origin() -> str:
    """Where the installed areal came from: the URL pip recorded (PEP 610) or the package index."""
    try:
        dist = metadata.distribution("areal")
    except metadata.PackageNotFoundError:
        return "not installed"
    url = None
    try:
        raw = dist.read_text("direct_url.json")
        if raw:
            info = json.loads(raw)
            url = info.get("url")
            if info.get("dir_info", {}).get("editable"):
                url = f"{url} (editable)"
    except (OSError, ValueError):
        url = None
    return f"{url or 'package index'} -> {dist.locate_file('')}"


@dataclass(frozen=True)
class PatchPoint:
    """One place the plugin patched, and the feature of the installed AReaL it was chosen by."""

    target: str
    detail: str


_APPLIED: list[PatchPoint] = []


def record(target: str, detail: str) -> None:
    _APPLIED.append(PatchPoint(target, detail))


def applied_patch_points() -> list[PatchPoint]:
    """The patch points applied in this process, in the order they were applied."""
    return list(_APPLIED)


def signature(fn) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(?)"


def reads_name(fn, name: str) -> bool:
    """Whether ``fn``'s own code refers to the global/imported ``name`` (a probe, no call)."""
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    return code is not None and name in code.co_names


def areal_methods() -> frozenset[str]:
    """``prox_logp_method`` values AReaL implements itself (its ``ProxLogpMethod`` enum)."""
    try:
        from areal.utils.constants import ProxLogpMethod
    except ImportError:
        return frozenset()
    return frozenset(m.value for m in ProxLogpMethod)


def unsupported_reason() -> str:
    return (
        f"areal-a3po supports areal{SUPPORTED_AREAL}, but areal {areal_version()} is installed, "
        "so the plugin left AReaL unpatched"
    )


def refuse(module: ModuleType) -> None:
    """Unsupported AReaL: warn once; a recipe asking for a plugin provider fails clearly."""
    global _WARNED
    if not _WARNED:
        _WARNED = True
        logger().warning(f"{unsupported_reason()}. Plugin providers are unavailable.")
    if module.__name__ == "areal.api.cli_args":
        _guard_post_init(module.PPOActorConfig)


def _guard_post_init(cls) -> None:
    original = cls.__post_init__

    @functools.wraps(original)
    def __post_init__(self):
        if registry.is_plugin_provider(self.prox_logp_method):
            raise A3POConfigError(
                f"actor.prox_logp_method: {self.prox_logp_method} is provided by areal-a3po, "
                f"but {unsupported_reason()}. Install a supported areal, or choose "
                "prox_logp_method: recompute."
            )
        original(self)

    cls.__post_init__ = __post_init__
