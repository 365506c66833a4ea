"""Corrupt events, one declared rule at a time, and watch them stopped at the door.

A small real marketplace is simulated once. The fault cases are derived from the schema's own
declarations (every column's kind, nullability, finiteness, range, allowed values, reference and
event time; every table's key and rules), so a new column or rule is covered without touching this
file. Each case appends one corrupted copy of a real row (with a fresh key, so nothing else refers to
it) or, for structural faults, drops or retypes a column. All cases of one way of breaking the schema
go into one events folder (at different rows, so they cannot interfere) validated once, in Parquet and
in CSV; each case then asserts that its own problem names its table, column and row, and each folder
that nothing else was reported. A few cases also go through the real `seller-risk` binary.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from features.events.schema import MANIFEST_FILE, TABLES, Column, Rule, Table
from features.simulation.run import SimulationConfig, simulate_marketplace
from features.events.validation import Problem, read_cutoff, validate_dir

SMALL = SimulationConfig(n_sellers=100, start=date(2025, 1, 6), weeks=4, seed=3, workers=1)
FORMATS = ("parquet", "csv")
INFINITY = 2**63 - 1  # DuckDB's (and so a Parquet reader's) infinite timestamp, in microseconds
HOUR = timedelta(hours=1)

# A value of another type, by kind, for a column written with the wrong Parquet type.
WRONG_TYPE = {
    "string": pa.array([7], pa.int64()),
    "int": pa.array([1.5], pa.float64()),
    "float": pa.array(["12.50 USD"], pa.string()),
    "bool": pa.array(["yes"], pa.string()),
    "timestamp": pa.array(["2025-01-06"], pa.string()),
}
# CSV text that is not a value of the kind ('2.5' is no int, even though it parses as a number).
BAD_TEXT = {"int": "2.5", "float": "twelve", "bool": "maybe", "timestamp": "not a time"}


# --- the cases, from the schema -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One way one declaration is broken: where, and what the validator must say."""

    way: str
    table: str
    column: str
    says: str  # a fragment of the problem's sentence
    detail: str = ""  # the rule's name, for rule cases

    @property
    def id(self) -> str:
        return f"{self.way}-{self.table}.{self.column}" + (f"-{self.detail}" if self.detail else "")


def _shared(child: Table, via: Column) -> list[str]:
    """Columns of the child that the row it refers to through `via` carries too, pointing at the same
    thing (a return's seller_id and its order's): they must agree."""
    parent = TABLES[via.references.split(".")[0]]
    theirs = {c.name: c.references for c in parent.columns if c.references}
    return [c.name for c in child.columns if c is not via and c.references and theirs.get(c.name) == c.references]


def cell_cases(fmt: str) -> list[Case]:
    """Every row-level way the schema forbids, for every column and rule that declares it."""
    cases = []
    for table in TABLES.values():
        for col in table.columns:

            def add(way: str, says: str, t: str = table.name, c: str = col.name) -> None:
                cases.append(Case(way, t, c, says))

            if not col.nullable:
                add("null", f"no {col.name}")
                if col.kind == "string":
                    add("blank", f"no {col.name}")
            if col.must_be_finite:
                ways = ("nan", "inf", "-inf") if col.kind == "float" else ("inf", "-inf")
                for way in ways:
                    add(way, "that is not a finite")
            if col.min_value is not None:
                add("below", f"{col.name} below" if col.max_value is None else f"{col.name} outside")
            if col.max_value is not None:
                add("above", f"{col.name} above" if col.min_value is None else f"{col.name} outside")
            if col.allowed is not None:
                add("unknown", "outside the allowed values")
            if col.references is not None:
                add("orphan", f"not found in {col.references}")
                for shared in _shared(table, col):
                    cases.append(Case("disagree", table.name, shared, f"different from the {shared}", col.name))
            if col.event_time:
                add("late", "dated after the extract cut-off")
            if col.name == table.key:
                add("duplicate", "appears on more than one row")
            if fmt == "csv" and col.kind in BAD_TEXT:
                add("bad_text", f"not a valid {col.kind}")
            if fmt == "parquet" and col.kind == "int":
                add("overflow", "not a valid int")
        for rule in table.rules:
            cases.append(Case("rule", table.name, rule.columns[-1], f"rule {rule.name}", rule.name))
    return cases


