"""The marketplace every simulated seller shares: categories, regions, carriers, the calendar
(weekly rhythm, a summer sale, the holiday peak that strains delivery) and regional carrier
disruptions that hit many sellers at once, so that not every late box is the seller's fault."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from features.simulation.regime import DEFAULT_REGIME, Regime

LATENTS = (
    "cancel",  # the seller cancels (out of stock, cannot ship)
    "late_ship",  # ships after the promised ship-by time
    "late_transit",  # the carrier takes longer than promised
    "bad_tracking",  # the tracking number is invalid or never scanned
    "lost",  # the parcel never arrives
    "defect",  # damaged, wrong, not as described, defective
    "remorse_return",  # the customer returns a sound item
    "no_response",  # a customer message is not answered within 48 h
)
"""Each seller's hidden per-order propensities; the simulator draws every outcome from them."""

BASE_RATES = np.array([0.0125, 0.028, 0.040, 0.0022, 0.0020, 0.0075, 0.012, 0.020])
"""Propensities of a typical established seller in a quiet week, in LATENTS order."""

CATEGORIES = ("home", "electronics", "apparel", "beauty", "toys", "sports", "grocery", "automotive")
CATEGORY_WEIGHTS = np.array([0.20, 0.14, 0.18, 0.12, 0.10, 0.10, 0.08, 0.08])
CATEGORY_LOG_PRICE = np.array([3.6, 4.3, 3.4, 3.0, 3.2, 3.7, 2.9, 3.8])  # median order ~ $20 to $75
CATEGORY_REMORSE = np.array([1.0, 1.1, 2.4, 0.6, 0.9, 1.2, 0.3, 0.9])  # remorse-return multiplier
CATEGORY_DEFECT = np.array([1.0, 1.3, 0.9, 0.8, 1.1, 1.0, 0.7, 1.2])  # breakage and wrong-item multiplier

REGIONS = ("northeast", "southeast", "midwest", "south_central", "mountain", "pacific")
REGION_WEIGHTS = np.array([0.20, 0.22, 0.18, 0.16, 0.08, 0.16])
REGION_TRANSIT_DAYS = np.array([3, 3, 3, 4, 5, 4])  # promised transit days for standard shipping

CARRIERS = ("usps", "ups", "fedex", "ontrac", "lasership", "veho")
CARRIER_WEIGHTS = np.array([0.34, 0.28, 0.22, 0.06, 0.06, 0.04])
CARRIER_QUALITY = np.array([1.0, 0.85, 0.9, 1.6, 1.8, 1.5])  # multiplies late transit, lost, bad tracking


@dataclass(frozen=True)
class Disruption:
    """A regional carrier disruption: weather or one carrier's network in trouble."""

    region: int
    carrier: int  # -1: all carriers (weather)
    first_day: int
    last_day: int
    severity: float  # added probability of a late transit at the peak


@dataclass(frozen=True)
class World:
    """Everything shared by all sellers, drawn once from the seed."""

    start: date
    n_days: int
    volume: np.ndarray  # (n_days,) demand multiplier
    strain: np.ndarray  # (n_days,) multiplier on late shipping and late transit (holiday peak)
    remorse: np.ndarray  # (n_days,) multiplier on remorse returns (post-holiday)
    disruptions: tuple[Disruption, ...]

    def disruption_severity(self, region: np.ndarray, carrier: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Added late-transit probability for sellers (rows) on days (columns)."""
        out = np.zeros((len(region), len(days)))
        for d in self.disruptions:
            on_day = (days >= d.first_day) & (days <= d.last_day)
            if not on_day.any():
                continue
            hit = (region == d.region) & ((carrier == d.carrier) if d.carrier >= 0 else True)
            # a disruption builds up and fades: triangular profile over its span
            span = max(d.last_day - d.first_day, 1)
            profile = 1.0 - np.abs((days - d.first_day) / span * 2.0 - 1.0) * 0.6
            out += np.outer(hit, np.where(on_day, d.severity * profile, 0.0))
        return out


def _bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((doy - centre) / width) ** 2)


def build_world(seed: int, start: date, n_days: int, regime: Regime = DEFAULT_REGIME) -> World:
    """The calendar and the disruptions for a simulation starting at `start`, in the kind of
    marketplace `regime` says (its peak, and how often and how badly carriers fail)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    dates = [start + timedelta(days=i) for i in range(n_days)]
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    weekday = np.array([d.weekday() for d in dates])
    holiday = _bump(doy, 345.0, 14.0) + _bump(doy - 365.0, 345.0, 14.0) + _bump(doy + 365.0, 345.0, 14.0)
    cyber_week = _bump(doy, 332.0, 3.0)
    summer_sale = _bump(doy, 192.0, 2.0)
    post_holiday = _bump(doy, 8.0, 8.0) + _bump(doy - 365.0, 8.0, 8.0)
    volume = (1.0 + regime.peak_volume * holiday + 0.6 * cyber_week + 0.5 * summer_sale) * np.where(weekday >= 5, 0.85, 1.04)
    strain = 1.0 + regime.peak_strain * holiday + 0.5 * cyber_week + 0.3 * summer_sale
    remorse = 1.0 + 0.8 * post_holiday
    disruptions = []
    for region in range(len(REGIONS)):
        for _ in range(rng.poisson(n_days / regime.disruption_every_days)):
            first = int(rng.integers(0, n_days))
            carrier = int(rng.choice(len(CARRIERS), p=CARRIER_WEIGHTS)) if rng.random() < 0.5 else -1
            length = int(rng.integers(*regime.disruption_days))
            disruptions.append(
                Disruption(region, carrier, first, first + length,
                           float(rng.uniform(0.08, 0.35)) * regime.disruption_severity)
            )
    return World(start, n_days, volume, strain, remorse, tuple(disruptions))
