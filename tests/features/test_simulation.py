"""The simulator: deterministic, valid, and realistic in the ways the model will be judged on."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.policy.definition import Policy
from features.simulation.run import REALISM_TARGETS, SimulationConfig, simulate_marketplace
from features.events.validation import validate_dir
from tests.conftest import MARKETPLACE
from tests.reference import breach_label, evaluate, read_tables


@pytest.fixture(scope="module")
def tables(marketplace: tuple[Path, object]) -> dict[str, pd.DataFrame]:
    return read_tables(marketplace[0])


@pytest.fixture(scope="module")
def evaluations(tables: dict[str, pd.DataFrame], policy: Policy):
    start = datetime.combine(MARKETPLACE.start, datetime.min.time())
    return evaluate(tables, policy, start, MARKETPLACE.weeks)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_whatever_the_number_of_processes(tmp_path: Path, policy: Policy) -> None:
    config = SimulationConfig(n_sellers=2600, start=date(2025, 3, 3), weeks=6, seed=5)  # two chunks
    simulate_marketplace(SimulationConfig(**{**config.__dict__, "workers": 1}), policy, tmp_path / "a")
    simulate_marketplace(SimulationConfig(**{**config.__dict__, "workers": 2}), policy, tmp_path / "b")
    simulate_marketplace(SimulationConfig(**{**config.__dict__, "seed": 6, "workers": 1}), policy, tmp_path / "c")
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) >= 7 * 2 + 2 and a == b
    assert _files(tmp_path / "a-latent") == _files(tmp_path / "b-latent")
    assert a["orders/part-00000.parquet"] != c["orders/part-00000.parquet"]


def test_every_generated_table_passes_the_validator(marketplace) -> None:
    events, _ = marketplace
    assert validate_dir(events) == []


def test_manifest_states_the_cutoff_and_no_event_is_after_it(marketplace, tables) -> None:
    events, _ = marketplace
    manifest = json.loads((events / "_manifest.json").read_text())
    cutoff = pd.Timestamp(manifest["cutoff"])
    assert cutoff == pd.Timestamp("2026-01-05")  # 2025-01-06 + 52 weeks
    assert tables["orders"]["ordered_at"].max() <= cutoff
    assert tables["orders"]["delivered_at"].max() <= cutoff
    assert tables["orders"]["ordered_at"].min() >= pd.Timestamp("2025-01-06")


def test_printed_rates_are_in_public_ranges_and_match_the_tables(marketplace, tables) -> None:
    _, summary = marketplace
    for name, (lo, hi) in REALISM_TARGETS.items():
        assert lo <= summary.rates[name] <= hi, (name, summary.rates[name])
    o = tables["orders"]
    sf = o[o["fulfilment_channel"] == "seller"]
    delivered = sf[sf["delivered_at"].notna()]
    late = (delivered["delivered_at"] > delivered["promised_delivery_by"]).mean()
    cancelled = (sf["cancelled_by"] == "seller").mean()
    negative = (tables["feedback"]["rating"] <= 2).mean()
    assert summary.rates["late_delivery_rate"] == pytest.approx(late, abs=1e-5)
    assert summary.rates["seller_cancellation_rate"] == pytest.approx(cancelled, abs=1e-5)
    assert summary.rates["negative_rating_share"] == pytest.approx(negative, abs=1e-5)


def test_breach_share_recomputed_from_the_events_equals_the_summary(marketplace, evaluations, policy) -> None:
    _, summary = marketplace
    label, defined = breach_label(evaluations, policy.horizon_days // policy.evaluation_every_days)
    active = evaluations.active & defined
    share = label[active].mean()
    assert summary.counts["active_seller_weeks"] == active.sum()
    assert summary.rates["breach_within_horizon_share"] == pytest.approx(share, abs=1e-5)
    assert 0.05 <= share <= 0.15


def test_every_warning_is_a_missed_standard_recomputed_from_the_events(tables, evaluations, policy) -> None:
    """The marketplace's enforcement and an independent reading of the events agree."""
    actions = tables["policy_actions"]
    warnings = actions[actions["action"] == "warning"]
    assert len(warnings) > 100
    s_idx = {s: i for i, s in enumerate(evaluations.sellers)}
    start = pd.Timestamp(MARKETPLACE.start)
    for row in warnings.itertuples():
        k = (row.issued_at.normalize() - start).days // 7 - 1  # evaluated at midnight, issued that morning
        j = evaluations.metrics.index(row.metric)
        i = s_idx[row.seller_id]
        assert evaluations.misses[i, k, j], row
        assert evaluations.rate[i, k, j] == pytest.approx(row.metric_value, abs=1e-12)
        assert row.threshold == policy.metrics[row.metric].threshold


