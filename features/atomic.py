"""Write a folder all at once: readers see the previous version or the new one, never a mixture,
and a crash or Ctrl-C mid-way leaves the previous version untouched."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_whole(out: Path, marker: str) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces `out`. `out` must be
    absent, empty, or hold `marker` (a file this tool writes), so nothing foreign is overwritten."""
    if out.exists() and any(out.iterdir()) and not (out / marker).exists():
        raise FileExistsError(f"{out} exists and holds something this command did not write; choose another output")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
