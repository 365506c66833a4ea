"""What a model could reach on a simulated marketplace: the robustness run's backtest given, besides every
feature, each seller's hidden state at t as the simulator knows it (its per-order propensities to cancel,
ship late, be late in transit, leave messages unanswered ... and its expected orders, averaged over the seven
days before t, and its archetype: steady, marginal or deteriorating).

No production model can see that state; the ceiling tells a target no model can reach on a marketplace (the
first holiday peak's calibration, the small sellers' ranking) from one the model misses. It reads the
simulator's `<events>-latent/seller_weeks` folder (`simulate_marketplace(write_latent=True)`), which no
pipeline reads, and declares the hidden state as context features: never a reason.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.pipeline.spec import Feature, FeatureSpec
from features.simulation.population import ARCHETYPES
from features.simulation.world import LATENTS

PREFIX = "hidden_"
STATE = ("expected_orders_per_day", *(f"p_{name}" for name in LATENTS))
"""The latent columns of `seller_weeks` the ceiling's model is given, each as PREFIX + name, plus the archetype."""
ARCHETYPE = PREFIX + "archetype"


def read_hidden_state(events: Path) -> pd.DataFrame:
    """The simulator's per-seller, per-week hidden state written beside `events` (one row per seller and week
    of the simulation, `week_start` its first day), or a clear error when the simulation kept none."""
    folder = Path(events).with_name(Path(events).name + "-latent") / "seller_weeks"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: the ceiling needs the simulator's hidden state "
                                "(simulate_marketplace(..., write_latent=True))")
    return pd.read_parquet(folder, columns=["seller_id", "week_start", "archetype", *STATE])


def with_hidden_state(frame: pd.DataFrame, hidden: pd.DataFrame, spec: FeatureSpec) -> tuple[pd.DataFrame, FeatureSpec]:
    """`frame` (snapshot rows) with each row's hidden state over the seven days before its `as_of` (the
    simulated week that ends at t: nothing after t), and `spec` with those columns added as context
    features. A seller-week the simulation has no state for (not yet live) gets missing values."""
    state = hidden.assign(as_of=pd.to_datetime(hidden["week_start"]) + pd.Timedelta(days=7))
    state = state[["seller_id", "as_of", "archetype", *STATE]].rename(columns={c: PREFIX + c for c in STATE})
    codes = {name: float(i) for i, name in enumerate(ARCHETYPES)}
    state[ARCHETYPE] = state.pop("archetype").astype(str).map(codes)
    joined = frame.merge(state, on=["seller_id", "as_of"], how="left", validate="many_to_one")
    names = (ARCHETYPE, *(PREFIX + c for c in STATE))
    extra = tuple(Feature(n, "float", 7, f"the simulator's hidden {n.removeprefix(PREFIX)} (ceiling only)",
                          f"{n}: {{value}}", "", role="context") for n in names)
    return joined, FeatureSpec(spec.policy_version, spec.features + extra, spec.policy_terms)
