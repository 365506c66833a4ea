"""The score record is declared once (serving.records): the Arrow schema of the weekly score files and
the console's columns are derived from the pydantic models, and the record is computed once,
column-wise, and read two ways (Arrow table, JSON-ready rows) that must agree value for value."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import numpy as np
import pyarrow as pa
import pytest
from pydantic import BaseModel

from serving.records import (CONTEXT_ARROW, CONTRIBUTION_ARROW, REASON_ARROW, RECOVERY_ARROW, SCORE_ARROW,
                             STANDARD_RISK_ARROW, Lists, Nullable, RecordColumns, Repeated, ScoreRecord, Stored,
                             arrow_fields, arrow_type, queue_columns)

# The contract the score files on disk have, spelt out: the derived schema must be this, byte for byte.
REASON = pa.struct([
    ("rank", pa.int32()), ("standard", pa.string()), ("label", pa.string()), ("contribution", pa.float64()),
    ("probability_change", pa.float64()), ("direction", pa.string()), ("value", pa.float64()),
    ("volume", pa.int64()), ("headroom", pa.int64()), ("text", pa.string()),
])
CONTEXT = pa.struct([("group", pa.string()), ("contribution", pa.float64()), ("features", pa.string())])
CONTRIBUTION = pa.struct([("group", pa.string()), ("contribution", pa.float64())])
STANDARD_RISK = pa.struct([("standard", pa.string()), ("label", pa.string()), ("risk", pa.float64()),
                           ("share", pa.float64())])
RECOVERY = pa.struct([("standard", pa.string()), ("needed", pa.int64()), ("back_by", pa.date32()),
                      ("text", pa.string())])
SCORE = pa.schema([
    ("record_id", pa.string()), ("seller_id", pa.string()), ("as_of", pa.date32()), ("risk_score", pa.float64()),
    ("standard_at_risk", pa.string()), ("risk_by_standard", pa.list_(STANDARD_RISK)),
    ("risk_band", pa.string()), ("band_meaning", pa.string()), ("population", pa.string()),
    ("standards_missed_now", pa.list_(pa.string())), ("base_log_odds", pa.float64()), ("model_name", pa.string()),
    ("model_version", pa.string()), ("policy_version", pa.string()), ("feature_spec_hash", pa.string()),
    ("reasons", pa.list_(REASON)), ("lowering_reasons", pa.list_(REASON)),
    ("context", pa.list_(CONTEXT)), ("contributions", pa.list_(CONTRIBUTION)),
    ("recovery", pa.list_(RECOVERY)),
])


def test_the_arrow_schema_derived_from_the_record_is_the_score_files_schema() -> None:
    assert SCORE_ARROW.equals(SCORE, check_metadata=True)
    assert SCORE_ARROW.serialize().to_pybytes() == SCORE.serialize().to_pybytes()
    for derived, spelt in ((REASON_ARROW, REASON), (CONTEXT_ARROW, CONTEXT), (CONTRIBUTION_ARROW, CONTRIBUTION),
                           (STANDARD_RISK_ARROW, STANDARD_RISK), (RECOVERY_ARROW, RECOVERY)):
        assert derived.equals(spelt)
    assert SCORE_ARROW.names == list(ScoreRecord.model_fields)


def test_how_a_field_is_stored_never_reaches_the_http_contract() -> None:
    props = ScoreRecord.model_json_schema(mode="serialization")
    assert props["$defs"]["Reason"]["properties"]["rank"] == {
        "description": "1 = the first reason: ordered by the standard's share of the risk (the first is "
                       "standard_at_risk when it has a reason).", "title": "Rank", "type": "integer"}
    assert set(props["properties"]["base_log_odds"]) == {"description", "title", "type"}


def test_the_console_reads_every_record_field_but_those_declared_not_queued() -> None:
    assert queue_columns() == ["record_id", "seller_id", "risk_score", "standard_at_risk", "risk_by_standard",
                               "risk_band", "band_meaning", "population", "standards_missed_now", "model_name",
                               "model_version", "policy_version", "feature_spec_hash", "reasons", "context",
                               "recovery"]


def test_a_new_field_follows_from_its_type() -> None:
    class Item(BaseModel):
        n: int | None
        when: date

    class Record(BaseModel):
        small: Annotated[int, Stored(arrow=pa.int16())]
        items: list[Item]
        tags: list[str]

    assert pa.schema(arrow_fields(Record)).equals(pa.schema([
        ("small", pa.int16()), ("items", pa.list_(pa.struct([("n", pa.int64()), ("when", pa.date32())]))),
        ("tags", pa.list_(pa.string()))]))
    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_type(complex)


def _reasons(k: int) -> dict:
    """The first k of three reasons' fields, column-wise: a rate without volume, no headroom."""
    value, headroom = np.array([0.01, np.nan, 0.5])[:k], np.array([2, -1, 0])[:k]
    return {"rank": np.array([1, 2, 1], dtype="int32")[:k], "standard": np.array(["a", "b", "a"], dtype=object)[:k],
            "label": np.array(["A", "B", "A"], dtype=object)[:k], "contribution": np.array([0.5, 0.25, 1.0])[:k],
            "probability_change": np.array([0.1, 0.05, 0.2])[:k], "direction": Repeated(("raises",), k),
            "value": Nullable(value, np.isnan(value)), "volume": np.array([100, 0, 7], dtype="int64")[:k],
            "headroom": Nullable(headroom, headroom < 0), "text": np.array(["x", "y", "z"], dtype=object)[:k]}


