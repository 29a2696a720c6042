"""What ``a3po compare`` runs: the arms (provider x seed x staleness) and each arm's overrides."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

from areal_a3po.report.defaults import BASELINE as BASELINE_PROVIDER

A3PO_TWIN = "a3po"  # recipes/cpu_<testbed>_a3po.yaml: every arm but the baseline runs this twin
TWIN_PROVIDER = "a3po-step"  # that twin's actor.prox_logp_method: the recommended switch


class Arm(NamedTuple):
    """One arm of a study: a provider at one seed and staleness; ``label`` names its directory."""

    provider: str
    seed: int
    staleness: int
    label: str


def arm_plan(
    providers: Sequence[str], seeds: Sequence[int], stalenesses: Sequence[int]
) -> list[Arm]:
    """The arms, interleaved per seed; labels carry only the swept dimensions."""
    plan = []
    for seed, staleness, provider in itertools.product(seeds, stalenesses, providers):
        label = provider
        if len(stalenesses) > 1:
            label += f"_s{staleness}"
        if len(seeds) > 1:
            label += f"_seed{seed}"
        plan.append(Arm(provider, seed, staleness, label))
    return plan


def arm_overrides(
    provider: str, steps: int, fileroot, seed: int, staleness: int, model_dir: str, label: str
) -> tuple[str, list[str]]:
    """(twin, AReaL overrides appended to the twin's header line) for one arm.

    ``recompute`` runs ``cpu_tiny_recompute.yaml``; any other provider runs ``cpu_tiny_a3po.yaml``
    with ``actor.prox_logp_method=<provider>`` unless it is the twin's own (:data:`TWIN_PROVIDER`).
    """
    from areal_a3po import registry

    twin = BASELINE_PROVIDER if provider == BASELINE_PROVIDER else A3PO_TWIN
    overrides = [
        f"total_train_steps={steps}",
        f"cluster.fileroot={fileroot}",
        f"seed={seed}",
        f"rollout.max_head_offpolicyness={staleness}",
        f"actor.path={model_dir}",
        f"trial_name={label}",
    ]
    if provider not in (BASELINE_PROVIDER, TWIN_PROVIDER):
        overrides.append(f"actor.prox_logp_method={provider}")
        if registry.get_provider(provider).prox_is_behave:
            # pi_prox = pi_behave: the recipe's rejection sampling could filter nothing, and the
            # config refuses it (coupling/config.py); dropping it changes no update.
            overrides.append("actor.rejection_sampling=null")
    return twin, overrides


class OverrideError(ValueError):
    """A ``--set KEY=VALUE`` that AReaL's config loader refuses (its message names the key)."""


def check_overrides(recipes: Sequence, overrides: Sequence[str]) -> None:
    """Load each recipe with ``overrides`` through AReaL's own config loader before any arm runs.

    AReaL's ``parse_cli_args`` (hydra) and ``to_structured_cfg`` (OmegaConf merge into
    ``GRPOConfig``) are the calls its ``load_expr_config`` makes, without its side effects
    (name-resolve setup, saving the config). A bad key or value raises :class:`OverrideError`
    with AReaL's message, which names the key.
    """
    if not overrides:
        return
    bad = [o for o in overrides if "=" not in o or not o.split("=", 1)[0].strip()]
    if bad:
        raise OverrideError(f"--set takes KEY=VALUE (an AReaL config key), got {bad}")
    from areal.api.cli_args import GRPOConfig, parse_cli_args, to_structured_cfg
    from omegaconf import OmegaConf

    for recipe in recipes:
        try:
            cfg, _ = parse_cli_args(["--config", str(recipe), *overrides])
            OmegaConf.to_object(to_structured_cfg(cfg, config_cls=GRPOConfig))
        except Exception as exc:  # noqa: BLE001 - AReaL's / hydra's / OmegaConf's own errors
            raise OverrideError(
                f"AReaL refuses --set {' '.join(overrides)} for {recipe}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
