"""Kept ``gpu_check.py`` outputs (``docs/benchmarks/gpu_check/*.json``) and the device wheels'
manifest as docs/benchmarks.md shows them; ``benchmarks/update_docs.py`` calls :func:`markdown`
and :func:`wheels_markdown` (no torch here)."""

from __future__ import annotations

import json
from pathlib import Path

from areal_a3po.report.text import pipe_table

KEPT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "gpu_check"
SCHEMA = "a3po-gpu-check/1"  # gpu_check.py's
NOT_RUN = "not yet run"


def kept() -> list[Path]:
    """The kept gpu_check outputs (the wheels' manifest is the other JSON there)."""
    return [
        p for p in sorted(KEPT.glob("*.json")) if json.loads(p.read_text()).get("schema") == SCHEMA
    ]


def _s(x: float) -> str:
    return f"{x * 1e3:.3f} ms" if x < 1 else f"{x:.3f} s"


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


def one(path: Path) -> str:
    r = json.loads(path.read_text())
    on, shape, batch, actor = r["ran_on"], r["shape"], r["batch"], r["actor"]
    head = (
        f"### `{path.name}`: {on['device_name']}, shape {shape['name']} "
        f"({shape['parameters'] / 1e6:.1f} M parameters)\n\n"
        f"areal {on['areal']}, torch {on['torch']}, Python {on['python']}; actor from "
        f"`{actor['recipe']}`: {actor['dtype']}, attention {actor['attn_impl']}, gradient "
        f"checkpointing {actor['gradient_checkpointing']}, max_tokens_per_mb "
        f"{actor['mb_spec']['max_tokens_per_mb']} ({actor['mb_spec_why']}); batch "
        f"{batch['sequences']} sequences x {batch['prompt']} + {batch['response']} tokens, lags "
        f"{', '.join(map(str, batch['lags']))} behind version {batch['current_version']}; "
        f"peak memory: {r['memory_source']}; stood in for: "
        f"{', '.join(on['stood_in']) or 'nothing'}; all checks passed: {r['ok']}.\n"
    )
    times, checks = [], []
    for run in r["runs"]:
        k, plugin, ratio = (
            run["ppo_n_minibatches"],
            run["plugin_s"],
            run["plugin_s_over_recompute_logp"],
        )
        times.append([
            str(k), _s(run["recompute_logp"]["s"]), _s(run["update recompute"]["s"]),
            _s(run["update a3po-step"]["s"]),
            f"{run['step_s']['a3po-step'] / run['step_s']['recompute']:.3f}",
            *(f"{_s(plugin[p])} ({ratio[p]:.2e})" for p in ("provider", "statistics", "monitor")),
            _mib(run["recompute_logp"]["peak_bytes"]), _mib(run["update recompute"]["peak_bytes"]),
            _mib(run["update a3po-step"]["peak_bytes"]),
        ])  # fmt: skip
        c, lag0 = run["checks"], run["checks"]["lag0"]
        checks.append([
            str(k), f"{c['losses']}: {c['losses_finite']}", str(c["params_finite"]),
            f"{lag0['tokens']} on minibatches {', '.join(map(str, lag0['minibatches']))}",
            f"{lag0['minibatch0_vs_recompute']:.2e}", f"{lag0['later_vs_behave']:.2e}",
            f"{lag0['later_vs_recompute']:.2e}", str(lag0["exact"]),
        ])  # fmt: skip
    time_header = [
        "ppo_n_minibatches", "recompute_logp", "update recompute", "update a3po-step",
        "step a3po-step / recompute", "provider (/ recompute_logp)",
        "statistics (/ recompute_logp)", "monitor (/ recompute_logp)",
        "peak: recompute_logp", "peak: update recompute", "peak: update a3po-step",
    ]  # fmt: skip
    check_header = [
        "ppo_n_minibatches", "losses: all finite", "parameters finite", "lag-0 tokens",
        "minibatch 0 vs recompute", "later vs pi_behave", "later vs recompute",
        f"exact (tolerance {r['tolerance']:g})",
    ]  # fmt: skip
    return "\n".join(
        [head, pipe_table(time_header, times), "", pipe_table(check_header, checks), ""]
    )


def markdown() -> str:
    files = kept()
    on_gpu = [p for p in files if json.loads(p.read_text())["ran_on"]["device"] == "cuda"]
    lines = [one(p) for p in files]
    if not on_gpu:
        lines.append(f"*CUDA, the Qwen2.5-1.5B shape: {NOT_RUN} on a GPU.*\n")
    return "\n".join(lines) if lines else f"*{NOT_RUN}.*\n"


def wheels_markdown() -> str:
    path = KEPT / "device_wheels.json"
    if not path.exists():
        return f"*{NOT_RUN}: `python benchmarks/device_wheels.py fetch` writes the list.*\n"
    m = json.loads(path.read_text())
    rows = [[f"`{w['file']}`", f"{w['bytes'] / 2**20:.2f} MiB"] for w in m["wheels"]]
    rows.append(["**in all**", f"{m['total_bytes'] / 2**20:.2f} MiB"])
    return (
        f"For {m['python']} on {', '.join(m['platforms'][:1])} (and older manylinux tags); the "
        f"working tree and these travel together, at most {m['limit_mib']} MiB:\n\n"
        + pipe_table(["wheel", "size"], rows)
        + "\n"
    )
