"""Write a folder all at once: readers see the previous version or the new one, never a mixture
and never neither, and a crash or Ctrl-C mid-way leaves the previous version untouched.

The new version is filled in a staging folder outside the folder's table (features.platform.layout: the
`<table>.work/staging/` side folder by default) and swapped in with one rename-exchange where the
system has one (Linux renameat2 RENAME_EXCHANGE), else with two renames whose short gap a later
run repairs. A run's staging folder is named after its process id, so the next run can tell a
killed run's leftovers (process gone) from a run still going and remove them."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from features.platform.layout import staging_dir


def staged(out: Path, staging: Path, pid: int | str) -> Path:
    """The folder a run (process `pid`) fills in `staging` before it replaces `out`."""
    return Path(staging) / f"{Path(out).name}.tmp-{pid}"


def _set_aside(out: Path, staging: Path, pid: int | str) -> Path:
    """Where the previous version waits between the two renames of a swap without exchange."""
    return Path(staging) / f"{Path(out).name}.old-{pid}"


@contextmanager
def replaced_whole(out: Path, marker: str, staging: Path | None = None) -> Iterator[Path]:
    """Yield a folder in `staging` (default: `out`'s own staging folder) to fill; on success it
    replaces `out` in one step. `out` must be absent, empty, or hold `marker` (a file this tool
    writes), so nothing foreign is overwritten. Leftovers of killed runs are removed first."""
    out = Path(out)
    staging = Path(staging) if staging is not None else staging_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / marker).exists():
        raise FileExistsError(f"{out} exists and holds something this command did not write; choose another output")
    clean_stale(out, staging)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir(parents=True, exist_ok=True)
    tmp, old = staged(out, staging, os.getpid()), _set_aside(out, staging, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if not out.exists():
            tmp.rename(out)
        elif _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # now the previous version
        else:
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(staging)


def clean_stale(out: Path, staging: Path | None = None) -> None:
    """Leftovers of runs killed mid-way (their process is gone) removed from `out`'s staging folder;
    if one was killed between the two renames of a swap, the previous version is put back. Also
    clears the hidden `.<name>.tmp-PID` siblings that earlier versions staged beside `out`."""
    out = Path(out)
    staging = Path(staging) if staging is not None else staging_dir(out)
    if not out.exists() and staging.is_dir():
        olds = sorted(staging.glob(f"{out.name}.old-*"))
        if olds:
            out.parent.mkdir(parents=True, exist_ok=True)
            olds[-1].rename(out)
    for folder, prefix in ((staging, out.name), (out.parent, f".{out.name}")):
        if not folder.is_dir():
            continue
        for left in [*folder.glob(f"{prefix}.tmp-*"), *folder.glob(f"{prefix}.old-*")]:
            pid = left.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(left, ignore_errors=True)
    _remove_if_empty(staging)


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_if_empty(staging: Path) -> None:
    """The staging folder, and the side folder holding it, removed when nothing is left in them."""
    for folder in (staging, staging.parent):
        try:
            folder.rmdir()
        except OSError:
            return


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (what each name points to trades places); False where the
    system cannot (not Linux, an old kernel or C library, a file system without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
