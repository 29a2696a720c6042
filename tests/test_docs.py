"""The docs cannot drift from the code.

* docs/configuration.md lists exactly ``A3POConfig``'s fields (name, type, default), its
  validation messages match the errors the code raises for bad values, and its provider table
  matches the registry.
* Every key in docs/metrics.md's key table is emitted by a real training step on AReaL's FSDP actor
  (the ``fsdp_actor`` and ``ppo_step`` fixtures), and every plugin key such a step emits is
  documented.
* Shell commands in README.md and docs/*.md inside a ```bash fence preceded by the marker line
  ``<!-- cpu-test -->`` are run here (with a timeout), unless ``.ci/run`` runs them itself.
  Keep that set small and fast: ``a3po info`` and ``python -c`` one-liners.
* Test names, docs and recipes that the docs cite exist; docs/compare.md names the report's files
  and the CLI's options.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_FILES = [p for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))] if p.exists()]
CPU_MARKER = "<!-- cpu-test -->"
CMD_TIMEOUT_S = 300
METRIC_PREFIXES = ("ppo_actor/update/compute_logp/", "ppo_actor/a3po/", "a3po/")


# ----------------------------------------------------------------------------- markdown helpers


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.replace("\\|", "|").strip() for c in cells[1:-1]]


def tables(path: Path) -> list[tuple[list[str], list[list[str]]]]:
    """Every pipe table of a Markdown file as (header, rows)."""
    out, block = [], []
    for line in [*path.read_text().splitlines(), ""]:
        if line.lstrip().startswith("|"):
            block.append(split_row(line))
            continue
        if len(block) >= 2:
            out.append((block[0], block[2:]))
        block = []
    return out


def table(path: Path, first_header: str) -> list[list[str]]:
    found = [rows for header, rows in tables(path) if header and header[0] == first_header]
    assert len(found) == 1, (
        f"{path.name}: expected one table whose first column is {first_header!r}"
    )
    return found[0]


def codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def code(cell: str) -> str:
    found = codes(cell)
    assert len(found) >= 1, cell
    return found[0]


def pattern(text: str, placeholder: str = r".*?") -> re.Pattern:
    """A documented message with <placeholders> as a regex (placeholders match anything)."""
    parts = re.split(r"<[^<>]+>", text)
    return re.compile(placeholder.join(re.escape(p) for p in parts), re.DOTALL)


# ----------------------------------------------------------------------------- configuration.md

CONFIG_DOC = DOCS / "configuration.md"

# Bad values per option; each error must match a documented message, each documented message
# must be produced by one of them. A new option needs an entry here (and a row in the docs).
BAD_VALUES = {
    "anchor_offset": ["one", -1.0, float("nan")],
    "loss": ["no-such-loss"],
    "staleness_bins": [2.5, True, 0, 65],
    "eval_providers": [["no-such-provider"], ["recompute"]],
    "fallback": ["no-such-provider", "current", "recompute"],
    "calibration_interval": [0, True, 1.5],
    "error_threshold": ["x", -0.1, math.inf],
    "error_metric": ["mse"],
    "validate_inputs": ["yes", 1],
    "update_fidelity_every": [-1, True, 1.5],
    "provider_options": [],
}


def config_rows() -> dict[str, list[str]]:
    rows = table(CONFIG_DOC, "option")
    return {code(r[0]): r for r in rows}


def test_configuration_table_lists_exactly_the_a3poconfig_fields():
    from areal_a3po.config import A3POConfig

    rows = config_rows()
    fields = dataclasses.fields(A3POConfig)
    assert list(rows) == [f.name for f in fields]
    for f in fields:
        row = rows[f.name]
        assert code(row[1]) == f.type, f.name
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert yaml.safe_load(code(row[2])) == default, f.name
        assert row[3], f"{f.name}: no meaning documented"


def test_configuration_validation_messages_match_the_errors_the_code_raises():
    from areal_a3po.config import A3POConfig, A3POConfigError

    rows = config_rows()
    assert set(BAD_VALUES) == set(rows)
    for name, row in rows.items():
        documented = codes(row[4])
        assert documented or row[4].strip() == "none", name
        patterns = [pattern(m) for m in documented]
        used = set()
        for bad in BAD_VALUES[name]:
            with pytest.raises(A3POConfigError) as e:
                A3POConfig(**{name: bad})
            hits = [i for i, p in enumerate(patterns) if p.fullmatch(str(e.value))]
            assert hits, f"{name}={bad!r}: {e.value} is not documented"
            used.update(hits)
        assert used == set(range(len(patterns))), f"{name}: a documented message never occurs"
    A3POConfig(provider_options={"anything": [1, 2]})  # free-form, not validated


def test_configuration_provider_table_matches_the_registry():
    from areal_a3po import registry

    rows = {code(r[0]): r for r in table(CONFIG_DOC, "value")}
    providers = registry.providers()
    assert set(rows) == set(providers)
    for name, p in providers.items():
        path, forward = rows[name][1], rows[name][2]
        assert path == ("AReaL" if p.native else "plugin"), name
        expected = (
            "calibration steps" if p.calibrated else "every step" if p.needs_recompute else "never"
        )
        assert forward == expected, name


def test_configuration_command_line_examples_load_with_areal(tmp_path, load_recipe):
    """The Hydra examples (``--config $RECIPE ...``) load with AReaL's load_expr_config."""
    import shlex

    text = CONFIG_DOC.read_text()
    block = re.search(r"```bash\n(RECIPE=.*?)```", text, re.DOTALL).group(1)
    recipe = ROOT / "recipes" / Path(block.split()[0].split("=", 1)[1]).name
    assert recipe.exists(), recipe
    examples = [c for c in block.replace("\\\n", " ").splitlines() if "--config $RECIPE" in c]
    assert len(examples) >= 3
    for i, line in enumerate(examples):
        tokens = shlex.split(line)
        overrides = tokens[tokens.index("$RECIPE") + 1 :]
        cfg = load_recipe(recipe, tmp_path / str(i), *overrides)
        for override in overrides:
            key, value = override.lstrip("+").split("=", 1)
            node = cfg
            for part in key.split("."):
                node = getattr(node, part)
            assert node == yaml.safe_load(value), override


