"""The validator against a small hand-written marketplace: valid as written, then broken one way at a time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features.events.schema import DUCKDB_TYPES, MANIFEST_FILE, TABLES
from features.events.validation import (
    EventValidationError,
    Problem,
    load_events,
    open_events,
    read_cutoff,
    validate_dir,
    validate_frames,
)

CUTOFF = datetime(2025, 12, 29)

# The dtypes a loaded frame has: numpy where a column can't be empty, nullable where it can.
CANONICAL = {
    ("string", False): "str",
    ("string", True): "str",
    ("int", False): "int64",
    ("int", True): "Int64",
    ("float", False): "float64",
    ("float", True): "float64",
    ("bool", False): "bool",
    ("bool", True): "boolean",
    ("timestamp", False): "datetime64[us]",
    ("timestamp", True): "datetime64[us]",
}

T = pd.Timestamp
NA = None


def _typed(name: str, data: dict[str, list]) -> pd.DataFrame:
    """A frame of one table with its canonical dtypes."""
    table = TABLES[name]
    frame = pd.DataFrame(data)[table.column_names]
    return frame.astype({c.name: CANONICAL[(c.kind, c.nullable)] for c in table.columns})


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    """Three sellers and six orders: delivered, cancelled by the buyer, shipped but undelivered,
    marketplace-fulfilled, late, and on time; with a return, refunds, feedback, contacts (one about
    no order) and policy actions."""
    sellers = _typed(
        "sellers",
        {
            "seller_id": ["S1", "S2", "S3"],
            "onboarded_at": [T("2024-03-01"), T("2024-06-15 12:00"), T("2025-01-10 08:30")],
            "category": ["electronics", "home", "apparel"],
            "region": ["us-west", "us-east", "NA"],
        },
    )
    orders = _typed(
        "orders",
        {
            "order_id": ["O1", "O2", "O3", "O4", "O5", "O6"],
            "seller_id": ["S1", "S1", "S2", "S2", "S3", "S1"],
            "ordered_at": [T("2025-11-03 10:00"), T("2025-11-05 08:30"), T("2025-12-20 14:00"),
                           T("2025-11-12 09:15"), T("2025-11-20 16:45"), T("2025-12-01 11:00")],
            "fulfilment_channel": ["seller", "seller", "seller", "marketplace", "seller", "seller"],
            "order_value": [59.90, 120.00, 35.50, 250.00, 18.99, 75.00],
            "item_count": [1, 2, 1, 3, 1, 2],
            "promised_ship_by": [T("2025-11-05 10:00"), T("2025-11-07 08:30"), T("2025-12-22 14:00"),
                                 T("2025-11-13 09:15"), T("2025-11-22 16:45"), T("2025-12-03 11:00")],
            "promised_delivery_by": [T("2025-11-10"), T("2025-11-12"), T("2025-12-30"),
                                     T("2025-11-16"), T("2025-11-27"), T("2025-12-08")],
            "shipped_at": [T("2025-11-04 09:00"), NA, T("2025-12-21 10:00"),
                           T("2025-11-12 20:00"), T("2025-11-23 11:00"), T("2025-12-02 10:00")],
            "carrier_handover_at": [T("2025-11-04 15:00"), NA, T("2025-12-21 18:00"),
                                    T("2025-11-13 06:00"), NA, T("2025-12-02 17:00")],
            "carrier": ["UPS", NA, "USPS", "marketplace-logistics", "FedEx", "UPS"],
            "tracking_valid": [True, NA, True, True, False, True],
            "delivered_at": [T("2025-11-07 12:00"), NA, NA, T("2025-11-15 10:00"), T("2025-11-30 09:00"),
                             T("2025-12-05 13:00")],
            "cancelled_at": [NA, T("2025-11-05 20:00"), NA, NA, NA, NA],
            "cancelled_by": [NA, "buyer", NA, NA, NA, NA],
            "cancel_reason": [NA, "changed_mind", NA, NA, NA, NA],
        },
    )
    returns = _typed(
        "returns",
        {
            "return_id": ["R1"],
            "order_id": ["O1"],
            "seller_id": ["S1"],
            "requested_at": [T("2025-11-10 09:00")],
            "reason": ["damaged"],
            "seller_responsible": [True],
        },
    )
    refunds = _typed(
        "refunds",
        {
            "refund_id": ["F1", "F2"],
            "order_id": ["O1", "O5"],
            "seller_id": ["S1", "S3"],
            "refunded_at": [T("2025-11-14 10:00"), T("2025-12-02 10:00")],
            "amount": [59.90, 5.00],
            "reason": ["damaged", "late_delivery"],
            "seller_responsible": [True, False],
        },
    )
    feedback = _typed(
        "feedback",
        {
            "feedback_id": ["FB1", "FB2"],
            "order_id": ["O1", "O5"],
            "seller_id": ["S1", "S3"],
            "submitted_at": [T("2025-11-09 18:00"), T("2025-12-01 07:30")],
            "rating": [5, 2],
        },
    )
    contacts = _typed(
        "contacts",
        {
            "contact_id": ["C1", "C2"],
            "seller_id": ["S2", "S1"],
            "order_id": ["O3", NA],
            "opened_at": [T("2025-12-26 09:00"), T("2025-12-10 16:00")],
            "topic": ["where_is_my_order", "product_question"],
            "first_response_at": [T("2025-12-26 15:00"), NA],
        },
    )
    policy_actions = _typed(
        "policy_actions",
        {
            "action_id": ["A1", "A2"],
            "seller_id": ["S3", "S3"],
            "issued_at": [T("2025-12-08"), T("2025-12-22")],
            "action": ["warning", "reinstatement"],
            "metric": ["on_time_delivery_rate", NA],
            "metric_value": [0.85, NA],
            "threshold": [0.90, NA],
            "policy_version": ["walmart-us-2026", "walmart-us-2026"],
        },
    )
    return {
        "sellers": sellers,
        "orders": orders,
        "returns": returns,
        "refunds": refunds,
        "feedback": feedback,
        "contacts": contacts,
        "policy_actions": policy_actions,
    }


def _loose_schema(name: str, **types: pa.DataType) -> pa.Schema:
    """The table's Arrow schema with every column allowed to be empty (so bad rows can be written),
    and some columns' types replaced."""
    fields = [pa.field(f.name, types.get(f.name, f.type), nullable=True) for f in TABLES[name].arrow_schema()]
    return pa.schema(fields)


