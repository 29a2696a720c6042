"""A directory built once, atomically, and never over what another tool put there.

The build goes to a temporary sibling that is renamed into place, so a reader never sees half a
build; a marker file (the stamp) records what was built. A non-empty directory without the stamp
is never overwritten; an older build of ours is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable


def read_stamp(out_dir: str, stamp_name: str) -> dict | None:
    """The stamp of a build in ``out_dir``, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(out_dir, stamp_name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def build_once(
    out_dir: str, stamp_name: str, stamp: dict, build: Callable[[str], None], refusal: str
) -> str:
    """``build(tmp_dir)`` into ``out_dir`` unless a build with this ``stamp`` is already there.

    Raises ``FileExistsError(f"{out_dir} {refusal}")`` for a non-empty directory without a stamp.
    """
    existing = read_stamp(out_dir, stamp_name)
    if existing == stamp:
        return out_dir
    if existing is None and os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} {refusal}")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}-build-", dir=parent)
    try:
        build(tmp)
        with open(os.path.join(tmp, stamp_name), "w") as f:
            json.dump(stamp, f, indent=1)
        if os.path.isdir(out_dir):  # empty, or an older build of ours (checked above)
            shutil.rmtree(out_dir)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if read_stamp(out_dir, stamp_name) != stamp:  # not a concurrent identical build either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
