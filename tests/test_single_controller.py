"""AReaL's single-controller mode on CPU: LocalScheduler -> rpc_server worker -> FSDPPPOActor.

Nothing is mocked. ``areal.infra.scheduler.local.LocalScheduler`` starts a real
``python -m areal.infra.rpc.rpc_server`` worker process (the command from
``actor.scheduling_spec[0].cmd``); ``FSDPPPOActor.as_controller`` gives AReaL's
``PPOActorController``, which creates the engine in the worker (tiny local Qwen2, gloo, world size
1) and drives it over HTTP exactly as ``PPOTrainer.train`` does (rl_trainer.py):
``if config.actor.should_compute_prox_logp(): compute_logp`` -> ``compute_advantages`` ->
``ppo_update``. Statistics come back through the controller's ``export_stats`` RPC.

The worker gets the plugin only from the environment (``areal_a3po.pth`` in site-packages); the
test passes nothing plugin-specific to it. The a3po keys in the worker's statistics prove the
plugin is active there.

Loopback only. AReaL's ``gethostip()`` skips 127.* addresses, and ``LocalScheduler`` records the
worker's address as ``gethostip()`` (areal/infra/scheduler/local.py:877) with no setting to
override it. What the test does:

* worker side: ``scheduling_spec[0].cmd`` carries ``--host 127.0.0.1``; AReaL's rpc_server
  accepts it (areal/infra/rpc/guard/app.py:512 and :553), binds there and advertises 127.0.0.1 for
  its tensors (``node_addr``), so the worker needs no patch;
* controller side: ``areal.infra.scheduler.local.gethostip`` is monkeypatched to return
  127.0.0.1 in the test process, so the scheduler's health checks, RPCs, ``MASTER_ADDR`` for the
  worker's process group, all use loopback;
* ``GLOO_SOCKET_IFNAME=lo`` and ``AREAL_A3PO_LOOPBACK=1`` for the worker through
  ``scheduling_spec[0].env_vars`` (the plugin's loopback mode binds torch's c10d TCPStore, which
  torch itself binds to ``::`` whatever MASTER_ADDR is, to 127.0.0.1).

Checked on the worker's sockets (psutil): the RPC server listens on 127.0.0.1, every connection is
loopback; nothing listens on a wildcard address, torch's c10d TCPStore on MASTER_PORT included.

Bounded and cleaned up: worker readiness has a timeout (``LocalScheduler(startup_timeout=...)``),
each test has a pytest-timeout, a watchdog kills the worker's process tree (only PIDs the
scheduler started) if a step hangs, and teardown goes through AReaL's own
``controller.destroy()`` -> ``scheduler.delete_workers``; survivors are killed by PID.
"""

from __future__ import annotations

import contextlib
import math
import threading
from pathlib import Path

import psutil
import pytest

CURRENT_VERSION = 3
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 120.0  # worker readiness (LocalScheduler.get_workers)
WATCHDOG_S = 240.0  # kill the worker if one test's RPCs hang past this
TEST_TIMEOUT = 300  # pytest-timeout per test
P = "ppo_actor/update/compute_logp/"

pytestmark = pytest.mark.slow


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _started_pids(scheduler) -> set[int]:
    """PIDs of the processes this scheduler started (its Popen shells and their descendants)."""
    pids = set()
    for infos in list(scheduler._workers.values()):
        for info in infos:
            if info.process is not None:
                pids.update(p.pid for p in _tree(info.process.pid))
    return pids


def _kill(pids: set[int]) -> None:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(pid)
            p.kill()
            procs.append(p)
    psutil.wait_procs(procs, timeout=10)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
    return alive


def _sockets(pids: set[int]) -> list[tuple[str, str, int, str | None]]:
    """(status, local ip, local port, remote ip) of the inet sockets of these processes."""
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for c in psutil.Process(pid).net_connections(kind="inet"):
                raddr = c.raddr.ip if c.raddr else None
                out.append((c.status, c.laddr.ip, c.laddr.port, raddr))
    return out


