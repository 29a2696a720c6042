"""A recipe's plugin settings in a process where the plugin's ``.pth`` hook did not run.

The processes are real: a fresh virtual environment without areal-a3po installed, whose only view
of AReaL and torch is a path entry to this environment's site-packages (path entries do not run
``.pth`` files, so the editable install's hook stays inert there), and areal-a3po from this
checkout on ``PYTHONPATH``, as a ``PYTHONPATH`` or ``pip install --target`` install gives it.
There AReaL's own loader rejects ``actor.a3po`` with OmegaConf's generic unknown-key error (the
negative control); the plugin's entry scripts, which run AReaL's loader, name the install that
fixes it instead, and ``a3po info`` says why the hook did not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
A3PO = ROOT / "recipes" / "gsm8k_grpo_qwen2.5-1.5b_a3po.yaml"
RECOMPUTE = ROOT / "recipes" / "gsm8k_grpo_qwen2.5-1.5b_recompute.yaml"

pytestmark = pytest.mark.slow  # fresh interpreters that import AReaL and torch


PROBE = """
import json, sys
from areal.api.cli_args import GRPOConfig, load_expr_config
out = {"plugin_loaded": any(m.startswith("areal_a3po") for m in sys.modules)}
try:
    load_expr_config(["--config", A3PO, *OVERRIDES], GRPOConfig)
except Exception as e:
    out["areal"] = f"{type(e).__name__}: {e}"
from areal_a3po.entry import gsm8k_grpo
try:  # main(argv), as AReaL's Ray launcher calls an entry script
    gsm8k_grpo.main(["--config", RECOMPUTE, *OVERRIDES, "actor.prox_logp_method=a3po-step"])
except Exception as e:
    out["override"] = f"{type(e).__module__}.{type(e).__name__}: {e}"
from areal_a3po.cli import main
out["info_rc"] = main(["info"])
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def hookless(tmp_path_factory) -> dict:
    """Two interpreters where ``areal_a3po`` is importable but its hook never ran: ``probe``
    (AReaL's loader, an entry's ``main`` with a plugin provider override, ``a3po info``) and
    ``entry`` (``python -m areal_a3po.entry.gsm8k_grpo --config <the a3po recipe>``)."""
    tmp = tmp_path_factory.mktemp("hookless")
    venv = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_A3PO", "PYTHONPATH"))}
    env["PYTHONPATH"] = str(ROOT)
    fileroot = tmp / "fileroot"
    overrides = [f"cluster.fileroot={fileroot}", f"cluster.name_resolve.nfs_record_root={fileroot}"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(py), *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=300
        )

    constants = f"A3PO, RECOMPUTE, OVERRIDES = {str(A3PO)!r}, {str(RECOMPUTE)!r}, {overrides!r}\n"
    probe = run("-c", constants + PROBE)
    line = next((x for x in probe.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line is not None, probe.stdout[-3000:] + probe.stderr[-3000:]
    entry = run("-m", "areal_a3po.entry.gsm8k_grpo", "--config", str(A3PO), *overrides)
    return {"probe": json.loads(line[len("RESULT") :]), "info": probe.stdout, "entry": entry}


def test_areal_loader_without_hook_gives_generic_unknown_key(hookless):
    """Negative control: what AReaL itself says, with nothing of the plugin loaded."""
    probe = hookless["probe"]
    assert probe["plugin_loaded"] is False
    assert probe["areal"].startswith("ConfigKeyError: Key 'a3po' not in 'PPOActorConfig'")
    assert "full_key: actor.a3po" in probe["areal"] and "areal-a3po" not in probe["areal"]


def test_entry_script_without_hook_names_the_install_route(hookless):
    proc = hookless["entry"]
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("areal_a3po.activation.PluginInactiveError: actor.a3po needs areal-a3po")
    assert f"imported from {ROOT}, a PYTHONPATH or `pip install --target` directory" in last
    assert "site-packages" in last and "a3po info" in last and "pip install --target" in last
    assert "Key 'a3po' not in 'PPOActorConfig'" in proc.stderr  # AReaL's error kept as the cause


def test_entry_script_without_hook_plugin_provider_override_names_the_install_route(hookless):
    """No ``actor.a3po`` block, a plugin provider on the command line: AReaL 2.x refuses it in its
    enum check, areal 1.0.4 would load it and fail at the first step; both are refused here."""
    assert hookless["probe"]["override"].startswith(
        "areal_a3po.activation.PluginInactiveError: actor.prox_logp_method: a3po-step needs "
        "areal-a3po, which is not active in this process"
    ), hookless["probe"]["override"]


def test_a3po_info_without_hook_says_why_and_fails(hookless):
    out = hookless["info"]
    assert hookless["probe"]["info_rc"] == 1
    assert "activation hook installed at interpreter start: False" in out
    assert f"why not: areal_a3po was imported from {ROOT}" in out
    assert "fix: Install areal-a3po into this Python environment's site-packages" in out
    assert "hooked=False" in out