def structural_cases(fmt: str) -> list[Case]:
    """A column missing, or (Parquet) stored with a type of another kind, for every column."""
    cases = [Case("missing", t.name, c.name, "column is missing") for t in TABLES.values() for c in t.columns]
    if fmt == "parquet":
        cases += [Case("wrong_type", t.name, c.name, "has type") for t in TABLES.values() for c in t.columns]
    return cases


def _all_cases() -> list[tuple[str, Case]]:
    return [(fmt, case) for fmt in FORMATS for case in cell_cases(fmt) + structural_cases(fmt)]


ALL_CASES = _all_cases()


# --- the marketplace and its corrupted copies ---------------------------------------------


@dataclass
class Marketplace:
    """The simulated tables (one Arrow table each, rows in file order) and the extract's cut-off."""

    folder: Path
    tables: dict[str, pa.Table]
    cutoff: datetime


@pytest.fixture(scope="module")
def small_marketplace(tmp_path_factory: pytest.TempPathFactory, policy) -> Marketplace:
    out = tmp_path_factory.mktemp("faults") / "events"
    simulate_marketplace(SMALL, policy, out, write_latent=False)
    tables = {name: pq.read_table(sorted((out / name).glob("*.parquet"))[0]) for name in TABLES}
    # the export's own schema may forbid empty values; a corrupted copy needs to hold them
    tables = {name: t.cast(pa.schema([f.with_nullable(True) for f in t.schema])) for name, t in tables.items()}
    for name in TABLES:
        assert len(list((out / name).glob("*.parquet"))) == 1, "one part per table keeps row numbers simple"
    assert validate_dir(out) == []
    return Marketplace(out, tables, read_cutoff(out))


def _numbered(data: pa.Table) -> str:
    """SQL over an Arrow table registered as `data`, with each row's number as n."""
    return "SELECT *, row_number() OVER () - 1 AS n FROM data"


def _first_row(data: pa.Table, condition: str) -> int | None:
    found = duckdb.sql(f"SELECT n FROM ({_numbered(data)}) WHERE {condition} ORDER BY n LIMIT 1").fetchall()
    return found[0][0] if found else None


def _late(m: Marketplace, table: Table, column: Column) -> tuple[int, dict[str, object]]:
    """A row whose `column` is its latest event, with all its times shifted so that this event, and
    only this one, falls just after the cut-off."""
    data = m.tables[table.name]
    others = [c.name for c in table.columns if c.event_time and c.name != column.name]
    latest = "".join(f' AND ("{o}" IS NULL OR "{o}" < "{column.name}")' for o in others)
    row = _first_row(data, f'"{column.name}" IS NOT NULL{latest}')
    if row is None:
        pytest.skip(f"no simulated {table.name} row has {column.name} as its latest event")
    values = data.slice(row, 1).to_pylist()[0]
    shift = m.cutoff + timedelta(microseconds=1) - values[column.name]
    return row, {c.name: values[c.name] + shift for c in table.columns if c.kind == "timestamp" and values[c.name]}


def _rule_break(m: Marketplace, table: Table, rule: Rule) -> tuple[int, dict[str, object]]:
    """A row and a change to one of the rule's columns that breaks this rule and nothing else: a time
    an hour before or after another of the rule's times, an empty value where one may be empty, the
    other bool, or another allowed value."""
    data = m.tables[table.name]
    others = " OR ".join(f"coalesce(({r.bad_when}), false)" for r in table.rules if r is not rule) or "false"
    late = " OR ".join(f"coalesce(\"{c.name}\" > TIMESTAMP '{m.cutoff}', false)" for c in table.columns if c.event_time)
    for name in reversed(rule.columns):
        col = table.column(name)
        candidates = ["NULL"] if col.nullable else []
        if col.kind == "timestamp":
            for other in rule.columns:
                if other != name and table.column(other).kind == "timestamp":
                    candidates += [f'"{other}" - INTERVAL 1 HOUR', f'"{other}" + INTERVAL 1 HOUR']
        if col.kind == "bool":
            candidates.append(f'NOT "{name}"')
        candidates += [f"'{value}'" for value in col.allowed or ()]
        for expression in candidates:
            changed = f'SELECT * REPLACE ({expression} AS "{name}") FROM ({_numbered(data)})'
            found = duckdb.sql(
                f'SELECT n, "{name}" FROM ({changed}) WHERE coalesce(({rule.bad_when}), false) '
                f"AND NOT ({others}) AND NOT ({late or 'false'}) ORDER BY n LIMIT 1"
            ).fetchall()
            if found:
                return found[0][0], {name: found[0][1]}
    raise AssertionError(f"no change to one value of one row breaks rule {table.name}.{rule.name} alone")