def _is_loopback(ip: str | None) -> bool:
    return ip is None or ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1")


@contextlib.contextmanager
def single_controller_actor(root: Path, actor_config, method: str, monkeypatch, **overrides):
    """AReaL's controller + one local rpc_server worker running FSDPPPOActor; always torn down."""
    from areal.api.cli_args import SchedulingSpec
    from areal.api.io_struct import FinetuneSpec
    from areal.engine.fsdp_engine import FSDPPPOActor
    from areal.infra.scheduler.local import LocalScheduler

    # Controller side: the scheduler records the worker's address with gethostip(), which never
    # returns 127.*; keep it (and everything derived from it) on loopback in this process only.
    monkeypatch.setattr("areal.infra.scheduler.local.gethostip", lambda *a, **k: LOOPBACK)
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # the controller's own gloo group

    (root / "name_resolve").mkdir(parents=True, exist_ok=True)
    scheduler = LocalScheduler(
        log_dir=str(root / "logs"),
        startup_timeout=STARTUP_TIMEOUT,
        experiment_name="a3po-sc",
        trial_name=method,
        fileroot=str(root),
        name_resolve_type="nfs",
        nfs_record_root=str(root / "name_resolve"),
    )
    config = actor_config(
        prox_logp_method=method,
        trial_name=method,
        scheduling_spec=(
            SchedulingSpec(
                cpu=1,
                gpu=0,
                mem=4,
                port_count=2,
                cmd=f"python -m areal.infra.rpc.rpc_server --host {LOOPBACK}",
                env_vars={"GLOO_SOCKET_IFNAME": "lo", "AREAL_A3PO_LOOPBACK": "1"},
            ),
        ),
        **overrides,
    )
    controller = FSDPPPOActor.as_controller(config, scheduler)
    pids: set[int] = set()

    def watchdog():  # a hung RPC fails fast once its worker is gone
        _kill(pids | _started_pids(scheduler))

    timer = threading.Timer(WATCHDOG_S, watchdog)
    timer.daemon = True
    timer.start()
    destroyed = False
    try:
        controller.create_process_group(parallel_strategy=controller.parallel_strategy)
        controller.initialize(
            role="actor",
            ft_spec=FinetuneSpec(total_train_epochs=1, dataset_size=10, train_batch_size=1),
            addr=None,
        )
        pids |= _started_pids(scheduler)
        controller.set_version(CURRENT_VERSION)
        controller.started_pids = set(pids)
        controller.worker_log = Path(scheduler._workers["actor"][0].log_file)
        yield controller
        controller.destroy()  # AReaL's teardown: engine.destroy RPC, scheduler.delete_workers
        destroyed = True
        assert not _alive(pids), f"workers survived controller.destroy(): {_alive(pids)}"
    finally:
        timer.cancel()
        pids |= _started_pids(scheduler)
        if not destroyed:
            with contextlib.suppress(Exception):
                scheduler.delete_workers()
        _kill(_alive(pids))  # fallback: only what this scheduler started
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _assert_on_loopback(controller) -> None:
    """AReaL's addresses are loopback; the worker listens on 127.0.0.1 only: its RPC server and
    torch's c10d TCPStore on MASTER_PORT (``worker_ports[1]``, created by ``init_process_group``,
    areal/engine/fsdp_engine.py:325), which the plugin's loopback mode binds there."""
    assert [w.ip for w in controller.workers] == [LOOPBACK]
    rpc_port, store_port = (int(p) for p in controller.workers[0].worker_ports[:2])
    sockets = _sockets(controller.started_pids)
    listening = {(ip, port) for status, ip, port, _ in sockets if status == psutil.CONN_LISTEN}
    assert (LOOPBACK, rpc_port) in listening, sockets
    exposed = {(ip, port) for ip, port in listening if not _is_loopback(ip)}
    assert (LOOPBACK, store_port) in listening, sockets
    assert not exposed, sockets
    remote = {raddr for status, _, _, raddr in sockets if status != psutil.CONN_LISTEN}
    assert all(_is_loopback(ip) for ip in remote), sockets


