"""Feed every export of reduced statistics to ``hybrid``'s calibrators (:mod:`areal_a3po.calibration`).

Patched with ``areal.trainer.ppo.actor`` (where the controller class lives):

* SPMD: each rank's engine exports through ``areal.utils.stats_tracker.export_all``.
* Single-controller: ``PPOActorController.export_stats`` gathers the workers' statistics.
"""

from __future__ import annotations

import functools
from types import ModuleType

from areal_a3po import calibration


def _observed(export):
    @functools.wraps(export)
    def observed(*args, **kwargs):
        stats = export(*args, **kwargs)
        calibration.observe(stats)
        return stats

    return observed


def patch(actor_module: ModuleType) -> None:
    from areal.utils import stats_tracker

    stats_tracker.export_all = _observed(stats_tracker.export_all)
    controller = actor_module.PPOActorController
    controller.export_stats = _observed(controller.export_stats)
