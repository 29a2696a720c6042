"""Train-inference mismatch on the CPU testbeds: vLLM's raw log-probs against processed ones.

For each testbed (``smollm2``: sampling at T = 0.7; ``tiny``: T = 1.0) and each
``vllm.logprobs_mode`` (``raw_logprobs``: vLLM's default, what AReaL ran before the plugin set the
mode; ``processed_logprobs``: the plugin's default), one run of the recompute twin through
``a3po compare``'s runner (the twin's local header line, AReaL's local scheduler, one process group
per run), at ``rollout.max_head_offpolicyness=0`` (:data:`STALENESS`). The recompute is the
baseline every user runs, and with it every lag-0 token of the step counts
(areal_a3po/mismatch.py).

    python benchmarks/mismatch.py run --steps 4 --out /tmp/mismatch   # runs, then keeps
    python benchmarks/mismatch.py keep /tmp/mismatch                  # logs -> kept files
    python benchmarks/mismatch.py table                               # markdown of the kept files

Kept per run (``docs/benchmarks/mismatch/<testbed>-<mode>.json``): what ran, per step the monitor's
``ppo_actor/a3po/mismatch/*`` values, and the warning the actor logged, as its log shows it
(colour codes removed). ``benchmarks/update_docs.py`` renders :func:`markdown` of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "benchmarks" / "mismatch"
TESTBEDS = ("smollm2", "tiny")  # run by default; --testbeds takes any of areal_a3po.testbeds
MODES = ("raw_logprobs", "processed_logprobs")
PROVIDER = "recompute"
# rollout.max_head_offpolicyness: 0, so that every step's tokens are fresh (lag 0) and the monitor
# reads every step; at the recipes' 2, free-running rollouts run ahead and after step 0 a batch
# has no lag-0 token (the monitor then logs n_tokens 0 and nothing else).
STALENESS = 0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def label(testbed: str, mode: str) -> str:
    return f"{testbed}-{mode.split('_')[0]}"


def run(out: Path, steps: int, testbeds: list[str], seed: int) -> None:
    from areal_a3po import testbeds as beds
    from areal_a3po.compare import runner

    for testbed in testbeds:
        beds.get(testbed)  # an unknown name fails before any run, naming the choices
    for testbed in testbeds:
        for mode in MODES:
            name = label(testbed, mode)
            print(f"[mismatch] {name}: {PROVIDER} twin, {steps} steps", flush=True)
            runner.run_arm(
                PROVIDER,
                out / testbed,
                steps=steps,
                seed=seed,
                label=name,
                staleness=STALENESS,
                extra_overrides=[f"+vllm.logprobs_mode={mode}"],
                testbed=testbed,
                progress=False,
            )
    keep(out)


def reduce_run(run_dir: str) -> dict[int, dict[str, float]]:
    """Step -> the monitor's values (``abs_dlogp``, ``dlogp``, ``outside_clip``, ``n_tokens``)
    from the run's tensorboard logs, rounded as kept."""
    from areal_a3po.report.load import load_scalars
    from areal_a3po.report.summarise import mismatch_steps

    steps = mismatch_steps(load_scalars(run_dir))
    return {k: {m: round(v, 6) for m, v in c.items()} for k, c in steps.items()}


