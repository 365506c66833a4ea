"""The simulator's knobs for what kind of marketplace it is: how hard the holiday peak strains delivery,
how often and how badly regional carrier networks fail, how big sellers are, and how many of them grow
faster than they can ship. The defaults are the marketplace the simulator has always made (same seed,
same bytes); the named regimes are the marketplaces a model is also judged on, so a change that fits the
quirks of one simulated marketplace does not pass unnoticed (training/robustness.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Regime:
    """What kind of marketplace to simulate; every field's default is today's marketplace."""

    peak_volume: float = 0.9
    """Extra demand at the centre of the holiday peak (demand is 1 + this there, before weekdays)."""
    peak_strain: float = 1.3
    """Extra late shipping and late transit at the centre of the holiday peak (the multiplier is 1 + this)."""
    disruption_every_days: float = 75.0
    """Mean days between two carrier disruptions in one region (weather, or one carrier's network)."""
    disruption_severity: float = 1.0
    """Multiplies each disruption's added late-transit probability (drawn between 0.08 and 0.35)."""
    disruption_days: tuple[int, int] = (3, 13)
    """A disruption lasts from the first to (excluding) the second number of days."""
    size_median: float = 0.55
    """Median seller's expected orders per day at maturity, before seasonality."""
    size_spread: float = 1.3
    """Standard deviation of the log of sellers' sizes: large spreads make a few sellers huge."""
    fast_growth_share: float = 0.0
    """Share of sellers whose demand grows fast while their capacity to ship and answer stays put."""
    fast_growth: tuple[float, float] = (0.9, 2.2)
    """Yearly log growth of a fast grower's demand, drawn uniformly (1.4: four times as many orders a year on)."""
    capacity_headroom: tuple[float, float] = (1.2, 2.2)
    """A fast grower's capacity, as a multiple of its demand when it starts selling in the period, drawn uniformly."""
    overload_effect: float = 3.0
    """How much a seller working above capacity slips: at demand (1 + x) times capacity, its late-shipment
    propensity is (1 + this x) times higher; its unanswered messages and cancellations rise by less."""

    def changed(self) -> dict:
        """The knobs set away from today's marketplace, for manifests and summaries (empty by default,
        so a default run writes the same bytes it always has)."""
        default = Regime()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def describe(self) -> str:
        changed = self.changed()
        return ", ".join(f"{k}={v}" for k, v in changed.items()) if changed else "today's marketplace"

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_REGIME = Regime()
"""Today's marketplace."""

REGIMES: dict[str, Regime] = {
    "baseline": DEFAULT_REGIME,
    "holiday_peak": Regime(peak_volume=1.3, peak_strain=2.2),
    "carrier_outages": Regime(disruption_every_days=18.0, disruption_severity=1.4),
    "fast_growers": Regime(fast_growth_share=0.3),
    "small_sellers": Regime(size_median=2.0, size_spread=0.35),
}
"""The marketplaces a model is judged on besides today's: a harsher holiday peak; frequent regional carrier
outages; many fast-growing sellers that outrun their capacity; and small sellers hovering near the policy's
minimum counts (50 orders in 30 days), so standards switch between judged and not judged week to week."""


def regime(name: str) -> Regime:
    """A named regime, or a clear error naming the ones there are."""
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; expected one of {', '.join(REGIMES)}")
    return REGIMES[name]
