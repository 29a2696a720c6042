"""The wheels a device machine needs for ``gpu_check.py``, and a check of that list here.

A device machine (one CUDA GPU, no package index, the working tree plus at most 64 MiB of carried
files) has PyTorch, transformers and the packages of ``device_packages.txt``, but not AReaL. This
script fetches, for the device's Python (CPython 3.12, manylinux x86-64), the wheels of
:data:`CARRY` at the versions this environment runs (areal 1.0.4's, where the suite passes) and
builds areal-a3po's own wheel (``gpu_check.py`` imports the plugin from the working tree; the
wheel's metadata registers its providers):

    python benchmarks/device_wheels.py fetch     # -> .device-wheels/ (ignored), and the manifest
                                                 #    docs/benchmarks/gpu_check/device_wheels.json
    python benchmarks/device_wheels.py emulate   # gpu_check.py --shape small, here, in a Python
                                                 #    that sees only the device's packages + CARRY

``emulate`` is how :data:`CARRY` was found: ``python -S`` with one path entry holding this
environment's copies of the device's packages and of :data:`CARRY` (nothing else), the plugin's
wheel installed there with ``pip install --target``; AReaL's module-level imports of Ray and the
experiment trackers get ``device_standins.py``. It checks names, not the device's versions.
``gpu_check_device.sh`` installs the fetched wheels there and runs the check.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".device-wheels"
MANIFEST = ROOT / "docs" / "benchmarks" / "gpu_check" / "device_wheels.json"
DEVICE_PACKAGES = Path(__file__).with_name("device_packages.txt")
# What `import areal` and AReaL's FSDP actor need beyond the device's packages (found by
# `emulate`); openai's httpx2 stack included.
CARRY = (
    "areal", "annotated-types", "antlr4-python3-runtime", "blinker", "colorlog", "datasets",
    "dill", "flask", "httpcore2", "httpx2", "hydra-core", "itsdangerous", "jiter", "lark",
    "multiprocess", "omegaconf", "openai", "orjson", "pybase64", "pydantic", "pydantic-core",
    "sniffio", "tenacity", "tensorboardx", "torchdata", "truststore", "typing-inspection",
)  # fmt: skip
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip
LIMIT_MIB = 64  # the working tree and the carried files, together


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_wheel(dest: Path) -> Path:
    """areal-a3po's wheel from this checkout."""
    for old in dest.glob("areal_a3po-*.whl"):
        old.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dest), str(ROOT)],
        check=True,
    )  # fmt: skip
    return next(dest.glob("areal_a3po-*.whl"))


def fetch(dest: Path = WHEELS) -> dict:
    dest.mkdir(exist_ok=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    pins = [f"{name}=={md.version(name)}" for name in CARRY]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", PYTHON_VERSION, "--implementation", "cp", *platforms,
         "-d", str(dest), *pins],
        check=True,
    )  # fmt: skip
    plugin_wheel(dest)
    files = sorted(dest.glob("*.whl"))
    kept = {_norm(f.name.split("-")[0]) for f in files}
    missing = {_norm(n) for n in CARRY} - kept
    if missing:
        raise SystemExit(f"no wheel fetched for {sorted(missing)}")
    manifest = {
        "python": f"cp{PYTHON_VERSION.replace('.', '')}",
        "platforms": list(PLATFORMS),
        "wheels": [{"file": f.name, "bytes": f.stat().st_size} for f in files],
        "total_bytes": sum(f.stat().st_size for f in files),
        "limit_mib": LIMIT_MIB,
    }
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def device_packages() -> set[str]:
    lines = DEVICE_PACKAGES.read_text().splitlines()
    return {_norm(x) for x in lines if x.strip() and not x.startswith("#")}


def emulate() -> int:
    """gpu_check.py --shape small in a Python that sees only the device's packages + CARRY."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    keep = device_packages() | {_norm(n) for n in CARRY}
    with tempfile.TemporaryDirectory(prefix="device-view-") as tmp:
        view = Path(tmp) / "site"
        view.mkdir()
        for dist in md.distributions(path=[str(site)]):
            if _norm(dist.metadata["Name"]) not in keep:
                continue
            for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..",)}:
                src, dst = site / top, view / top
                if top.endswith(".pth") or not src.exists() or dst.exists():
                    continue
                if top == "areal":  # Hydra resolves its config dir from the real path
                    shutil.copytree(src, dst)
                else:
                    dst.symlink_to(src)
        wheel = plugin_wheel(Path(tmp))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(view),
             str(wheel)],
            check=True,
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AREAL_A3PO"))}
        env["PYTHONPATH"] = str(view)
        base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        out = Path(tmp) / "gpu_check.json"
        proc = subprocess.run(
            [str(base), "-S", str(ROOT / "benchmarks" / "gpu_check.py"), "--shape", "small",
             "--device", "cpu", "--out", str(out)],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            print(proc.stderr[-4000:])
            return 1
        result = json.loads(out.read_text())
        print(f"emulated device: ok={result['ok']}, stood in: {result['ran_on']['stood_in']}")
        return 0 if result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("fetch", "emulate"))
    args = ap.parse_args(argv)
    if args.command == "emulate":
        return emulate()
    manifest = fetch()
    for w in manifest["wheels"]:
        print(f"{w['bytes'] / 2**20:8.2f} MiB  {w['file']}")
    print(f"{manifest['total_bytes'] / 2**20:8.2f} MiB  in all -> {WHEELS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