def _columns(n: int) -> dict:
    """A hand-made column set of n rows (n <= 2): lists by row and by width, missing values of each kind."""
    reason_row = np.array([0, 0, 1])[:{0: 0, 1: 2, 2: 3}[n]]
    ways = 2 if n else 0  # the first seller misses two standards: one no run of good outcomes brings back
    needed = np.array([-1, 4])[:ways]
    return {
        "record_id": np.array(["r1", "r2"], dtype=object)[:n], "seller_id": np.array(["S1", "S2"], dtype=object)[:n],
        "as_of": np.array([date(2026, 1, 5), None], dtype=object)[:n], "risk_score": np.array([0.3, 0.02])[:n],
        "standard_at_risk": np.array(["a", None], dtype=object)[:n],
        "risk_by_standard": Lists({"standard": Repeated(("a", "b"), n), "label": Repeated(("A", "B"), n),
                                   "risk": np.array([0.2, 0.1, 0.01, 0.01])[:2 * n],
                                   "share": np.array([0.2, 0.1, 0.01, 0.01])[:2 * n]}, width=2),
        "risk_band": np.array(["recovery", "low"], dtype=object)[:n],
        "band_meaning": np.array(["m1", "m2"], dtype=object)[:n],
        "population": np.array(["missing_now", "compliant_now"])[:n],
        "standards_missed_now": Lists(np.array(["a"], dtype=object)[:min(n, 1)], np.array([0])[:min(n, 1)]),
        "base_log_odds": Repeated((-2.5,), n), "model_name": Repeated(("m",), n), "model_version": Repeated(("3",), n),
        "policy_version": Repeated(("p",), n), "feature_spec_hash": Repeated(("h",), n),
        "reasons": Lists(_reasons(len(reason_row)), reason_row),
        "lowering_reasons": Lists(_reasons(0), np.zeros(0, dtype="int64")),
        "context": Lists({"group": Repeated(("history",), n), "contribution": np.array([0.1, -0.2])[:n],
                          "features": np.array(["no warnings", "one warning"], dtype=object)[:n]}, width=1),
        "contributions": Lists({"group": Repeated(("a", "history"), n),
                                "contribution": np.array([0.4, 0.1, -1.0, -0.2])[:2 * n]}, width=2),
        "recovery": Lists({"standard": np.array(["a", "b"], dtype=object)[:ways],
                           "needed": Nullable(needed, needed < 0),
                           "back_by": np.array(["2026-02-02", "NaT"], dtype="datetime64[D]")[:ways],
                           "text": np.array(["w", "v"], dtype=object)[:ways]}, np.zeros(ways, dtype="int64")),
    }


@pytest.mark.parametrize("n", [0, 1, 2])
def test_the_http_rows_are_the_batch_tables_rows(n: int) -> None:
    columns = RecordColumns(n, _columns(n))
    table = columns.table()
    assert table.schema.equals(SCORE_ARROW) and table.num_rows == n
    rows = columns.rows()
    assert rows == table.to_pylist()
    for row in rows:
        ScoreRecord.model_validate(row)
    if n == 2:
        first, second = rows
        assert [r["value"] for r in first["reasons"]] == [0.01, None] and first["reasons"][1]["headroom"] is None
        assert second["as_of"] is None and second["standard_at_risk"] is None and second["reasons"][0]["rank"] == 1
        assert first["recovery"] == [{"standard": "a", "needed": None, "back_by": date(2026, 2, 2), "text": "w"},
                                     {"standard": "b", "needed": 4, "back_by": None, "text": "v"}]
        assert second["recovery"] == [] and second["standards_missed_now"] == []
        assert [c["group"] for c in second["contributions"]] == ["a", "history"]


def test_a_column_set_that_is_not_the_declared_record_is_refused() -> None:
    columns = _columns(1)
    columns["surprise"] = columns.pop("band_meaning")
    with pytest.raises(ValueError, match=r"missing \['band_meaning'\], undeclared \['surprise'\]"):
        RecordColumns(1, columns)