def warnings_logged(arm_dir: Path) -> list[str]:
    """The monitor's warning lines from the run's actor log, colour codes removed."""
    out = []
    for log in sorted(arm_dir.glob("areal/logs/*/*/*/actor.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "A3POMismatch" in line:
                out.append(_ANSI.sub("", line).strip())
    return out


def keep(out: Path) -> list[Path]:
    """Every finished run under ``out`` (the runner's ``<testbed>/<label>/summary.json``) ->
    ``docs/benchmarks/mismatch/<label>.json``."""
    KEPT.mkdir(parents=True, exist_ok=True)
    written = []
    for summary in sorted(out.glob("*/*/summary.json")):
        arm = json.loads(summary.read_text())
        testbed, name = summary.parent.parent.name, arm["label"]
        mode = next(m for m in MODES if name == label(testbed, m))
        steps = reduce_run(arm["run_dir"])
        if len(arm.get("rewards", [])) < arm["steps"] or not steps:
            print(f"skipped (incomplete or no monitor keys): {summary}")
            continue
        kept = {
            "testbed": testbed,
            "logprobs_mode": mode,
            "provider": arm["provider"],
            "seed": arm["seed"],
            "steps": arm["steps"],
            "temperature": _temperature(summary.parent),
            "command": arm["command"],
            "per_step": {str(k): v for k, v in steps.items()},
            "warning": warnings_logged(summary.parent),
        }
        path = KEPT / f"{name}.json"
        path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def _temperature(arm_dir: Path) -> float:
    """``gconfig.temperature`` as AReaL saved the run's config."""
    import yaml

    (config,) = arm_dir.glob("areal/logs/*/*/*/config.yaml")
    return float(yaml.safe_load(config.read_text())["gconfig"]["temperature"])


def read_kept(directory: Path = KEPT) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    order = {t: i for i, t in enumerate(TESTBEDS)}  # the default testbeds first, then by name
    return sorted(
        runs,
        key=lambda r: (
            order.get(r["testbed"], len(order)),
            r["testbed"],
            MODES.index(r["logprobs_mode"]),
        ),
    )


def mean_abs(run: dict) -> float:
    """Token-weighted mean |dlogp| over the run's steps."""
    cells = [c for c in run["per_step"].values() if c.get("n_tokens")]
    n = sum(c["n_tokens"] for c in cells)
    return sum(c["abs_dlogp"] * c["n_tokens"] for c in cells) / n


def value(testbed: str, mode: str) -> str:
    """One kept run's mean |dlogp|, for the docs' inline values."""
    found = [r for r in read_kept() if (r["testbed"], r["logprobs_mode"]) == (testbed, mode)]
    return f"{mean_abs(found[0]):.3g} nats" if found else "not yet run"


def markdown(directory: Path = KEPT) -> str:
    runs = read_kept(directory)
    if not runs:
        return "*Not yet run (`python benchmarks/mismatch.py run`).*"
    n_steps = max(len(r["per_step"]) for r in runs)
    head = ["testbed", "`vllm.logprobs_mode`", "T", *(f"step {s}" for s in range(n_steps))]
    lines = [
        "| " + " | ".join([*head, "mean over steps"]) + " |",
        "|" + "---|" * (len(head) + 1),
    ]
    for r in runs:
        cells = []
        for s in range(n_steps):
            c = r["per_step"].get(str(s), {})
            cells.append(
                f"{c['abs_dlogp']:.3g} ({c['outside_clip']:.0%}, {c['n_tokens']:.0f})"
                if c.get("n_tokens")
                else "no fresh token"
            )
        lines.append(
            f"| {r['testbed']} | `{r['logprobs_mode']}` | {r['temperature']:g} | "
            + " | ".join(cells)
            + f" | {mean_abs(r):.3g} |"
        )
    lines += [
        "",
        "Each cell: mean |log π_trainer − log π_behave| (nats) on the step's fresh tokens "
        "(`ppo_actor/a3po/mismatch/abs_dlogp`), then the share of them outside the clip range "
        "from the mismatch alone, and their number (values kept to 1e-6). Runs: "
        + "; ".join(
            f"{label(r['testbed'], r['logprobs_mode'])} `{r['provider']}` seed "
            f"{r['seed']}, {r['steps']} steps"
            for r in runs
        )  # fmt: skip
        + ".",
    ]
    warned = [(r, w) for r in runs for w in r["warning"]]
    for r, w in warned:
        lines += ["", f"The warning, as the actor's log shows it ({label(r['testbed'], r['logprobs_mode'])}):",
                  "", "```text", w, "```"]  # fmt: skip
    silent = [label(r["testbed"], r["logprobs_mode"]) for r in runs if not r["warning"]]
    if silent:
        lines += ["", f"No warning in: {', '.join(silent)}."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run every (testbed, mode), then keep")
    p_run.add_argument("--out", type=Path, required=True)
    p_run.add_argument("--steps", type=int, default=4)
    p_run.add_argument("--seed", type=int, default=1)
    p_run.add_argument("--testbeds", default=",".join(TESTBEDS))
    p_keep = sub.add_parser("keep", help="reduce finished runs into docs/benchmarks/mismatch/")
    p_keep.add_argument("out", type=Path)
    sub.add_parser("table", help="print the markdown of the kept runs")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.out, args.steps, args.testbeds.split(","), args.seed)
    elif args.cmd == "keep":
        for path in keep(args.out):
            print(path)
    else:
        print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