def test_sellers_are_heavy_tailed_varied_and_keep_arriving(tables) -> None:
    o, s = tables["orders"], tables["sellers"]
    per_seller = o.groupby("seller_id").size().reindex(s["seller_id"], fill_value=0).sort_values(ascending=False)
    top = per_seller.iloc[: len(per_seller) // 100].sum() / per_seller.sum()
    assert top > 0.08 and per_seller.iloc[0] > 20 * per_seller.median()
    assert s["category"].nunique() >= 6 and s["region"].nunique() >= 5
    joined = s[s["onboarded_at"] >= pd.Timestamp(MARKETPLACE.start)]
    assert 0.15 < len(joined) / len(s) < 0.45
    assert joined["onboarded_at"].dt.isocalendar().week.nunique() >= 40
    mfn = (o["fulfilment_channel"] == "marketplace").mean()
    assert 0.05 < mfn < 0.30


def test_the_holiday_peak_raises_volume_and_strains_delivery(tables) -> None:
    o = tables["orders"]
    sf = o[(o["fulfilment_channel"] == "seller") & o["delivered_at"].notna()]
    month = o["ordered_at"].dt.month
    per_month = o.groupby(month).size() / o.groupby(month)["ordered_at"].apply(lambda x: x.dt.date.nunique())
    assert per_month[12] > 1.3 * per_month[[3, 4, 5]].mean()
    late = (sf["delivered_at"] > sf["promised_delivery_by"]).groupby(sf["ordered_at"].dt.month).mean()
    assert late[12] > 1.5 * late[[3, 4, 5]].mean()


def test_regional_carrier_disruptions_hit_many_sellers_at_once(tables) -> None:
    o = tables["orders"].merge(tables["sellers"][["seller_id", "region"]], on="seller_id")
    sf = o[(o["fulfilment_channel"] == "seller") & o["delivered_at"].notna()]
    sf = sf[sf["ordered_at"].dt.month.isin([2, 3, 4, 5, 6, 8, 9, 10])]  # away from the holiday peak
    week = sf["ordered_at"].dt.to_period("W")
    late = sf["delivered_at"] > sf["promised_delivery_by"]
    by = late.groupby([sf["region"], week]).agg(["mean", "size"])
    sellers = sf.groupby([sf["region"], week])["seller_id"].nunique()
    typical = by["mean"].groupby(level=0).median()
    spikes = by[(by["mean"] > 1.8 * typical.reindex(by.index.get_level_values(0)).to_numpy()) & (sellers > 50)]
    assert len(spikes) >= 3


def test_new_sellers_are_riskier_and_warned_sellers_mostly_recover(tables, evaluations) -> None:
    s = tables["sellers"].set_index("seller_id").loc[evaluations.sellers]
    dates = np.array(evaluations.dates, dtype="datetime64[us]")
    tenure = (dates[None, :] - s["onboarded_at"].to_numpy()[:, None]) / np.timedelta64(1, "D")
    missing = evaluations.misses.any(axis=2)
    evaluated = (evaluations.volume >= 50).any(axis=2) & evaluations.active
    new = evaluated & (tenure < 120)
    old = evaluated & (tenure > 365)
    assert missing[new].mean() > 1.3 * missing[old].mean()

    actions = tables["policy_actions"]
    warned = actions[actions["action"] == "warning"]
    s_idx = {x: i for i, x in enumerate(evaluations.sellers)}
    start = pd.Timestamp(MARKETPLACE.start)
    recovered = []
    for row in warned.itertuples():
        k = (row.issued_at.normalize() - start).days // 7 - 1
        later = missing[s_idx[row.seller_id], k + 4: k + 10]
        if later.size == 6:
            recovered.append(not later.all())
    assert np.mean(recovered) > 0.5
    suspended = actions.loc[actions["action"] == "suspension", "seller_id"].nunique()
    assert 0 < suspended < 0.5 * warned["seller_id"].nunique()


def test_hidden_state_is_written_apart_with_every_trajectory(marketplace) -> None:
    events, _ = marketplace
    latent = events.with_name(events.name + "-latent")
    traits = pd.read_parquet(latent / "sellers")
    weeks = pd.read_parquet(latent / "seller_weeks")
    assert set(traits["archetype"]) == {"steady", "marginal", "deteriorating"}
    assert set(traits["trajectory"]) == {"none", "gradual", "stockout", "carrier_change", "quality", "surge"}
    assert len(weeks) == MARKETPLACE.n_sellers * MARKETPLACE.weeks
    assert weeks["p_cancel"].between(0, 1).all()
    stockout = traits.loc[traits["trajectory"] == "stockout", "seller_id"]
    assert weeks[weeks["seller_id"].isin(stockout)]["p_cancel"].max() > 5 * weeks["p_cancel"].median()


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path: Path, policy: Policy) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="precious"):
        simulate_marketplace(SimulationConfig(10, date(2025, 1, 6), 2, 1), policy, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_rerunning_replaces_the_output_whole(tmp_path: Path, policy: Policy) -> None:
    out = tmp_path / "events"
    simulate_marketplace(SimulationConfig(300, date(2025, 1, 6), 4, 1), policy, out)
    simulate_marketplace(SimulationConfig(200, date(2025, 1, 6), 4, 2), policy, out)
    assert len(pd.read_parquet(out / "sellers")) == 200
    assert json.loads((out / "_manifest.json").read_text())["seed"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
