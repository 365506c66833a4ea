"""The ceiling's hidden state: each snapshot row gets the simulator's state of the week that ends at its as_of
(nothing after t), read from a real simulation's latent files, and the state enters the spec as context."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pipeline.spec import Feature, FeatureSpec
from features.platform.settings import DEFAULT_POLICY
from features.policy.definition import load_policy
from features.simulation.run import SimulationConfig, simulate_marketplace
from training.ceiling import ARCHETYPE, PREFIX, STATE, read_hidden_state, with_hidden_state

SPEC = FeatureSpec("test", (Feature("orders_30d", "int", 30, "orders", "{value} orders", "", role="exposure"),))


@pytest.fixture(scope="module")
def hidden(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("ceiling") / "events"
    simulate_marketplace(SimulationConfig(40, date(2025, 1, 6), 6, 3, workers=1), load_policy(DEFAULT_POLICY), out)
    return read_hidden_state(out)


def test_each_row_gets_the_state_of_the_week_that_ends_at_its_as_of(hidden: pd.DataFrame) -> None:
    seller = hidden["seller_id"].iloc[0]
    frame = pd.DataFrame({"seller_id": [seller, seller, "S9999999"],
                          "as_of": pd.to_datetime(["2025-01-20", "2025-02-03", "2025-01-20"]),
                          "orders_30d": [3, 4, 5]})
    joined, spec = with_hidden_state(frame, hidden, SPEC)
    mine = hidden[hidden["seller_id"] == seller].set_index(pd.to_datetime(hidden.loc[hidden["seller_id"] == seller,
                                                                                      "week_start"]))
    for i, week_start in ((0, "2025-01-13"), (1, "2025-01-27")):  # the seven days before t, not the week from t
        for col in STATE:
            assert joined.loc[i, PREFIX + col] == pytest.approx(float(mine.loc[week_start, col]))
    archetype = str(mine["archetype"].iloc[0])
    assert joined.loc[0, ARCHETYPE] == {"steady": 0.0, "marginal": 1.0, "deteriorating": 2.0}[archetype]
    assert joined.loc[2, [PREFIX + c for c in STATE]].isna().all()  # a seller the simulation never had
    assert joined["orders_30d"].tolist() == [3, 4, 5] and len(joined) == 3
    added = [f for f in spec.features if f.name.startswith(PREFIX)]
    assert spec.names[0] == "orders_30d" and len(added) == len(STATE) + 1
    assert {f.role for f in added} == {"context"} and {f.group for f in added} == {"context"}  # never a reason


def test_ahead_gives_the_mean_state_of_the_weeks_of_the_horizon_after_t(hidden: pd.DataFrame) -> None:
    seller = hidden["seller_id"].iloc[-1]
    frame = pd.DataFrame({"seller_id": [seller, seller], "as_of": pd.to_datetime(["2025-01-13", "2025-01-27"]),
                          "orders_30d": [1, 2]})
    joined, _ = with_hidden_state(frame, hidden, SPEC, "ahead", horizon_days=28)
    mine = hidden[hidden["seller_id"] == seller].assign(week_start=lambda d: pd.to_datetime(d["week_start"]))
    ahead = mine[(mine["week_start"] >= "2025-01-13") & (mine["week_start"] < "2025-02-10")]  # [t, t + 28 days)
    assert len(ahead) == 4
    for col in STATE:
        assert joined.loc[0, PREFIX + col] == pytest.approx(float(ahead[col].mean()), rel=1e-6)
    assert joined.loc[1, [PREFIX + c for c in STATE]].isna().all()  # its horizon runs past the simulation's 6 weeks
    with pytest.raises(ValueError, match="unknown ceiling 'later'"):
        with_hidden_state(frame, hidden, SPEC, "later")


def test_the_state_differs_week_to_week_so_the_join_reads_the_right_one(hidden: pd.DataFrame) -> None:
    weeks = hidden.groupby("seller_id")["p_late_ship"].nunique()
    assert (weeks > 1).mean() > 0.5
    assert np.isfinite(hidden[list(STATE)].to_numpy(dtype="float64")).all()


def test_a_simulation_without_its_hidden_state_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="events-latent.*write_latent=True"):
        read_hidden_state(tmp_path / "events")
