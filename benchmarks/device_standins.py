"""Stand-ins for packages AReaL imports at module level that a device machine cannot have.

``import areal`` imports Ray (``areal/infra/launcher/ray.py``, ``areal/utils/name_resolve.py``:
``@ray.remote`` on a class) and the experiment trackers wandb, swanlab and trackio (through
``areal/utils/stats_logger.py`` and accelerate). A device machine reaches no package index and
takes at most 64 MiB of carried files; Ray's wheel alone is larger, and none of them runs in
``gpu_check.py`` (one process, no Ray cluster, no tracker). Where one of them is not installed,
:func:`stand_in_absent` makes its import succeed with a module whose every attribute is an inert
placeholder (a class, a decorator, a callable); using one for real is not possible. Where the
package is installed (CI, a full AReaL environment), nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

ABSENT_OK = ("ray", "wandb", "swanlab", "trackio")


class _Placeholder(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Inert


class Inert(metaclass=_Placeholder):
    """Any attribute of a stood-in module: subclassable, callable, usable as a decorator."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and not kwargs else self

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Inert()


class _Module(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Inert


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        module.is_initialized = lambda: False  # ray.is_initialized(), read before ray.init
        return module

    def exec_module(self, module) -> None:
        pass


def stand_in_absent(names: tuple[str, ...] = ABSENT_OK) -> list[str]:
    """Stand in for each of ``names`` that is not installed; returns those stood in for."""
    absent = [n for n in names if n not in sys.modules and importlib.util.find_spec(n) is None]
    if absent:
        sys.meta_path.append(_Finder(set(absent)))
    return absent