@dataclass(frozen=True)
class Corruption:
    """One corrupted copy of a row, appended to its table: the row it copies, the values it changes,
    and (CSV) the text that replaces a value where CSV spells it differently."""

    case: Case
    template: int
    changes: dict[str, object]
    text: dict[str, str | None]


def _corruption(m: Marketplace, case: Case) -> Corruption:
    """How a case breaks its rule. The copy gets a fresh key, so that nothing refers to it and it
    repeats no key, except where the key itself is broken."""
    table = TABLES[case.table]
    col = table.column(case.column)
    key = {table.key: f"fault-{case.id}"}
    way = case.way
    filled = _first_row(m.tables[case.table], f'"{col.name}" IS NOT NULL')  # changing a value, not its presence
    if way in ("nan", "inf", "-inf") and col.kind == "float":
        return Corruption(case, filled, {**key, col.name: float(way)}, {})
    if way in ("inf", "-inf"):  # a timestamp: Parquet holds DuckDB's infinity, CSV writes it out
        raw = INFINITY if way == "inf" else -INFINITY
        return Corruption(case, filled, {**key, col.name: raw}, {col.name: way.replace("inf", "infinity")})
    if way in ("null", "blank"):
        value = None if way == "null" else "   "
        return Corruption(case, 0, {**key, col.name: value}, {})
    if way in ("below", "above"):
        bound, step = (col.min_value, -1) if way == "below" else (col.max_value, 1)
        return Corruption(case, filled, {**key, col.name: (int if col.kind == "int" else float)(bound + step)}, {})
    if way == "unknown":
        return Corruption(case, filled, {**key, col.name: "fault-unknown"}, {})
    if way == "orphan":
        return Corruption(case, filled, {**key, col.name: "fault-404"}, {})
    if way == "disagree":  # another existing value than the one of the row it refers to through case.detail
        data = m.tables[case.table]
        row = _first_row(data, f'"{case.detail}" IS NOT NULL')
        parent, parent_key = col.references.split(".")
        mine = data.column(col.name)[row].as_py()
        other = next(v for v in m.tables[parent].column(parent_key).to_pylist() if v != mine)
        return Corruption(case, row, {**key, col.name: other}, {})
    if way == "late":
        row, shifted = _late(m, table, col)
        return Corruption(case, row, {**key, **shifted}, {})
    if way == "duplicate":
        return Corruption(case, 0, {}, {})  # an exact copy of the first row
    if way == "bad_text":
        return Corruption(case, filled, key, {col.name: BAD_TEXT[col.kind]})
    if way == "overflow":
        return Corruption(case, filled, {**key, col.name: 2**64 - 1}, {})  # the column is stored as UBIGINT
    if way == "rule":
        row, changes = _rule_break(m, table, next(r for r in table.rules if r.name == case.detail))
        return Corruption(case, row, {**key, **changes}, {})
    raise AssertionError(f"no corruption for {way}")


def _cell(value: object, type_: pa.DataType) -> pa.Array:
    """One value as a one-row column; an int in a timestamp column is its raw microseconds."""
    if pa.types.is_timestamp(type_) and isinstance(value, int):
        return pa.array([value], pa.int64()).cast(type_)
    return pa.array([value], type_)


def _set(data: pa.Table, name: str, column: pa.Array) -> pa.Table:
    i = data.schema.get_field_index(name)
    return data.set_column(i, pa.field(name, column.type), column)


def _as_text(data: pa.Table) -> pa.Table:
    """Every column as the text a CSV export holds."""
    return pa.table({name: pc.cast(data.column(name), pa.string()) for name in data.column_names})


