"""`seller-risk replay RECORD_ID`: a score record, served over HTTP or written by the weekly batch job,
recomputed from its stored feature values and its model version, bit for bit, or exactly why not. The
served records come from the real running service (the package's `contract_server`, whose audit
database is `<log folder>/console.db`)."""

from __future__ import annotations

import math
import sqlite3
import struct
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.platform import layout
from serving.batch.table import read_scores
from serving.main import app

pytestmark = pytest.mark.server  # the HTTP records come from a real `bentoml serve`; the batch ones need the model


@pytest.fixture(scope="module")
def models_dir(trained) -> Path:
    return Path(trained.tracking_uri.removeprefix("sqlite:///")).parent


@pytest.fixture(scope="module")
def as_of(feature_dir: Path) -> date:
    return pd.read_parquet(layout.latest_snapshot(feature_dir), columns=["as_of"])["as_of"].iloc[0]


@pytest.fixture(scope="module")
def week(trained, feature_dir: Path, models_dir: Path, as_of: date, tmp_path_factory) -> pd.DataFrame:
    """The latest week scored by the batch job into a score table of its own (`attrs['scores']`)."""
    from serving.batch.job import BatchConfig, run_batch

    scores = tmp_path_factory.mktemp("replay") / "scores"
    run_batch(BatchConfig(scores, features_dir=feature_dir, as_of=as_of, model_uri=f"models:/seller-risk/{trained.version}",
                          models_dir=models_dir, chunk_rows=700, log_mlflow=False))
    frame = read_scores(scores, as_of, ["record_id", "seller_id", "risk_score"]).to_pandas()
    frame.attrs["scores"] = scores
    return frame


def _replay(record_id: str, db: str, scores: Path, features: Path, models: Path):
    return CliRunner().invoke(app, ["replay", record_id, "--db", db, "--scores", str(scores), "--features", str(features),
                                    "--models", str(models)], catch_exceptions=False)


def _fact(output: str, label: str) -> str:
    """A value of the printed fact table."""
    line = next(x for x in output.splitlines() if f" {label} " in x)
    return line.split("│")[2].strip()


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _sent(trained, feature_dir: Path, i: int) -> dict:
    """A snapshot row's features as a caller sends them (JSON values, missing ones left out)."""
    from features.policy.definition import load_policy
    from features.pipeline.spec import feature_spec

    names = feature_spec(load_policy(trained.model.policy_version)).names
    row = pd.read_parquet(layout.latest_snapshot(feature_dir)).iloc[i]
    return {n: (row[n].item() if hasattr(row[n], "item") else row[n]) for n in names
            if not (row[n] is None or (isinstance(row[n], float) and math.isnan(row[n])))}


def _same_score_printed(output: str, stored: float) -> None:
    for label in ("stored score", "replayed score"):
        printed = _fact(output, label)
        assert printed == repr(stored) and _bits(float(printed)) == _bits(stored), (label, printed, stored)
    assert _fact(output, "identical") == "yes"


def test_a_batch_record_replays_bit_for_bit(week: pd.DataFrame, feature_dir: Path, models_dir: Path,
                                            tmp_path: Path) -> None:
    row = week.iloc[123]
    res = _replay(row["record_id"], f"sqlite:///{tmp_path / 'none.db'}", week.attrs["scores"], feature_dir, models_dir)
    assert res.exit_code == 0, res.output
    assert _fact(res.output, "found in").startswith("weekly score table")
    assert _fact(res.output, "seller") == row["seller_id"]
    _same_score_printed(res.output, float(row["risk_score"]))
    assert not (tmp_path / "none.db").exists()  # looking for a served record creates no database


def test_a_served_record_replays_bit_for_bit_and_equals_the_batch_record_of_the_seller(
        contract_server, week: pd.DataFrame, feature_dir: Path, models_dir: Path) -> None:
    db = f"sqlite:///{contract_server.log.parent / 'console.db'}"
    row = week.iloc[7]
    served = contract_server.post("/score_seller", {"seller_id": row["seller_id"], "reasons": 5})
    assert served.status_code == 200, served.text
    record = served.json()
    res = _replay(record["record_id"], db, week.attrs["scores"], feature_dir, models_dir)
    assert res.exit_code == 0, res.output
    assert _fact(res.output, "found in").startswith("served records")
    _same_score_printed(res.output, record["risk_score"])
    # the same seller on the same snapshot by the same model: the same record, by id and score
    assert record["record_id"] == row["record_id"]
    assert _bits(record["risk_score"]) == _bits(float(row["risk_score"]))