# ----------------------------------------------------------------------------- metrics.md

METRICS_DOC = DOCS / "metrics.md"
RUNS = [  # (prox_logp_method, actor.a3po options): together they emit every plugin key
    ("a3po", {}),
    ("a3po-linear", {}),
    ("behave", {}),
    ("a3po-metrics", {"update_fidelity_every": 1}),  # a probe update: the update_fidelity keys
    ("current", {}),
    ("hybrid", {"eval_providers": ["a3po-linear"]}),  # step 0 is a calibration step
]


def metric_patterns() -> dict[str, re.Pattern]:
    from areal_a3po import registry

    names = "|".join(re.escape(n) for n in sorted(registry.providers(), key=len, reverse=True))
    subs = {"<provider>": f"(?:{names})", "<d>": r"\d+", "<B>": r"\d+", "<k>": r"\d+"}
    subs["<lag>"] = r"(?:\d+|_ge\d+)"  # a lag bucket of the fidelity keys
    out = {}
    for row in table(METRICS_DOC, "key"):
        key = code(row[0])
        assert key.startswith(METRIC_PREFIXES), key
        regex = ""
        for part in re.split(r"(<\w+>|\{[\w,]+\})", key):
            if part in subs:
                regex += subs[part]
            elif part.startswith("{"):
                regex += "(?:" + "|".join(map(re.escape, part[1:-1].split(","))) + ")"
            else:
                assert "<" not in part and ">" not in part, f"unknown placeholder in {key}"
                regex += re.escape(part)
        out[key] = re.compile(regex)
    return out


@pytest.fixture(scope="module")
def emitted(fsdp_actor, ppo_step) -> dict[str, set[str]]:
    """Plugin keys exported by one PPOTrainer actor step per provider (AReaL's FSDPPPOActor)."""
    out = {}
    for method, options in RUNS:
        stats = ppo_step(fsdp_actor, method, **options).stats
        out[method] = {
            k for k in stats if k.startswith(METRIC_PREFIXES) and not k.endswith("__count")
        }
    return out


def test_metrics_every_emitted_plugin_key_is_documented(emitted):
    patterns = metric_patterns()
    for method, keys in emitted.items():
        undocumented = sorted(k for k in keys if not any(p.fullmatch(k) for p in patterns.values()))
        assert not undocumented, f"{method} emits keys missing from docs/metrics.md: {undocumented}"


def test_metrics_every_documented_key_is_emitted(emitted):
    from areal_a3po.config import A3POConfig

    everything = set().union(*emitted.values())
    for key, p in metric_patterns().items():
        assert any(p.fullmatch(k) for k in everything), (
            f"docs/metrics.md documents {key}: never seen"
        )
    bins = A3POConfig().staleness_bins
    lag_keys = {k.rsplit("/", 1)[1] for k in emitted["a3po"] if "/token_lag_" in k}
    assert lag_keys == {f"token_lag_{d}" for d in range(bins)} | {f"token_lag_ge{bins}"}


def test_metrics_keys_module_lists_every_emitted_and_documented_key(emitted):
    from areal_a3po import keys, registry
    from areal_a3po.config import A3POConfig

    listed = keys.worker_stats(list(registry.providers()), A3POConfig().staleness_bins)
    listed |= {keys.HYBRID_RECOMPUTE, keys.HYBRID_ESCALATED}
    unlisted = sorted(set().union(*emitted.values()) - listed)
    assert not unlisted, f"emitted but missing from areal_a3po/keys.py: {unlisted}"
    for key, p in metric_patterns().items():
        assert any(p.fullmatch(k) for k in listed), f"docs/metrics.md: {key} not in keys.py"