def write_parquet(frames: dict[str, pd.DataFrame], directory: Path, cutoff: datetime | None = CUTOFF) -> Path:
    """Writes each frame with the schema's Arrow types (relaxed where a test broke them on purpose)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        try:
            arrow = pa.Table.from_pandas(frame, schema=TABLES[name].arrow_schema(), preserve_index=False)
        except (ValueError, pa.ArrowException, KeyError):
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(arrow, directory / f"{name}.parquet")
    if cutoff is not None:
        (directory / MANIFEST_FILE).write_text(json.dumps({"cutoff": cutoff.isoformat()}))
    return directory


def write_csv(frames: dict[str, pd.DataFrame], directory: Path, cutoff: datetime | None = CUTOFF) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(directory / f"{name}.csv", index=False)
    if cutoff is not None:
        (directory / MANIFEST_FILE).write_text(json.dumps({"cutoff": cutoff.isoformat()}))
    return directory


def only(problems: list[Problem], table: str, column: str | None) -> Problem:
    """The single problem reported for a table's column (fails if there is none, or several)."""
    found = [p for p in problems if p.table == table and p.column == column]
    assert len(found) == 1, f"expected one problem on {table}.{column}, got: {[str(p) for p in problems]}"
    return found[0]


def rows(problem: Problem) -> list[int]:
    return [e["row"] for e in problem.examples]


def _set(frame: pd.DataFrame, row: int, column: str, value: object) -> pd.DataFrame:
    changed = frame.copy()
    changed.loc[changed.index[row], column] = value
    return changed


# --- valid input --------------------------------------------------------------------------


def test_valid_parquet_has_no_problems(frames, tmp_path):
    assert validate_dir(write_parquet(frames, tmp_path)) == []


def test_valid_frames_have_no_problems(frames):
    assert validate_frames(frames, cutoff=CUTOFF) == []


def test_valid_csv_has_no_problems(frames, tmp_path):
    assert validate_dir(write_csv(frames, tmp_path)) == []


