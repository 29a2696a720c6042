"""``a3po`` command line: ``a3po info`` (is the plugin active?) and ``a3po compare``."""

from __future__ import annotations

import argparse
import sys


def _info(args: argparse.Namespace) -> int:
    from areal_a3po import __version__, _bootstrap, registry

    print(f"areal-a3po {__version__}")
    if _bootstrap.disabled():
        print(f"activation: DISABLED by {_bootstrap.DISABLE_ENV}")
    else:
        print(f"activation hook installed at interpreter start: {_bootstrap.installed()}")
    import areal.api.cli_args  # noqa: F401  (triggers the hook, as in any AReaL process)
    import areal.trainer.ppo.actor  # noqa: F401

    from areal_a3po import areal_coupling

    print(
        f"areal {areal_coupling.areal_version()}: supported={areal_coupling.areal_supported()} "
        f"hooked={areal_coupling.hooked()}"
    )
    print("providers (actor.prox_logp_method):")
    for name, p in registry.providers().items():
        flags = ("recompute forward" if p.needs_recompute else "no recompute") + (
            ", AReaL built-in" if p.native else ""
        )
        print(f"  {name:<14} {flags:<34} {p.description}")
    print("losses (actor.a3po.loss): " + ", ".join(registry.losses()))
    return 0 if (areal_coupling.hooked() or _bootstrap.disabled()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="a3po", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_info = sub.add_parser("info", help="print registered providers and whether AReaL is hooked")
    p_info.set_defaults(fn=_info)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
