"""``python3 -m areal_a3po.entry NAME``: print the file path of entry script NAME.

AReaL's SPMD launchers (``python3 -m areal.infra.launcher.{local,ray,slurm}``) take the trainer as
a ``.py`` path, not a module name; use ``"$(python3 -m areal_a3po.entry gsm8k_grpo)"`` there.
"""

from __future__ import annotations

import sys

from areal_a3po.entry import ENTRIES, entry_path


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ENTRIES:
        print(f"usage: python3 -m areal_a3po.entry {{{','.join(ENTRIES)}}}", file=sys.stderr)
        return 2
    print(entry_path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
