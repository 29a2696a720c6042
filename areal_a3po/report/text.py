"""Text of the report's tables: Markdown pipe tables and intervals, each formatted here only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from areal_a3po.report import stats


def pipe_table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> str:
    """A Markdown pipe table, columns padded; columns from ``align_right_from`` right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[Any]) -> str:
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.rjust(widths[i]) if i >= align_right_from else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = [
        ("-" * (w + 1) + ":") if i >= align_right_from else "-" * (w + 2)
        for i, w in enumerate(widths)
    ]
    return "\n".join([line(header), "|" + "|".join(sep) + "|"] + [line(r) for r in rows])


def interval_text(iv: stats.Interval | None, spec: str = ".3f", *, reason: bool = True) -> str:
    """``est [low, high]``; without an interval the estimate, with the reason when ``reason``."""
    if iv is None:
        return "n/a"
    if not iv.has_interval:
        why = f" ({stats.no_interval_text(iv.n_seeds)})" if reason else ""
        return f"{iv.estimate:{spec}}{why}"
    return f"{iv.estimate:{spec}} [{iv.low:{spec}}, {iv.high:{spec}}]"