def test_load_events_returns_the_schema_columns_in_canonical_dtypes(frames, tmp_path):
    loaded = load_events(write_parquet(frames, tmp_path))

    assert list(loaded) == list(TABLES)
    for name, table in TABLES.items():
        frame = loaded[name]
        assert list(frame.columns) == table.column_names
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            c.name: CANONICAL[(c.kind, c.nullable)] for c in table.columns
        }
        pd.testing.assert_frame_equal(frame, frames[name])
    assert loaded["sellers"].loc[2, "region"] == "NA"  # a value, not an empty field


def test_csv_loads_to_the_same_frames_as_parquet(frames, tmp_path):
    from_csv = load_events(write_csv(frames, tmp_path / "csv"))
    from_parquet = load_events(write_parquet(frames, tmp_path / "parquet"))

    for name in TABLES:
        pd.testing.assert_frame_equal(from_csv[name], from_parquet[name])


def test_extra_columns_are_ignored_and_views_have_exactly_the_schema_columns(frames, tmp_path):
    frames["orders"] = frames["orders"].assign(marketplace_note="internal")
    con = open_events(write_parquet(frames, tmp_path))
    try:
        for name, table in TABLES.items():
            described = con.execute(f'DESCRIBE "{name}"').fetchall()
            assert [(r[0], r[1]) for r in described] == [(c.name, DUCKDB_TYPES[c.kind]) for c in table.columns]
        assert con.execute('SELECT count(*) FROM orders WHERE delivered_at IS NULL').fetchone() == (2,)
    finally:
        con.close()


def test_timestamps_with_a_time_zone_are_accepted_as_utc(frames, tmp_path):
    sellers = frames.pop("sellers")
    write_parquet(frames, tmp_path)
    arrow = pa.Table.from_pandas(sellers, schema=TABLES["sellers"].arrow_schema(), preserve_index=False)
    paris = pc.assume_timezone(arrow.column("onboarded_at"), "Europe/Paris")  # the times were Paris local times
    arrow = arrow.set_column(1, "onboarded_at", paris)
    assert str(arrow.schema.field("onboarded_at").type) == "timestamp[us, tz=Europe/Paris]"
    pq.write_table(arrow, tmp_path / "sellers.parquet")

    loaded = load_events(tmp_path)

    assert loaded["sellers"]["onboarded_at"].tolist() == [
        T("2024-02-29 23:00"), T("2024-06-15 10:00"), T("2025-01-10 07:30")
    ]


def test_a_table_may_be_a_folder_of_parquet_parts(frames, tmp_path):
    write_parquet(frames, tmp_path)
    (tmp_path / "orders.parquet").unlink()
    parts = tmp_path / "orders"
    parts.mkdir()
    orders = frames["orders"]
    schema = TABLES["orders"].arrow_schema()
    pq.write_table(pa.Table.from_pandas(orders.iloc[:3], schema=schema, preserve_index=False), parts / "part-0.parquet")
    late = _set(orders.iloc[3:], 1, "item_count", 0)  # O5, the second row of part-1
    pq.write_table(pa.Table.from_pandas(late, schema=schema, preserve_index=False), parts / "part-1.parquet")

    problem = only(validate_dir(tmp_path), "orders", "item_count")

    assert problem.count == 1
    assert problem.examples == ({"row": 1, "file": "part-1.parquet", "order_id": "O5", "item_count": 0},)
    assert str(problem) == (
        "orders.item_count: 1 row has an item_count below 1, e.g. row 1 of part-1.parquet (order_id=O5, item_count=0)"
    )


# --- one problem at a time ----------------------------------------------------------------


def test_missing_table(frames, tmp_path):
    del frames["refunds"]

    problems = validate_dir(write_parquet(frames, tmp_path))

    assert len(problems) == 1
    problem = only(problems, "refunds", None)
    assert problem.problem.startswith("table is missing: no refunds.parquet, refunds.csv or refunds/")
    assert problem.count == 0


def test_missing_column(frames, tmp_path):
    frames["orders"] = frames["orders"].drop(columns=["promised_delivery_by"])

    problems = validate_dir(write_parquet(frames, tmp_path))

    problem = only(problems, "orders", "promised_delivery_by")
    assert problem.problem == "column is missing (expected timestamp (TIMESTAMP))"
    # the rule that needs the missing column is skipped, nothing else is reported
    assert problems == [problem]


