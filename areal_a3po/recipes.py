"""The AReaL recipes shipped with areal-a3po, and ``python3 -m areal_a3po.recipes NAME [--out PATH]``.

    python3 -m areal_a3po.recipes                          # list the recipes
    python3 -m areal_a3po.recipes gsm8k_grpo_qwen2.5-1.5b_a3po --out /storage/areal-a3po/
    a3po recipe gsm8k_grpo_qwen2.5-1.5b_a3po --out my.yaml   # the same through the CLI

A wheel carries the checkout's ``recipes/*.yaml`` as ``areal_a3po/_recipes/`` (pyproject.toml,
hatch ``force-include``); a checkout or editable install reads ``recipes/`` beside the package.
Either way the recipes are the same files, so ``a3po compare`` (the CPU recipes) and the GPU
recipes' header lines work from a wheel as from a checkout. No AReaL import here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_DIR = PACKAGE_DIR / "_recipes"  # in a wheel install
CHECKOUT_DIR = PACKAGE_DIR.parent / "recipes"  # in a checkout / editable install


class RecipeError(FileNotFoundError):
    """No such recipe (or no recipes at all); the message says what to do."""


def recipes_dir() -> Path:
    """The directory holding the recipes: the wheel's copy, else the checkout's ``recipes/``."""
    for path in (SHIPPED_DIR, CHECKOUT_DIR):
        if path.is_dir() and any(path.glob("*.yaml")):
            return path
    raise RecipeError(
        f"no recipes in {SHIPPED_DIR} (wheel) or {CHECKOUT_DIR} (checkout): reinstall "
        "areal-a3po from a wheel built from a checkout (pip wheel --no-deps .), or pip install -e ."
    )


def names() -> list[str]:
    """The recipes' names (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The recipe file ``name`` (with or without ``.yaml``)."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    path = recipes_dir() / f"{stem}.yaml"
    if "/" in stem or not path.is_file():
        raise RecipeError(f"unknown recipe {name!r}; choose one of: {', '.join(names())}")
    return path


def export(name: str, out: str | Path) -> Path:
    """Copy recipe ``name`` to ``out`` (a directory, or a file path); returns the written file."""
    src = recipe_path(name)
    dest = Path(out)
    if dest.is_dir() or str(out).endswith("/"):
        dest = dest / src.name
    if not dest.parent.is_dir():
        raise RecipeError(f"--out {out}: directory {dest.parent} does not exist (mkdir -p it)")
    shutil.copyfile(src, dest)
    return dest


def main(argv: list[str] | None = None, prog: str = "python3 -m areal_a3po.recipes") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Print or write a recipe shipped with areal-a3po."
    )
    parser.add_argument("name", nargs="?", help="recipe name (without NAME: list them)")
    parser.add_argument("--out", help="write the recipe here (a file, or a directory)")
    args = parser.parse_args(argv)
    try:
        if args.name is None:
            print("\n".join(names()))
        elif args.out is None:
            sys.stdout.write(recipe_path(args.name).read_text())
        else:
            print(export(args.name, args.out))
    except (RecipeError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
