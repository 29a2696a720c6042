"""One registry of proximal-log-prob providers and actor losses, found by name via entry points.

A third-party distribution adds a provider by declaring, in its own pyproject.toml::

    [project.entry-points."areal_a3po.providers"]
    my-prox = "my_pkg.prox:MY_PROVIDER"      # a Provider, or a plain function ProxInputs -> Tensor

and selects it with ``actor.prox_logp_method: my-prox``. Losses work the same way through the
``areal_a3po.losses`` group and ``actor.a3po.loss``. No AReaL import here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from areal_a3po.config import A3POConfig

PROVIDER_GROUP = "areal_a3po.providers"
LOSS_GROUP = "areal_a3po.losses"


@dataclass(frozen=True)
class ProxInputs:
    """Everything a provider may read, for one micro-batch; all tensors share one shape.

    Tensors are token-aligned: position i holds the log-prob of token i+1 (AReaL's rolled layout)
    and ``versions[i]`` is that same token's version.
    """

    behave_logp: torch.Tensor  # log pi_behave (inference engine)
    theta_logp: torch.Tensor  # log pi_theta, detached (training forward)
    loss_mask: torch.Tensor  # bool, tokens that enter the loss
    versions: torch.Tensor | None  # int, v_behave per token; prompt tokens -1
    current_version: int  # v_theta
    recomputed: torch.Tensor | None = None  # prox from the recompute forward, when it ran
    minibatch: int = 0  # index of the PPO minibatch within the step
    n_minibatches: int = 1
    options: A3POConfig | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """A way to obtain log pi_prox.

    compute: ProxInputs -> log pi_prox (float32, detached). None for ``native`` providers.
    needs_recompute: the controller must run AReaL's recompute forward (compute_logp) for it.
    needs_versions: compute reads ``versions``.
    approximate: an approximation that ``a3po-metrics`` can score against the recompute.
    native: AReaL's own code path implements it; the plugin leaves AReaL untouched.
    composite: delegates to ``options.fallback`` (cannot itself be a fallback).
    calibrated: the controller decides per step (areal_a3po.calibration) whether the recompute runs.
    exact: whether this micro-batch's log pi_prox is exact (logged as exact_token_share).
    """

    compute: Callable[[ProxInputs], torch.Tensor] | None = None
    needs_recompute: bool = False
    needs_versions: bool = False
    approximate: bool = True
    native: bool = False
    composite: bool = False
    calibrated: bool = False
    exact: Callable[[ProxInputs], bool] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.compute is None and not self.native:
            raise TypeError("Provider.compute is required unless native=True")


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
                f"{type(obj).__name__}; it must be an areal_a3po.registry.Provider or a function "
                "ProxInputs -> Tensor."
            )
    return dict(sorted(out.items()))


@functools.cache
def losses() -> dict[str, Callable[..., torch.Tensor]]:
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


def get_provider(name: str, key: str = "actor.prox_logp_method") -> Provider:
    from areal_a3po.config import A3POConfigError

    table = providers()
    if name not in table:
        raise A3POConfigError(
            f"{key}: unknown proximal log-prob provider '{name}'. Registered providers: "
            f"{', '.join(table)}. A third-party provider is added through the entry-point group "
            f"'{PROVIDER_GROUP}'."
        )
    return table[name]


def get_loss(name: str, key: str = "actor.a3po.loss") -> Callable[..., torch.Tensor]:
    from areal_a3po.config import A3POConfigError

    table = losses()
    if name not in table:
        raise A3POConfigError(
            f"{key}: unknown actor loss '{name}'. Registered losses: {', '.join(table)} "
            f"(entry-point group '{LOSS_GROUP}')."
        )
    return table[name]


def approximate_provider_names() -> list[str]:
    """Providers that can be scored against the recompute and serve as a fallback."""
    return [
        n
        for n, p in providers().items()
        if p.approximate and not p.native and not p.composite and not p.needs_recompute
    ]


def is_plugin_provider(name: str) -> bool:
    """True when ``name`` is registered and implemented by this plugin's code path."""
    p = providers().get(name)
    return p is not None and not p.native
