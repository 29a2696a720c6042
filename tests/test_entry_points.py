"""A third-party distribution adds a provider and a loss by declaring entry points, nothing else.

The distribution is built and installed with pip (``--target``, so the venv is untouched) and then
used from a fresh interpreter, as any AReaL process would start.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "a3po-thirdparty-demo"
version = "0.0.1"

[tool.setuptools]
py-modules = ["thirdparty_prox"]

[project.entry-points."areal_a3po.providers"]
half-way = "thirdparty_prox:HALF_WAY"
plain-fn = "thirdparty_prox:plain_fn"

[project.entry-points."areal_a3po.losses"]
scaled-ppo = "thirdparty_prox:scaled_ppo"
"""

MODULE = '''
import torch
from areal_a3po.api import Provider

CALLS = {"half-way": 0, "plain-fn": 0, "scaled-ppo": 0}

def _half_way(inp):
    CALLS["half-way"] += 1
    return 0.5 * (inp.behave_logp.float() + inp.theta_logp.float())

HALF_WAY = Provider(compute=_half_way, description="mean of behave and theta in log space")

def plain_fn(inp):
    """pi_prox = pi_theta - offset (reads provider_options)."""
    CALLS["plain-fn"] += 1
    return inp.theta_logp.float() - float(inp.options.provider_options.get("offset", 0.0))

def scaled_ppo(logprobs, entropy, input_data, prox_logp, **kwargs):
    from areal_a3po.loss import ppo_loss
    CALLS["scaled-ppo"] += 1
    return 2.0 * ppo_loss(logprobs, entropy, input_data, prox_logp, **kwargs)
'''

DRIVER = """
import json, torch
from areal.api.cli_args import PPOActorConfig
from areal.trainer.ppo.actor import grpo_loss_fn
from areal.utils import stats_tracker
from areal_a3po import registry
import thirdparty_prox

out = {"providers": list(registry.providers()), "loss_names": list(registry.losses())}
cfg = PPOActorConfig(experiment_name="e", trial_name="t", backend="fsdp:d1",
                     use_decoupled_loss=True, prox_logp_method="half-way")
out["should_recompute"] = cfg.should_compute_prox_logp()
mask = torch.zeros(2, 6, dtype=torch.bool); mask[:, 2:] = True
data = {"logprobs": -torch.ones(2, 6) * mask, "advantages": torch.ones(2, 6), "loss_mask": mask,
        "versions": torch.where(mask, 1, -1).int()}
theta = (-2.0 * torch.ones(2, 6)).requires_grad_(True)
kw = dict(eps_clip=0.2, eps_clip_higher=None, c_clip=None, current_version=2, use_decoupled_loss=True)
losses = {}
for method in ("half-way", "plain-fn"):
    stats_tracker.export()
    losses[method] = float(grpo_loss_fn(theta, torch.zeros(2, 6), dict(data), prox_logp_method=method, **kw))
    st = stats_tracker.export()
    out[method + "_approx"] = st[f"compute_logp/{method}/approx_logp/avg"]
from areal_a3po.loss import UPDATE, UpdateContext
from areal_a3po.config import A3POConfig
token = UPDATE.set(UpdateContext(options=A3POConfig(loss="scaled-ppo"), n_minibatches=1))
losses["half-way-scaled"] = float(grpo_loss_fn(theta, torch.zeros(2, 6), dict(data), prox_logp_method="half-way", **kw))
UPDATE.reset(token)
token = UPDATE.set(UpdateContext(options=A3POConfig(provider_options={"offset": 0.25}), n_minibatches=1))
stats_tracker.export()
grpo_loss_fn(theta, torch.zeros(2, 6), dict(data), prox_logp_method="plain-fn", **kw)
out["plain-fn_offset_approx"] = stats_tracker.export()["compute_logp/plain-fn/approx_logp/avg"]
UPDATE.reset(token)
out["losses"] = losses
out["calls"] = thirdparty_prox.CALLS
out["approximate"] = registry.approximate_provider_names()
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("thirdparty")
    src = root / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "thirdparty_prox.py").write_text(MODULE)
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    return target


@pytest.mark.slow
def test_thirdparty_entry_points_installed_provider_and_loss_used(site, fresh_python):
    out = fresh_python.result(fresh_python.run(["-c", DRIVER], {"PYTHONPATH": str(site)}))
    assert {"half-way", "plain-fn", "a3po", "recompute"} <= set(out["providers"])
    assert set(out["loss_names"]) == {"ppo", "scaled-ppo"}
    assert out["should_recompute"] is False
    # behave = -1, theta = -2 on the loss tokens: half-way = -1.5, plain-fn = theta = -2.
    assert out["half-way_approx"] == pytest.approx(-1.5, abs=1e-6)
    assert out["plain-fn_approx"] == pytest.approx(-2.0, abs=1e-6)
    assert out["plain-fn_offset_approx"] == pytest.approx(-2.25, abs=1e-6)
    assert out["calls"] == {"half-way": 2, "plain-fn": 2, "scaled-ppo": 1}
    assert out["losses"]["half-way-scaled"] == pytest.approx(
        2.0 * out["losses"]["half-way"], rel=1e-6
    )
    assert {"half-way", "plain-fn"} <= set(out["approximate"])


@pytest.mark.slow
def test_thirdparty_not_installed_provider_unknown_lists_registered(fresh_python):
    code = (
        "from areal.api.cli_args import PPOActorConfig\n"
        "PPOActorConfig(experiment_name='e', trial_name='t', backend='fsdp:d1', "
        "use_decoupled_loss=True, prox_logp_method='half-way')\n"
    )
    proc = fresh_python.run(["-c", code])
    assert proc.returncode != 0
    assert (
        "unknown proximal log-prob provider 'half-way'. Registered providers: a3po" in proc.stderr
    )