def test_a_record_of_features_sent_by_the_caller_replays_from_what_was_sent(
        contract_server, trained, week: pd.DataFrame, feature_dir: Path, models_dir: Path) -> None:
    features = _sent(trained, feature_dir, 42)
    features.pop(next(iter(features)))  # one optional feature left out: a missing value, stored as None
    r = contract_server.post("/score", {"sellers": [{"seller_id": "S-sent-1", "features": features}]})
    assert r.status_code == 200, r.text
    record = r.json()[0]
    db = f"sqlite:///{contract_server.log.parent / 'console.db'}"
    res = _replay(record["record_id"], db, week.attrs["scores"], feature_dir, models_dir)
    assert res.exit_code == 0, res.output
    _same_score_printed(res.output, record["risk_score"])
    assert "features sent by the caller" in _fact(res.output, "as of")


def test_a_changed_snapshot_row_cannot_be_replayed_and_says_so(week: pd.DataFrame, feature_dir: Path, as_of: date,
                                                               models_dir: Path, tmp_path: Path) -> None:
    row = week.iloc[200]
    changed = tmp_path / "features"
    part = layout.snapshot_partition(changed, as_of)
    part.mkdir(parents=True)
    snapshot = pd.concat([pd.read_parquet(f) for f in layout.snapshot_files(feature_dir, as_of)], ignore_index=True)
    number = next(c for c in snapshot.columns if c not in ("seller_id", "as_of") and pd.api.types.is_float_dtype(snapshot[c]))
    at = snapshot.index[snapshot["seller_id"] == row["seller_id"]][0]
    before = snapshot.at[at, number]
    snapshot.at[at, number] = (0.0 if pd.isna(before) else before) + 1.0
    pq.write_table(pa.Table.from_pandas(snapshot, preserve_index=False), part / "part-00000.parquet")
    res = _replay(row["record_id"], f"sqlite:///{tmp_path / 'none.db'}", week.attrs["scores"], changed, models_dir)
    assert res.exit_code == 2, res.output
    assert f"the snapshot row of seller {row['seller_id']} for {as_of} changed since record {row['record_id']}" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output  # one sentence, no traceback, no table

    res = _replay(row["record_id"], f"sqlite:///{tmp_path / 'none.db'}", week.attrs["scores"], tmp_path / "nowhere",
                  models_dir)
    assert res.exit_code == 2 and f"the feature snapshot of {as_of} is missing" in res.output, res.output


def test_an_unknown_record_id_cannot_be_replayed(week: pd.DataFrame, feature_dir: Path, models_dir: Path,
                                                 tmp_path: Path) -> None:
    res = _replay("0123456789abcdef", f"sqlite:///{tmp_path / 'none.db'}", week.attrs["scores"], feature_dir, models_dir)
    assert res.exit_code == 2, res.output
    assert "no score record has id 0123456789abcdef: it is neither among the served records" in res.output


def test_a_database_that_cannot_be_written_is_503_naming_it_never_a_score_unaudited(
        contract_server, trained, week: pd.DataFrame, feature_dir: Path) -> None:
    path = contract_server.log.parent / "console.db"
    seller = week["seller_id"].iloc[3]
    assert contract_server.post("/score_seller", {"seller_id": seller}).status_code == 200  # the database is open
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("CREATE TRIGGER refuse_served BEFORE INSERT ON served_scores "
                    "BEGIN SELECT RAISE(ABORT, 'no more writes (test)'); END")
        con.commit()
        for route, body in (("/score_seller", {"seller_id": seller}),
                            ("/score", {"sellers": [{"seller_id": "S-x", "features": _sent(trained, feature_dir, 3)}]})):
            r = contract_server.post(route, body)
            assert r.status_code == 503, (route, r.status_code, r.text)
            error = r.json()["error"]
            assert str(path) in error and "no more writes (test)" in error and "\n" not in error, error
            assert "record_id" not in r.text
    finally:
        con.execute("DROP TRIGGER IF EXISTS refuse_served")
        con.commit()
        con.close()
    assert contract_server.post("/score_seller", {"seller_id": seller}).status_code == 200
