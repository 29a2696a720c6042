"""Rollouts at the staleness cap: the control of the staleness study (``a3po compare --staleness``).

AReaL's staleness manager lets rollouts run at most ``max_head_offpolicyness`` (eta) versions
ahead of the trainer; how far ahead they actually get depends on which side is faster. On one
machine the generator and the trainer share the cores, so a faster trainer (a method that skips the
recompute forward) trains on fresher samples than a slower one, and a staleness study would
compare methods at different lags. With pacing ``cap``, before a batch is taken the controller
fills the whole window the cap allows and waits until nothing is in flight. The generator then
always runs at the cap, whatever the method costs:

* the batch trained at version V was submitted at version V - eta (V >= eta; earlier batches come
  from the first fill at version 0, lag V);
* nothing is generated during a weight update, so no sample spans two versions;

hence every trained token has lag exactly min(V, eta), for every provider, by construction (the
report shows the lags each arm trained on). The price: generation no longer overlaps training, so
the step time is generation + training (the default job, unpaced, measures the overlap).

Pacing wraps the controller's ``BatchTaskDispatcher.active_submit_and_wait`` (AReaL's
``RolloutController.prepare_batch`` calls it); it uses only AReaL's public counters
(``StalenessManager.get_stats``) and ``submit_task_input``. The entry script turns it on when
``AREAL_A3PO_PACE=cap``.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

ENV = "AREAL_A3PO_PACE"
FREE, CAP = "free", "cap"
MODES = (FREE, CAP)
WAIT_LIMIT_S = 600.0  # one fill of the window; a healthy generator is far below it
POLL_S = 0.05


def mode_from_env() -> str:
    """``free`` (AReaL's own behaviour) unless ``AREAL_A3PO_PACE`` names another mode."""
    mode = os.environ.get(ENV, FREE) or FREE
    if mode not in MODES:
        raise ValueError(f"{ENV}={mode!r}: must be one of {', '.join(MODES)}")
    return mode


def pace_at_cap(rollout: Any, wait_limit_s: float = WAIT_LIMIT_S) -> None:
    """Make ``rollout`` (AReaL's single-controller ``RolloutController``) run at the staleness cap."""
    manager = getattr(rollout, "staleness_manager", None)
    dispatcher = getattr(rollout, "dispatcher", None)
    if manager is None or dispatcher is None:
        raise RuntimeError(
            f"{ENV}=cap needs AReaL's single-controller RolloutController (scheduler.type=local "
            f"or ray); got {type(rollout).__name__} without a staleness manager"
        )
    submit_and_wait = dispatcher.active_submit_and_wait

    @functools.wraps(submit_and_wait)
    def at_cap(input_generator, batch_size: int, dynamic_bs: bool = False):
        # The window the cap allows at this version: (eta + V + 1) x consumer batch size.
        window = (manager.max_staleness + rollout.get_version() + 1) * manager.consumer_batch_size
        st = manager.get_stats()
        for _ in range(window - (st.accepted + st.running + st.enqueued)):
            dispatcher.submit_task_input(next(input_generator))
        deadline = time.monotonic() + wait_limit_s
        while (st := manager.get_stats()).running or st.enqueued:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{ENV}=cap: the rollouts of version {rollout.get_version()} did not finish "
                    f"in {wait_limit_s:.0f}s (running {st.running}, queued {st.enqueued}, "
                    f"accepted {st.accepted}); is the inference server alive?"
                )
            time.sleep(POLL_S)
        return submit_and_wait(input_generator, batch_size, dynamic_bs)

    dispatcher.active_submit_and_wait = at_cap
