"""The README's "to change... go to" table is how a newcomer finds a room: every path it names must
exist, so a move that forgets the table fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_HEADER = "| to change... | go to |"
PATH = re.compile(r"`([\w.*-]+(?:/[\w.*-]*)+)`")  # a backticked name with a slash: a path from the root


def change_table(readme: str) -> list[tuple[str, str]]:
    """The table's rows as (what to change, where to go)."""
    lines = readme.splitlines()
    start = lines.index(TABLE_HEADER) + 2  # past the header and its rule
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[-1]))
    return rows


def named_paths(where: str) -> list[str]:
    return [p for p in PATH.findall(where) if not p.startswith("../")]


def test_every_path_the_change_table_names_exists() -> None:
    rows = change_table((ROOT / "README.md").read_text())
    assert len(rows) > 10
    missing = [(what, p) for what, where in rows for p in named_paths(where) if not list(ROOT.glob(p.rstrip("/")))]
    assert not missing, f"README rows naming paths that do not exist: {missing}"


def test_the_table_has_a_row_for_a_console_page_a_record_field_and_a_setting() -> None:
    rows = [what for what, _ in change_table((ROOT / "README.md").read_text())]
    for topic in ("console page", "score record", "setting"):
        assert any(topic in what for what in rows), f"no row for {topic!r} in the README's change table"


def test_the_path_pattern_reads_paths_not_names() -> None:
    where = "`serving/batch/summary.py` (`weekly_queues`), `features/policy/policies/*.yaml`, `training/`"
    assert named_paths(where) == ["serving/batch/summary.py", "features/policy/policies/*.yaml", "training/"]
