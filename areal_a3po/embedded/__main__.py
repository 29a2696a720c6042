"""``python -m areal_a3po.embedded OUT_DIR [--steps N] [--staleness K] [--seed S] [--providers a,b] [--ci]``

Runs the embedded default (see :func:`areal_a3po.embedded.runner.run_default`: the CPU recipe twins
through AReaL's local scheduler) and prints each arm's timings and reward curve, then the run dirs.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from areal_a3po.embedded import runner

    p = argparse.ArgumentParser(prog="python -m areal_a3po.embedded", description=__doc__)
    p.add_argument("out_dir")
    p.add_argument("--steps", type=int, default=None, help=f"default {runner.DEFAULT_STEPS}")
    p.add_argument(
        "--ci", action="store_true", help=f"reduced size: {runner.CI_STEPS} steps per arm"
    )
    p.add_argument("--staleness", type=int, default=runner.DEFAULT_STALENESS)
    p.add_argument("--seed", type=int, default=runner.DEFAULT_SEED)
    p.add_argument(
        "--providers",
        default=None,
        help=f"comma separated (default: {','.join(runner.default_providers())})",
    )
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    steps = a.steps or (runner.CI_STEPS if a.ci else runner.DEFAULT_STEPS)
    providers = [x for x in a.providers.split(",") if x] if a.providers else None

    def report(res: runner.ArmResult) -> None:
        print(
            json.dumps(
                {
                    "label": res.label,
                    "run_dir": res.run_dir,
                    "first_step_s": round(res.first_step_s, 1),
                    "train_s": round(res.train_s, 1),
                    "total_s": round(res.total_s, 1),
                    "rewards": [round(r, 3) for r in res.rewards],
                }
            ),
            flush=True,
        )

    results = runner.run_default(
        a.out_dir,
        steps=steps,
        staleness=a.staleness,
        seed=a.seed,
        providers=providers,
        progress=not a.no_progress,
        on_arm_done=report,
    )
    print("\n".join(r.run_dir for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
