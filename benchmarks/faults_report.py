"""A kept fault scenario (``docs/benchmarks/faults/*.json``, ``benchmarks/faults.py``) as
docs/benchmarks.md shows it; ``benchmarks/update_docs.py`` calls :func:`markdown`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from areal_a3po.report.text import pipe_table

KEPT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "faults"


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, list):
        return "..".join(_fmt(v) for v in x)
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def markdown(path: Path) -> str:
    """A kept scenario as docs/benchmarks.md shows it (``benchmarks/update_docs.py``)."""
    r = json.loads(path.read_text())
    name, lines = r["scenario"], []
    if name.startswith("kill-resume"):
        lines += [
            f"`{r['provider']}`, {r['steps']} steps, recover checkpoint every "
            f"{r['recover_freq_steps']} steps: SIGKILL to the process group with "
            f"{r['steps_logged_at_kill']} steps logged; {len(r['processes_left_after_kill'])} "
            f"processes left; the same line again resumed at global step "
            f"{_fmt(r['resumed_at_global_step'])} (exit {r['second_exit_code']}, "
            f"{r['second_launch_s']:.0f} s); steps run twice: {_fmt(r['steps_run_twice'])}, steps "
            f"lost: {r['steps_lost']}, event files: {r['event_files']}.",
        ]
        if r["hybrid_state"]:
            lines += ["", "hybrid: " + "; ".join(f"`{s}`" for s in r["hybrid_state"])]
        stats = sorted({k for row in r["per_step"] for run in ("first", "second")
                        for k in row.get(run, {}) if k != "token_lag"})  # fmt: skip
        header = ["step", "token lag (1st / 2nd launch)"] + [f"{k} (1st / 2nd)" for k in stats]
        rows = []
        for row in r["per_step"]:
            a, b = row.get("first", {}), row.get("second", {})
            cells = [str(row["step"]), f"{_fmt(a.get('token_lag'))} / {_fmt(b.get('token_lag'))}"]
            cells += [f"{_fmt(a.get(k))} / {_fmt(b.get(k))}" for k in stats]
            rows.append(cells)
        lines += ["", pipe_table(header, rows, align_right_from=1)]
    elif name == "compare-resume":
        lines += [
            f"`{re.sub(r'^(areal_a3po.cli|a3po) ', 'a3po ', r['command'])}`: interrupted with SIGINT after {r['first_invocation_s']:.0f} "
            f"s (exit {r['first_exit_code']}: `{r['first_last_line']}`), "
            f"{len(r['processes_left_after_interrupt'])} processes left; the same command again: "
            f"exit {r['second_exit_code']} in {r['second_invocation_s']:.0f} s, skipped "
            f"{', '.join(r['arms_skipped']) or 'no arm'} (event files unchanged: "
            f"{r['finished_arms_files_unchanged']}); its report ({r['report_rows']} rows) against "
            f"one rebuilt from the four run directories: "
            f"{len(r['report_cells_that_differ'])} cells differ.",
        ]
        lines += [f"- `{d}`" for d in r["report_cells_that_differ"]]
    else:
        lines += [
            f"SIGKILL to `{r['killed']}` with {r['steps_logged_at_kill']} steps logged: the "
            f"controller exited {_fmt(r['controller_exit_s'])} s later with code "
            f"{_fmt(r['controller_exit_code'])} ({r['steps_logged_at_exit']} steps logged), "
            f"{len(r['processes_left_after_exit'])} processes of the run left. Its last error "
            "lines:",
            "",
            "```text",
            *r["error_lines"],
            "```",
        ]
    return (
        f"### `{name}` (seed {r['seed']}, {r['wall_s'] / 60:.0f} min)\n\n" + "\n".join(lines) + "\n"
    )
