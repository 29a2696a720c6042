"""Fill docs/benchmarks.md's generated blocks from the outputs of the benchmark commands.

The tables in docs/benchmarks.md are not typed by hand: each block between
``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` is cut out of a command's own
output, which is kept verbatim next to the document (``docs/benchmarks/``):

* ``seeds``  sections of ``report.md`` of ``a3po compare --seeds 1,2,3``
* ``sweep``  sections of ``report.md`` of ``a3po compare --staleness 2,4,8 --providers ...``
* ``bench``  the output of ``python benchmarks/bench_trainer.py`` from its first line (``model:``
             on; AReaL's own log lines, which go to stdout too, are left out)

    python benchmarks/bench_trainer.py > bench_trainer.txt
    python benchmarks/update_docs.py --seeds runs/seeds/report --sweep runs/sweep/report \
        --bench bench_trainer.txt    # copy the outputs in, then rewrite the blocks
    python benchmarks/update_docs.py --check   # blocks == what the kept outputs give (a test)
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
KEPT = ROOT / "docs" / "benchmarks"
# block -> (kept file, report.md sections cut into the block; None = the whole file as text)
BLOCKS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "seeds": ("seeds-report.md", ("## Across seeds", "## Staleness (policy versions behind)")),
    "sweep": ("sweep-report.md", ("## Staleness sweep", "## Staleness (policy versions behind)")),
    "bench": ("bench_trainer.txt", None),
}
BENCH_FIRST_LINE = "\nmodel: "  # bench_trainer.py's first line
PLOTS = {"seeds": ("reward_vs_step_seeds.png",), "sweep": ("reward_vs_staleness.png",)}
_BLOCK_RE = r"(<!-- generated: {0} -->\n)(.*?)(<!-- end generated: {0} -->)"


def sections(markdown: str, headings: tuple[str, ...]) -> str:
    """The ``## `` sections whose heading starts with one of ``headings``, one level down."""
    parts = re.split(r"(?m)^(?=## )", markdown)
    out = []
    for heading in headings:
        found = [p for p in parts if p.startswith(heading)]
        if not found:
            raise ValueError(f"no section '{heading}' in the report: was it made by a3po compare?")
        out.append("#" + found[0].rstrip() + "\n")
    return "\n".join(out)


def render(name: str) -> str:
    """The block's text from the kept output."""
    kept, headings = BLOCKS[name]
    text = (KEPT / kept).read_text()
    if headings is None:
        return f"```text\n{text.rstrip()}\n```\n"
    return sections(text, headings)


def rewrite(doc: str) -> str:
    for name in BLOCKS:
        pattern = re.compile(_BLOCK_RE.format(re.escape(name)), re.DOTALL)
        if not pattern.search(doc):
            raise ValueError(f"{DOC}: no '<!-- generated: {name} -->' block")
        doc = pattern.sub(lambda m, n=name: m.group(1) + render(n) + m.group(3), doc)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=Path, help="report dir of a3po compare --seeds 1,2,3")
    ap.add_argument("--sweep", type=Path, help="report dir of a3po compare --staleness 2,4,8")
    ap.add_argument("--bench", type=Path, help="saved output of benchmarks/bench_trainer.py")
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs")
    args = ap.parse_args()
    KEPT.mkdir(exist_ok=True)
    for name in ("seeds", "sweep"):
        report_dir = getattr(args, name)
        if report_dir is not None:
            shutil.copyfile(report_dir / "report.md", KEPT / BLOCKS[name][0])
            for plot in PLOTS[name]:
                shutil.copyfile(report_dir / plot, KEPT / f"{name}-{plot}")
    if args.bench is not None:
        text = args.bench.read_text()
        start = text.find(BENCH_FIRST_LINE)
        if start < 0:
            raise SystemExit(
                f"{args.bench}: no '{BENCH_FIRST_LINE}' line: not bench_trainer.py's output"
            )
        (KEPT / BLOCKS["bench"][0]).write_text(text[start + 1 :])
    doc = DOC.read_text()
    new = rewrite(doc)
    if args.check:
        if new != doc:
            print(f"{DOC}: a generated block differs from docs/benchmarks/; run {__file__}")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
