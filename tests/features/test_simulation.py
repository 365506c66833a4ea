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
    assert cutoff == pd.Timestamp(MARKETPLACE.start) + pd.Timedelta(weeks=MARKETPLACE.weeks)
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


def test_the_holiday_peak_raises_volume_and_strains_delivery(tmp_path: Path, policy: Policy) -> None:
    """A marketplace of its own that runs through December (the session's stops before the ramp)."""
    out = tmp_path / "events"
    simulate_marketplace(SimulationConfig(n_sellers=500, start=date(2025, 1, 6), weeks=52, seed=11, workers=1),
                         policy, out, write_latent=False)
    o = read_tables(out)["orders"]
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


# ---------------------------------------------------------------- the regime's knobs


from features.simulation.behaviour import OVERLOAD_SHARES, behaviour  # noqa: E402
from features.simulation.population import L, draw_sellers  # noqa: E402
from features.simulation.regime import REGIMES, Regime, regime  # noqa: E402
from features.simulation.world import build_world  # noqa: E402

TODAYS_TABLES = "3a23c0a381b1d9bb2024a9ee1a67505d365b88110ab2cd15d1e470812d7b6959"
"""sha256 of the event tables (as CSV) of SimulationConfig(300, 2025-01-06, 8 weeks, seed 3), computed with
the simulator as it was before it had a regime: the default regime must keep making this marketplace."""


