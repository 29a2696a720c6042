"""Which AReaL the plugin patches, and what happens with any other.

An unsupported AReaL is left unpatched: one warning, and a recipe that asks for a plugin provider
fails when its config is built, naming the installed and the supported versions.
"""

from __future__ import annotations

import functools
from importlib import metadata
from types import ModuleType

from areal_a3po import registry
from areal_a3po.api import A3POConfigError

SUPPORTED_AREAL = ">=1.0.4,<1.1"  # AReaL versions the plugin is tested on

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