def write_events(
    m: Marketplace,
    folder: Path,
    fmt: str,
    corruptions: list[Corruption] = (),
    drop: dict[str, str] | None = None,
    retype: dict[str, str] | None = None,
) -> dict[str, int]:
    """An events folder in one format: the marketplace's tables with the corrupted rows appended,
    columns dropped or stored with a wrong type; returns each case's appended row number."""
    folder.mkdir(parents=True)
    shutil.copy(m.folder / MANIFEST_FILE, folder / MANIFEST_FILE)
    appended: dict[str, int] = {}
    for name, data in m.tables.items():
        mine = [c for c in corruptions if c.case.table == name]
        for c in mine:
            if c.case.way == "overflow":
                data = _set(data, c.case.column, data.column(c.case.column).cast(pa.uint64()))
        rows, texts = [], []
        for c in mine:
            row = data.slice(c.template, 1)
            for column, value in c.changes.items():
                if not (fmt == "csv" and column in c.text):
                    row = _set(row, column, _cell(value, data.schema.field(column).type))
            appended[c.case.id] = data.num_rows + len(rows)
            rows.append(row)
            texts.append(c.text if fmt == "csv" else {})
        data = pa.concat_tables([data, *rows])
        if fmt == "csv":
            data = _as_text(data)
            for i, text in enumerate(texts):
                for column, value in text.items():
                    cells = data.column(column).to_pylist()
                    cells[data.num_rows - len(rows) + i] = value
                    data = _set(data, column, pa.array(cells, pa.string()))
        if retype and name in retype:
            column = retype[name]
            wrong = WRONG_TYPE[TABLES[name].column(column).kind]
            data = _set(data, column, pa.concat_arrays([wrong] * data.num_rows))
        if drop and name in drop:
            data = data.drop_columns([drop[name]])
        if fmt == "csv":
            pacsv.write_csv(data, folder / f"{name}.csv")
        else:
            pq.write_table(data, folder / f"{name}.parquet")
    return appended


# --- validating every case ----------------------------------------------------------------


STRUCTURAL = ("missing", "wrong_type")


def batch_of(case: Case) -> str:
    """Cases validated together: all of a row-level way (each at its own row); for a structural way,
    the n-th column of every table (one missing column per table at a time)."""
    if case.way in STRUCTURAL:
        return f"{case.way}-{TABLES[case.table].column_names.index(case.column)}"
    return case.way


@dataclass
class Outcome:
    problems: list[Problem]
    rows: dict[str, int]
    cases: list[Case]


@pytest.fixture(scope="module")
def outcomes(small_marketplace: Marketplace, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Outcome]:
    """The validator's verdict on a batch's folder, computed once per (format, batch)."""
    seen: dict[tuple[str, str], Outcome] = {}
    root = tmp_path_factory.mktemp("corrupted")

    def outcome(fmt: str, batch: str) -> Outcome:
        if (fmt, batch) not in seen:
            cases = [c for f, c in ALL_CASES if f == fmt and batch_of(c) == batch]
            folder = root / f"{fmt}-{batch}"
            if cases[0].way in STRUCTURAL:
                chosen = {c.table: c.column for c in cases}
                rows = write_events(small_marketplace, folder, fmt, **{"drop" if cases[0].way == "missing" else "retype": chosen})
            else:
                rows = write_events(small_marketplace, folder, fmt, [_corruption(small_marketplace, c) for c in cases])
            seen[fmt, batch] = Outcome(validate_dir(folder), rows, cases)
        return seen[fmt, batch]

    return outcome


@pytest.mark.parametrize(("fmt", "case"), ALL_CASES, ids=[f"{f}-{c.id}" for f, c in ALL_CASES])
def test_each_fault_is_reported_with_its_table_column_and_row(outcomes, fmt: str, case: Case) -> None:
    outcome = outcomes(fmt, batch_of(case))
    mine = [p for p in outcome.problems if (p.table, p.column) == (case.table, case.column) and case.says in p.problem]
    assert len(mine) == 1, f"{case.id}: {[str(p) for p in outcome.problems]}"
    problem = mine[0]
    line = str(problem)
    assert line.startswith(f"{case.table}.{case.column}: ") and "\n" not in line
    if case.way in STRUCTURAL:
        assert problem.count == 0 and problem.examples == ()
        return
    row = outcome.rows[case.id]
    expected = [0, row] if case.way == "duplicate" else [row]
    assert [e["row"] for e in problem.examples] == expected and problem.count == len(expected)
    assert f"row {expected[0]}" in line


BATCHES = sorted({(fmt, batch_of(case)) for fmt, case in ALL_CASES})


