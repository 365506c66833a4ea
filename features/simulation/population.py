"""Who sells on the simulated marketplace: a few large sellers and many small ones, of every
category and region, some onboarding during the period, each with a hidden trajectory:
steady, chronically marginal, or deteriorating (gradually or through a stock-out, a carrier
change, a quality problem or a volume surge they cannot handle). How big sellers are, and how many
grow faster than their capacity to ship, is the regime's (features/simulation/regime.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from features.simulation.regime import DEFAULT_REGIME, Regime
from features.simulation.world import (
    CARRIER_WEIGHTS,
    CATEGORY_WEIGHTS,
    LATENTS,
    REGION_WEIGHTS,
)

ARCHETYPES = ("steady", "marginal", "deteriorating")
TRAJECTORIES = ("none", "gradual", "stockout", "carrier_change", "quality", "surge")

L = {name: i for i, name in enumerate(LATENTS)}

GRADUAL_TARGETS = (
    (L["late_ship"], L["late_transit"]),
    (L["cancel"],),
    (L["defect"],),
    (L["no_response"],),
    (L["bad_tracking"],),
)


@dataclass
class Sellers:
    """One chunk of sellers: static traits, and the parameters of their hidden trajectories."""

    ids: np.ndarray  # global seller numbers
    onboard_day: np.ndarray  # day index relative to the simulation start (negative: before)
    size: np.ndarray  # expected orders per day at maturity, before seasonality
    growth: np.ndarray  # yearly log growth of demand
    category: np.ndarray
    region: np.ndarray
    carrier: np.ndarray
    new_carrier: np.ndarray  # the carrier switched to in a carrier change
    handling_days: np.ndarray
    mfn_share: np.ndarray  # share of orders fulfilled by the marketplace
    price_level: np.ndarray
    quality: np.ndarray  # (n, latents) lasting multipliers on the base propensities
    marginal: np.ndarray  # (n, latents) excess of chronically marginal sellers (1 = none)
    archetype: np.ndarray
    trajectory: np.ndarray
    onset: np.ndarray  # first day of the deterioration
    duration: np.ndarray  # days a stock-out or surge lasts; ramp length of a gradual decline
    amplitude: np.ndarray  # peak multiplier of the deterioration
    gradual_target: np.ndarray  # index into GRADUAL_TARGETS
    self_fix_day: np.ndarray  # day the seller fixes things unprompted (inf: never)
    respond_prob: np.ndarray  # chance a warning makes the seller fix things
    fix_half_life: np.ndarray  # days for half the excess to go once fixing starts
    capacity: np.ndarray | None = None  # orders a day the seller can ship and answer well (None: never limiting)

    def __len__(self) -> int:
        return len(self.ids)


def draw_sellers(rng: np.random.Generator, first_id: int, n: int, n_days: int, regime: Regime = DEFAULT_REGIME,
                 regime_rng: np.random.Generator | None = None) -> Sellers:
    """Draw `n` sellers numbered from `first_id` for a simulation of `n_days` days, sized as `regime` says.
    Its fast growers are drawn from `regime_rng`, a stream of their own, so that turning them on leaves
    every other seller's traits (drawn from `rng`) as they were."""
    joins_later = rng.random(n) < 0.28
    tenure = np.minimum(rng.exponential(550.0, n), 2500.0)
    onboard_day = np.where(joins_later, rng.integers(0, max(n_days - 7, 1), n), -np.ceil(tenure) - 1).astype(np.int64)

    n_lat = len(LATENTS)
    q = rng.normal(0.0, 1.0, n)
    quality = np.exp(0.45 * q[:, None] + 0.5 * rng.normal(0.0, 1.0, (n, n_lat)) - 0.25)

    newcomer_risk = np.where(joins_later, 0.15, 0.0)
    u = rng.random(n)
    archetype = np.select([u < 0.16 + newcomer_risk, u < 0.40 + newcomer_risk], [1, 2], 0)

    marginal = np.ones((n, n_lat))
    chosen = (rng.random((n, n_lat)) < 0.3) & (archetype == 1)[:, None]
    marginal[chosen] = rng.uniform(1.6, 3.2, chosen.sum())

    trajectory, onset, duration, amplitude, self_fix_day = _trajectories(rng, n, n_days, onboard_day, archetype)

    carrier = rng.choice(len(CARRIER_WEIGHTS), n, p=CARRIER_WEIGHTS)
    sellers = Sellers(
        ids=np.arange(first_id, first_id + n),
        onboard_day=onboard_day,
        size=np.minimum(rng.lognormal(np.log(regime.size_median), regime.size_spread, n), 1500.0),
        growth=rng.normal(0.10, 0.35, n),
        category=rng.choice(len(CATEGORY_WEIGHTS), n, p=CATEGORY_WEIGHTS),
        region=rng.choice(len(REGION_WEIGHTS), n, p=REGION_WEIGHTS),
        carrier=carrier,
        new_carrier=(carrier + 3 + rng.integers(0, 3, n)) % len(CARRIER_WEIGHTS),
        handling_days=rng.choice([1, 2, 3], n, p=[0.55, 0.35, 0.10]),
        mfn_share=np.where(rng.random(n) < 0.65, 0.0, rng.beta(2.0, 2.5, n)),
        price_level=rng.normal(0.0, 0.35, n),
        quality=quality,
        marginal=marginal,
        archetype=archetype,
        trajectory=trajectory,
        onset=onset,
        duration=duration,
        amplitude=amplitude,
        gradual_target=rng.integers(0, len(GRADUAL_TARGETS), n),
        self_fix_day=self_fix_day,
        respond_prob=np.select([archetype == 1, archetype == 2], [0.5, 0.65], 0.85),
        fix_half_life=rng.uniform(5.0, 20.0, n),
    )
    if regime.fast_growth_share <= 0:
        return sellers
    if regime_rng is None:
        raise ValueError("draw_sellers: a regime with fast growers needs their own random stream (regime_rng)")
    return fast_growers(sellers, regime, regime_rng)


