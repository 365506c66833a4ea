"""Seller-weeks after a reviewer's contact or warning: told apart from the exported decisions, kept
out of the fit, and reported on their own."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.policy.definition import ReviewCapacity
from serving.store.store import RecordRef, Store
from training.interventions import after_intervention, read_decisions
from training.metrics import evaluate

WEEK = date(2026, 3, 2)


def _ref(seller: str, as_of: date) -> RecordRef:
    return RecordRef(f"r-{seller}-{as_of}", seller, as_of, "seller-risk", "3", "abc", 0.25)


def test_the_weeks_after_a_contact_or_warning_are_marked_from_the_exported_decisions(tmp_path: Path) -> None:
    from serving.store.cli import decisions

    url = f"sqlite:///{tmp_path / 'console.db'}"
    store = Store.open(url)
    store.add_reviewer("alice", "a long password")
    store.record_decision(_ref("S1", WEEK), "alice", "formal_warning", "")
    store.record_decision(_ref("S2", WEEK), "alice", "no_action", "")  # no action changes nothing
    wrong = store.record_decision(_ref("S3", WEEK), "alice", "escalate", "")
    store.record_decision(_ref("S3", WEEK), "alice", "no_action", "meant no action", corrects=wrong.id)
    store.close()
    out = tmp_path / "decisions.parquet"
    assert CliRunner().invoke(decisions, ["export", "--db", url, "--out", str(out)]).exit_code == 0

    weeks = [pd.Timestamp(WEEK + timedelta(days=7 * k)) for k in range(-1, 6)]
    frame = pd.DataFrame([(s, t) for s in ("S1", "S2", "S3") for t in weeks], columns=["seller_id", "as_of"])
    marked = after_intervention(frame, read_decisions(out), horizon_days=28)
    # S1 was warned on WEEK: its weeks from WEEK to WEEK + 3 weeks have label windows the warning touches
    want = [(s == "S1") and (pd.Timestamp(WEEK) <= t < pd.Timestamp(WEEK) + pd.Timedelta(days=28))
            for s, t in zip(frame["seller_id"], frame["as_of"])]
    assert marked.tolist() == want and sum(want) == 4


def test_a_decisions_table_without_an_action_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"seller_id": ["S1"], "as_of": [WEEK]}).to_parquet(path)
    with pytest.raises(ValueError, match="no column action"):
        read_decisions(path)


def test_the_backtest_reports_weeks_after_an_intervention_apart() -> None:
    rng = np.random.default_rng(1)
    n = 400
    scored = pd.DataFrame({
        "as_of": pd.Timestamp(WEEK), "seller_id": [f"S{i:04d}" for i in range(n)],
        "breach": rng.integers(0, 2, n), "score": rng.uniform(0, 1, n),
        "compliant_at_t": True, "after_intervention": np.arange(n) < 100})
    m = evaluate(scored, ReviewCapacity(share_of_active_sellers=0.05))
    assert m["all.n"] == 300 and m["early_warning.n"] == 300 and m["after_intervention.n"] == 100
    assert m["after_intervention.positives"] == scored["breach"][:100].sum()
    plain = evaluate(scored.drop(columns="after_intervention"), ReviewCapacity(share_of_active_sellers=0.05))
    assert plain["all.n"] == n and "after_intervention.n" not in plain