def test_wrong_type_in_parquet(frames, tmp_path):
    write_parquet(frames, tmp_path)
    orders = frames["orders"].assign(order_value=frames["orders"]["order_value"].astype(str))
    arrow = pa.Table.from_pandas(orders, schema=_loose_schema("orders", order_value=pa.string()), preserve_index=False)
    pq.write_table(arrow, tmp_path / "orders.parquet")

    problems = validate_dir(tmp_path)

    problem = only(problems, "orders", "order_value")
    assert problem.problem == "has type VARCHAR, expected float (DOUBLE)"
    assert problems == [problem]


def test_wrong_type_in_csv_names_the_row(frames, tmp_path):
    orders = frames["orders"].astype({"order_value": "str"})
    frames["orders"] = _set(orders, 3, "order_value", "two hundred fifty")

    problems = validate_dir(write_csv(frames, tmp_path))

    problem = only(problems, "orders", "order_value")
    assert problem.count == 1
    assert problem.examples == ({"row": 3, "order_id": "O4", "order_value": "two hundred fifty"},)
    assert "not a valid float" in problem.problem
    assert problems == [problem]  # not also reported as empty


def test_wrong_dtype_in_a_frame(frames):
    frames["feedback"] = frames["feedback"].astype({"rating": "float64"})

    problem = only(validate_frames(frames, cutoff=CUTOFF), "feedback", "rating")

    assert problem.problem == "has type DOUBLE, expected int (BIGINT)"


def test_mixed_values_in_a_frame_column(frames):
    frames["orders"] = frames["orders"].astype({"order_value": object})
    frames["orders"].loc[2, "order_value"] = "35.50 USD"

    problems = validate_frames(frames, cutoff=CUTOFF)

    problem = only(problems, "orders", "order_value")
    assert problem.problem.startswith("holds values of mixed types")
    assert problem.problem.endswith("expected float (DOUBLE)")
    assert problems == [problem]


def test_csv_timestamps_may_be_iso_with_an_offset(frames, tmp_path):
    write_csv(frames, tmp_path)
    sellers = frames["sellers"].astype({"onboarded_at": "str"})
    sellers["onboarded_at"] = ["2024-03-01T00:00:00Z", "2024-06-15T14:00:00+02:00", "2025-01-10"]
    sellers.to_csv(tmp_path / "sellers.csv", index=False)

    loaded = load_events(tmp_path)

    assert loaded["sellers"]["onboarded_at"].tolist() == [T("2024-03-01"), T("2024-06-15 12:00"), T("2025-01-10")]


def test_a_broken_column_does_not_break_the_other_checks(frames, tmp_path):
    frames["orders"] = _set(frames["orders"], 0, "item_count", 0)
    write_parquet(frames, tmp_path)
    orders = frames["orders"].astype({"shipped_at": "str"})
    schema = _loose_schema("orders", shipped_at=pa.string())
    pq.write_table(pa.Table.from_pandas(orders, schema=schema, preserve_index=False), tmp_path / "orders.parquet")

    problems = validate_dir(tmp_path)

    assert {(p.table, p.column) for p in problems} == {("orders", "shipped_at"), ("orders", "item_count")}
    assert only(problems, "orders", "shipped_at").problem == "has type VARCHAR, expected timestamp (TIMESTAMP)"
    assert rows(only(problems, "orders", "item_count")) == [0]


def test_a_table_in_two_formats_is_ambiguous(frames, tmp_path):
    write_parquet(frames, tmp_path)
    frames["feedback"].to_csv(tmp_path / "feedback.csv", index=False)

    problem = only(validate_dir(tmp_path), "feedback", None)

    assert problem.problem == "table is ambiguous: found feedback.parquet, feedback.csv; keep exactly one"


def test_null_key(frames, tmp_path):
    frames["orders"] = _set(frames["orders"], 2, "order_id", None)

    problems = validate_dir(write_parquet(frames, tmp_path))

    problem = only(problems, "orders", "order_id")
    assert problem.count == 1
    assert rows(problem) == [2]
    assert problem.examples[0]["order_id"] is None
    assert problem.problem == "1 row has no order_id (the table's key)"
    # contact C1 refers to O3, which has lost its id
    unknown = only(problems, "contacts", "order_id")
    assert unknown.examples == ({"row": 0, "contact_id": "C1", "order_id": "O3"},)