def _trajectories(rng: np.random.Generator, n: int, n_days: int, onboard_day: np.ndarray,
                  archetype: np.ndarray) -> tuple[np.ndarray, ...]:
    """The hidden trajectory of each seller (none unless deteriorating), when it starts, how long and
    how hard it is, and the day the seller fixes things unprompted (inf: never)."""
    deteriorates = archetype == 2
    trajectory = np.where(deteriorates, 1 + rng.choice(5, n, p=[0.30, 0.20, 0.15, 0.20, 0.15]), 0)
    onset = np.maximum(onboard_day, 0) + rng.integers(-20, max(n_days, 30), n)
    duration = np.select(
        [trajectory == 1, trajectory == 2, trajectory == 5],
        [rng.integers(21, 120, n), rng.integers(10, 42, n), rng.integers(20, 60, n)],
        10**6,
    )
    amplitude = np.select(
        [trajectory == 1, trajectory == 2, trajectory == 3, trajectory == 4, trajectory == 5],
        [rng.uniform(2.0, 5.0, n), rng.uniform(5.0, 14.0, n), rng.uniform(6.0, 20.0, n),
         rng.uniform(3.0, 9.0, n), rng.uniform(2.5, 5.0, n)],
        1.0,
    )
    self_fix = deteriorates & (rng.random(n) < 0.35)
    self_fix_day = np.where(self_fix, onset + rng.integers(20, 90, n), np.inf)
    return trajectory, onset, duration, amplitude, self_fix_day


def fast_growers(s: Sellers, regime: Regime, rng: np.random.Generator) -> Sellers:
    """The sellers with a fast grower's demand growth and a fixed capacity: `headroom` times the demand
    they had when they started selling in the period, so that growth carries them past it months later
    (how many depends on growth and headroom; the holiday peak gets there sooner)."""
    n = len(s)
    fast = rng.random(n) < regime.fast_growth_share
    growth = np.where(fast, rng.uniform(*regime.fast_growth, n), s.growth)
    headroom = rng.uniform(*regime.capacity_headroom, n)
    first_day = np.maximum(s.onboard_day, 0)
    capacity = np.where(fast, headroom * s.size * np.exp(growth * first_day / 365.0), np.inf)
    return replace(s, growth=growth, capacity=capacity)
