"""Import-time shims that let AReaL 1.0.4's vLLM server module run on vLLM 0.32 (CPU build).

Exists only for the embedded CPU default. Nothing here edits an installed file; everything is applied
in the API-server process by :func:`install` before AReaL's ``areal_vllm_server`` is executed.
Each shim is a no-op when the installed vLLM already provides what AReaL expects.

1. Moved modules. AReaL imports five modules that vLLM 0.32 moved:
   ``vllm.entrypoints.openai.cli_args``        -> ``vllm.entrypoints.launchers.cli_args``
   ``vllm.entrypoints.openai.engine[.protocol]`` -> ``vllm.entrypoints.serve.engine[.protocol]``
   ``vllm.entrypoints.openai.utils``           -> ``vllm.entrypoints.serve.utils.api_utils``
   ``vllm.entrypoints.utils``                  -> ``vllm.entrypoints.serve.utils.api_utils``
   They are registered in ``sys.modules`` under the old names (aliases of the new modules).
2. Route mounting. AReaL replaces ``vllm.entrypoints.openai.api_server.build_app`` to add its
   ``/areal_*`` routes and its pause-aware ``/v1/completions``; in vLLM 0.32 that module only
   re-exports, and ``run_server`` calls the ``build_app`` bound in
   ``vllm.entrypoints.launchers.api_server.entry``, so AReaL's routes were silently never mounted.
   The entry module's ``build_app`` is replaced by a forwarder that looks up
   ``vllm.entrypoints.openai.api_server.build_app`` at call time (AReaL's version once it patched it).
3. ``AsyncLLM.pause_generation(wait_for_inflight_requests=...)`` became ``mode="wait"|"abort"|"keep"``.
   The method is wrapped to accept the old keyword (True -> "wait", False -> "abort").
"""

from __future__ import annotations

import functools
import importlib
import sys

# old module name -> new module name (vLLM 0.32)
MOVED_MODULES = {
    "vllm.entrypoints.openai.cli_args": "vllm.entrypoints.launchers.cli_args",
    "vllm.entrypoints.openai.engine": "vllm.entrypoints.serve.engine",
    "vllm.entrypoints.openai.engine.protocol": "vllm.entrypoints.serve.engine.protocol",
    "vllm.entrypoints.openai.utils": "vllm.entrypoints.serve.utils.api_utils",
    "vllm.entrypoints.utils": "vllm.entrypoints.serve.utils.api_utils",
}

_installed: list[str] = []


def _module_exists(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        importlib.import_module(name)
        return True
    except ModuleNotFoundError as e:
        if e.name is not None and not name.startswith(e.name) and not e.name.startswith(name):
            raise  # the module exists but one of its own imports is missing
        return False


def alias_moved_modules() -> list[str]:
    done = []
    # Decide before aliasing anything: once a package is aliased, its children would import as copies.
    missing = [old for old in MOVED_MODULES if not _module_exists(old)]
    for old in missing:
        new = MOVED_MODULES[old]
        target = importlib.import_module(new)
        sys.modules[old] = target
        parent_name, _, child = old.rpartition(".")
        parent = sys.modules.get(parent_name) or importlib.import_module(parent_name)
        setattr(parent, child, target)
        done.append(f"{old} -> {new}")
    return done


def forward_build_app() -> bool:
    """Make ``run_server`` use whatever ``vllm.entrypoints.openai.api_server.build_app`` is at call time."""
    try:
        entry = importlib.import_module("vllm.entrypoints.launchers.api_server.entry")
    except ModuleNotFoundError:
        return False  # older vLLM: run_server lives next to build_app, AReaL's patch works as is
    api_server = importlib.import_module("vllm.entrypoints.openai.api_server")
    if entry is api_server or getattr(entry.build_app, "__a3po_forwarder__", False):
        return False

    def build_app(*args, **kwargs):
        return api_server.build_app(*args, **kwargs)

    build_app.__a3po_forwarder__ = True
    entry.build_app = build_app
    return True


def accept_wait_for_inflight_requests() -> bool:
    import inspect

    from vllm.v1.engine.async_llm import AsyncLLM

    original = AsyncLLM.pause_generation
    if getattr(original, "__a3po_shim__", False):
        return False
    params = inspect.signature(original).parameters
    if "wait_for_inflight_requests" in params or "mode" not in params:
        return False

    @functools.wraps(original)
    async def pause_generation(self, *args, wait_for_inflight_requests=None, **kwargs):
        if wait_for_inflight_requests is not None and "mode" not in kwargs:
            kwargs["mode"] = "wait" if wait_for_inflight_requests else "abort"
        return await original(self, *args, **kwargs)

    pause_generation.__a3po_shim__ = True
    AsyncLLM.pause_generation = pause_generation
    return True


def install() -> list[str]:
    """Apply all shims (idempotent). Returns a description of what was changed in this process."""
    changes = alias_moved_modules()
    if forward_build_app():
        changes.append(
            "launchers.api_server.entry.build_app -> forwards to openai.api_server.build_app"
        )
    if accept_wait_for_inflight_requests():
        changes.append("AsyncLLM.pause_generation accepts wait_for_inflight_requests")
    _installed.extend(changes)
    return changes
