"""Is the plugin active in this process; if not, why, and which install fixes it (no AReaL import).

areal-a3po patches AReaL from ``areal_a3po.pth``, which Python runs at start-up only from a
site-packages directory. Where ``areal_a3po`` is importable but that hook did not run (the checkout
on ``PYTHONPATH``, an install with ``pip install --target DIR``, ``python -S``), AReaL stays
unpatched and rejects the plugin's settings with its own generic errors:

* ``actor.a3po`` (or ``vllm.logprobs_mode``): OmegaConf's ``Key 'a3po' not in 'PPOActorConfig'``
  (``full_key: actor.a3po``), raised by ``load_expr_config`` while it merges the YAML;
* a plugin provider in ``actor.prox_logp_method``: AReaL 2.x's ``'<name>' is not a valid
  ProxLogpMethod`` from ``PPOActorConfig.__post_init__``; areal 1.0.4 loads it and fails at the
  first step, where ``should_compute_prox_logp`` calls ``ProxLogpMethod(<name>)``.

Nothing of the plugin runs in a process that imports only AReaL, so the translation happens where
the plugin's own code runs without the hook: the entry scripts' config loader
(:func:`areal_a3po.entry._areal_api.load_config`) and ``a3po info``.
"""

from __future__ import annotations

import re
import site
import sys
from pathlib import Path

from areal_a3po import _bootstrap, registry

PTH = "areal_a3po.pth"
# What AReaL's config loader rejects when the plugin is not active (OmegaConf's full_key).
PLUGIN_KEYS = ("actor.a3po", "vllm.logprobs_mode")
_NOT_A_METHOD = re.compile(r"'(?P<name>[^']+)' is not a valid ProxLogpMethod")
FIX = (
    "Install areal-a3po into this Python environment's site-packages (`pip install "
    "dist/areal_a3po-*.whl` or `pip install -e CHECKOUT` with this interpreter, not `pip install "
    "--target` or PYTHONPATH), so that areal_a3po.pth patches AReaL in every process AReaL starts "
    "(controller, workers, torchrun ranks); `a3po info` then prints hooked=True. (`import "
    "areal_a3po; areal_a3po.activate()` patches only the process that calls it, not AReaL's workers.)"
)


class PluginInactiveError(RuntimeError):
    """A config needs areal-a3po, but the plugin is not active in this process."""


def active() -> bool:
    """The import hook is installed in this process (it patches AReaL's modules on import)."""
    return _bootstrap.installed()


def _site_dirs() -> list[Path]:
    dirs = [Path(p) for p in getattr(site, "getsitepackages", list)()]
    if site.ENABLE_USER_SITE:
        dirs.append(Path(site.getusersitepackages()))
    return [d.resolve() for d in dirs]


def inactive_reason() -> str:
    """Why the hook did not run in this process (empty when it did)."""
    if _bootstrap.disabled():
        return f"{_bootstrap.DISABLE_ENV} is set, which turns the plugin off"
    if active():
        return ""
    where = Path(__file__).resolve().parents[1]  # the directory areal_a3po was imported from
    if sys.flags.no_site:
        return "Python was started without site processing (-S), so no .pth file ran"
    if where not in _site_dirs():
        return (
            f"areal_a3po was imported from {where}, a PYTHONPATH or `pip install --target` "
            "directory, not a site-packages directory, and Python runs areal_a3po.pth only from "
            "site-packages"
        )
    if not (where / PTH).exists():
        return f"{where} has no {PTH} (an install that left out the activation hook)"
    return f"{where / PTH} did not run in this process"


def _fix() -> str:
    if _bootstrap.disabled():
        return f"Unset {_bootstrap.DISABLE_ENV} (plain AReaL has no plugin settings)."
    return FIX


def inactive_error(setting: str) -> PluginInactiveError:
    """The error for ``setting`` (a YAML key or ``key: value``) in a process without the plugin."""
    return PluginInactiveError(
        f"{setting} needs areal-a3po, which is not active in this process: "
        f"{inactive_reason()}. {_fix()}"
    )


def plugin_setting(exc: BaseException) -> str | None:
    """The plugin setting AReaL's config loader rejected with ``exc`` (its causes included)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        key = str(getattr(exc, "full_key", "") or "")
        if any(key == k or key.startswith(k + ".") for k in PLUGIN_KEYS):
            return next(k for k in PLUGIN_KEYS if key == k or key.startswith(k + "."))
        m = _NOT_A_METHOD.search(str(exc))
        if m and registry.is_plugin_provider(m["name"]):
            return f"actor.prox_logp_method: {m['name']}"
        exc = exc.__cause__ or exc.__context__
    return None


def check_config(config) -> None:
    """Refuse a loaded config that selects a plugin provider where the plugin is not active
    (areal 1.0.4 loads one and would fail only at the first step)."""
    if active():
        return
    actor = getattr(config, "actor", None)
    method = getattr(actor, "prox_logp_method", "")
    if getattr(actor, "use_decoupled_loss", False) and registry.is_plugin_provider(method):
        raise inactive_error(f"actor.prox_logp_method: {method}")
