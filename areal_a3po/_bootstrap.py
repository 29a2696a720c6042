"""Interpreter-start activation (loaded from ``areal_a3po.pth`` in site-packages).

Runs in every Python process of the environment, so it must stay cheap: it reads one environment
variable and puts a finder on ``sys.meta_path``. Nothing is imported until a process imports one of
AReaL's target modules; the module then executes normally and the finder hands it to
:mod:`areal_a3po.coupling`, the single package that knows AReaL's internals.
"""

from __future__ import annotations

import os
import sys

DISABLE_ENV = "AREAL_A3PO_DISABLE"
# AReaL modules we patch right after they execute: the keys of areal_a3po.coupling.PATCHERS
# (a test keeps the two equal; importing the coupling here would import torch at start-up).
TARGETS = (
    "areal.api.cli_args",
    "areal.trainer.ppo.actor",
    "areal.utils.network",
    "areal.infra.rpc.guard.app",
    "areal.infra.remote_inf_engine",
    "areal.utils.recover",
)

_installed = False


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _apply(module) -> None:
    from areal_a3po import coupling

    coupling.patch_module(module)


class _PatchingLoader:
    """Delegates to the real loader, then patches the freshly executed module."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _apply(module)

    def __getattr__(self, name):  # get_source, is_package, ... for tracebacks and inspect
        return getattr(self._loader, name)


class _Finder:
    def find_spec(self, fullname, path, target=None):
        if fullname not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Put the finder on sys.meta_path (called from the .pth file; never raises)."""
    global _installed
    if _installed or disabled():
        return
    try:
        sys.meta_path.insert(0, _Finder())
        _installed = True
        for name in TARGETS:  # already imported (e.g. activate() called late): patch now
            if name in sys.modules:
                _apply(sys.modules[name])
    except Exception as e:  # a broken hook must never break an unrelated interpreter
        print(f"areal-a3po: activation hook failed: {e!r}", file=sys.stderr)


def installed() -> bool:
    return _installed


def activate_now() -> bool:
    """Install the hook and patch AReaL modules that are already imported."""
    if disabled():
        return False
    install()
    from areal_a3po import coupling

    return coupling.hooked()