# ----------------------------------------------------------------------------- runnable commands


def cpu_commands() -> list[tuple[str, str]]:
    """(file, command) for every command in a ```bash fence marked with <!-- cpu-test -->."""
    out = []
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != CPU_MARKER:
                continue
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            assert j < len(lines) and lines[j].strip() == "```bash", (
                f"{path.name}:{i + 1}: {CPU_MARKER} must precede a ```bash fence"
            )
            command = ""
            for body in lines[j + 1 :]:
                if body.strip() == "```":
                    break
                if not command and (not body.strip() or body.lstrip().startswith("#")):
                    continue
                command += body.rstrip()
                if command.endswith("\\"):
                    command = command[:-1] + " "
                    continue
                out.append((path.name, command.strip()))
                command = ""
    return out


def ci_commands() -> set[str]:
    run = ROOT / ".ci" / "run"
    if not run.exists():
        return set()
    return {
        line.strip()
        for line in run.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


CPU_COMMANDS = cpu_commands()


def test_docs_mark_some_cpu_commands():
    assert CPU_COMMANDS, f"no {CPU_MARKER} blocks in README.md or docs/"
    assert any(cmd == "a3po info" for _, cmd in CPU_COMMANDS)


@pytest.mark.slow  # each command starts a fresh interpreter that imports AReaL
@pytest.mark.parametrize(
    ("doc", "command"), CPU_COMMANDS, ids=[f"{d}:{c[:40]}" for d, c in CPU_COMMANDS]
)
def test_cpu_marked_command_runs(doc, command):
    if command in ci_commands():
        return  # .ci/run runs it on every CI build
    env = {k: v for k, v in os.environ.items() if not k.startswith("AREAL_A3PO")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CMD_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{doc}: `{command}` exited {proc.returncode}\n{(proc.stdout + proc.stderr)[-3000:]}"
    )


# ----------------------------------------------------------------------------- references


def test_docs_cited_tests_exist():
    cited = set()
    for path in DOC_FILES:
        cited |= set(re.findall(r"(test_\w+\.py)::(test_\w+)", path.read_text()))
    assert cited, "the docs cite no tests"
    for file, name in sorted(cited):
        source = ROOT / "tests" / file
        assert source.exists(), f"cited test file tests/{file} does not exist"
        assert re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE), (
            f"tests/{file} has no test {name}"
        )


def test_docs_cited_docs_and_recipes_exist():
    from areal_a3po.report import REPORT_MD  # an output of `a3po compare`, not a doc

    recipes = {p.name for p in (ROOT / "recipes").glob("*.yaml")}
    for path in DOC_FILES:
        text = path.read_text()
        for name in set(re.findall(r"`([\w-]+\.md)`", text)) - {REPORT_MD}:
            assert (DOCS / name).exists() or (ROOT / name).exists(), f"{path.name}: {name}"
        for stem in re.findall(r"`([\w.\-]+)_\{recompute,a3po\}\.yaml`", text):
            assert {f"{stem}_recompute.yaml", f"{stem}_a3po.yaml"} <= recipes, stem
        for name in re.findall(r"`([\w.\-]+_(?:recompute|a3po)\.yaml)`", text):
            assert name in recipes, f"{path.name}: {name}"


def test_compare_doc_names_the_report_files_and_the_cli_options(capsys):
    from areal_a3po import cli, report

    text = (DOCS / "compare.md").read_text()
    for name in (
        report.REPORT_MD,
        report.REPORT_JSON,
        report.PLOT_REWARD_STEP,
        report.PLOT_REWARD_TIME,
        report.PLOT_BREAKDOWN,
        report.PLOT_STALENESS,
    ):
        assert f"`{name}`" in text, name
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", "--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    for flag in sorted(set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text))):
        assert flag in help_text, (
            f"docs/compare.md mentions {flag}, `a3po compare` has no such option"
        )


def test_benchmarks_doc_tables_are_the_kept_command_outputs():
    """docs/benchmarks.md's tables and numbers are recomputed from docs/benchmarks/, not typed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "update_docs.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (DOCS / "benchmarks.md").read_text()
    blocks = re.findall(r"<!-- generated: ([\w:.-]+) -->\n", text)
    assert {"choosing", "repeat", "bench", "study:tiny-mb1", "study:tiny-mb4"} <= set(blocks)
    for block in blocks:
        body = text.split(f"<!-- generated: {block} -->\n")[1].split("<!-- end generated")[0]
        assert body.strip(), f"docs/benchmarks.md: the {block} block is empty"
    assert text.index("## Choosing a provider") < text.index("## 1.")
    assert (
        "trainer-compute ratio [95 % CI]" in text and "provider cost / recompute stage = " in text
    )
