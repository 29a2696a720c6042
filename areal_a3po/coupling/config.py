"""``areal.api.cli_args``: the ``actor.a3po`` options and the provider's say over the recompute.

* ``PPOActorConfig`` gains the init field ``a3po: A3POConfig`` (YAML ``actor.a3po``), so OmegaConf,
  ``load_expr_config``, ``asdict`` and AReaL's RPC serialization carry it.
* ``PPOActorConfig.__post_init__``: the plugin's checks that must precede AReaL's (SAPO); where
  AReaL checks ``prox_logp_method`` against its ``ProxLogpMethod`` enum (2.x), a plugin name
  passes that check as ``recompute`` and is validated by the plugin right after.
* ``PPOActorConfig.__init__`` validates the provider choice and the loss options that read
  pi_prox (errors name the YAML keys); AReaL's own methods (``reuse_train_logp`` on 2.x) are left
  to AReaL.
* ``PPOActorConfig.should_compute_prox_logp`` asks the provider whether the recompute forward is
  needed; AReaL's controller skips ``compute_logp`` when it is not. For a ``calibrated`` provider
  the controller's :class:`~areal_a3po.calibration.Calibrator` decides, once per step.
"""

from __future__ import annotations

import dataclasses
import functools
from types import ModuleType

from areal_a3po import calibration, keys, registry
from areal_a3po.api import A3POConfigError
from areal_a3po.config import A3POConfig, validate_actor
from areal_a3po.coupling import gate
from areal_a3po.coupling.gate import logger


def plugin_selected(actor_config) -> bool:
    """The actor config routes the loss through a plugin provider."""
    return bool(
        getattr(actor_config, "use_decoupled_loss", False)
        and registry.is_plugin_provider(getattr(actor_config, "prox_logp_method", ""))
    )


def calibrator(actor_config) -> calibration.Calibrator:
    """The per-config decision state of a calibrated provider (lives in the deciding process)."""
    cal = actor_config.__dict__.get("_a3po_calibrator")
    if cal is None:
        cal = actor_config.__dict__["_a3po_calibrator"] = calibration.Calibrator(actor_config.a3po)
    return cal


def _add_a3po_field(cls) -> None:
    f = dataclasses.field(
        default_factory=A3POConfig,
        metadata={"help": "areal-a3po options (see docs/configuration.md)."},
    )
    f.name, f.type, f._field_type, f.kw_only = "a3po", A3POConfig, dataclasses._FIELD, True
    cls.__dataclass_fields__["a3po"] = f
    cls.__annotations__["a3po"] = A3POConfig


def _wrap_post_init(cls, enum_guard: bool) -> None:
    original = cls.__post_init__

    @functools.wraps(original)
    def __post_init__(self):
        method = self.prox_logp_method
        if registry.is_plugin_provider(method):
            _refuse_sapo(self)
        if not enum_guard or method in gate.areal_methods():
            return original(self)
        self.prox_logp_method = "recompute"  # AReaL's only method-specific check is for
        try:  # reuse_train_logp; the plugin validates the real name in __init__
            original(self)
        finally:
            self.prox_logp_method = method

    cls.__post_init__ = __post_init__


def _refuse_sapo(cfg) -> None:
    if getattr(cfg, "use_sapo_loss", False):
        raise A3POConfigError(
            f"actor.use_sapo_loss: true cannot be combined with actor.prox_logp_method: "
            f"{cfg.prox_logp_method}. SAPO has no proximal policy (AReaL requires "
            "actor.use_decoupled_loss: false for it), and plugin providers act only in decoupled "
            "PPO. Set actor.use_sapo_loss: false, or choose prox_logp_method: recompute."
        )


