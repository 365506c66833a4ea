"""Checks a marketplace's event export against the canonical schema, then opens it for the pipeline.

Every check is derived from the declarations in `features.events.schema`: which tables and columns must
be there, their types, which may be empty (blank text is empty), which must be finite (no NaN or
infinity), the allowed values and ranges, the keys, the foreign keys, the row-level rules and the
columns that may not lie after the extract's cut-off. Each bad value is reported once, by the check
it breaks first (a value that didn't cast, then an empty one, then a non-finite one), not again by
the range, reference or rule checks that read it. Nothing here restates
a column list.

DuckDB does the work: it scans Parquet in place (tens of millions of orders never become a pandas
frame), each table is checked by one aggregate query, and only failing checks are queried again for
up to five example rows. Every problem names its table, its column and the offending rows (0-based
row numbers within the file, plus the file when a table is a folder of parts); all problems are
collected, none stops the others, and bad input never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from features.events.schema import (
    ARROW_TYPES,
    DUCKDB_TYPES,
    MANIFEST_FILE,
    TABLES,
    Column,
    Kind,
    Rule,
    Table,
)

MAX_EXAMPLES = 5
"""How many offending rows a problem shows."""

_ROW = "__row"  # 0-based row number within its file
_FILE = "__file"  # the file a row came from, when a table is a folder of Parquet parts
_TEXT = "__text__"  # prefix of a column's value as found (CSV text, a wider stored type), kept beside its cast
_SOURCES = "_events_source"  # schema holding each table's rows as found
_TYPED = "_events_typed"  # schema holding each table's usable columns, cast to their kind

_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_TIMESTAMP_TYPES = frozenset(
    {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE", "TIMESTAMP WITH TIME ZONE"}
)
_NULL_TYPE = '"NULL"'  # a column with no values at all; it fits any kind


# --- what a problem looks like ------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One way an export breaks the schema: where, what, how many rows, and a few of them."""

    table: str
    column: str | None  # None for problems with the whole table (e.g. it is missing)
    problem: str  # a sentence for the person who owns the export
    count: int = 0  # offending rows; 0 for structural problems (missing column, wrong type)
    examples: tuple[dict, ...] = field(default=(), hash=False)  # up to 5 rows: row, [file,] key, columns involved

    def __str__(self) -> str:
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        line = f"{where}: {self.problem}"
        if self.examples:
            line += f", e.g. {_describe_example(self.examples[0])}"
        if len(self.examples) > 1:
            line += f"; also {', '.join(_where(e) for e in self.examples[1:])}"
        return line


class EventValidationError(ValueError):
    """An export that breaks the schema; `problems` lists everything wrong with it."""

    def __init__(self, problems: list[Problem], source: str = "events") -> None:
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'' if len(self.problems) == 1 else 's'}"
        lines = [f"{source} do not match the event schema ({count}):", *(f"  - {p}" for p in self.problems)]
        super().__init__("\n".join(lines))


def _describe_example(example: dict) -> str:
    """'row 17 (order_id=O12, shipped_at=...)', naming the file when there is one."""
    where = _where(example)
    values = ", ".join(f"{k}={_show(v)}" for k, v in example.items() if k not in ("row", "file"))
    return f"{where} ({values})" if values else where


def _where(example: dict) -> str:
    """'row 17', or 'row 17 of part-1.parquet' when the table is a folder of parts."""
    where = f"row {example.get('row')}"
    return where + (f" of {example['file']}" if "file" in example else "")


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _say(template: str, n: int) -> str:
    """Fills a sentence template with a row count: '{rows} {has} ...' -> '1 row has ...'."""
    one = n == 1
    words = {
        "{rows}": f"{n} row" if one else f"{n} rows",
        "{has}": "has" if one else "have",
        "{is}": "is" if one else "are",
        "{s}": "s" if one else "",
    }
    for token, word in words.items():
        template = template.replace(token, word)
    return template


# --- the extract's cut-off ----------------------------------------------------------------