def _tables_digest(events: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for table in ("sellers", "orders", "returns", "refunds", "feedback", "contacts", "policy_actions"):
        h.update(pd.read_parquet(events / table).to_csv(index=False).encode())
    return h.hexdigest()


def test_the_default_regime_makes_todays_marketplace_and_says_nothing_of_itself(tmp_path: Path, policy: Policy) -> None:
    config = SimulationConfig(300, date(2025, 1, 6), 8, 3, workers=1)
    simulate_marketplace(config, policy, tmp_path / "a")
    assert _tables_digest(tmp_path / "a") == TODAYS_TABLES
    assert "regime" not in json.loads((tmp_path / "a" / "_manifest.json").read_text())
    assert "regime" not in json.loads((tmp_path / "a" / "_summary.json").read_text())["config"]
    explicit = SimulationConfig(300, date(2025, 1, 6), 8, 3, workers=1, regime=Regime(peak_strain=1.3))
    simulate_marketplace(explicit, policy, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    outages = SimulationConfig(300, date(2025, 1, 6), 8, 3, workers=1, regime=REGIMES["carrier_outages"])
    simulate_marketplace(outages, policy, tmp_path / "c")
    stated = json.loads((tmp_path / "c" / "_manifest.json").read_text())["regime"]
    assert stated == {"disruption_every_days": 18.0, "disruption_severity": 1.4}


def test_the_outage_knobs_make_disruptions_more_frequent_and_more_severe() -> None:
    start, days = date(2025, 1, 6), 364
    today = build_world(3, start, days)
    frequent = build_world(3, start, days, Regime(disruption_every_days=15.0))
    assert len(frequent.disruptions) > 3 * len(today.disruptions) > 0
    harsher = build_world(3, start, days, Regime(disruption_severity=1.5))
    assert len(harsher.disruptions) == len(today.disruptions)  # the same disruptions, each worse
    for mild, bad in zip(today.disruptions, harsher.disruptions, strict=True):
        assert (bad.region, bad.carrier, bad.first_day, bad.last_day) == (mild.region, mild.carrier, mild.first_day, mild.last_day)
        assert bad.severity == pytest.approx(1.5 * mild.severity, rel=1e-12)
    longer = build_world(3, start, days, Regime(disruption_days=(20, 30)))
    assert all(20 <= d.last_day - d.first_day < 30 for d in longer.disruptions)


def test_the_peak_knobs_scale_the_holiday_and_nothing_else() -> None:
    start = date(2025, 1, 6)
    today = build_world(3, start, 364)
    harsh = build_world(3, start, 364, Regime(peak_volume=1.8, peak_strain=2.6))
    dec20, may1 = (date(2025, 12, 20) - start).days, (date(2025, 5, 1) - start).days
    # at Dec 20 the holiday bump is all there is beyond 1 (cyber week and the summer sale are far away)
    assert harsh.strain[dec20] - 1 == pytest.approx(2.0 * (today.strain[dec20] - 1), rel=1e-6)
    weekday = 0.85  # Dec 20, 2025 is a Saturday: weekend demand
    assert harsh.volume[dec20] / weekday - 1 == pytest.approx(2.0 * (today.volume[dec20] / weekday - 1), rel=1e-6)
    assert harsh.strain[may1] == pytest.approx(today.strain[may1], abs=1e-9)
    assert harsh.volume[may1] == pytest.approx(today.volume[may1], abs=1e-9)


def _draw(r: Regime, n: int = 4000):
    return draw_sellers(np.random.default_rng(1), 0, n, 364, r, np.random.default_rng(2))


def test_fast_growers_grow_fast_past_a_fixed_capacity_and_leave_the_other_sellers_as_they_were() -> None:
    today, fast = _draw(Regime()), _draw(Regime(fast_growth_share=0.3))
    assert today.capacity is None
    growers = np.isfinite(fast.capacity)
    assert 0.27 < growers.mean() < 0.33
    assert ((fast.growth[growers] >= 0.9) & (fast.growth[growers] < 2.2)).all()
    np.testing.assert_array_equal(fast.growth[~growers], today.growth[~growers])
    np.testing.assert_array_equal(fast.size, today.size)
    np.testing.assert_array_equal(fast.quality, today.quality)
    first = np.maximum(fast.onboard_day, 0)
    headroom = fast.capacity[growers] / (fast.size[growers] * np.exp(fast.growth[growers] * first[growers] / 365.0))
    assert ((headroom >= 1.2) & (headroom < 2.2)).all()
    with pytest.raises(ValueError, match="regime_rng"):
        draw_sellers(np.random.default_rng(1), 0, 10, 364, Regime(fast_growth_share=0.3))


def test_a_seller_over_capacity_ships_late_answers_late_and_cancels_more_by_the_overload_effect() -> None:
    s = _draw(Regime(fast_growth_share=1.0), n=50)
    world = build_world(3, date(2025, 1, 6), 364)
    days = np.arange(100, 107)
    never, full = np.full(len(s), np.inf), np.ones(len(s))
    from dataclasses import replace

    loose = behaviour(replace(s, capacity=None), world, days, never, full, 3.0)
    tight = behaviour(s, world, days, never, full, 3.0)
    np.testing.assert_array_equal(loose.expected_orders, tight.expected_orders)
    load = tight.expected_orders / s.capacity[:, None]
    live = tight.expected_orders > 0
    for latent, share in OVERLOAD_SHARES.items():
        expect = loose.propensity[latent] * (1.0 + 3.0 * share * np.maximum(load - 1.0, 0.0))
        np.testing.assert_allclose(tight.propensity[latent][live], np.minimum(expect, 0.9)[live], rtol=1e-12)
    assert (load > 1.0).any() and (load <= 1.0).any()
    np.testing.assert_array_equal(tight.propensity[L["defect"]], loose.propensity[L["defect"]])


def _orders(events: Path) -> pd.DataFrame:
    return pd.read_parquet(events / "orders", columns=["seller_id", "ordered_at", "fulfilment_channel",
                                                        "shipped_at", "promised_ship_by"])


def test_fast_growers_marketplace_has_sellers_whose_orders_multiply_and_who_then_ship_late(
        tmp_path: Path, policy: Policy) -> None:
    def run(name: str) -> tuple[pd.DataFrame, object]:
        config = SimulationConfig(600, date(2025, 1, 6), 52, 4, workers=1, regime=REGIMES[name])
        summary = simulate_marketplace(config, policy, tmp_path / name, write_latent=False)
        return _orders(tmp_path / name), summary

    _, today = run("baseline")
    o, fast = run("fast_growers")
    quarter = (o["ordered_at"] - pd.Timestamp("2025-01-06")).dt.days // 91
    counts = o.groupby(["seller_id", quarter]).size().unstack(fill_value=0)
    counts = counts[counts[0] >= 30]
    multiplied = counts.index[counts[3] > 3 * counts[0]]
    assert len(multiplied) > 0.1 * len(counts)
    shipped = o[o["seller_id"].isin(multiplied) & o["shipped_at"].notna() & (o["fulfilment_channel"] == "seller")]
    late = (shipped["shipped_at"] > shipped["promised_ship_by"]).groupby(quarter.loc[shipped.index]).mean()
    assert late[3] > 2 * late[0]
    assert fast.rates["breach_within_horizon_share"] > today.rates["breach_within_horizon_share"]


def test_small_seller_marketplace_hovers_near_the_minimum_counts(tmp_path: Path, policy: Policy) -> None:
    minimum = policy.metrics["cancellation_rate"].min_count  # the order-count standards' minimum
    medians = {}
    for name in ("baseline", "small_sellers"):
        config = SimulationConfig(600, date(2025, 1, 6), 26, 4, workers=1, regime=regime(name))
        simulate_marketplace(config, policy, tmp_path / name, write_latent=False)
        o = _orders(tmp_path / name)
        o = o[o["fulfilment_channel"] == "seller"]
        windows = [o[(o["ordered_at"] < t) & (o["ordered_at"] >= t - pd.Timedelta(days=30))].groupby("seller_id").size()
                   for t in pd.date_range("2025-03-03", "2025-06-30", freq="28D")]
        medians[name] = float(pd.concat(windows).median())
    assert 0.7 * minimum <= medians["small_sellers"] <= 1.3 * minimum
    assert medians["baseline"] < 0.5 * minimum
    with pytest.raises(ValueError, match="unknown regime 'tiny'.*small_sellers"):
        regime("tiny")
