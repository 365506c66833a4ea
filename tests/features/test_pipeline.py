"""The feature pipeline against an independent oracle, across engines and across policies."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.policy.definition import Policy, load_policy
from features.simulation.run import SimulationConfig, simulate_marketplace
from features.pipeline.snapshots import build_snapshots, read_snapshots
from features.pipeline.spec import feature_spec
from features.events.validation import EventValidationError
from tests.conftest import MARKETPLACE
from tests.reference import breach_label, evaluate, read_tables


@pytest.fixture(scope="module")
def snapshots(marketplace, policy: Policy, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("snapshots") / "features"
    build_snapshots(marketplace[0], out, policy)
    return read_snapshots(out)


def _compare_with_reference(events: Path, snaps: pd.DataFrame, policy: Policy, start: date, weeks: int) -> int:
    """Every snapshot row's policy metrics, compliance and label equal the pandas oracle's."""
    ev = evaluate(read_tables(events), policy, datetime.combine(start, datetime.min.time()), weeks)
    label, defined = breach_label(ev, policy.horizon_days // policy.evaluation_every_days)
    s_idx = {s: i for i, s in enumerate(ev.sellers)}
    k_idx = {pd.Timestamp(d): k for k, d in enumerate(ev.dates)}
    i = snaps["seller_id"].map(s_idx).to_numpy()
    k = pd.to_datetime(snaps["as_of"]).map(k_idx).to_numpy()
    assert not np.isnan(k.astype(float)).any()
    k = k.astype(int)
    # exactly the active sellers: onboarded and with an order in the last 30 days
    assert len(snaps) == ev.active.sum() and ev.active[i, k].all()
    assert (snaps["compliant_at_t"].to_numpy() == ~ev.misses[i, k].any(axis=1)).all()
    for j, name in enumerate(ev.metrics):
        m = policy.metrics[name]
        assert (snaps[f"evaluated_{name}"].to_numpy() == (ev.volume[i, k, j] >= m.min_count)).all()
        assert (snaps[f"miss_{name}"].to_numpy() == ev.misses[i, k, j]).all()
        got = snaps[f"{name}_{m.window_days}d"].to_numpy(dtype=float)
        np.testing.assert_allclose(got, ev.rate[i, k, j], rtol=1e-12, equal_nan=True)
        assert (snaps[f"{name}_volume"].to_numpy() == ev.volume[i, k, j]).all()
    known = defined[i, k]
    assert (snaps["breach"].isna().to_numpy() == ~known).all()
    assert (snaps.loc[known, "breach"].astype(bool).to_numpy() == label[i, k][known]).all()
    return int(known.sum())


def test_metrics_compliance_and_labels_equal_an_independent_oracle(marketplace, snapshots, policy) -> None:
    labelled = _compare_with_reference(marketplace[0], snapshots, policy, MARKETPLACE.start, MARKETPLACE.weeks)
    assert labelled > 50_000
    # and the label base rate is the one the simulator printed
    assert snapshots["breach"].mean() == pytest.approx(marketplace[1].rates["breach_within_horizon_share"], abs=1e-5)


def test_breach_metrics_name_the_standards_missed_ahead(snapshots, policy) -> None:
    rows = snapshots[snapshots["breach"].fillna(False).astype(bool)]
    assert len(rows) > 1000
    for name in policy.metrics:
        named = rows["breach_metrics"].str.split(",").apply(lambda xs, n=name: n in xs)
        assert (named == rows[f"breach_{name}"].astype(bool)).all()
    assert (rows["breach_metrics"] != "").all()


def test_snapshot_columns_follow_the_spec(snapshots, policy) -> None:
    spec = feature_spec(policy)
    assert list(snapshots.columns[2: 2 + len(spec.names)]) == spec.names
    assert len(spec.names) == len(set(spec.names)) >= 60
    for f in spec.features:
        col = snapshots[f.name]
        if f.dtype == "category":
            assert col.notna().all()
        else:
            assert pd.api.types.is_numeric_dtype(col), f.name


def test_a_second_marketplace_policy_needs_no_code(tmp_path: Path) -> None:
    amazon = load_policy("amazon-account-health")
    events = tmp_path / "events"
    config = SimulationConfig(n_sellers=400, start=date(2025, 9, 1), weeks=14, seed=4, workers=1)
    simulate_marketplace(config, amazon, events, write_latent=False)
    run = build_snapshots(events, tmp_path / "features", amazon)
    snaps = read_snapshots(tmp_path / "features")
    assert {"order_defect_rate_60d", "late_shipment_rate_30d", "pre_fulfilment_cancel_rate_7d"} <= set(snaps.columns)
    assert run.spec_hash != feature_spec(load_policy("walmart-us-2026")).hash
    assert _compare_with_reference(events, snaps, amazon, config.start, config.weeks) > 1000


@pytest.mark.spark
def test_duckdb_and_spark_give_identical_snapshots(tmp_path: Path, policy: Policy) -> None:
    events = tmp_path / "events"
    simulate_marketplace(SimulationConfig(150, date(2025, 1, 6), 16, 3, workers=1), policy, events, write_latent=False)
    build_snapshots(events, tmp_path / "duck", policy, engine="duckdb")
    build_snapshots(events, tmp_path / "spark", policy, engine="spark")
    duck, spark = read_snapshots(tmp_path / "duck"), read_snapshots(tmp_path / "spark")
    assert len(duck) > 1000 and duck["breach"].sum() > 50
    pd.testing.assert_frame_equal(duck, spark, check_dtype=False)
    assert (tmp_path / "spark" / "latest.parquet").exists()


def test_the_latest_snapshot_is_the_newest_date(marketplace, tmp_path: Path, policy: Policy) -> None:
    out = tmp_path / "features"
    run = build_snapshots(marketplace[0], out, policy, as_of=[date(2025, 6, 2), date(2025, 6, 9)])
    latest = pd.read_parquet(out / "latest.parquet")
    assert set(pd.to_datetime(latest["as_of"])) == {pd.Timestamp("2025-06-09")}
    assert run.as_of_dates == ["2025-06-02", "2025-06-09"]
    manifest = json.loads((out / "_snapshots.json").read_text())
    assert manifest["spec_hash"] == feature_spec(policy).hash == json.loads((out / "feature_spec.json").read_text())["hash"]


def test_bad_events_stop_before_anything_is_written(marketplace, tmp_path: Path, policy: Policy) -> None:
    out = tmp_path / "features"
    build_snapshots(marketplace[0], out, policy, as_of=[date(2025, 6, 2)])
    before = sorted(p.name for p in out.rglob("*"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in marketplace[0].iterdir():
        if p.name != "contacts":
            (broken / p.name).symlink_to(p)
    with pytest.raises(EventValidationError, match="contacts"):
        build_snapshots(broken, out, policy)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_as_of_after_the_cutoff_is_refused(marketplace, tmp_path: Path, policy: Policy) -> None:
    with pytest.raises(ValueError, match="after the extract cut-off"):
        build_snapshots(marketplace[0], tmp_path / "f", policy, as_of=[date(2026, 3, 2)])
    assert not (tmp_path / "f").exists()


def test_the_spec_hash_changes_with_any_definition(policy: Policy) -> None:
    spec = feature_spec(policy)
    assert spec.hash == feature_spec(load_policy("walmart-us-2026")).hash
    tweaked = policy.model_copy(update={"metrics": {**policy.metrics, "cancellation_rate":
                                                    policy.metrics["cancellation_rate"].model_copy(
                                                        update={"threshold": 0.025})}})
    assert feature_spec(tweaked).hash != spec.hash
    f = spec["on_time_delivery_rate_30d"]
    assert f.reason_text(0.858) == "On-time deliveries in the last 30 days: 85.8% (standard: at least 90%)"
    assert spec["cancellation_rate_30d"].reason_text(0.031) == \
        "Seller cancellations in the last 30 days: 3.1% (standard: at most 2%)"
