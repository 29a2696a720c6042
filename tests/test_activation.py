"""Activation in every process: fresh interpreters, torchrun ranks, opt-out, unsupported AReaL.

Each case runs in a freshly spawned interpreter with no import from user code, as torchrun, Ray or
AReaL's scheduler would start it; the plugin arrives through ``areal_a3po.pth`` alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
before = sorted(m for m in sys.modules if m.startswith(("areal_a3po", "torch", "areal"))
                and m not in ("areal_a3po", "areal_a3po._bootstrap"))
import areal.trainer.ppo.actor as actor_mod
from areal.api.cli_args import PPOActorConfig
out = {
    "before": before,
    "coupling_loaded": "areal_a3po.areal_coupling" in sys.modules,
    "loss_patched": actor_mod.grpo_loss_fn.__module__ == "areal_a3po.areal_coupling",
    "has_a3po_field": "a3po" in PPOActorConfig.__dataclass_fields__,
}
print("RESULT" + json.dumps(out))
"""


def run_python(args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AREAL_A3PO")}
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return proc


def result(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_activation_fresh_interpreter_imports_actor_providers_active():
    out = result(run_python(["-c", PROBE]))
    assert out["before"] == [], "interpreter start imported torch/areal/plugin modules"
    assert out["coupling_loaded"] and out["loss_patched"] and out["has_a3po_field"]


def test_activation_torchrun_rank_process_providers_active(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(PROBE)
    proc = run_python(
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
    out = result(proc)
    assert out["loss_patched"] and out["has_a3po_field"]


def test_activation_startup_without_areal_imports_nothing_heavy():
    code = "import sys, json; print('RESULT' + json.dumps(sorted(sys.modules)))"
    mods = result(run_python(["-c", code]))
    assert "areal_a3po._bootstrap" in mods  # the hook is there ...
    heavy = [m for m in mods if m.split(".")[0] in ("torch", "areal", "numpy", "transformers")]
    assert heavy == []  # ... and costs no heavy import
    assert "areal_a3po.areal_coupling" not in mods


def test_activation_disable_env_plain_areal_untouched():
    out = result(run_python(["-c", PROBE], {"AREAL_A3PO_DISABLE": "1"}))
    assert not out["coupling_loaded"]
    assert not out["loss_patched"]
    assert not out["has_a3po_field"]


def test_activation_info_command_reports_hooked_and_providers():
    proc = run_python(["-m", "areal_a3po.cli", "info"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hooked=True" in proc.stdout
    for name in ("a3po", "a3po-linear", "behave", "recompute", "a3po-metrics"):
        assert f"\n  {name} " in proc.stdout
    off = run_python(["-m", "areal_a3po.cli", "info"], {"AREAL_A3PO_DISABLE": "1"})
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


def test_activation_unsupported_areal_warns_once_no_patch(fake_areal_9):
    proc = run_python(["-c", PROBE], {"PYTHONPATH": fake_areal_9})
    out = result(proc)
    assert not out["loss_patched"] and not out["has_a3po_field"]
    from areal_a3po import SUPPORTED_AREAL

    assert (proc.stdout + proc.stderr).count(
        f"areal-a3po supports areal{SUPPORTED_AREAL}, but areal 9.0.0 is installed"
    ) == 1


def test_activation_unsupported_areal_a3po_recipe_fails_with_reason(fake_areal_9):
    code = (
        "from areal.api.cli_args import PPOActorConfig\n"
        "PPOActorConfig(experiment_name='e', trial_name='t', backend='fsdp:d1', "
        "use_decoupled_loss=True, prox_logp_method='a3po')\n"
    )
    proc = run_python(["-c", code], {"PYTHONPATH": fake_areal_9})
    assert proc.returncode != 0
    assert (
        "actor.prox_logp_method: a3po is provided by areal-a3po, but areal-a3po supports"
        in proc.stderr
    )
    assert "areal 9.0.0 is installed" in proc.stderr


STEP = """
import json, sys, torch
sys.path.insert(0, {root!r})
from tests import harness as H
from areal.utils import stats_tracker
out = {{}}
with H.dist_env():
    engine = H.make_actor(H.actor_config({model!r}, {root!r}, prox_logp_method="recompute"))
    engine.set_version(3)
    src = H.hf_token_logprobs({model!r})
    for seed, method in enumerate(["recompute", "loglinear", "metrics"]):
        engine.config.prox_logp_method = method
        b = H.make_batch(4, current_version=3, seed=seed, logp_source=src)
        traj = [{{k: v[i:i+1] for k, v in b.items()}} for i in range(4)]
        stats_tracker.export()
        if engine.config.should_compute_prox_logp():
            for t, lp in zip(traj, engine.compute_logp(traj)):
                t["prox_logp"] = lp
        engine.ppo_update(engine.compute_advantages(traj))
        st = stats_tracker.export()
        out[method] = {{k: v for k, v in st.items() if k.startswith("ppo_actor/update/")}}
    out["params"] = float(sum(p.full_tensor().double().abs().sum() if hasattr(p, "full_tensor")
                              else p.double().abs().sum() for p in engine.model.parameters()))
    engine.destroy()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_activation_plain_methods_same_numbers_with_and_without_plugin(tmp_path):
    from tests.harness import build_tiny_qwen2

    model = build_tiny_qwen2(tmp_path / "model")
    code = STEP.format(root=str(ROOT), model=model)
    on = result(run_python(["-c", code], timeout=600))
    off = result(run_python(["-c", code], {"AREAL_A3PO_DISABLE": "1"}, timeout=600))
    for method in ("recompute", "loglinear", "metrics"):
        assert set(on[method]) == set(off[method]), method
        for key, value in off[method].items():
            assert on[method][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (method, key)
    assert on["params"] == pytest.approx(off["params"], rel=1e-9)
    assert on["recompute"]["ppo_actor/update/actor_loss/avg"] != 0.0


LOOPBACK_PROBE = """
import json
from areal.utils.network import gethostip
from areal.infra.scheduler import local
print("RESULT" + json.dumps({"ip": gethostip(), "scheduler_ip": local.gethostip()}))
"""


def test_activation_loopback_env_every_gethostip_returns_127():
    out = result(run_python(["-c", LOOPBACK_PROBE], {"AREAL_A3PO_LOOPBACK": "1"}))
    assert out == {"ip": "127.0.0.1", "scheduler_ip": "127.0.0.1"}
