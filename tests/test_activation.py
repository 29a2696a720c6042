"""Activation in every process: fresh interpreters, torchrun ranks, opt-out, unsupported AReaL.

Each case runs in a freshly spawned interpreter with no import from user code, as torchrun, Ray or
AReaL's scheduler would start it; the plugin arrives through ``areal_a3po.pth`` alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_activation_fresh_interpreter_imports_actor_providers_active(fresh_python):
    out = fresh_python.probe()
    assert out["before"] == [], "interpreter start imported torch/areal/plugin modules"
    assert out["coupling_loaded"] and out["loss_patched"] and out["has_a3po_field"]


@pytest.mark.slow
def test_activation_torchrun_rank_process_providers_active(tmp_path, fresh_python):
    script = tmp_path / "rank.py"
    script.write_text(fresh_python.PROBE)
    proc = fresh_python.run(
        [
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "1",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            "0",
            str(script),
        ],
        {"GLOO_SOCKET_IFNAME": "lo"},
    )
    out = fresh_python.result(proc)
    assert out["loss_patched"] and out["has_a3po_field"]


def test_activation_startup_without_areal_imports_nothing_heavy(fresh_python):
    code = "import sys, json; print('RESULT' + json.dumps(sorted(sys.modules)))"
    mods = fresh_python.result(fresh_python.run(["-c", code]))
    assert "areal_a3po._bootstrap" in mods  # the hook is there ...
    heavy = [m for m in mods if m.split(".")[0] in ("torch", "areal", "numpy", "transformers")]
    assert heavy == []  # ... and costs no heavy import
    assert "areal_a3po.coupling" not in mods


@pytest.mark.slow
def test_activation_disable_env_plain_areal_untouched(fresh_python):
    out = fresh_python.probe({"AREAL_A3PO_DISABLE": "1"})
    assert not out["coupling_loaded"]
    assert not out["loss_patched"]
    assert not out["has_a3po_field"]


@pytest.mark.slow
def test_activation_info_command_reports_hooked_and_providers(fresh_python):
    proc = fresh_python.run(["-m", "areal_a3po.cli", "info"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hooked=True" in proc.stdout
    for name in ("a3po", "a3po-linear", "behave", "recompute", "a3po-metrics"):
        assert f"\n  {name} " in proc.stdout
    off = fresh_python.run(["-m", "areal_a3po.cli", "info"], {"AREAL_A3PO_DISABLE": "1"})
    assert off.returncode == 0 and "DISABLED by AREAL_A3PO_DISABLE" in off.stdout
    assert "hooked=False" in off.stdout


@pytest.fixture()
def fake_areal_9(tmp_path) -> str:
    """A dist-info that reports areal 9.0.0 ahead of the real one on sys.path (code unchanged)."""
    real = next(
        p
        for p in sys.path
        if p and (Path(p) / "areal").is_dir() and list(Path(p).glob("areal-*.dist-info"))
    )
    dist = tmp_path / "areal-9.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: areal\nVersion: 9.0.0\n")
    return f"{tmp_path}{os.pathsep}{real}"


@pytest.mark.slow
def test_activation_unsupported_areal_warns_once_no_patch(fake_areal_9, fresh_python):
    proc = fresh_python.run(["-c", fresh_python.PROBE], {"PYTHONPATH": fake_areal_9})
    out = fresh_python.result(proc)
    assert not out["loss_patched"] and not out["has_a3po_field"]
    from areal_a3po.coupling.gate import SUPPORTED_AREAL

    assert (proc.stdout + proc.stderr).count(
        f"areal-a3po supports areal{SUPPORTED_AREAL}, but areal 9.0.0 is installed"
    ) == 1


@pytest.mark.slow
def test_activation_unsupported_areal_a3po_recipe_fails_with_reason(fake_areal_9, fresh_python):
    code = (
        "from areal.api.cli_args import PPOActorConfig\n"
        "PPOActorConfig(experiment_name='e', trial_name='t', backend='fsdp:d1', "
        "use_decoupled_loss=True, prox_logp_method='a3po')\n"
    )
    proc = fresh_python.run(["-c", code], {"PYTHONPATH": fake_areal_9})
    assert proc.returncode != 0
    assert (
        "actor.prox_logp_method: a3po is provided by areal-a3po, but areal-a3po supports"
        in proc.stderr
    )
    assert "areal 9.0.0 is installed" in proc.stderr


# The fixtures do not reach a fresh interpreter: the script uses their plain functions (harness).
# It switches the method by hand: with the plugin disabled it must not import the plugin.
STEP = """
import json, sys
sys.path.insert(0, {root!r})
from tests import harness as H
out = {{}}
src = H.hf_token_logprobs({model!r})
with H.fsdp_actor(H.actor_config({model!r})) as actor:
    for seed, method in enumerate(["recompute", "loglinear", "metrics"]):
        actor.config.prox_logp_method = method
        st = H.ppo_step(actor, behave_source=src, seed=seed).stats
        out[method] = {{k: v for k, v in st.items() if k.startswith("ppo_actor/update/")}}
    out["params"] = float(sum(t.double().abs().sum() for t in H.snapshot_params(actor).values()))
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_activation_plain_methods_same_numbers_with_and_without_plugin(tiny_model, fresh_python):
    code = STEP.format(root=str(ROOT), model=tiny_model)
    run, result = fresh_python.run, fresh_python.result
    on = result(run(["-c", code], timeout=600))
    off = result(run(["-c", code], {"AREAL_A3PO_DISABLE": "1"}, timeout=600))
    for method in ("recompute", "loglinear", "metrics"):
        assert set(on[method]) == set(off[method]), method
        for key, value in off[method].items():
            assert on[method][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (method, key)
    assert on["params"] == pytest.approx(off["params"], rel=1e-9)
    assert on["recompute"]["ppo_actor/update/actor_loss/avg"] != 0.0


LOOPBACK_PROBE = """
import json, random
from areal.utils.network import find_free_ports, gethostip
from areal.infra.scheduler import local
draws = []
for _ in range(2):  # the same seed twice, as two runs with one config.seed
    random.seed(1)
    draws.append(find_free_ports(4))
print("RESULT" + json.dumps({"ip": gethostip(), "scheduler_ip": local.gethostip(), "ports": draws}))
"""


@pytest.mark.slow
def test_activation_loopback_env_every_gethostip_returns_127_ports_unseeded(fresh_python):
    out = fresh_python.result(
        fresh_python.run(["-c", LOOPBACK_PROBE], {"AREAL_A3PO_LOOPBACK": "1"})
    )
    first, second = out.pop("ports")
    assert out == {"ip": "127.0.0.1", "scheduler_ip": "127.0.0.1"}
    assert first != second  # the seeded global random no longer picks the ports
    # Negative control: without loopback mode AReaL's own draw repeats under one seed.
    off = fresh_python.result(fresh_python.run(["-c", LOOPBACK_PROBE], {"AREAL_A3PO_LOOPBACK": ""}))
    assert off["ports"][0] == off["ports"][1]


C10D_PROBE = """
import json, os, psutil
import torch.distributed as dist
from areal.utils.network import find_free_ports, gethostip
def listeners(port):
    conns = psutil.Process().net_connections("tcp")
    return sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port})
out = {"ip": gethostip()}
# FSDPEngine.create_process_group: env:// with the MASTER_ADDR AReaL's schedulers set (gethostip)
worker_port, controller_port = find_free_ports(2)
os.environ.update(MASTER_ADDR=gethostip(), MASTER_PORT=str(worker_port), RANK="0", WORLD_SIZE="1")
dist.init_process_group(backend="gloo")
out["worker"] = listeners(worker_port)
dist.destroy_process_group()
# TrainController's placeholder group: init_method=f"tcp://localhost:{port}"
dist.init_process_group(backend="gloo", init_method=f"tcp://localhost:{controller_port}", rank=0, world_size=1)
out["controller"] = listeners(controller_port)
dist.destroy_process_group()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_activation_loopback_env_c10d_store_listens_on_127_not_every_interface(fresh_python):
    """torch's TCPStore server binds ``::`` whatever host it is given; in loopback mode rank 0's
    store of AReaL's two process groups (worker env://, controller tcp://localhost) is bound to
    127.0.0.1 by the plugin (areal_a3po/coupling/network.py)."""
    env = {"AREAL_A3PO_LOOPBACK": "1", "GLOO_SOCKET_IFNAME": "lo"}
    out = fresh_python.result(fresh_python.run(["-c", C10D_PROBE], env))
    assert out == {"ip": "127.0.0.1", "worker": ["127.0.0.1"], "controller": ["127.0.0.1"]}
    # Negative control: without loopback mode torch's own server listens on every interface.
    env["AREAL_A3PO_LOOPBACK"] = ""
    off = fresh_python.result(fresh_python.run(["-c", C10D_PROBE], env))
    assert off["controller"] in (["::"], ["0.0.0.0"]), off
