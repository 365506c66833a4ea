"""Data fingerprints: a short hash of every file in a folder (names and bytes), so a model run can
say exactly which events and snapshots it was built from."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def fingerprint(folder: Path | str, skip_hidden: bool = True) -> str:
    """sha256 over the sorted relative paths and contents of the files below `folder` (16 hex)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if skip_hidden and any(part.startswith(".") for part in rel.split("/")):
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]