@pytest.mark.parametrize(("fmt", "batch"), BATCHES, ids=[f"{f}-{b}" for f, b in BATCHES])
def test_each_fault_is_reported_once_and_nothing_else(outcomes, fmt: str, batch: str) -> None:
    outcome = outcomes(fmt, batch)
    reported = Counter((p.table, p.column) for p in outcome.problems)
    expected = Counter((c.table, c.column) for c in outcome.cases if c.id in outcome.rows or c.way in STRUCTURAL)
    assert reported == expected, [str(p) for p in outcome.problems]


def test_the_cases_cover_every_declaration() -> None:
    """Every column is broken at least by removing it; every kind of declaration has cases."""
    ways = Counter(case.way for _, case in ALL_CASES)
    columns = sum(len(t.columns) for t in TABLES.values())
    assert ways["missing"] == 2 * columns and ways["wrong_type"] == columns
    assert ways["rule"] == 2 * sum(len(t.rules) for t in TABLES.values())
    assert ways["nan"] == 2 * sum(c.kind == "float" and c.finite for t in TABLES.values() for c in t.columns)
    for way in ("null", "blank", "inf", "-inf", "below", "above", "unknown", "orphan", "disagree", "late",
                "duplicate", "bad_text", "overflow"):
        assert ways[way] > 0, way


# --- the real commands --------------------------------------------------------------------

CLI = str(Path(sys.executable).with_name("seller-risk"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def _case(fmt: str, case_id: str) -> tuple[str, Case]:
    return next((f, c) for f, c in ALL_CASES if f == fmt and c.id == case_id)


# A float, a timestamp, a reference and a rule, in both formats.
BINARY_CASES = [
    _case("parquet", "nan-orders.order_value"),
    _case("csv", "inf-refunds.amount"),
    _case("parquet", "-inf-orders.delivered_at"),
    _case("csv", "orphan-returns.order_id"),
    _case("parquet", "rule-contacts.first_response_at-response_before_contact"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "case"), BINARY_CASES, ids=[f"{f}-{c.id}" for f, c in BINARY_CASES])
def test_validate_and_features_stop_at_the_fault_in_one_line(small_marketplace, tmp_path: Path, fmt: str, case: Case) -> None:
    events, out = tmp_path / "events", tmp_path / "features"
    row = write_events(small_marketplace, events, fmt, [_corruption(small_marketplace, case)])[case.id]

    checked = run("validate", "--events", str(events))
    built = run("features", "--events", str(events), "--out", str(out))

    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert "1 problem(s)" in checked.stdout
    rows = [line for line in checked.stdout.splitlines() if f" {case.table} " in line]
    assert len(rows) == 1 and f" {case.column} " in rows[0] and f"row={row}," in rows[0], checked.stdout
    assert built.returncode == 2 and "Traceback" not in built.stdout + built.stderr
    assert built.stderr.count("\n") == 1, built.stderr
    assert f"{case.table}.{case.column}: 1 row " in built.stderr and f"e.g. row {row} " in built.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]  # no snapshots, no leftovers


def _contents(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_features_leaves_an_older_output_untouched(small_marketplace, tmp_path: Path) -> None:
    out = tmp_path / "features"
    assert run("features", "--events", str(small_marketplace.folder), "--out", str(out)).returncode == 0
    before = _contents(out)
    fmt, case = _case("parquet", "nan-refunds.amount")
    write_events(small_marketplace, tmp_path / "events", fmt, [_corruption(small_marketplace, case)])

    built = run("features", "--events", str(tmp_path / "events"), "--out", str(out))

    assert built.returncode == 2 and "refunds.amount" in built.stderr and "Traceback" not in built.stderr
    assert _contents(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "features"]


def test_score_from_corrupt_events_stops_in_one_line_and_writes_nothing(small_marketplace, trained, tmp_path: Path) -> None:
    """The weekly batch job builds its snapshot from the events, so it validates them first too."""
    models = Path(trained.tracking_uri.removeprefix("sqlite:///")).parent
    fmt, case = _case("parquet", "inf-orders.order_value")
    events, out = tmp_path / "events", tmp_path / "scores"
    row = write_events(small_marketplace, events, fmt, [_corruption(small_marketplace, case)])[case.id]

    scored = run("score", "--events", str(events), "--out", str(out), "--models", str(models),
                 "--model", f"models:/seller-risk/{trained.version}")

    assert scored.returncode == 2 and "Traceback" not in scored.stdout + scored.stderr
    errors = [line for line in scored.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "orders.order_value: 1 row " in errors[0] and f"e.g. row {row} " in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]
