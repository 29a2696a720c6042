"""``areal.api.cli_args``: the ``actor.a3po`` options and the provider's say over the recompute.

* ``PPOActorConfig`` gains the init field ``a3po: A3POConfig`` (YAML ``actor.a3po``), so OmegaConf,
  ``load_expr_config``, ``asdict`` and AReaL's RPC serialization carry it.
* ``PPOActorConfig.__init__`` validates the provider choice (errors name the YAML key).
* ``PPOActorConfig.should_compute_prox_logp`` asks the provider whether the recompute forward is
  needed; AReaL's controller skips ``compute_logp`` when it is not. For a ``calibrated`` provider
  the controller's :class:`~areal_a3po.calibration.Calibrator` decides, once per step.
"""

from __future__ import annotations

import dataclasses
import functools
from types import ModuleType

from areal_a3po import calibration, keys, registry
from areal_a3po.config import A3POConfig, validate_actor
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


def patch(module: ModuleType) -> None:
    cls = module.PPOActorConfig
    _add_a3po_field(cls)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, a3po: A3POConfig | dict | None = None, **kwargs):
        init(self, *args, **kwargs)
        if a3po is None:
            a3po = A3POConfig()
        elif isinstance(a3po, dict):
            a3po = A3POConfig(**a3po)
        self.a3po = a3po
        validate_actor(self.prox_logp_method, self.use_decoupled_loss, a3po)
        provider = registry.get_provider(self.prox_logp_method)
        if provider.uses_train_logp and not self.disable_dropout:
            logger().warning(
                f"actor.prox_logp_method: {self.prox_logp_method} is exact only without dropout; "
                "set actor.disable_dropout: true (minibatch 0 is otherwise an approximation too)."
            )

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

    cls.__init__ = __init__
    cls.should_compute_prox_logp = should_compute_prox_logp
