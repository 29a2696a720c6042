"""Rebuild docs/benchmarks.md's tables, plots and numbers from the data kept in docs/benchmarks/.

Nothing in the page is typed by hand: each block between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->`` and each inline value between ``<!-- value: NAME -->`` and
``<!-- end value -->`` is computed here from kept data:

* ``choosing``       the "Choosing a provider" table, one row per (study, provider), a
                     repeated study's rows included and labelled
* ``study:<name>``   a study's across-seeds tables, from its per-run records
                     (``docs/benchmarks/<name>/runs/*.json``, written by ``benchmarks/studies.py``)
* ``repeat``         the same study from two invocations, intervals side by side
* ``bench``          the kept output of ``python benchmarks/bench_trainer.py --setting recipe``
                     (its own text)
* ``bench_smollm2``  the same with ``--setting smollm2`` (the real model)
* ``prox``           the kept output of ``python benchmarks/bench_prox.py`` (its own text)
* ``fidelity``       the fidelity tables, one per kept file ``docs/benchmarks/fidelity/*.json``
                     (written by ``benchmarks/fidelity.py``)
* ``update_fidelity`` the update-fidelity tables (each provider's gradient against the
                     recompute's, beside its noise floor), one per kept file
                     ``docs/benchmarks/update_fidelity/*.json`` (written by
                     ``benchmarks/update_fidelity.py``)
* ``validity``       whether the SmolLM2 baseline learns on held-out data
                     ``docs/benchmarks/smollm2-validity/`` (written by ``benchmarks/validity.py``)
* ``mismatch``       the train-inference mismatch runs ``docs/benchmarks/mismatch/*.json``
                     (written by ``benchmarks/mismatch.py``)
* ``faults``         one section per kept fault scenario ``docs/benchmarks/faults/*.json``
                     (written by ``benchmarks/faults.py``)
* ``smollm2_runs``   the SmolLM2 twins' kept runs ``docs/benchmarks/smollm2/{runs,facts}/``
                     (written by ``benchmarks/smollm2_runs.py keep``)
* ``smollm2_multiturn_runs`` the multi-turn SmolLM2 twins' kept runs
                     ``docs/benchmarks/smollm2-multiturn/{runs,facts}/`` (the same script)
* ``gpu_check``      the device check's kept outputs ``docs/benchmarks/gpu_check/*.json``
                     (written by ``benchmarks/gpu_check.py``; "not yet run" on a GPU until a
                     device machine's output is kept there)
* ``gpu_check_wheels`` the wheels a device machine is given for it
                     (``docs/benchmarks/gpu_check/device_wheels.json``, ``device_wheels.py fetch``)

The statistics are the report's own (``areal_a3po.report.seeds``), run on the kept records, so
``--check`` recomputes every number from the runs, not from a kept report. The inline values
(``docs_values.py``), in this page and in README.md (the SmolLM2 comparison's time, the rows its
switch quotes), docs/metrics.md (the mismatch it measured), docs/compare.md (what the held-out
reward of record's window changes) and docs/method.md (the provider closest to the recompute in
the SmolLM2 fidelity table), are filled the same way.

    python benchmarks/update_docs.py [--bench bench_trainer.txt] [--bench-smollm2 FILE]
                                     [--prox bench_prox.txt]
    python benchmarks/update_docs.py --check    # exit 1 if the page differs from the kept data
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_values import BENCH, BENCH_SMOLLM2, DOC, NOT_RUN, value, verdict  # noqa: E402
from studies import (  # noqa: E402 - the sibling scripts
    KEPT,
    RECOMMEND_FROM,
    RECOMMENDED,
    ROOT,
    RUNS,
    STUDIES,
    Study,
    expected_seconds,
    meta,
    recommended,
    study_arms,
)

from areal_a3po.report.defaults import BASELINE, MARGIN  # noqa: E402
from areal_a3po.report.plots import write_seed_plots  # noqa: E402
from areal_a3po.report.record import read_records  # noqa: E402
from areal_a3po.report.render_arms import arms_tables  # noqa: E402
from areal_a3po.report.seeds import group_records  # noqa: E402
from areal_a3po.report.sittings import sittings  # noqa: E402
from areal_a3po.report.text import interval_text, pipe_table  # noqa: E402

README = ROOT / "README.md"  # inline values only (its times), no generated blocks
METRICS = ROOT / "docs" / "metrics.md"  # inline values only (the mismatch it measured)
COMPARE = ROOT / "docs" / "compare.md"  # inline values only (why the held-out window)
METHOD = ROOT / "docs" / "method.md"  # inline values only (which provider the fidelity favours)
BENCH_FIRST_LINE = "\nmodel: "  # bench_trainer.py's first line
PROX = KEPT / "bench_prox.txt"
PROX_FIRST_LINE = "\nbench_prox: "  # bench_prox.py's first line
PLOT = "reward_vs_step_seeds.png"
_BLOCK_RE = r"(<!-- generated: {0} -->\n)(.*?)(<!-- end generated: {0} -->)"
_VALUE_RE = re.compile(r"(<!-- value: (?P<name>[\w:.-]+) -->)(.*?)(<!-- end value -->)")


# ----------------------------------------------------------------------------- blocks


def study_label(study: Study) -> str:
    """A study's name in the tables; a repeat says which study it repeats."""
    return f"{study.name} (repeat of {study.repeat_of})" if study.repeat_of else study.name


