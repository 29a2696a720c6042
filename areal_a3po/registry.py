"""One registry of proximal-log-prob providers and actor losses, found by name via entry points.

A third-party distribution adds a provider by declaring, in its own pyproject.toml::

    [project.entry-points."areal_a3po.providers"]
    my-prox = "my_pkg.prox:MY_PROVIDER"      # a Provider, or a plain function ProxInputs -> Tensor

and selects it with ``actor.prox_logp_method: my-prox``. Losses work the same way through the
``areal_a3po.losses`` group and ``actor.a3po.loss``. No AReaL import here.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from areal_a3po.api import (
    LOSS_GROUP,
    PROVIDER_GROUP,
    A3POConfigError,
    LossFn,
    Provider,
    ProxInputs,
)

__all__ = [
    "LOSS_GROUP",
    "PROVIDER_GROUP",
    "Provider",
    "ProxInputs",
    "approximate_provider_names",
    "get_loss",
    "get_provider",
    "is_plugin_provider",
    "losses",
    "providers",
]


def _load(group: str, kind: str) -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str, str]] = {}  # name -> (object, distribution, value)
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep.dist, "name", None) or "?"
        if ep.name in found and found[ep.name][2] == ep.value:
            continue  # the same entry point seen twice (e.g. editable + wheel metadata)
        if ep.name in found:
            raise RuntimeError(
                f"Two distributions register the {kind} '{ep.name}' in entry-point group "
                f"'{group}': {found[ep.name][1]} ({found[ep.name][2]}) and {dist} ({ep.value}). "
                "Uninstall one of them or rename the entry point."
            )
        try:
            obj = ep.load()
        except Exception as e:
            raise RuntimeError(
                f"Could not load {kind} '{ep.name}' = '{ep.value}' from distribution {dist}: {e!r}"
            ) from e
        found[ep.name] = (obj, dist, ep.value)
    return {name: (obj, dist) for name, (obj, dist, _) in found.items()}


@functools.cache
def providers() -> dict[str, Provider]:
    """All registered providers by name (entry points, loaded once per process)."""
    out: dict[str, Provider] = {}
    for name, (obj, dist) in _load(PROVIDER_GROUP, "provider").items():
        if isinstance(obj, Provider):
            out[name] = obj
        elif callable(obj):
            out[name] = Provider(compute=obj, description=(obj.__doc__ or "").strip())
        else:
            raise TypeError(
                f"Entry point '{name}' of distribution {dist} in group '{PROVIDER_GROUP}' is a "
                f"{type(obj).__name__}; it must be an areal_a3po.api.Provider or a function "
                "ProxInputs -> Tensor."
            )
    return dict(sorted(out.items()))


@functools.cache
def losses() -> dict[str, LossFn]:
    """All registered actor losses by name."""
    out = {}
    for name, (obj, dist) in _load(LOSS_GROUP, "loss").items():
        if not callable(obj):
            raise TypeError(
                f"Entry point '{name}' of distribution {dist} in group '{LOSS_GROUP}' is not "
                "callable; a loss is fn(logprobs, entropy, input_data, prox_logp, **kwargs)."
            )
        out[name] = obj
    return dict(sorted(out.items()))


def _lookup(table: dict[str, Any], name: str, key: str, kind: tuple[str, str], tail: str) -> Any:
    if name not in table:
        raise A3POConfigError(
            f"{key}: unknown {kind[0]} '{name}'. Registered {kind[1]}: {', '.join(table)}{tail}"
        )
    return table[name]


def get_provider(name: str, key: str = "actor.prox_logp_method") -> Provider:
    tail = f". A third-party provider is added through the entry-point group '{PROVIDER_GROUP}'."
    return _lookup(providers(), name, key, ("proximal log-prob provider", "providers"), tail)


def get_loss(name: str, key: str = "actor.a3po.loss") -> LossFn:
    tail = f" (entry-point group '{LOSS_GROUP}')."
    return _lookup(losses(), name, key, ("actor loss", "losses"), tail)


def approximate_provider_names() -> list[str]:
    """Providers that can be scored against the recompute and serve as a fallback."""
    return [n for n, p in providers().items() if p.can_fallback]


def is_plugin_provider(name: str) -> bool:
    """True when ``name`` is registered and implemented by this plugin's code path."""
    p = providers().get(name)
    return p is not None and not p.native
