"""A normal (wheel) install is a whole install, like the editable install the suite runs under.

The wheel is built from this checkout (``pip wheel``, as the Dockerfile's build stage does) and
installed with pip into a fresh virtual environment whose only view of AReaL/torch is a path entry
to this environment's site-packages (path entries do not run the editable install's ``.pth`` files,
so the plugin there comes from the wheel alone). From outside the checkout, that install activates
the plugin (``a3po info``: hooked=True), ships every recipe (``a3po recipe``), and the embedded
default of ``a3po compare`` finds its CPU recipes in the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests import harness as H

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.version_independent  # packaging only: leg 1 (scripts/test.sh)


def dockerfile_wheel_sources() -> list[str]:
    """The paths the Dockerfile's wheel stage copies from the build context (its ``COPY`` lines)."""
    stage = (ROOT / "Dockerfile").read_text().split(" AS wheel", 1)[1].split("\nFROM ", 1)[0]
    paths = []
    for line in stage.splitlines():
        if line.startswith("COPY "):
            paths += line.split()[1:-1]
    return paths


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel the Dockerfile installs: built by ``pip wheel`` from only what its stage copies."""
    context = tmp_path_factory.mktemp("context")
    for rel in dockerfile_wheel_sources():
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, context / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / rel)
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
            str(context),
        ],
        check=True,
        timeout=300,
    )
    return next(out.glob("areal_a3po-*.whl"))


def test_dockerfile_installs_the_checkouts_wheel_without_an_index():
    text = (ROOT / "Dockerfile").read_text()
    assert set(dockerfile_wheel_sources()) == {
        "pyproject.toml",
        "README.md",
        "areal_a3po.pth",
        "areal_a3po",
        "recipes",
    }
    assert "pip wheel --no-deps --wheel-dir /wheels ." in text
    install = text[text.index("uv pip install") :]
    assert "--no-deps --no-index" in install and "areal_a3po-*.whl" in install
    assert "a3po info" in install  # the build fails unless the plugin is hooked
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:5] == [f"!{p}" for p in dockerfile_wheel_sources()]


def test_wheel_contents_pth_hook_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "areal_a3po.pth" in names
        assert z.read("areal_a3po.pth").decode().startswith("import areal_a3po._bootstrap")
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[areal_a3po.providers]" in eps and "a3po = areal_a3po.providers:A3PO" in eps
    assert "areal_a3po/embedded/vllm_cpu/server.py" in names
    # Every recipe of the checkout, byte for byte (areal_a3po.recipes reads them from there).
    shipped = {n.rsplit("/", 1)[1]: n for n in names if n.startswith("areal_a3po/_recipes/")}
    checkout = {p.name: p for p in (ROOT / "recipes").glob("*.yaml")}
    assert set(shipped) == set(checkout) and len(checkout) >= 6, (shipped, checkout)
    with zipfile.ZipFile(wheel) as z:
        for name, path in checkout.items():
            assert z.read(shipped[name]) == path.read_bytes(), name


def test_pyproject_areal_range_is_the_gates():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (the CI's)
    from areal_a3po.coupling.gate import SUPPORTED_AREAL

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"areal{SUPPORTED_AREAL}" in project["dependencies"]
    assert f"areal[sglang]{SUPPORTED_AREAL}" in project["optional-dependencies"]["sglang"]


@pytest.mark.slow
@pytest.mark.skipif(not H.on_areal_1_0(), reason="end to end: once per CI, on the areal 1.0 leg")
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

    def a3po(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv / "bin" / "a3po"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # outside the checkout
        )

    info = a3po("info")
    assert info.returncode == 0 and "hooked=True" in info.stdout, info.stdout + info.stderr
    listed = a3po("recipe").stdout.split()
    assert sorted(listed) == sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
    got = a3po("recipe", "cpu_tiny_a3po", "--out", str(tmp_path))
    assert got.returncode == 0, got.stderr
    written = tmp_path / "cpu_tiny_a3po.yaml"
    assert written.read_bytes() == (ROOT / "recipes" / "cpu_tiny_a3po.yaml").read_bytes()
    bad = a3po("recipe", "no_such_recipe")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "unknown recipe 'no_such_recipe'" in bad.stderr
    # The embedded default of `a3po compare` reads its CPU recipes from the package.
    probe = "from areal_a3po.embedded import runner; print(runner.recipe_path('a3po'))"
    where = subprocess.run(
        [str(py), "-c", probe], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert where.stdout.strip() == f"{site}/areal_a3po/_recipes/cpu_tiny_a3po.yaml", where


def test_install_without_recipes_compare_and_recipe_say_so_in_one_line(
    tmp_path, monkeypatch, capsys
):
    from areal_a3po import cli, recipes

    monkeypatch.setattr(recipes, "SHIPPED_DIR", tmp_path / "wheel")
    monkeypatch.setattr(recipes, "CHECKOUT_DIR", tmp_path / "checkout")
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--steps", "1", "--out", str(tmp_path / "out"), "--no-progress"])
    message = str(exc.value.code)
    assert message.startswith("a3po compare: no recipes in ") and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing started
    assert cli.main(["recipe", "cpu_tiny_a3po"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("a3po recipe: no recipes in ") and err.count("\n") == 1
