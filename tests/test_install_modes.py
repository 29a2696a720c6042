"""A normal (wheel) install is a whole install, like the editable install the suite runs under.

The wheel is built from exactly what the Dockerfile's wheel stage copies and installed with pip
into a fresh virtual environment whose only view of AReaL/torch is a path entry to this
environment's site-packages (path entries do not run the editable install's ``.pth`` files, so the
plugin there comes from the wheel alone). From outside the checkout, that install activates the
plugin (``a3po info``: hooked=True), ships every recipe (``a3po recipe``), and the embedded default
of ``a3po compare`` finds its CPU recipes in the package.

The Dockerfile's own RUN lines run as written in a pip-less ``uv venv``, as AReaL's runtime image
has (``test_dockerfile_run_lines_pass_in_pipless_uv_venv``).
"""

from __future__ import annotations

import os
import re
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


def dockerfile_stages() -> list[dict]:
    """The Dockerfile's stages in order: ``name``, and ``steps`` as (instruction, arguments), with
    continuation lines joined and comments left out."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: list[dict] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction == "FROM":
            name = args.split(" AS ")[1].strip() if " AS " in args else None
            stages.append({"name": name, "steps": []})
        elif stages:
            stages[-1]["steps"].append((instruction, args.strip()))
    return stages


def dockerfile_wheel_sources() -> list[str]:
    """The paths the Dockerfile's wheel stage copies from the build context (its ``COPY`` lines)."""
    stage = next(s for s in dockerfile_stages() if s["name"] == "wheel")
    return [p for kind, args in stage["steps"] if kind == "COPY" for p in args.split()[:-1]]


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
    runs = [a for stage in dockerfile_stages() for k, a in stage["steps"] if k == "RUN"]
    assert all("-m pip" not in run for run in runs)  # AReaL's image: a uv venv without pip
    install = text[text.index("uv pip install") :]
    assert "--no-deps --no-index" in install and "areal_a3po-*.whl" in install
    assert "a3po info" in install  # the build fails unless the plugin is hooked
    # Both images documented: 1.0.4 as the default build argument, 2.0.0 (renamed organisation).
    assert "ARG AREAL_IMAGE=ghcr.io/inclusionai/areal-runtime:v1.0.4-sglang" in text
    assert "--build-arg AREAL_IMAGE=ghcr.io/areal-project/areal-runtime:v2.0.0-sglang" in text
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:5] == [f"!{p}" for p in dockerfile_wheel_sources()]


def test_wheel_contents_pth_hook_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "areal_a3po.pth" in names
        assert z.read("areal_a3po.pth").decode().startswith("import areal_a3po._bootstrap")
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[areal_a3po.providers]" in eps and "a3po = areal_a3po.providers:A3PO" in eps
    assert "areal_a3po/testbeds/vllm_cpu/server.py" in names
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
    probe = "from areal_a3po.compare import runner; print(runner.recipe_path('a3po'))"
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


# ----------------------------------------------------------------------------- the image's venv

# The wheel stage's command before issue 31: what AReaL's image could not run (a negative control).
OLD_WHEEL_RUN = "python3 -m pip wheel --no-deps --wheel-dir /wheels ."


def uv_executable() -> str | None:
    """uv from this environment (the dev tools of scripts/setup_env.sh), else from PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _pipless_image_env(tmp_path: Path, uv: str) -> dict[str, str]:
    """A stand-in for AReaL's runtime image: ``uv venv`` (no pip) first on PATH, uv beside it.

    AReaL, torch and the build backend (hatchling) come from this environment's site-packages as
    one path entry to a copy of its top-level names without pip (and without areal_a3po: the
    plugin must come from the wheel), as the image holds them in its own environment.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_A3PO", "PYTHONPATH"))}
    env.update(UV_OFFLINE="1", UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    venv = tmp_path / "image-venv"
    subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)], env=env, check=True, timeout=300
    )
    deps = tmp_path / "image-packages"
    deps.mkdir()
    skip = re.compile(r"(pip|areal_a3po|_?_?editable)[-_.]|.*\.pth$|(pip|areal_a3po)$", re.I)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not skip.match(entry.name):
            (deps / entry.name).symlink_to(entry)
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "zz_image_packages.pth").write_text(f"{deps}\n")
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(Path(uv).parent), "/usr/bin", "/bin"])
    env.pop("VIRTUAL_ENV", None)
    return env


def _run_line(
    command: str, paths: dict[str, Path], cwd: Path, env: dict
) -> subprocess.CompletedProcess:
    """A RUN line as the image's /bin/sh runs it, the image's absolute paths moved under tmp."""
    for image_path, here in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        command = re.sub(rf"{re.escape(image_path)}(?=/|\s|$)", str(here), command)
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.skipif(
    uv_executable() is None, reason="uv not installed (scripts/setup_env.sh installs it)"
)
def test_dockerfile_run_lines_pass_in_pipless_uv_venv(tmp_path):
    """The Dockerfile's RUN lines, parsed from it, in a ``uv venv`` without pip on PATH as
    ``python3`` (AReaL's runtime image). Stand-ins: the build context is the wheel stage's COPY
    lines copied here; the image's paths (/wheels, the second stage's copy) live under tmp_path;
    no package index is reached (``UV_OFFLINE``), so uv's isolated build environment, which the
    image fills from the index, is replaced by this environment's hatchling
    (``UV_NO_BUILD_ISOLATION``). Negative control: the command the wheel stage ran before, in the
    same environment, fails with "No module named pip"."""
    uv = uv_executable()
    env = _pipless_image_env(tmp_path, uv)
    no_pip = subprocess.run(
        ["python3", "-c", "import pip"], env=env, capture_output=True, text=True
    )
    assert no_pip.returncode != 0 and "No module named 'pip'" in no_pip.stderr

    wheel_stage, runtime = dockerfile_stages()
    assert wheel_stage["name"] == "wheel" and runtime["name"] is None
    context = tmp_path / "src"  # the wheel stage's WORKDIR, filled by its COPY lines
    for rel in dockerfile_wheel_sources():
        src, dst = ROOT / rel, context / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    copy_from = next(a for k, a in runtime["steps"] if k == "COPY" and a.startswith("--from=wheel"))
    built_in, copied_to = copy_from.split()[1:]
    paths = {built_in.rstrip("/"): tmp_path / "wheels", copied_to.rstrip("/"): tmp_path / "copied"}

    old = _run_line(OLD_WHEEL_RUN, paths, context, env)
    assert old.returncode != 0 and "No module named pip" in old.stderr, old.stderr

    build_env = dict(env, UV_NO_BUILD_ISOLATION="1")
    runs = [a for k, a in wheel_stage["steps"] if k == "RUN"]
    assert len(runs) == 1
    built = _run_line(runs[0], paths, context, build_env)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted((tmp_path / "wheels").glob("areal_a3po-*.whl"))
    assert len(wheels) == 1, wheels

    shutil.copytree(tmp_path / "wheels", tmp_path / "copied")  # COPY --from=wheel
    (install,) = [a for k, a in runtime["steps"] if k == "RUN"]
    done = _run_line(install, paths, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hooked=True" in done.stdout, done.stdout
    assert not (tmp_path / "copied").exists()  # the line's own clean-up ran
    still = subprocess.run(["python3", "-c", "import pip"], env=env, capture_output=True, text=True)
    assert still.returncode != 0, "the image's environment must stay without pip"