@pytest.fixture
def controller_step(tmp_path, monkeypatch, actor_config, ppo_step):
    """``controller_step(method)``: one PPOTrainer actor step through AReaL's controller, the
    addresses checked to be loopback before and after; returns (step, the worker's log)."""

    def run(method: str):
        with single_controller_actor(tmp_path, actor_config, method, monkeypatch) as controller:
            _assert_on_loopback(controller)
            step = ppo_step(controller)
            _assert_on_loopback(controller)
        assert not any(k.startswith("ppo_actor/") for k in step.local), (
            "stats came from the controller"
        )
        assert math.isfinite(step.stats["ppo_actor/update/actor_loss/avg"])
        return step, controller.worker_log.read_text(errors="replace")

    return run


@pytest.mark.timeout(TEST_TIMEOUT)
def test_ppo_update_a3po_in_worker_skips_compute_logp_and_exports_a3po_stats(controller_step):
    step, worker_log = controller_step("a3po")
    stats = step.stats
    assert "areal-a3po: proximal policy from provider 'a3po'" in worker_log  # plugin in the worker
    assert step.recomputed is False, "the controller ran compute_logp"
    assert math.isfinite(stats[f"{P}a3po/approx_logp/avg"])
    for name in ("behave_imp_weight", "importance_weight"):
        assert stats[f"{P}a3po/{name}/avg"] > 0
    fed = step.staleness_counts()  # the batch's rows have lags 0, 1, 2, 3
    assert sorted(fed) == [0, 1, 2, 3]
    for lag, n_tokens in fed.items():
        assert stats[f"ppo_actor/a3po/token_lag_{lag}"] == n_tokens
    assert stats["ppo_actor/a3po/token_lag/max"] == 3
    assert not any("prox_logp_gt" in k for k in stats), "the recompute stage ran"


@pytest.mark.timeout(TEST_TIMEOUT)
def test_ppo_update_recompute_in_worker_calls_compute_logp_and_exports_ground_truth(
    controller_step,
):
    step, worker_log = controller_step("recompute")
    stats = step.stats
    assert "areal-a3po: proximal policy" not in worker_log
    assert step.recomputed is True
    # One sequence per micro-batch, first minibatch: the recompute equals the training forward.
    assert stats[f"{P}prox_logp_gt/avg"] == pytest.approx(
        stats["ppo_actor/update/new_logp/avg"], abs=1e-5
    )
    assert not any("/compute_logp/a3po" in k for k in stats)  # no plugin provider ran
    assert stats["ppo_actor/a3po/token_lag/max"] == 3  # the worker logs the lag for every method


@pytest.mark.timeout(TEST_TIMEOUT)
def test_hybrid_single_controller_decides_worker_follows_escalates_and_returns(
    tmp_path, actor_config, ppo_step, monkeypatch
):
    """interval 3; a tiny threshold escalates after step 0, a huge one (from step 1) de-escalates."""
    from areal_a3po.config import A3POConfig

    options = A3POConfig(calibration_interval=3, error_threshold=1e-12, fallback="a3po")
    steps = []
    with single_controller_actor(
        tmp_path, actor_config, "hybrid", monkeypatch, a3po=options
    ) as controller:
        for step in range(4):
            if step == 1:
                controller.config.a3po.error_threshold = 1e9
            steps.append(ppo_step(controller))
            # the controller's view of its decision
            assert steps[-1].local["a3po/hybrid/recompute"] == float(steps[-1].recomputed)
    decisions = [s.recomputed for s in steps]
    assert decisions == [True, True, False, True]
    assert [s.stats[f"{P}recomputed"] for s in steps] == [1.0, 1.0, 0.0, 1.0]  # the worker's view
    errors = [s.stats.get(f"{P}a3po/abs_error/avg") for s in steps]
    assert [e is not None for e in errors] == decisions