def test_duplicate_ids(frames, tmp_path):
    frames["orders"] = _set(_set(frames["orders"], 4, "order_id", "O1"), 5, "order_id", "O1")

    problems = validate_dir(write_parquet(frames, tmp_path))

    problem = only(problems, "orders", "order_id")
    assert problem.problem.startswith("1 order_id value appears on more than one row (3 rows in all)")
    assert problem.count == 3
    assert problem.examples == tuple({"row": row, "order_id": "O1"} for row in (0, 4, 5))


def test_order_of_an_unknown_seller(frames, tmp_path):
    frames["orders"] = _set(frames["orders"], 3, "seller_id", "S404")

    problems = validate_dir(write_parquet(frames, tmp_path))

    problem = only(problems, "orders", "seller_id")
    assert problem.problem == "1 row refers to a seller_id not found in sellers.seller_id"
    assert problem.examples == ({"row": 3, "order_id": "O4", "seller_id": "S404"},)


def test_delivery_before_shipment(frames, tmp_path):
    frames["orders"] = _set(frames["orders"], 5, "delivered_at", T("2025-12-01 12:00"))

    problems = validate_dir(write_parquet(frames, tmp_path))

    assert problems == [only(problems, "orders", "delivered_at")]
    problem = problems[0]
    assert problem.problem.startswith("1 row breaks rule delivered_before_shipped: delivery before shipment")
    assert problem.examples == (
        {
            "row": 5,
            "order_id": "O6",
            "shipped_at": datetime(2025, 12, 2, 10),
            "delivered_at": datetime(2025, 12, 1, 12),
        },
    )
    assert str(problem).endswith(
        "e.g. row 5 (order_id=O6, shipped_at=2025-12-02 10:00:00, delivered_at=2025-12-01 12:00:00)"
    )


def test_rating_outside_one_to_five(frames, tmp_path):
    frames["feedback"] = _set(_set(frames["feedback"], 0, "rating", 0), 1, "rating", 6)

    problem = only(validate_dir(write_parquet(frames, tmp_path)), "feedback", "rating")

    assert problem.problem == "2 rows have a rating outside 1..5"
    assert problem.count == 2
    assert problem.examples == (
        {"row": 0, "feedback_id": "FB1", "rating": 0},
        {"row": 1, "feedback_id": "FB2", "rating": 6},
    )


def test_event_after_the_manifest_cutoff(frames, tmp_path):
    frames["contacts"] = _set(frames["contacts"], 0, "first_response_at", T("2025-12-30 09:00"))

    problems = validate_dir(write_parquet(frames, tmp_path))

    problem = only(problems, "contacts", "first_response_at")
    assert problem.problem == "1 row is dated after the extract cut-off 2025-12-29 00:00:00"
    assert problem.examples == ({"row": 0, "contact_id": "C1", "first_response_at": datetime(2025, 12, 30, 9)},)
    # an explicit cut-off wins over the manifest's
    assert validate_dir(tmp_path, cutoff=datetime(2026, 1, 1)) == []
    assert len(validate_dir(tmp_path, cutoff=datetime(2025, 12, 1))) > 1


def test_value_not_in_the_allowed_set(frames, tmp_path):
    frames["returns"] = _set(frames["returns"], 0, "reason", "changed_my_mind")

    problem = only(validate_dir(write_parquet(frames, tmp_path)), "returns", "reason")

    assert problem.problem.startswith("1 row has a reason outside the allowed values (damaged, wrong_item,")
    assert problem.examples == ({"row": 0, "return_id": "R1", "reason": "changed_my_mind"},)


def test_return_of_another_sellers_order(frames, tmp_path):
    frames["returns"] = _set(frames["returns"], 0, "seller_id", "S2")

    problems = validate_dir(write_parquet(frames, tmp_path))

    assert problems == [only(problems, "returns", "seller_id")]
    problem = problems[0]
    assert problem.problem.startswith("1 row has a seller_id different from the seller_id of its orders row")
    assert problem.examples == (
        {"row": 0, "return_id": "R1", "order_id": "O1", "seller_id": "S2", "orders.seller_id": "S1"},
    )


def test_contact_without_an_order_is_fine_but_an_unknown_order_is_not(frames, tmp_path):
    frames["contacts"] = _set(frames["contacts"], 1, "order_id", "O99")

    problem = only(validate_dir(write_parquet(frames, tmp_path)), "contacts", "order_id")

    assert problem.examples == ({"row": 1, "contact_id": "C2", "order_id": "O99"},)