def validate_loss_options(cfg) -> None:
    """AReaL's loss options that read pi_prox, checked against the provider.

    Rejection sampling (ratio/KL metrics, IcePop-style masks), M2PO and CISPO read the provider's
    pi_prox and work with every provider except those whose pi_prox is pi_behave (``behave``):
    the prox/behave ratio is then 1 and every KL 0, so rejection sampling and M2PO do nothing.
    """
    provider = registry.providers().get(cfg.prox_logp_method)
    if not cfg.use_decoupled_loss or provider is None or not provider.prox_is_behave:
        return
    if getattr(cfg, "rejection_sampling", None) is not None:
        raise A3POConfigError(
            "actor.rejection_sampling has no effect with actor.prox_logp_method: "
            f"{cfg.prox_logp_method}: "
            "pi_prox = pi_behave makes the prox/behave ratio 1 and every KL 0 on every token, so "
            "nothing would be filtered. Remove actor.rejection_sampling, or choose a provider "
            "with a real proximal policy (a3po, current, recompute)."
        )
    if getattr(cfg, "m2_threshold", None) is not None:
        raise A3POConfigError(
            "actor.m2_threshold (M2PO) has no effect with actor.prox_logp_method: "
            f"{cfg.prox_logp_method}: "
            "pi_prox = pi_behave makes every second moment (behave - prox)^2 zero, so no token "
            "would be masked. Remove actor.m2_threshold, or choose a3po, current or recompute."
        )


def patch(module: ModuleType) -> None:
    cls = module.PPOActorConfig
    _add_a3po_field(cls)
    target = "areal.api.cli_args.PPOActorConfig."
    gate.record(target + "a3po", "init field (YAML actor.a3po)")
    enum_guard = gate.reads_name(cls.__post_init__, "ProxLogpMethod")
    _wrap_post_init(cls, enum_guard)
    gate.record(
        target + "__post_init__",
        "plugin checks first (SAPO); "
        + (
            "AReaL checks prox_logp_method against ProxLogpMethod "
            f"({', '.join(sorted(gate.areal_methods()))}): plugin names pass it as 'recompute'"
            if enum_guard
            else "AReaL's checks do not read prox_logp_method"
        ),
    )
    _wrap_init(cls)
    _wrap_should_compute(cls)
    gate.record(
        target + "__init__",
        "validates actor.prox_logp_method, actor.a3po and the pi_prox-reading loss options",
    )
    gate.record(target + "should_compute_prox_logp", "the provider decides if compute_logp runs")


def _wrap_init(cls) -> None:
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, a3po: A3POConfig | dict | None = None, **kwargs):
        init(self, *args, **kwargs)
        if a3po is None:
            a3po = A3POConfig()
        elif isinstance(a3po, dict):
            a3po = A3POConfig(**a3po)
        self.a3po = a3po
        method = self.prox_logp_method
        if method not in registry.providers() and method in gate.areal_methods():
            return  # AReaL's own method the plugin has no entry for (reuse_train_logp on 2.x)
        validate_actor(method, self.use_decoupled_loss, a3po)
        validate_loss_options(self)
        provider = registry.get_provider(method)
        if provider.uses_train_logp and not self.disable_dropout:
            logger().warning(
                f"actor.prox_logp_method: {self.prox_logp_method} is exact only without dropout; "
                "set actor.disable_dropout: true (minibatch 0 is otherwise an approximation too)."
            )

    cls.__init__ = __init__


def _wrap_should_compute(cls) -> None:
    should = cls.should_compute_prox_logp

    @functools.wraps(should)
    def should_compute_prox_logp(self) -> bool:
        provider = registry.providers().get(self.prox_logp_method)
        if provider is None or provider.native:
            return should(self)
        if not self.use_decoupled_loss:
            return False
        if provider.calibrated:
            from areal.utils import stats_tracker

            cal = calibrator(self)
            recompute = cal.decide()
            stats_tracker.scalar(  # the controller's view, next to the workers' compute_logp/*
                **{
                    keys.HYBRID_RECOMPUTE: float(recompute),
                    keys.HYBRID_ESCALATED: float(cal.escalated),
                }
            )
            return recompute
        return provider.needs_recompute

    cls.should_compute_prox_logp = should_compute_prox_logp
