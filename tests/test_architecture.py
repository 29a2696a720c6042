"""The package's shape, as docs/architecture.md states it: import rules, no circle, file sizes.

The rules table is read from the doc, so the doc and the code cannot disagree. Imports are read
with ``ast`` from every module (function-local imports too; ``if TYPE_CHECKING:`` blocks count for
the circle check, not for the rules table), and the contract modules are also imported in a fresh interpreter to show that AReaL stays out.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "areal_a3po"
DOC = ROOT / "docs" / "architecture.md"
MAX_LINES = 400
AREAL_FREE = ("api", "approx", "keys", "registry", "config", "providers", "calibration")

pytestmark = pytest.mark.version_independent  # leg 1 only (scripts/test.sh)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, name: str, type_checking: bool = False) -> set[str]:
    """Absolute names of everything the module imports (package-relative for our own);
    ``type_checking``: also what it imports under ``if TYPE_CHECKING:``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if (
                not type_checking
                and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"
            ):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = (
                    ["areal_a3po", *package.split(".")] if package not in ("", "__init__") else []
                )
                base = base or ["areal_a3po"]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{module}.{alias.name}"
                found.add(sub if sub.removeprefix("areal_a3po.") in MODULES else module)

    Visitor().visit(ast.parse(path.read_text()))
    return found


def _internal(deps: set[str]) -> set[str]:
    out = set()
    for d in deps:
        if d == "areal_a3po":
            out.add("__init__")
        elif d.startswith("areal_a3po."):
            out.add(d.removeprefix("areal_a3po."))
    return out


GRAPH = {name: _internal(_imports(path, name)) - {name} for name, path in MODULES.items()}
# With the TYPE_CHECKING imports: no circle even there (a type shared by two modules lives where
# both import it without one).
GRAPH_TYPED = {
    name: _internal(_imports(path, name, type_checking=True)) - {name}
    for name, path in MODULES.items()
}


def _rules() -> list[tuple[str, list[str] | None, bool]]:
    text = DOC.read_text()
    table = text.split("<!-- import-rules -->", 1)[1].strip().split("\n\n", 1)[0]
    rules = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        pattern = cells[0].strip("`")
        allowed = None if cells[1] == "any" else re.findall(r"`([^`]+)`", cells[1])
        rules.append((pattern, allowed, cells[2] == "yes"))
    return rules


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return name == pattern[:-2] or fnmatchcase(name, pattern)
    return name == pattern


def _rule_for(name: str):
    hits = [r for r in _rules() if _matches(name, r[0])]
    assert hits, f"areal_a3po/{name} has no row in docs/architecture.md's import-rules table"
    return hits[0]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_follow_architecture_doc(name):
    pattern, allowed, areal_ok = _rule_for(name)
    deps = _imports(MODULES[name], name)
    uses_areal = sorted(d for d in deps if d == "areal" or d.startswith("areal."))
    assert areal_ok or not uses_areal, f"{name} imports AReaL ({uses_areal}); the doc says no"
    if allowed is not None:
        bad = sorted(d for d in GRAPH[name] if not any(_matches(d, a) for a in allowed))
        assert not bad, f"{name} imports {bad}; docs/architecture.md allows only {allowed}"


def test_import_graph_type_checking_included_has_no_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH_TYPED.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH_TYPED):
        if node not in state:
            visit(node)


def test_package_files_stay_under_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    too_long = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"split these files (> {MAX_LINES} lines): {too_long}"


def test_hook_targets_equal_coupling_patchers():
    from areal_a3po import _bootstrap, coupling

    assert set(_bootstrap.TARGETS) == set(coupling.PATCHERS)


def test_contract_modules_fresh_interpreter_import_no_areal():
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(AREAL_FREE)!r}: importlib.import_module('areal_a3po.' + m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'areal' or "
        "m.startswith('areal.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