# --- many problems, errors, bad files -----------------------------------------------------


def _many_problems(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    del frames["policy_actions"]
    frames["sellers"] = frames["sellers"].drop(columns=["region"])
    frames["orders"] = _set(frames["orders"], 1, "seller_id", "S9")
    frames["feedback"] = _set(frames["feedback"], 1, "rating", 6)
    return frames


def test_every_problem_is_reported_not_just_the_first(frames, tmp_path):
    problems = validate_dir(write_parquet(_many_problems(frames), tmp_path))

    assert {(p.table, p.column) for p in problems} == {
        ("policy_actions", None),
        ("sellers", "region"),
        ("orders", "seller_id"),
        ("feedback", "rating"),
    }
    assert rows(only(problems, "orders", "seller_id")) == [1]
    assert rows(only(problems, "feedback", "rating")) == [1]


def test_validate_frames_reports_the_same_problems(frames):
    problems = validate_frames(_many_problems(frames), cutoff=CUTOFF)

    assert {(p.table, p.column) for p in problems} == {
        ("policy_actions", None),
        ("sellers", "region"),
        ("orders", "seller_id"),
        ("feedback", "rating"),
    }


@pytest.mark.parametrize("entry_point", [open_events, load_events])
def test_open_and_load_raise_with_every_problem(frames, tmp_path, entry_point):
    write_parquet(_many_problems(frames), tmp_path)
    problems = validate_dir(tmp_path)

    with pytest.raises(EventValidationError) as raised:
        entry_point(tmp_path)

    assert raised.value.problems == problems
    message = str(raised.value)
    assert "4 problems" in message.splitlines()[0]
    for problem in problems:
        assert str(problem) in message
    assert "feedback.rating: 1 row has a rating outside 1..5, e.g. row 1 (feedback_id=FB2, rating=6)" in message


def test_corrupt_file_is_a_problem_not_a_crash(frames, tmp_path):
    write_parquet(frames, tmp_path)
    (tmp_path / "orders.parquet").write_bytes(b"order_id,seller_id\nO1,S1\n")

    problems = validate_dir(tmp_path)

    problem = only(problems, "orders", None)
    assert problem.problem.startswith("orders.parquet could not be read")
    assert problems == [problem]  # tables that refer to orders are not checked against it


def test_unparseable_csv_is_a_problem_not_a_crash(frames, tmp_path):
    write_csv(frames, tmp_path)
    (tmp_path / "returns.csv").write_text('return_id,order_id\n"R1,O1\nR2\n')

    problem = only(validate_dir(tmp_path), "returns", None)

    assert problem.problem.startswith("returns.csv could not be read")


def test_unreadable_manifest_is_reported(frames, tmp_path):
    write_parquet(frames, tmp_path, cutoff=None)
    (tmp_path / MANIFEST_FILE).write_text('{"cutoff": "the end of last year"}')

    problem = only(validate_dir(tmp_path), MANIFEST_FILE, "cutoff")

    assert "not an ISO 8601 time" in problem.problem


def test_read_cutoff(tmp_path):
    assert read_cutoff(tmp_path) is None
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"cutoff": "2025-12-29T01:00:00+01:00"}))
    assert read_cutoff(tmp_path) == datetime(2025, 12, 29)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"cutoff": "2025-12-29T00:00:00"}))
    assert read_cutoff(tmp_path) == datetime(2025, 12, 29)


# --- numbers and times that are not finite, blank text, ints that are not ints ---------------


def test_nan_and_infinities_are_not_finite_in_parquet_and_csv(frames, tmp_path):
    values = [59.90, float("nan"), 35.50, float("inf"), 18.99, float("-inf")]
    orders = frames["orders"].assign(order_value=values)
    write_parquet(frames, tmp_path / "parquet")
    arrow = pa.Table.from_pandas(frames["orders"], schema=TABLES["orders"].arrow_schema(), preserve_index=False)
    arrow = arrow.set_column(arrow.schema.get_field_index("order_value"), "order_value", pa.array(values))  # NaN, not null
    pq.write_table(arrow, tmp_path / "parquet" / "orders.parquet")
    csv = write_csv(frames, tmp_path / "csv")
    orders.assign(order_value=[str(v) for v in values]).to_csv(csv / "orders.csv", index=False)  # 'nan', 'inf', '-inf'

    for folder in (tmp_path / "parquet", csv):
        problems = validate_dir(folder)

        problem = only(problems, "orders", "order_value")
        assert problems == [problem]  # -inf is not also "below 0"
        assert problem.problem == "3 rows have an order_value that is not a finite number (NaN, inf or -inf)"
        assert rows(problem) == [1, 3, 5]
        assert str(problem).endswith("e.g. row 1 (order_id=O2, order_value=nan); also row 3, row 5")


