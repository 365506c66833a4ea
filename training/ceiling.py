"""What a model could reach on a simulated marketplace: the robustness run's backtest given, besides every
feature, each seller's hidden state at t as the simulator knows it (its per-order propensities to cancel,
ship late, be late in transit, leave messages unanswered ... and its expected orders, averaged over the seven
days before t, and its archetype: steady, marginal or deteriorating).

No production model can see that state; the ceiling tells a target no model can reach on a marketplace (the
first holiday peak's calibration, the small sellers' ranking) from one the model misses. Its stronger form,
`ahead`, gives the state of the coming weeks instead, averaged over the label's horizon (t, t + horizon]: what
the seller will do, which no model can know at t; a bound even that misses is out of reach of any model. It reads the
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


KINDS = ("at_t", "ahead")
"""What the ceiling's model is given: the state of the week that ends at t, or of the weeks of the horizon ahead."""


def with_hidden_state(frame: pd.DataFrame, hidden: pd.DataFrame, spec: FeatureSpec, kind: str = "at_t",
                      horizon_days: int = 28) -> tuple[pd.DataFrame, FeatureSpec]:
    """`frame` (snapshot rows) with each row's hidden state, and `spec` with those columns added as context
    features. `at_t`: the state over the seven days before its `as_of` (the simulated week that ends at t:
    nothing after t); `ahead`: the mean of the weekly states over (t, t + horizon_days] instead. A seller-week
    the simulation has no state for (not yet live, or past its end) gets missing values."""
    if kind not in KINDS:
        raise ValueError(f"unknown ceiling {kind!r}; expected one of {', '.join(KINDS)}")
    state = hidden.assign(as_of=pd.to_datetime(hidden["week_start"]) + pd.Timedelta(days=7))
    state = state[["seller_id", "as_of", "archetype", *STATE]].sort_values(["seller_id", "as_of"], ignore_index=True)
    if kind == "ahead":  # the row of as_of t + 7k holds the week (t + 7(k - 1), t + 7k]
        weeks = horizon_days // 7
        by_seller = state.groupby("seller_id")[list(STATE)]
        state[list(STATE)] = sum(by_seller.shift(-k) for k in range(1, weeks + 1)) / weeks
    state = state.rename(columns={c: PREFIX + c for c in STATE})
    codes = {name: float(i) for i, name in enumerate(ARCHETYPES)}
    state[ARCHETYPE] = state.pop("archetype").astype(str).map(codes)
    joined = frame.merge(state, on=["seller_id", "as_of"], how="left", validate="many_to_one")
    names = (ARCHETYPE, *(PREFIX + c for c in STATE))
    window = horizon_days if kind == "ahead" else 7
    extra = tuple(Feature(n, "float", window, f"the simulator's hidden {n.removeprefix(PREFIX)} (ceiling only)",
                          f"{n}: {{value}}", "", role="context") for n in names)
    return joined, FeatureSpec(spec.policy_version, spec.features + extra, spec.policy_terms)