def choosing() -> str:
    """One row per (study, provider); a repeated study's rows follow its own, labelled."""
    header = [
        "study", "testbed", "provider", "ppo_n_minibatches", "staleness", "seeds",
        "reward of record", "trainer-compute ratio [95 % CI]",
        f"reward difference vs {BASELINE} [95 % CI]", "verdict",
    ]  # fmt: skip
    rows = []
    for s in STUDIES.values():
        if not s.evidence:
            continue
        arms = study_arms(s)
        setting = [study_label(s), f"{s.testbed}, {s.pace}", "", str(s.minibatches),
                   str(s.staleness)]  # fmt: skip
        if arms is None:
            for p in s.providers[1:]:
                name = f"recommended by {RECOMMEND_FROM}" if p == RECOMMENDED else p
                rows.append([*setting[:2], name, *setting[3:], *[NOT_RUN] * 5])
            continue
        for a in arms[1:]:
            rows.append(
                [
                    *setting[:2], a.label, *setting[3:], str(len(a.seeds)), a.reward_source,
                    interval_text(a.ratio.get("trainer_compute")),
                    interval_text(a.reward_difference), verdict(a, s),
                ]
            )  # fmt: skip
    return pipe_table(header, rows, align_right_from=3) + "\n"


def study_block(study: Study, plots_dir: Path) -> str:
    arms, m = study_arms(study), meta(study)
    if arms is None or m is None:
        return (
            f"{NOT_RUN}: `python benchmarks/studies.py run {study.name}` "
            f"(expected ~{expected_seconds(study) / 3600:.1f} h on 2 cores).\n"
        )
    cmd = " ".join(["a3po", *m["command"][2:]])  # "-m areal_a3po.cli" -> a3po
    records = read_records(str(KEPT / study.name / RUNS))
    parts = sittings(records)
    when = f"Ran {m['started_utc']} to {m['finished_utc']}"
    if len(parts) > 1:  # resumed: the kept times are the last invocation's
        when = f"Ran in {len(parts)} sittings (listed below), the last {when[4:]},"
    head = [
        f"{when} on {m['machine']['cpus']} CPUs ({m['machine']['platform']}): `{cmd}`.",
        "",
        *(
            [f"**Withdrawn**: {study.withdrawn}. Kept as it ran, no longer evidence.", ""]
            if study.withdrawn
            else []
        ),  # fmt: skip
    ]
    if RECOMMENDED in study.providers:
        chosen, rec = m["providers"][study.providers.index(RECOMMENDED)], recommended()
        if chosen != rec:
            why = f"`{rec}`" if rec else "none (no arm there is both faster and non-inferior)"
            head += [
                f"The provider under test, `{chosen}`, was given with `--provider`: "
                f"{RECOMMEND_FROM}'s kept data recommends {why}.",
                "",
            ]
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = write_seed_plots(group_records(records), str(plots_dir))
    lines = head + arms_tables(arms, MARGIN, study.target, parts)
    if paths:
        lines += [f"![reward across seeds, {study.name}](benchmarks/{study.name}/{PLOT})", ""]
    return "\n".join(lines)


def repeat() -> str:
    rows, ran = [], []
    for s in STUDIES.values():
        if not s.repeat_of:
            continue
        for name in (s.repeat_of, s.name):
            m = meta(STUDIES[name])
            if m is not None:
                ran.append(f"`{name}` ran {m['started_utc']} to {m['finished_utc']}")
        first, second = study_arms(STUDIES[s.repeat_of]), study_arms(s)
        by = [{a.label: a for a in (x or [])} for x in (first, second)]
        for p in s.providers[1:]:
            cells = []
            for get in (
                lambda a: a.ratio.get("trainer_compute"),
                lambda a: a.reward_difference,
            ):
                for d in by:
                    cells.append(interval_text(get(d[p])) if p in d else NOT_RUN)
            cells += [verdict(d[p]) if p in d else NOT_RUN for d in by]
            record = next((d[p].reward_source for d in by if p in d), NOT_RUN)
            rows.append([f"{s.repeat_of} / {s.name}", p, record, *cells])
    header = [
        "invocations", "provider", "reward of record", "trainer ratio, 1st", "trainer ratio, 2nd",
        "reward difference, 1st", "reward difference, 2nd", "verdict, 1st", "verdict, 2nd",
    ]  # fmt: skip
    table = pipe_table(header, rows, align_right_from=3) + "\n"
    return (f"{'; '.join(ran)}.\n\n" if ran else "") + table


