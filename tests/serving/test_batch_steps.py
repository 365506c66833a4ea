"""The batch job's steps on their own, with small in-memory inputs: the drift counts added a chunk at
a time, the head of a weekly list, and the run's facts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.batch.drift import DriftCounts, Reference
from serving.batch.report import run_facts
from serving.batch.summary import EARLY_WARNING, RECOVERY, reference_bins
from serving.batch.table import Stamp, Written


def _reference() -> Reference:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"orders_30d": rng.poisson(20, 500).astype(float), "category": rng.choice(["a", "b"], 500)})
    bins = {"risk_score": reference_bins("risk_score", rng.random(500)),
            "orders_30d": reference_bins("orders_30d", ref["orders_30d"]),
            "category": reference_bins("category", ref["category"], categorical=True)}
    return Reference("test", {n: (b, b.counts(ref[n] if n in ref else rng.random(500))) for n, b in bins.items()})


def test_drift_counts_added_by_chunk_equal_the_counts_of_the_whole_week() -> None:
    reference = _reference()
    rng = np.random.default_rng(4)
    week = pd.DataFrame({"orders_30d": rng.poisson(25, 300).astype(float), "category": rng.choice(["a", "b", "c"], 300)})
    drift = DriftCounts(reference)
    for chunk in (week.iloc[:100], week.iloc[100:250], week.iloc[250:]):
        drift.add(chunk)
    scores = rng.random(300)
    counts = drift.with_scores(scores)
    assert list(counts) == ["orders_30d", "category", "risk_score"]
    for name in ("orders_30d", "category"):
        np.testing.assert_array_equal(counts[name], reference.bins[name][0].counts(week[name]))
    np.testing.assert_array_equal(counts["risk_score"], reference.bins["risk_score"][0].counts(scores))


def test_without_a_reference_nothing_is_counted() -> None:
    drift = DriftCounts(None)
    drift.add(pd.DataFrame({"orders_30d": [1.0, 2.0]}))
    assert drift.with_scores(np.array([0.1, 0.2])) == {}


def test_the_head_of_a_weekly_list_is_in_queue_order_across_chunks() -> None:
    chunks = [pa.table({"seller_id": ["s3", "s1", "s9"], "queue": [EARLY_WARNING, RECOVERY, EARLY_WARNING],
                        "queue_rank": pa.array([2, 1, 3], pa.int32())}),
              pa.table({"seller_id": ["s2", "s4"], "queue": [EARLY_WARNING, RECOVERY],
                        "queue_rank": pa.array([1, 2], pa.int32())})]
    written = Written(pd.DataFrame(), chunks, 2)
    assert [r["seller_id"] for r in written.first(EARLY_WARNING)] == ["s2", "s3", "s9"]
    assert [r["seller_id"] for r in written.first(EARLY_WARNING, 2)] == ["s2", "s3"]
    assert [r["seller_id"] for r in written.first(RECOVERY)] == ["s1", "s4"]
    assert Written(pd.DataFrame(), [], 0).first(RECOVERY) == []


def test_run_facts() -> None:
    stamp = Stamp("abc", datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    assert run_facts(stamp, "read from f", Path("/t/as_of=2026-01-05"), 3, 12.345) == {
        "run_id": "abc", "scored_at": "2026-01-05T12:00:00+00:00", "snapshot": "read from f",
        "partition": "/t/as_of=2026-01-05", "files": 3, "seconds": 12.35}