def test_infinite_times_are_not_finite_and_break_no_rule(frames, tmp_path):
    write_csv(frames, tmp_path)
    orders = frames["orders"].astype({"delivered_at": str, "promised_delivery_by": str})
    orders.loc[0, "delivered_at"] = "-infinity"  # would also be 'delivered before shipped'
    orders.loc[2, "promised_delivery_by"] = "infinity"
    orders.to_csv(tmp_path / "orders.csv", index=False)

    problems = validate_dir(tmp_path)

    assert {(p.table, p.column) for p in problems} == {("orders", "delivered_at"), ("orders", "promised_delivery_by")}
    assert rows(only(problems, "orders", "delivered_at")) == [0]
    assert only(problems, "orders", "promised_delivery_by").problem == (
        "1 row has a promised_delivery_by that is not a finite time (infinity or -infinity)"
    )


def test_inf_in_a_frame_is_not_finite_and_nan_is_empty(frames):
    frames["refunds"] = frames["refunds"].assign(amount=[float("inf"), float("nan")])

    problems = validate_frames(frames, cutoff=CUTOFF)

    assert [(p.table, p.column, p.problem, rows(p)) for p in problems] == [
        ("refunds", "amount", "1 row has no amount (a required column)", [1]),  # pandas' NaN is its empty value
        ("refunds", "amount", "1 row has an amount that is not a finite number (NaN, inf or -inf)", [0]),
    ]


def test_blank_text_in_a_required_column_is_empty_and_nothing_else(frames, tmp_path):
    frames["sellers"] = _set(frames["sellers"], 1, "seller_id", "  ")  # S2, whose orders now point at nothing
    frames["orders"] = _set(frames["orders"], 0, "fulfilment_channel", "")

    problems = validate_dir(write_parquet(frames, tmp_path))

    assert only(problems, "sellers", "seller_id").problem == "1 row has no seller_id (the table's key)"
    assert only(problems, "orders", "fulfilment_channel").problem == "1 row has no fulfilment_channel (a required column)"
    assert rows(only(problems, "orders", "seller_id")) == [2, 3]  # S2's orders: an orphan, not a match on "  "
    assert rows(only(problems, "contacts", "seller_id")) == [0]
    assert len(problems) == 4


def test_a_fraction_in_a_csv_int_column_is_not_an_int(frames, tmp_path):
    write_csv(frames, tmp_path)
    orders = frames["orders"].astype({"item_count": str})
    orders.loc[1, "item_count"] = "2.5"
    orders.loc[2, "item_count"] = "1.0"  # a float export of an int: still 1
    orders.to_csv(tmp_path / "orders.csv", index=False)

    problem = only(validate_dir(tmp_path), "orders", "item_count")

    assert problem.problem == "1 row has a value that is not a valid int (BIGINT)"
    assert problem.examples == ({"row": 1, "order_id": "O2", "item_count": "2.5"},)


def test_an_int_too_large_for_int64_is_not_a_valid_int(frames, tmp_path):
    write_parquet(frames, tmp_path)
    counts = pa.array([1, 2, 2**64 - 1, 3, 1, 2], pa.uint64())
    arrow = pa.Table.from_pandas(frames["orders"], schema=TABLES["orders"].arrow_schema(), preserve_index=False)
    arrow = arrow.set_column(arrow.schema.get_field_index("item_count"), "item_count", counts)
    pq.write_table(arrow, tmp_path / "orders.parquet")

    problems = validate_dir(tmp_path)

    problem = only(problems, "orders", "item_count")
    assert problems == [problem]
    assert problem.examples == ({"row": 2, "order_id": "O3", "item_count": 2**64 - 1},)
