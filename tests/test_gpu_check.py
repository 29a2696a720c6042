"""``benchmarks/gpu_check.py``, the prepared device check, on CPU at its small shape.

It runs as a device machine would run it (a fresh interpreter, AReaL's real ``FSDPPPOActor``, the
GSM8K recipe's actor as AReaL's loader reads it), only on CPU and small: its JSON has the schema of
the kept output, every loss and parameter is finite and lag-0 tokens are exact at 1 and 4 PPO
minibatches. No timing is judged. The stand-ins for packages a device cannot carry are checked
on a package that does not exist.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests import harness as H

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "gpu_check" / "cpu_small.json"


def _shape(value):
    """The JSON's structure: keys of every object, the first element of every list."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value and isinstance(value[0], dict | list) else []
    return None


@pytest.mark.slow
@pytest.mark.skipif(not H.on_areal_1_0(), reason="end to end: once per CI, on the areal 1.0 leg")
def test_gpu_check_cpu_small_shape_losses_finite_lag0_exact_schema_as_kept(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--shape", "small",
         "--device", "cpu", "--inner", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    kept = json.loads(KEPT.read_text())
    assert _shape(result) == _shape(kept), "the kept output is not gpu_check.py's current schema"
    assert kept["ok"] and kept["ran_on"]["device"] == "cpu" and kept["shape"]["name"] == "small"

    assert result["schema"] == "a3po-gpu-check/1" and result["ok"] is True
    assert result["ran_on"]["device"] == "cpu" and result["ran_on"]["stood_in"] == []
    assert result["batch"]["lags"] == [0, 1, 2, 3, 4]
    assert result["actor"]["recipe"] == "gsm8k_grpo_qwen2.5-1.5b-mb4_a3po.yaml"
    assert result["actor"]["mb_spec"]["max_tokens_per_mb"] == 32  # sdpa: one sequence each
    assert [r["ppo_n_minibatches"] for r in result["runs"]] == [1, 4]
    for run in result["runs"]:
        k, checks = run["ppo_n_minibatches"], run["checks"]
        assert checks["losses_finite"] and checks["params_finite"]
        assert checks["losses"] == 2 * result["batch"]["sequences"]  # both spied updates
        lag0 = checks["lag0"]
        assert lag0["exact"] and lag0["tokens"] > 0 and lag0["minibatches"] == list(range(k))
        assert lag0["minibatch0_vs_recompute"] <= result["tolerance"]
        assert lag0["later_vs_behave"] == 0.0  # pi_behave itself, for tokens of the trained version
        for arm in ("recompute_logp", "update recompute", "update a3po-step"):
            assert run[arm]["s"] > 0 and run[arm]["peak_bytes"] is None  # CPU: n/a by default
        assert set(run["plugin_s"]) == {"provider", "statistics", "monitor"}
        assert all(s > 0 for s in run["plugin_s"].values())


@pytest.mark.version_independent
def test_device_standins_absent_package_imports_inert_present_package_untouched():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from device_standins import Inert, stand_in_absent
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    name = "a3po_absent_pkg"
    assert stand_in_absent((name, "json")) == [name]  # json is installed: left alone
    try:
        module = __import__(f"{name}.util.scheduling", fromlist=["x"])
        assert isinstance(module, types.ModuleType)
        top = sys.modules[name]

        @top.remote  # a class decorator, as AReaL's @ray.remote: an inert stand-in
        class Store:
            pass

        assert isinstance(Store, Inert)
        assert isinstance(Store.options(num_cpus=1).remote(), Inert)
        assert issubclass(type("Sub", (top.actor.ActorHandle,), {}), Inert)
        assert top.is_initialized() is False
        assert json.dumps({}) == "{}"
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