def bench(path: Path = BENCH) -> str:
    if not path.exists():
        return f"*{NOT_RUN}.*\n"
    return f"```text\n{path.read_text().rstrip()}\n```\n"


def _kept_files(kept: Path, render) -> str:
    """``render(path)`` of each kept ``*.json`` in ``kept``, joined; "not yet run" without any."""
    files = sorted(kept.glob("*.json"))
    if not files:
        return f"*{NOT_RUN}.*\n"
    return "\n".join(render(f) for f in files)


def blocks(plots_dir: Path) -> dict[str, str]:
    import faults_report  # the sibling scripts that keep and render each block's data
    import fidelity
    import gpu_check_report
    import mismatch
    import smollm2_runs
    import update_fidelity
    import validity

    out = {"choosing": choosing(), "repeat": repeat(), "bench": bench()}
    out["gpu_check"] = gpu_check_report.markdown()
    out["gpu_check_wheels"] = gpu_check_report.wheels_markdown()
    out["bench_smollm2"] = bench(BENCH_SMOLLM2)
    out["prox"] = f"```text\n{PROX.read_text().rstrip()}\n```\n"
    for name, module in (("fidelity", fidelity), ("update_fidelity", update_fidelity)):
        out[name] = _kept_files(
            module.KEPT, lambda f, m=module: f"### `{f.stem}`\n\n{m.markdown(f)}"
        )
    out["mismatch"] = mismatch.markdown() + "\n"
    out["validity"] = validity.markdown()
    out["faults"] = _kept_files(faults_report.KEPT, faults_report.markdown)
    out["smollm2_runs"] = smollm2_runs.markdown()
    out["smollm2_multiturn_runs"] = smollm2_runs.markdown(smollm2_runs.KEPT_MULTITURN)
    for s in STUDIES.values():
        if s.evidence and not s.repeat_of:  # a repeat shows in the ``repeat`` block
            out[f"study:{s.name}"] = study_block(s, plots_dir / s.name)
    return out


def rewrite(doc: str, plots_dir: Path) -> str:
    for name, text in blocks(plots_dir).items():
        pattern = re.compile(_BLOCK_RE.format(re.escape(name)), re.DOTALL)
        if not pattern.search(doc):
            raise ValueError(f"{DOC}: no '<!-- generated: {name} -->' block")
        doc = pattern.sub(lambda m, t=text: m.group(1) + t + m.group(3), doc)
    return _fill_values(doc)


def _fill_values(text: str) -> str:
    return _VALUE_RE.sub(lambda m: m.group(1) + value(m["name"]) + m.group(4), text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, help="saved output of benchmarks/bench_trainer.py")
    ap.add_argument("--bench-smollm2", type=Path, help="the same, --setting smollm2")
    ap.add_argument("--prox", type=Path, help="saved output of benchmarks/bench_prox.py")
    ap.add_argument("--check", action="store_true", help="exit 1 if the page differs")
    args = ap.parse_args()
    for given, kept, first in (
        (args.bench, BENCH, BENCH_FIRST_LINE),
        (args.bench_smollm2, BENCH_SMOLLM2, BENCH_FIRST_LINE),
        (args.prox, PROX, PROX_FIRST_LINE),
    ):
        if given is not None:
            text = "\n" + given.read_text()
            start = text.find(first)
            if start < 0:
                raise SystemExit(f"{given}: no '{first.strip()}' line")
            kept.write_text(text[start + 1 :])
    doc = DOC.read_text()
    pages = (README, METRICS, COMPARE, METHOD)  # pages with inline values only
    inline = {p: p.read_text() for p in pages}
    filled = {p: _fill_values(text) for p, text in inline.items()}
    if args.check:  # plots go to a scratch dir: built from the kept runs, not compared bytewise
        with tempfile.TemporaryDirectory() as tmp:
            new = rewrite(doc, Path(tmp))
        pages = [(DOC, new, doc), *((p, filled[p], inline[p]) for p in inline)]
        differ = [str(p) for p, a, b in pages if a != b]
        if differ:
            print(f"{', '.join(differ)}: differs from what docs/benchmarks/ gives; run {__file__}")
            return 1
        return 0
    DOC.write_text(rewrite(doc, KEPT))
    for p, text in filled.items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
