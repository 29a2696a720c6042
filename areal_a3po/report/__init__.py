"""Report half of ``a3po compare``: read AReaL tensorboard logs of several runs and compare them.

Modules, in the order the data flows:

* ``areal_keys``: AReaL's own tag names (the plugin's come from ``areal_a3po.keys``).
* ``load``: event files -> :class:`RunData` (tag -> step -> value), tag matching by suffix.
* ``summarise``: the typed :class:`RunSummary` of one run (timing, reward, staleness,
  approximation error, saving against the baseline), computed from RunData; step times through
  one reduction (means after the warm-up) that ``seeds`` uses on the records too.
* ``columns``: ``METRICS``, the one declaration of every flat number (JSON key, summary-table
  row, format, and the RunSummary field it shows).
* ``render``: the :class:`Report` type, the summary table, report.md and report.json;
  ``render_arms``: the across-seeds tables (report.md and the docs); ``plots``: the PNGs.
* ``record``: the kept data of one run (:class:`RunRecord`, small JSON); ``stats``, ``seeds``,
  ``sweep``: per-seed summaries and intervals across seeds, computed from records.
* ``build``: :class:`Run` (one run to compare) and :func:`compare`, which runs all of the above.

Nothing here prints; :func:`format_table` returns the text to print.
"""

from __future__ import annotations

from areal_a3po.report.areal_keys import EVAL_REWARD_KEYS, NAMED_TIME_PARTS, REWARD_KEYS
from areal_a3po.report.build import RECORDS_DIR, REPORT_JSON, REPORT_MD, Run, compare
from areal_a3po.report.columns import METRICS, TABLE_COLUMNS, Metric
from areal_a3po.report.load import RunData, find_tag, load_scalars
from areal_a3po.report.plots import (
    PLOT_BREAKDOWN,
    PLOT_REWARD_STEP,
    PLOT_REWARD_TIME,
    PLOT_STALENESS,
)
from areal_a3po.report.record import RunRecord, read_records
from areal_a3po.report.render import Report, format_table
from areal_a3po.report.summarise import (
    APPROX_ERROR_METRICS,
    EXACT_TOKEN_SHARE_KEYS,
    RECOMPUTED_KEYS,
    RunSummary,
)

__all__ = [
    "APPROX_ERROR_METRICS",
    "EVAL_REWARD_KEYS",
    "EXACT_TOKEN_SHARE_KEYS",
    "METRICS",
    "NAMED_TIME_PARTS",
    "PLOT_BREAKDOWN",
    "PLOT_REWARD_STEP",
    "PLOT_REWARD_TIME",
    "PLOT_STALENESS",
    "RECOMPUTED_KEYS",
    "RECORDS_DIR",
    "REPORT_JSON",
    "REPORT_MD",
    "REWARD_KEYS",
    "TABLE_COLUMNS",
    "Metric",
    "Report",
    "Run",
    "RunData",
    "RunRecord",
    "RunSummary",
    "compare",
    "find_tag",
    "format_table",
    "load_scalars",
    "read_records",
]
