"""``hybrid`` calibration under ``PPOActorControllerV2`` (``actor._version: v2``), 1.0.4 and 2.x.

The controller is AReaL's real ``PPOActorControllerV2``: its real ``export_stats`` merges the
controller's own ``stats_tracker.export_all()`` with the gateway's ``GET /export_stats`` reply,
fetched over HTTP with its real client and decoded with AReaL's RPC serialization. The decision is
the real ``config.should_compute_prox_logp()`` in this (the controller's) process, and the
worker-side statistics come from a real ``FSDPPPOActor`` step with ``prox_logp_method: hybrid``.

Stand-in (the one piece not run): the V2 service stack (guard, train worker, router, data proxy,
gateway, five processes) is replaced by a 127.0.0.1 HTTP server answering ``/export_stats`` with
the FSDP engine's exported statistics, as the gateway would. Reason: the stack's commands are
hard-coded (``python -m areal.v2.training_service.guard`` / ``.worker``) with ``--host 0.0.0.0``
defaults this project may not bind to, and five more processes per test do not fit the CPU budget.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import harness as H

CURRENT_VERSION = 3
P = "ppo_actor/update/compute_logp/"


class _Gateway:
    """127.0.0.1 stand-in for the V2 gateway's ``GET /export_stats`` (AReaL's reply format)."""

    def __init__(self):
        self.stats: dict[str, float] = {}
        self.requests = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                from areal.infra.rpc.serialization import serialize_value

                assert self.path == "/export_stats", self.path
                gateway.requests += 1
                body = json.dumps({"result": serialize_value(gateway.stats)}).encode()
                gateway.stats = {}  # the workers' trackers reset on export
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def worker_engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    model = H.build_tiny_qwen2(root / "model")
    # fallback a3po: the default a3po-step is exact with one minibatch (error 0, never escalates)
    from areal_a3po.config import A3POConfig

    a3po = A3POConfig(fallback="a3po")
    cfg = H.actor_config(model, prox_logp_method="hybrid", a3po=a3po)
    with H.fsdp_actor(cfg, CURRENT_VERSION) as engine:
        engine.behave_source = H.hf_token_logprobs(model)
        yield engine


def controller_v2(model_path: str, root: str, **a3po):
    from areal.engine.fsdp_engine import FSDPPPOActor
    from areal.trainer.ppo.actor import PPOActorControllerV2

    from areal_a3po.config import A3POConfig

    cfg = H.actor_config(model_path, prox_logp_method="hybrid", a3po=A3POConfig(**a3po))
    cfg._version = "v2"
    controller = FSDPPPOActor.as_controller(cfg, scheduler=None)
    assert type(controller) is PPOActorControllerV2
    return controller


def worker_step(engine, recompute: bool, seed: int) -> dict[str, float]:
    """What the V2 train worker runs for one step; returns its tracker's export (not observed)."""
    from areal.utils import stats_tracker

    batch = H.make_batch(
        4, current_version=CURRENT_VERSION, seed=seed, logp_source=engine.behave_source
    )
    traj = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(4)]
    stats_tracker.export()
    if recompute:
        for t, logp in zip(traj, engine.compute_logp(traj), strict=True):
            t["prox_logp"] = logp
    engine.ppo_update(engine.compute_advantages(traj))
    return stats_tracker.export()


def run_steps(controller, engine, gateway, thresholds: list[float]) -> list[bool]:
    decisions = []
    for step, threshold in enumerate(thresholds):
        controller.config.a3po.error_threshold = threshold
        recompute = controller.config.should_compute_prox_logp()  # rl_trainer.py, controller side
        decisions.append(recompute)
        gateway.stats = worker_step(engine, recompute, seed=step)
        stats = controller.export_stats()
        assert stats[f"{P}recomputed"] == float(recompute)  # the worker followed the decision
    return decisions


def test_hybrid_controller_v2_export_stats_drives_calibration(worker_engine, tmp_path):
    """interval 3; a tiny threshold escalates after step 0, a huge one (from step 1) de-escalates."""
    controller = controller_v2(
        worker_engine.config.path, str(tmp_path), calibration_interval=3, fallback="a3po"
    )  # the worker's fallback
    with _Gateway() as gateway:
        controller._gateway_addr = gateway.addr
        decisions = run_steps(controller, worker_engine, gateway, [1e-12, 1e9, 1e9, 1e9])
        assert gateway.requests == 4
    assert decisions == [True, True, False, True]


def test_hybrid_controller_v2_without_plugin_observer_never_escalates(worker_engine, tmp_path):
    """Negative control: AReaL's unwrapped export_stats never reaches the calibrator."""
    from areal.trainer.ppo.actor import PPOActorControllerV2

    controller = controller_v2(
        worker_engine.config.path, str(tmp_path), calibration_interval=3, fallback="a3po"
    )  # the worker's fallback
    unwrapped = PPOActorControllerV2.export_stats.__wrapped__
    controller.export_stats = unwrapped.__get__(controller)
    with _Gateway() as gateway:
        controller._gateway_addr = gateway.addr
        decisions = run_steps(controller, worker_engine, gateway, [1e-12, 1e9, 1e9, 1e9])
    assert decisions == [True, False, False, True]
