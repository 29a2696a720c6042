"""A normal (wheel) install activates the plugin like the editable install the suite runs under.

The wheel is built from this checkout and installed with pip into a fresh virtual environment whose
only view of AReaL/torch is a path entry to this environment's site-packages (path entries do not run
the editable install's ``.pth`` files, so the plugin there comes from the wheel alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    return next(out.glob("areal_a3po-*.whl"))


def test_wheel_contents_pth_hook_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "areal_a3po.pth" in names
        assert z.read("areal_a3po.pth").decode().startswith("import areal_a3po._bootstrap")
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[areal_a3po.providers]" in eps and "a3po = areal_a3po.providers:A3PO" in eps
    assert "areal_a3po/embedded/vllm_cpu/server.py" in names


@pytest.mark.slow
def test_wheel_installed_fresh_venv_activates_in_new_interpreter(wheel, tmp_path, fresh_python):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert (Path(site) / "areal_a3po.pth").exists()
    # AReaL, torch & co. from this environment, as a plain path entry (its .pth files stay inert).
    (Path(site) / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_A3PO", "PYTHONPATH"))}
    code = fresh_python.PROBE + "\nimport areal_a3po; print('FROM', areal_a3po.__file__)"
    proc = subprocess.run(
        [str(py), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    out = fresh_python.result(proc)
    assert out["loss_patched"] and out["has_a3po_field"]
    assert f"FROM {site}" in proc.stdout, "the plugin must come from the wheel install"
