"""What both CPU entry scripts add to AReaL's examples: the config loaded with loopback on and the
hook checked, the pace read, and no worker left behind.

When the controller ends, normally or with an error, the processes it started that still run are
stopped (:func:`stop_leftover_processes`). AReaL stops its workers in ``PPOTrainer.__exit__``, but
an error inside ``PPOTrainer(...)`` skips it, and the scheduler's ``__del__`` fallback (areal 1.0.4
``areal/infra/scheduler/local.py:1787``) runs at interpreter shutdown, where its kill threads
(``local.py:1145-1237``) do not finish: the workers outlive it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def stop_leftover_processes(grace_s: float = 10.0) -> list[str]:
    """SIGTERM, then SIGKILL after ``grace_s``, every descendant of this process still running."""
    import psutil

    procs = psutil.Process().children(recursive=True)
    left = []
    for proc in procs:
        try:
            left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5.0)
    return left


@contextlib.contextmanager
def stopping_leftovers() -> Iterator[None]:
    """Around the trainer: whatever it left running is stopped when the block ends, and logged."""
    try:
        yield
    finally:
        left = stop_leftover_processes()
        if left:
            from areal.utils import logging

            logging.getLogger("A3POEntry").warning(
                f"stopped {len(left)} process(es) AReaL left running: " + "; ".join(left)
            )


def load_config(argv: list[str]) -> tuple[Any, str]:
    """The CPU entry scripts' start: loopback on, the hook checked, ``(GRPOConfig, pace)``."""
    os.environ.setdefault("AREAL_A3PO_LOOPBACK", "1")  # before AReaL's network module is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from areal.api.cli_args import GRPOConfig, load_expr_config
    from areal.utils.network import gethostip

    from areal_a3po.coupling import network
    from areal_a3po.testbeds import pacing

    if network.loopback_enabled() and gethostip() != network.LOOPBACK_IP:
        raise RuntimeError(
            "AREAL_A3PO_LOOPBACK=1 but AReaL's gethostip() is not 127.0.0.1: the areal-a3po "
            "hook is not active in this interpreter (run `a3po info`; is AREAL_A3PO_DISABLE set?)."
        )
    pace = pacing.mode_from_env()  # a bad value fails before anything starts
    config, _ = load_expr_config(argv, GRPOConfig)
    return config, pace