def read_cutoff(events_dir: Path) -> datetime | None:
    """The extract's cut-off from its manifest, as naive UTC; None when there is no manifest or it
    names no cut-off. Raises ValueError when the manifest is unreadable or the time malformed."""
    path = Path(events_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not readable JSON: {error}") from error
    value = manifest.get("cutoff") if isinstance(manifest, dict) else None
    if value is None:
        return None
    try:
        return _naive_utc(datetime.fromisoformat(str(value)))
    except ValueError as error:
        raise ValueError(f"{path}: cutoff {value!r} is not an ISO 8601 time") from error


def _naive_utc(moment: datetime) -> datetime:
    """Timestamps in the schema are naive UTC; an aware time is converted to that."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _resolve_cutoff(events_dir: Path, cutoff: datetime | None) -> tuple[datetime, list[Problem]]:
    """The cut-off to check against: the caller's, else the manifest's, else now."""
    if cutoff is not None:
        return _naive_utc(cutoff), []
    try:
        found = read_cutoff(events_dir)
    except ValueError as error:
        problem = Problem(MANIFEST_FILE, "cutoff", f"cannot be read ({error}); checked against now instead")
        return _now(), [problem]
    return (found if found is not None else _now()), []


# --- public entry points ------------------------------------------------------------------


def validate_dir(events_dir: Path | str, cutoff: datetime | None = None) -> list[Problem]:
    """Everything wrong with an export folder (empty when it is fit for the pipeline)."""
    con = _connect()
    try:
        return _validate_dir(con, Path(events_dir), cutoff)
    finally:
        con.close()


def validate_frames(frames: dict[str, pd.DataFrame], cutoff: datetime | None = None) -> list[Problem]:
    """Everything wrong with in-memory event tables; a row number is the row's position in its frame."""
    con = _connect()
    try:
        problems: list[Problem] = []
        sources: dict[str, _Source] = {}
        for table in TABLES.values():
            if table.name not in frames:
                problems.append(Problem(table.name, None, "table is missing: no frame of that name"))
                continue
            found = _attach_frame(con, table, frames[table.name])
            if isinstance(found, Problem):
                problems.append(found)
            else:
                sources[table.name] = found
        moment = _naive_utc(cutoff) if cutoff is not None else _now()
        return problems + _validate_sources(con, sources, moment)
    finally:
        con.close()


def open_events(events_dir: Path | str, cutoff: datetime | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per event table, typed as the schema says, over a folder
    that passed validation; raises EventValidationError listing every problem otherwise."""
    events_dir = Path(events_dir)
    con = _connect()
    try:
        problems = _validate_dir(con, events_dir, cutoff)
        if problems:
            raise EventValidationError(problems, source=f"Events in {events_dir}")
        for table in TABLES.values():
            con.execute(_view_sql(table))
    except BaseException:
        con.close()
        raise
    return con


def load_events(events_dir: Path | str, cutoff: datetime | None = None) -> dict[str, pd.DataFrame]:
    """Every event table as a frame with the schema's columns and dtypes, or EventValidationError
    (and nothing) when anything is wrong. For data that fits in memory; the pipeline uses open_events."""
    con = open_events(events_dir, cutoff)
    try:
        return {name: _fetch_frame(con, table) for name, table in TABLES.items()}
    finally:
        con.close()


def _validate_dir(con: duckdb.DuckDBPyConnection, events_dir: Path, cutoff: datetime | None) -> list[Problem]:
    moment, problems = _resolve_cutoff(events_dir, cutoff)
    sources: dict[str, _Source] = {}
    for table in TABLES.values():
        found = _attach_path(con, table, events_dir)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            sources[table.name] = found
    return problems + _validate_sources(con, sources, moment)


def _view_sql(table: Table) -> str:
    """The pipeline's view of a table: exactly the schema's columns, in order, in canonical types."""
    columns = ", ".join(
        f"CAST(c.{_q(col.name)} AS {DUCKDB_TYPES[col.kind]}) AS {_q(col.name)}" for col in table.columns
    )
    return f"CREATE VIEW main.{_q(table.name)} AS SELECT {columns} FROM {_typed(table.name)} c"


def _pandas_dtype(column: Column) -> str:
    """The dtype of a column in a loaded frame: numpy where it can't be empty, nullable where it can."""
    dtypes: dict[Kind, str] = {
        "string": "str",
        "int": "Int64" if column.nullable else "int64",
        "float": "float64",
        "bool": "boolean" if column.nullable else "bool",
        "timestamp": "datetime64[us]",
    }
    return dtypes[column.kind]


def _fetch_frame(con: duckdb.DuckDBPyConnection, table: Table) -> pd.DataFrame:
    frame = con.execute(f"SELECT * FROM main.{_q(table.name)}").df()
    return frame.astype({col.name: _pandas_dtype(col) for col in table.columns})


# --- finding and reading the tables -------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One table as DuckDB sees it, under _SOURCES: its columns plus a row number per row."""

    table: Table
    text: bool = False  # CSV: every value arrived as text and is cast here
    root: Path | None = None  # a folder of Parquet parts: rows also carry their file
    broken: dict[str, str] = field(default_factory=dict)  # frame columns that are no single type: why
    raw: frozenset[str] = frozenset()  # columns whose value as found is kept beside its cast (see _inspect)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps in text are UTC
    con.execute(f"CREATE SCHEMA {_SOURCES}; CREATE SCHEMA {_TYPED}")
    return con


def _q(identifier: str) -> str:
    """A quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _source(name: str) -> str:
    return f"{_SOURCES}.{_q(name)}"


def _typed(name: str) -> str:
    return f"{_TYPED}.{_q(name)}"


def _short_error(error: BaseException) -> str:
    """The first line of an error, which is the informative one for DuckDB and Arrow."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _candidates(events_dir: Path, name: str) -> list[Path]:
    """Where a table may be: NAME.parquet (file or folder), NAME.csv, or a folder NAME/."""
    paths = [events_dir / f"{name}.parquet", events_dir / f"{name}.csv", events_dir / name]
    return [p for p in paths if p.is_file() or p.is_dir()]


def _attach_path(con: duckdb.DuckDBPyConnection, table: Table, events_dir: Path) -> _Source | Problem:
    """Makes a table's file(s) readable as _SOURCES.<table>, or says why it can't."""
    found = _candidates(events_dir, table.name)
    if not found:
        expected = f"{table.name}.parquet, {table.name}.csv or {table.name}/"
        return Problem(table.name, None, f"table is missing: no {expected} in {events_dir}")
    if len(found) > 1:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found)
        return Problem(table.name, None, f"table is ambiguous: found {names}; keep exactly one")
    path = found[0]
    try:
        if path.is_dir():
            return _attach_parquet_folder(con, table, path)
        if path.suffix == ".csv":
            return _attach_csv(con, table, path)
        con.execute(f"CREATE VIEW {_source(table.name)} AS {_parquet_sql([path], several=False)}")
        return _Source(table)
    except (duckdb.Error, pa.ArrowException, OSError, ValueError) as error:
        return Problem(table.name, None, f"{path.name} could not be read: {_short_error(error)}")


def _parquet_sql(paths: list[Path], several: bool) -> str:
    """Reads Parquet lazily, numbering rows within each file (and naming the file when several)."""
    listed = ", ".join(_lit(str(p.absolute())) for p in paths)
    if not several:
        return (
            f"SELECT * EXCLUDE (file_row_number), file_row_number AS {_q(_ROW)} "
            f"FROM read_parquet([{listed}], file_row_number = true)"
        )
    return (
        f"SELECT * EXCLUDE (file_row_number, filename), file_row_number AS {_q(_ROW)}, filename AS {_q(_FILE)} "
        f"FROM read_parquet([{listed}], file_row_number = true, filename = true, union_by_name = true)"
    )


def _attach_parquet_folder(con: duckdb.DuckDBPyConnection, table: Table, folder: Path) -> _Source | Problem:
    parts = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not parts:
        return Problem(table.name, None, f"table is missing: folder {folder.name}/ holds no .parquet files")
    con.execute(f"CREATE VIEW {_source(table.name)} AS {_parquet_sql(parts, several=True)}")
    return _Source(table, root=folder)


def _attach_csv(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> _Source:
    """Reads a CSV with every schema column as text (only empty fields are empty), numbered by data row."""
    options = pacsv.ConvertOptions(
        column_types={col.name: pa.string() for col in table.columns},
        null_values=[""],
        strings_can_be_null=True,
    )
    data = pacsv.read_csv(path, convert_options=options)
    data = data.append_column(_ROW, pa.array(np.arange(data.num_rows, dtype=np.int64)))
    return _register(con, table, data, _Source(table, text=True))


def _attach_frame(con: duckdb.DuckDBPyConnection, table: Table, frame: pd.DataFrame) -> _Source | Problem:
    """Turns the schema's columns of a frame into Arrow (by their own dtypes) and registers them."""
    if not isinstance(frame, pd.DataFrame):
        return Problem(table.name, None, f"is a {type(frame).__name__}, not a pandas DataFrame")
    arrays: dict[str, pa.Array] = {}
    broken: dict[str, str] = {}
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        try:
            array = pa.array(frame[col.name], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as error:
            broken[col.name] = f"values of mixed types ({_short_error(error)})"
            continue
        arrays[col.name] = array.cast(ARROW_TYPES[col.kind]) if pa.types.is_null(array.type) else array
    arrays[_ROW] = pa.array(np.arange(len(frame), dtype=np.int64))
    try:
        return _register(con, table, pa.table(arrays), _Source(table, broken=broken))
    except (duckdb.Error, pa.ArrowException, ValueError) as error:
        return Problem(table.name, None, f"frame could not be read: {_short_error(error)}")


def _register(con: duckdb.DuckDBPyConnection, table: Table, data: pa.Table, source: _Source) -> _Source:
    name = f"__arrow_{table.name}"
    con.register(name, data)
    con.execute(f"CREATE VIEW {_source(table.name)} AS SELECT * FROM {_q(name)}")
    return source


# --- columns: present, and of a usable type -----------------------------------------------


def _fits(kind: Kind, duck_type: str) -> bool:
    """Whether a stored DuckDB type can stand for a schema kind without losing meaning."""
    if duck_type == _NULL_TYPE:
        return True
    if kind == "string":
        return duck_type == "VARCHAR" or duck_type.startswith("ENUM(")
    if kind == "int":
        return duck_type in _INTEGER_TYPES
    if kind == "float":
        return duck_type in ("FLOAT", "DOUBLE") or duck_type.startswith("DECIMAL") or duck_type in _INTEGER_TYPES
    if kind == "bool":
        return duck_type == "BOOLEAN"
    return duck_type in _TIMESTAMP_TYPES


def _stored_expression(column: Column, duck_type: str) -> str:
    """A typed (Parquet or frame) column cast to its canonical type; aware times become naive UTC.
    A value its canonical type cannot hold (a UBIGINT above 2^63, a date beyond the TIMESTAMP range)
    becomes empty, and is reported as not valid (see _may_not_fit)."""
    raw = f"s.{_q(column.name)}"
    if duck_type == "TIMESTAMP WITH TIME ZONE":
        return f"timezone('UTC', {raw})"
    if _may_not_fit(column, duck_type):
        return f"TRY_CAST({raw} AS {DUCKDB_TYPES[column.kind]})"
    return f"CAST({raw} AS {DUCKDB_TYPES[column.kind]})"


def _may_not_fit(column: Column, duck_type: str) -> bool:
    """Whether some value of a stored type that fits the kind may still not cast to the canonical type."""
    return duck_type not in (DUCKDB_TYPES[column.kind], _NULL_TYPE, "TIMESTAMP WITH TIME ZONE") and column.kind != "string"


_INTEGER_TEXT = r"\s*[+-]?[0-9]+(\.0*)?\s*"
"""An int column's CSV text: digits, optionally with a zero fraction ('3.0' from a float export), never '2.5'."""


def _text_expression(column: Column) -> str:
    """A CSV column cast from text; values that don't parse become empty (and are reported).
    'nan' and 'inf' parse as floats (and are reported as not finite)."""
    raw = f"s.{_q(column.name)}"
    if column.kind == "string":
        return raw
    if column.kind == "timestamp":
        return f"timezone('UTC', TRY_CAST({raw} AS TIMESTAMPTZ))"
    if column.kind == "int":
        return f"CASE WHEN regexp_full_match({raw}, {_lit(_INTEGER_TEXT)}) THEN TRY_CAST(trim({raw}) AS BIGINT) END"
    return f"TRY_CAST({raw} AS {DUCKDB_TYPES[column.kind]})"


def _inspect(source: _Source, stored: dict[str, str]) -> tuple[list[Problem], dict[str, str], frozenset[str]]:
    """Missing and mistyped columns, the typed expression of every usable one, and the usable columns
    whose cast may fail on a value (CSV text, or a stored type wider than the canonical one): their
    value as found is kept beside, so that a failed cast is reported rather than taken for empty."""
    table = source.table
    problems: list[Problem] = []
    usable: dict[str, str] = {}
    raw: set[str] = set()
    for col in table.columns:
        expected = f"{col.kind} ({DUCKDB_TYPES[col.kind]})"
        if col.name in source.broken:
            problems.append(Problem(table.name, col.name, f"holds {source.broken[col.name]}, expected {expected}"))
        elif col.name not in stored:
            problems.append(Problem(table.name, col.name, f"column is missing (expected {expected})"))
        elif source.text:
            usable[col.name] = _text_expression(col)
            if col.kind != "string":
                raw.add(col.name)
        elif not _fits(col.kind, stored[col.name]):
            problems.append(Problem(table.name, col.name, f"has type {stored[col.name]}, expected {expected}"))
        else:
            usable[col.name] = _stored_expression(col, stored[col.name])
            if _may_not_fit(col, stored[col.name]):
                raw.add(col.name)
    return problems, usable, frozenset(raw)


def _typed_view_sql(source: _Source, usable: dict[str, str]) -> str:
    """The table's usable columns in their canonical types, beside row number, file and the values
    as found of the columns in `source.raw`."""
    columns = [f"s.{_q(_ROW)}"] + ([f"s.{_q(_FILE)}"] if source.root else [])
    columns += [f"{expression} AS {_q(name)}" for name, expression in usable.items()]
    columns += [f"s.{_q(name)} AS {_q(_TEXT + name)}" for name in usable if _needs_cast(source, name)]
    return f"CREATE VIEW {_typed(source.table.name)} AS SELECT {', '.join(columns)} FROM {_source(source.table.name)} s"


def _needs_cast(source: _Source, name: str) -> bool:
    """Whether a column's value as found sits beside its cast (as _TEXT + name)."""
    return name in source.raw


def _prepare(con: duckdb.DuckDBPyConnection, source: _Source) -> tuple[list[Problem], set[str], int, _Source]:
    """Structural problems of one table, the columns the row checks may use, its row count, and the
    source knowing which columns it keeps as found."""
    name = source.table.name
    try:
        described = con.execute(f"DESCRIBE {_source(name)}").fetchall()
        problems, usable, raw = _inspect(source, {row[0]: row[1] for row in described})
        source = replace(source, raw=raw)
        con.execute(_typed_view_sql(source, usable))
        (size,) = con.execute(f"SELECT count(*) FROM {_source(name)}").fetchone()
    except duckdb.Error as error:
        return [Problem(name, None, f"could not be read: {_short_error(error)}")], set(), 0, source
    return problems, set(usable), size, source


def _validate_sources(con: duckdb.DuckDBPyConnection, sources: dict[str, _Source], cutoff: datetime) -> list[Problem]:
    """Structural checks of every table first, then row checks on the columns that survived."""
    problems: list[Problem] = []
    usable: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    prepared: dict[str, _Source] = {}
    for name, source in sources.items():
        found, usable[name], sizes[name], prepared[name] = _prepare(con, source)
        problems += found
    for name, source in prepared.items():
        checks = _checks(source, usable, sizes, cutoff)
        problems += _row_problems(con, source, checks, source.table.key in usable[name])
    return problems


# --- row checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lookup:
    """What a foreign key points to, one row per key, joined to the checked table `c` as `alias`:
    the key, and the lowest and highest value of each column both tables carry and must agree on."""

    table: str
    column: str
    parent: str
    key: str
    shared: tuple[str, ...]
    narrow: bool  # the parent is the bigger table: read only the keys the child uses

    @property
    def alias(self) -> str:
        return _q(f"ref_{self.column}")

    def join_sql(self) -> str:
        key = f"p.{_q(self.key)}"
        columns = [f"{key} AS {_q(self.key)}"]
        columns += [f"min(p.{_q(s)}) AS {_q('lo_' + s)}, max(p.{_q(s)}) AS {_q('hi_' + s)}" for s in self.shared]
        used = f"SELECT DISTINCT x.{_q(self.column)} FROM {_typed(self.table)} x"
        conditions = [f"{key} IN ({used})"] if self.narrow else []
        if TABLES[self.parent].column(self.key).kind == "string":
            conditions.append(f"trim({key}) <> ''")  # a blank key is no key (the null check says so): nothing matches it
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        parent = f"SELECT {', '.join(columns)} FROM {_typed(self.parent)} p{where} GROUP BY {key}"
        return f"LEFT JOIN ({parent}) {self.alias} ON {self.alias}.{_q(self.key)} = {_col(self.column)}"


@dataclass(frozen=True)
class _Check:
    """One row-level check: the SQL condition an offending row meets (over the typed view `c` and
    the lookups it joins), the sentence that reports it, and the (label, SQL) values an example shows."""

    column: str | None
    condition: str
    message: str  # a _say template
    shown: tuple[tuple[str, str], ...]
    joins: tuple[_Lookup, ...] = ()


def _col(name: str) -> str:
    return f"c.{_q(name)}"


def _shown(table: Table, usable: set[str], *names: str) -> tuple[tuple[str, str], ...]:
    """The key column (when usable) and then the columns involved, each once."""
    ordered = ([table.key] if table.key in usable else []) + [n for n in names if n in usable]
    return tuple((name, _col(name)) for name in dict.fromkeys(ordered))


def _checks(
    source: _Source, usable: dict[str, set[str]], sizes: dict[str, int], cutoff: datetime
) -> list[_Check]:
    """Every row check the schema declares for a table, limited to the columns it can run on."""
    table, mine = source.table, usable[source.table.name]
    lookups = _lookups(table, usable, sizes)
    return [
        *_cast_checks(source, mine),
        *_null_checks(source, mine),
        *_finite_checks(table, mine),
        *_value_checks(table, mine),
        *_reference_checks(table, mine, lookups),
        *_agreement_checks(table, mine, lookups),
        *_rule_checks(source, mine),
        *_cutoff_checks(table, mine, cutoff),
    ]


def _cast_checks(source: _Source, usable: set[str]) -> list[_Check]:
    """Values that are not values of their column's kind: CSV text that doesn't parse, a stored
    value out of the canonical type's range."""
    table = source.table
    checks = []
    for col in table.columns:
        if col.name in usable and _needs_cast(source, col.name):
            text = _col(_TEXT + col.name)
            checks.append(
                _Check(
                    col.name,
                    f"{text} IS NOT NULL AND {_col(col.name)} IS NULL",
                    f"{{rows}} {{has}} a value that is not a valid {col.kind} ({DUCKDB_TYPES[col.kind]})",
                    (*_shown(table, usable), (col.name, text)),
                )
            )
    return checks


def _null_checks(source: _Source, usable: set[str]) -> list[_Check]:
    """Empty values where the schema requires one (a value that didn't cast is not empty; blank
    text is, as an empty CSV field is)."""
    table = source.table
    checks = []
    for col in table.columns:
        if col.name in usable and not col.nullable:
            value = _col(_TEXT + col.name) if _needs_cast(source, col.name) else _col(col.name)
            role = "the table's key" if col.name == table.key else "a required column"
            condition = f"{value} IS NULL" + (f" OR {_blank(col)}" if col.kind == "string" else "")
            checks.append(
                _Check(col.name, condition, f"{{rows}} {{has}} no {col.name} ({role})", _shown(table, usable))
            )
    return checks


def _blank(column: Column) -> str:
    """The condition of a string value that holds only spaces (or nothing)."""
    return f"trim({_col(column.name)}) = ''"


def _present(column: Column) -> str:
    """The condition of a value that is there: not empty, and for a required string not blank
    (a blank one is reported by the null check alone)."""
    present = f"{_col(column.name)} IS NOT NULL"
    return present + (f" AND NOT {_blank(column)}" if column.kind == "string" and not column.nullable else "")


def _not_finite(column: Column) -> str:
    """The condition of a value that is NaN or infinite (for floats and timestamps)."""
    return f"{_col(column.name)} IS NOT NULL AND NOT isfinite({_col(column.name)})"


def _finite_checks(table: Table, usable: set[str]) -> list[_Check]:
    """NaN, inf and -inf where the schema wants a finite number or time."""
    what = {"float": "a finite number (NaN, inf or -inf)", "timestamp": "a finite time (infinity or -infinity)"}
    return [
        _Check(
            col.name,
            _not_finite(col),
            f"{{rows}} {{has}} {_a(col.name)} that is not {what[col.kind]}",
            _shown(table, usable, col.name),
        )
        for col in table.columns
        if col.name in usable and col.must_be_finite
    ]


def _number(value: float) -> str:
    return f"{value:g}"


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _value_checks(table: Table, usable: set[str]) -> list[_Check]:
    """Values outside the declared set or range."""
    checks = []
    for col in table.columns:
        if col.name not in usable:
            continue
        value, shown = _col(col.name), _shown(table, usable, col.name)
        if col.allowed is not None:
            allowed = ", ".join(_lit(v) for v in col.allowed)
            checks.append(
                _Check(
                    col.name,
                    f"{_present(col)} AND {value} NOT IN ({allowed})",
                    f"{{rows}} {{has}} {_a(col.name)} outside the allowed values ({', '.join(col.allowed)})",
                    shown,
                )
            )
        low, high = col.min_value, col.max_value
        if low is not None and high is not None:
            condition, what = f"{value} < {low!r} OR {value} > {high!r}", f"outside {_number(low)}..{_number(high)}"
        elif low is not None:
            condition, what = f"{value} < {low!r}", f"below {_number(low)}"
        elif high is not None:
            condition, what = f"{value} > {high!r}", f"above {_number(high)}"
        else:
            continue
        if col.must_be_finite:  # NaN and infinities are the finite check's to report
            condition = f"isfinite({value}) AND ({condition})"
        checks.append(_Check(col.name, condition, f"{{rows}} {{has}} {_a(col.name)} {what}", shown))
    return checks


def _lookups(table: Table, usable: dict[str, set[str]], sizes: dict[str, int]) -> dict[str, _Lookup]:
    """One lookup per checkable foreign key of the table, by the column holding it."""
    mine, found = usable[table.name], {}
    for col in table.columns:
        if col.references is None or col.name not in mine:
            continue
        parent, key = col.references.split(".", 1)
        if key not in usable.get(parent, set()):
            continue  # the referenced table or column is missing or broken, and reported as such
        agreed = _shared_references(table, TABLES[parent], col.name)
        shared = tuple(s.name for s in agreed if s.name in mine and s.name in usable[parent])
        narrow = sizes.get(parent, 0) > sizes.get(table.name, 0)
        found[col.name] = _Lookup(table.name, col.name, parent, key, shared, narrow)
    return found


def _shared_references(child: Table, parent: Table, via: str) -> list[Column]:
    """Columns of the child, other than the link itself, that the parent also has, pointing at the same thing."""
    theirs = {c.name: c.references for c in parent.columns if c.references is not None}
    return [c for c in child.columns if c.name != via and c.references and theirs.get(c.name) == c.references]


def _reference_checks(table: Table, usable: set[str], lookups: dict[str, _Lookup]) -> list[_Check]:
    """Foreign keys pointing at nothing (an empty reference in a nullable column is fine)."""
    return [
        _Check(
            name,
            f"{_present(table.column(name))} AND {ref.alias}.{_q(ref.key)} IS NULL",
            f"{{rows}} refer{{s}} to {_a(name)} not found in {ref.parent}.{ref.key}",
            _shown(table, usable, name),
            (ref,),
        )
        for name, ref in lookups.items()
    ]


def _agreement_checks(table: Table, usable: set[str], lookups: dict[str, _Lookup]) -> list[_Check]:
    """A row and the row it refers to must agree on the references they share: a return's seller
    is its order's seller. A shared value that points at nothing itself is left to its reference check."""
    checks = []
    for name, ref in lookups.items():
        for shared in ref.shared:
            mine, low, high = _col(shared), f"{ref.alias}.{_q('lo_' + shared)}", f"{ref.alias}.{_q('hi_' + shared)}"
            theirs = f"CASE WHEN {mine} <> {low} THEN {low} ELSE {high} END"
            condition = f"{ref.alias}.{_q(ref.key)} IS NOT NULL AND ({mine} <> {low} OR {mine} <> {high})"
            joins: tuple[_Lookup, ...] = (ref,)
            own = lookups.get(shared)
            if own is not None:
                condition += f" AND {own.alias}.{_q(own.key)} IS NOT NULL"
                joins = (ref, own)
            checks.append(
                _Check(
                    shared,
                    condition,
                    f"{{rows}} {{has}} {_a(shared)} different from the {shared} of its {ref.parent} row "
                    f"(matched on {name})",
                    (*_shown(table, usable, name, shared), (f"{ref.parent}.{shared}", theirs)),
                    joins,
                )
            )
    return checks


def _rule_checks(source: _Source, usable: set[str]) -> list[_Check]:
    """The table's cross-column rules; a problem is reported on the rule's last column (the later event)."""
    table, checks = source.table, []
    for rule in table.rules:
        if not set(rule.columns) <= usable:
            continue
        checks.append(
            _Check(
                rule.columns[-1],
                _rule_condition(source, rule),
                f"{{rows}} break{{s}} rule {rule.name}: {rule.message}",
                _shown(table, usable, *rule.columns),
            )
        )
    return checks


def _rule_condition(source: _Source, rule: Rule) -> str:
    """The rule's own condition; rows whose values in it didn't cast are left to the cast check, and
    NaN or infinite ones to the finite check."""
    columns = [source.table.column(n) for n in rule.columns]
    unparsed = [f"{_col(_TEXT + c.name)} IS NOT NULL AND {_col(c.name)} IS NULL" for c in columns if _needs_cast(source, c.name)]
    unparsed += [_not_finite(c) for c in columns if c.must_be_finite]
    condition = f"({rule.bad_when})"
    return condition if not unparsed else f"{condition} AND NOT ({' OR '.join(f'({u})' for u in unparsed)})"


def _cutoff_checks(table: Table, usable: set[str], cutoff: datetime) -> list[_Check]:
    """Events dated after the extract was cut: the export leaks the future or has broken clocks."""
    moment = cutoff.isoformat(sep=" ")
    return [
        _Check(
            col.name,
            f"{_col(col.name)} > TIMESTAMP {_lit(moment)}" + (f" AND isfinite({_col(col.name)})" if col.must_be_finite else ""),
            f"{{rows}} {{is}} dated after the extract cut-off {moment}",
            _shown(table, usable, col.name),
        )
        for col in table.columns
        if col.event_time and col.name in usable
    ]


# --- running the checks -------------------------------------------------------------------


def _from_sql(table: Table, joins: tuple[_Lookup, ...] | list[_Lookup]) -> str:
    unique = {ref.alias: ref for ref in joins}.values()
    return " ".join([f"{_typed(table.name)} c", *(ref.join_sql() for ref in unique)])


def _row_problems(
    con: duckdb.DuckDBPyConnection, source: _Source, checks: list[_Check], key_usable: bool
) -> list[Problem]:
    """Runs all of a table's checks (and the key's uniqueness) in one query, then fetches examples
    for those that failed."""
    table = source.table
    measures = [(f"count(*) FILTER (WHERE {check.condition})", check.joins) for check in checks]
    if key_usable:
        # distinct hashes: a cheap exact-enough screen, confirmed by _duplicates before anything is reported
        key = _col(table.key)
        measures.append((f"count({key}) - count(DISTINCT hash({key}))", ()))
    if not measures:
        return []
    counts, problems = _count(con, table, measures)
    for check, n in zip(checks, counts, strict=False):
        if n:
            examples = _examples(con, source, check.condition, check.shown, check.joins)
            problems.append(Problem(table.name, check.column, _say(check.message, n), n, examples))
    if key_usable and counts[-1]:
        problems += _duplicates(con, source)
    return problems


def _count(
    con: duckdb.DuckDBPyConnection, table: Table, measures: list[tuple[str, tuple[_Lookup, ...]]]
) -> tuple[list[int | None], list[Problem]]:
    """Every measure in one query; when that fails, each on its own so one broken check spares the rest."""
    joins = [ref for _, refs in measures for ref in refs]
    try:
        row = con.execute(f"SELECT {', '.join(m for m, _ in measures)} FROM {_from_sql(table, joins)}").fetchone()
        return list(row), []
    except duckdb.Error:
        pass
    counts: list[int | None] = []
    errors: list[str] = []
    for measure, refs in measures:
        try:
            counts.append(con.execute(f"SELECT {measure} FROM {_from_sql(table, refs)}").fetchone()[0])
        except duckdb.Error as error:
            counts.append(None)
            errors.append(_short_error(error))
    if len(errors) == len(measures):
        return counts, [Problem(table.name, None, f"could not be read: {errors[0]}")]
    return counts, [Problem(table.name, None, f"a check could not run: {e}") for e in dict.fromkeys(errors)]


def _examples(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    condition: str,
    shown: tuple[tuple[str, str], ...],
    joins: tuple[_Lookup, ...] = (),
    order: tuple[str, ...] = (),
) -> tuple[dict, ...]:
    """Up to MAX_EXAMPLES offending rows, first in file order: row number, file, and the values shown."""
    table = source.table
    files = (_col(_FILE),) if source.root else ()
    columns = [f'{_col(_ROW)} AS "row"'] + [f'{f} AS "file"' for f in files]
    columns += [f"{sql} AS {_q(label)}" for label, sql in shown]
    ordering = ", ".join([*order, *files, _col(_ROW)])
    query = (
        f"SELECT {', '.join(columns)} FROM {_from_sql(table, joins)} WHERE {condition} "
        f"ORDER BY {ordering} LIMIT {MAX_EXAMPLES}"
    )
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    except duckdb.Error:
        return ()
    return tuple(_example(dict(zip(names, row, strict=True)), source.root) for row in rows)


def _example(values: dict, root: Path | None) -> dict:
    """An example row, with its file named relative to the table's folder."""
    if root is not None and values.get("file"):
        file = Path(values["file"])
        values["file"] = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
    return values


def _duplicates(con: duckdb.DuckDBPyConnection, source: _Source) -> list[Problem]:
    """How many ids appear more than once, on how many rows, and the first of those rows."""
    table = source.table
    key = _q(table.key)
    blank = f" AND trim({key}) <> ''" if table.column(table.key).kind == "string" else ""  # the null check's
    repeated = f"SELECT {key} FROM {_typed(table.name)} WHERE {key} IS NOT NULL{blank} GROUP BY {key} HAVING count(*) > 1"
    condition = f"{_col(table.key)} IN ({repeated})"
    try:
        ids, rows = con.execute(
            f"SELECT count(DISTINCT {_col(table.key)}), count(*) FROM {_typed(table.name)} c WHERE {condition}"
        ).fetchone()
    except duckdb.Error as error:
        return [Problem(table.name, table.key, f"may repeat values, which could not be listed: {_short_error(error)}")]
    if not ids:
        return []  # the hash screen saw a collision, not a repeat
    examples = _examples(con, source, condition, ((table.key, _col(table.key)),), order=(_col(table.key),))
    one = ids == 1
    message = (
        f"{ids} {table.key} value{'' if one else 's'} appear{'s' if one else ''} on more than one row "
        f"({rows} rows in all); the key must be unique"
    )
    return [Problem(table.name, table.key, message, rows, examples)]
