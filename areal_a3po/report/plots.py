"""The report's PNG plots (matplotlib ``Figure`` objects on the Agg canvas, no pyplot state)."""

from __future__ import annotations

import os
from typing import Any

from areal_a3po.report.areal_keys import NAMED_TIME_PARTS
from areal_a3po.report.load import RunData, step_total
from areal_a3po.report.summarise import TIME_OTHER, RunSummary

PLOT_REWARD_STEP = "reward_vs_step.png"
PLOT_REWARD_TIME = "reward_vs_time.png"
PLOT_BREAKDOWN = "step_time_breakdown.png"
PLOT_STALENESS = "staleness_hist.png"


def _figure(width: float = 7.0, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png")


def _finish_reward_vs_step(fig: Any, ax: Any, title: str, path: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("task reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _reward_vs_step(runs, datas, colors, path: str) -> None:

    fig, ax = _figure()
    for i, r in runs:
        series = datas[i].scalars[r.reward.key]
        xs = sorted(series)
        ax.plot(xs, [series[s] for s in xs], color=colors[i], marker=".", label=r.label)
        if r.eval_reward.key:
            es = datas[i].scalars[r.eval_reward.key]
            ex = sorted(es)
            ax.plot(
                ex,
                [es[s] for s in ex],
                color=colors[i],
                linestyle="--",
                marker="o",
                label=f"{r.label} (eval)",
            )
    _finish_reward_vs_step(fig, ax, "Reward vs step", path)


def _reward_vs_time(runs, datas, colors, path: str) -> None:
    """Reward against the cumulative sum of per-step timeperf totals (all steps)."""
    fig, ax = _figure()
    drawn = 0
    for i, r in runs:
        data: RunData = datas[i]
        series = data.scalars[r.reward.key]
        per_step = data.step_times()
        if per_step:
            cum, acc = {}, 0.0
            for s, stages in per_step.items():
                acc += step_total(stages)
                cum[s] = acc
            pts = [(cum[s], series[s]) for s in sorted(series) if s in cum]
            lbl = r.label
        else:  # no timeperf: event wall time since the first logged step
            wall = data.wall_time
            t0 = min(wall.values()) if wall else 0.0
            pts = [(wall[s] - t0, series[s]) for s in sorted(series) if s in wall]
            lbl = f"{r.label} (event wall time)"
        if pts:
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], color=colors[i], marker=".", label=lbl
            )
            drawn += 1
    ax.set_xlabel("cumulative step time (s, sum of timeperf/*)")
    ax.set_ylabel("task reward")
    ax.set_title("Reward vs wall clock")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    _save(fig, path)


def _breakdown(timed: list[tuple[int, RunSummary]], path: str) -> None:
    """Stacked mean step time per stage, one bar per run."""
    fig, ax = _figure(max(5.0, 1.6 * len(timed) + 3.0), 4.5)
    x = list(range(len(timed)))
    bottoms = [0.0] * len(timed)
    for j, part in enumerate((*NAMED_TIME_PARTS, TIME_OTHER)):
        vals = [r.timing.parts_s.get(part) or 0.0 for _, r in timed]
        ax.bar(x, vals, bottom=bottoms, color=f"C{j}", label=part, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
    for xi, (_, r) in zip(x, timed, strict=True):
        ax.annotate(
            f"{r.timing.step_time_s:.3g}s", (xi, bottoms[xi]), ha="center", va="bottom", fontsize=8
        )
    ax.set_xticks(x)
    ax.set_xticklabels([r.label for _, r in timed], rotation=15)
    ax.set_ylabel("seconds per step (mean after warm-up)")
    ax.set_title("Step time breakdown")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def _staleness(runs: list[RunSummary], colors, path: str) -> bool:
    """Grouped bars of token share per lag; False (nothing written) when no run has counts."""
    hists = [
        (i, r.staleness.histogram)
        for i, r in enumerate(runs)
        if r.staleness.histogram and r.staleness.histogram.total > 0
    ]
    if not hists:
        return False
    order = list(dict.fromkeys(lbl for _, h in hists for lbl in h.labels))
    fig, ax = _figure(max(6.0, 0.6 * len(order) * len(hists) + 2.0), 4.2)
    width = 0.8 / len(hists)
    for k, (i, h) in enumerate(hists):
        share = dict(zip(h.labels, h.shares, strict=True))
        xs = [j - 0.4 + width * (k + 0.5) for j in range(len(order))]
        ax.bar(
            xs,
            [share.get(lbl) or 0.0 for lbl in order],
            width=width,
            color=colors[i],
            label=runs[i].label,
        )
    ax.set_xticks(list(range(len(order))))
    ax.set_xticklabels(order)
    ax.set_xlabel("staleness (versions behind)")
    ax.set_ylabel("share of tokens")
    ax.set_title("Staleness histogram")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def write_plots(
    runs: list[RunSummary], datas: list[RunData], out_dir: str
) -> tuple[dict[str, str], list[str]]:
    """Write every plot that has data; return {name: path} and a note per plot skipped."""
    paths: dict[str, str] = {}
    notes: list[str] = []
    colors = [f"C{i % 10}" for i in range(len(runs))]

    with_reward = [(i, r) for i, r in enumerate(runs) if r.reward.key]
    if with_reward:
        paths["reward_vs_step"] = os.path.join(out_dir, PLOT_REWARD_STEP)
        _reward_vs_step(with_reward, datas, colors, paths["reward_vs_step"])
        paths["reward_vs_time"] = os.path.join(out_dir, PLOT_REWARD_TIME)
        _reward_vs_time(with_reward, datas, colors, paths["reward_vs_time"])
    else:
        notes.append("no run logged a task reward: reward plots not written")

    timed = [(i, r) for i, r in enumerate(runs) if r.timing.step_time_s is not None]
    if timed:
        paths["step_time_breakdown"] = os.path.join(out_dir, PLOT_BREAKDOWN)
        _breakdown(timed, paths["step_time_breakdown"])
    else:
        notes.append("no run logged timeperf/*: step-time breakdown not written")

    staleness_path = os.path.join(out_dir, PLOT_STALENESS)
    if _staleness(runs, colors, staleness_path):
        paths["staleness_hist"] = staleness_path
    else:
        notes.append("no run logged token_lag_* counts: staleness histogram not written")
    return paths, notes


PLOT_REWARD_SEEDS = "reward_vs_step_seeds.png"


def write_seed_plots(arms: dict[str, dict[int, Any]], out_dir: str) -> dict[str, str]:
    """Reward vs step per arm: mean across seeds with a min-max band (only with >= 2 seeds).

    ``arms``: label -> seed -> :class:`~areal_a3po.report.record.RunRecord` (training reward).
    """
    if not any(len(by_seed) > 1 for by_seed in arms.values()):
        return {}
    fig, ax = _figure()
    for i, (label, by_seed) in enumerate(arms.items()):
        curves = [rec.reward for rec in by_seed.values() if rec.reward]
        steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if not steps:
            continue
        values = [[c[s] for c in curves] for s in steps]
        mean = [sum(v) / len(v) for v in values]
        color = f"C{i}"
        ax.plot(steps, mean, color=color, label=f"{label} (mean of {len(curves)} seeds)")
        ax.fill_between(
            steps,
            [min(v) for v in values],
            [max(v) for v in values],
            color=color,
            alpha=0.2,
            linewidth=0,
        )
    path = os.path.join(out_dir, PLOT_REWARD_SEEDS)
    _finish_reward_vs_step(fig, ax, "Reward vs step across seeds (band: min-max over seeds)", path)
    return {"reward_seeds": path}


PLOT_SWEEP = "reward_vs_staleness.png"


def write_sweep_plot(sweep: Any, out_dir: str) -> dict[str, str]:
    """Reward of record (mean over seeds, 95 % interval bars) vs staleness per provider."""
    from areal_a3po.report.sweep import final_rewards

    fig, ax = _figure()
    for i, (provider, points) in enumerate(final_rewards(sweep).items()):
        pts = [(k, a.reward) for k, a in points if a.reward is not None]
        if not pts:
            continue
        xs = [k for k, _ in pts]
        ys = [r.estimate for _, r in pts]
        lo = [r.estimate - r.low if r.has_interval else 0.0 for _, r in pts]
        hi = [r.high - r.estimate if r.has_interval else 0.0 for _, r in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], color=f"C{i}", marker="o", capsize=3, label=provider)
    ax.set_xticks(sweep.points)
    ax.set_xlabel("staleness (rollout.max_head_offpolicyness)")
    ax.set_ylabel("reward of record, mean over seeds")
    ax.set_title("Reward vs staleness (bars: 95 % interval over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = os.path.join(out_dir, PLOT_SWEEP)
    _save(fig, path)
    return {"reward_vs_staleness": path}
