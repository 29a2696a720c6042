"""Feed every export of reduced statistics to ``hybrid``'s calibrators (:mod:`areal_a3po.calibration`).

Patched with ``areal.trainer.ppo.actor`` (where the controller class lives):

* SPMD: each rank's engine exports through ``areal.utils.stats_tracker.export_all``.
* Single-controller: ``PPOActorController.export_stats`` (RPC workers) or
  ``PPOActorControllerV2.export_stats`` (``actor._version: v2``, gateway; in 1.0.4 and 2.x)
  gathers the workers' statistics.

After each export, :func:`areal_a3po.coupling.recover.after_observe` saves the calibrators' state
beside a recover checkpoint whose step was just observed.
"""

from __future__ import annotations

import functools
from types import ModuleType

from areal_a3po import calibration
from areal_a3po.coupling import gate, recover


def _observed(export):
    @functools.wraps(export)
    def observed(*args, **kwargs):
        stats = export(*args, **kwargs)
        calibration.observe(stats)
        recover.after_observe()
        return stats

    return observed


def patch(actor_module: ModuleType) -> None:
    from areal.utils import stats_tracker

    stats_tracker.export_all = _observed(stats_tracker.export_all)
    gate.record("areal.utils.stats_tracker.export_all", "hybrid observes SPMD exports")
    for name in ("PPOActorController", "PPOActorControllerV2"):
        controller = getattr(actor_module, name, None)
        if controller is None or not callable(getattr(controller, "export_stats", None)):
            continue
        controller.export_stats = _observed(controller.export_stats)
        gate.record(
            f"areal.trainer.ppo.actor.{name}.export_stats",
            f"hybrid observes the workers' stats ({controller.__mro__[1].__name__})",
        )
