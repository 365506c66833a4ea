"""How each seller behaves on each day: expected orders and the hidden per-order propensities,
from their traits, their trajectory, the calendar, carrier disruptions, and whether they have
started fixing things (after a warning, or on their own)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulation.population import GRADUAL_TARGETS, L, Sellers
from features.simulation.world import (
    BASE_RATES,
    CARRIER_QUALITY,
    CATEGORY_DEFECT,
    CATEGORY_REMORSE,
    LATENTS,
    World,
)

CARRIER_SENSITIVE = (L["late_transit"], L["lost"], L["bad_tracking"])


@dataclass
class Behaviour:
    """Sellers (rows) on consecutive days (columns)."""

    expected_orders: np.ndarray  # (n, d)
    propensity: np.ndarray  # (latents, n, d)
    carrier: np.ndarray  # (n, d) carrier in use


def _trajectory_excess(s: Sellers, days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multipliers a seller's deterioration puts on each propensity, on demand, and the carrier in use."""
    n, d = len(s), len(days)
    excess = np.ones((len(LATENTS), n, d))
    since = days[None, :] - s.onset[:, None]
    within = (since >= 0) & (since < s.duration[:, None])
    started = since >= 0
    amp = s.amplitude[:, None]

    gradual = (s.trajectory == 1)[:, None]
    ramp = 1.0 + (amp - 1.0) * np.clip(since / s.duration[:, None], 0.0, 1.0)
    for k, targets in enumerate(GRADUAL_TARGETS):
        rows = gradual & (s.gradual_target == k)[:, None]
        for latent in targets:
            excess[latent] = np.where(rows, ramp, excess[latent])

    stockout = (s.trajectory == 2)[:, None] & within
    excess[L["cancel"]] = np.where(stockout, amp, excess[L["cancel"]])

    switched = (s.trajectory == 3)[:, None] & started
    excess[L["bad_tracking"]] = np.where(switched, amp, excess[L["bad_tracking"]])
    excess[L["late_transit"]] = np.where(switched, 1.0 + 0.25 * (amp - 1.0), excess[L["late_transit"]])
    excess[L["lost"]] = np.where(switched, 1.0 + 0.2 * (amp - 1.0), excess[L["lost"]])
    carrier = np.where(switched, s.new_carrier[:, None], s.carrier[:, None])

    quality = (s.trajectory == 4)[:, None] & started
    excess[L["defect"]] = np.where(quality, amp, excess[L["defect"]])

    surge = (s.trajectory == 5)[:, None] & within
    demand = np.where(surge, amp, 1.0)
    excess[L["late_ship"]] = np.where(surge, 1.5 * amp, excess[L["late_ship"]])
    excess[L["no_response"]] = np.where(surge, 1.5 * amp, excess[L["no_response"]])
    excess[L["cancel"]] = np.where(surge, 1.0 + 0.8 * (amp - 1.0), excess[L["cancel"]])
    return excess, demand, carrier


OVERLOAD_SHARES = {L["late_ship"]: 1.0, L["no_response"]: 0.7, L["cancel"]: 0.4}
"""How much of the overload effect each propensity takes: an overloaded seller ships late first, then
leaves messages unanswered, then cancels what it cannot ship."""


def _overloaded(excess: np.ndarray, load: np.ndarray, effect: float) -> None:
    """Raise the excess of sellers working above capacity (`load` > 1: orders over capacity), in place:
    at load 1 + x a propensity's multiplier grows by effect x times its share (OVERLOAD_SHARES)."""
    over = np.maximum(load - 1.0, 0.0)
    for latent, share in OVERLOAD_SHARES.items():
        excess[latent] *= 1.0 + effect * share * over


def behaviour(
    s: Sellers, world: World, days: np.ndarray, fix_start: np.ndarray, volume_factor: np.ndarray,
    overload_effect: float,
) -> Behaviour:
    """Expected orders and propensities for `days`, given when each seller started fixing
    things (`fix_start`, inf if never) and enforcement's effect on their sales (`volume_factor`:
    1, lower while listings are suppressed, 0 while suspended). A seller with a capacity who gets
    more orders than it slips by `overload_effect` (`_overloaded`); fixing things undoes that too."""
    age = days[None, :] - s.onboard_day[:, None]
    live = age >= 0
    newness = 1.0 + 1.3 * np.exp(-np.maximum(age, 0) / 45.0)
    ramp_up = 1.0 - np.exp(-(np.maximum(age, 0) + 1.0) / 20.0)

    excess, demand, carrier = _trajectory_excess(s, days)
    expected = (
        s.size[:, None]
        * ramp_up
        * world.volume[days][None, :]
        * np.exp(s.growth[:, None] * days[None, :] / 365.0)
        * demand
        * volume_factor[:, None]
    )
    if s.capacity is not None:
        _overloaded(excess, expected / s.capacity[:, None], overload_effect)
    excess *= s.marginal.T[:, :, None]
    fixing = np.maximum(days[None, :] - fix_start[:, None], 0.0)
    remaining = np.where(
        days[None, :] >= fix_start[:, None],
        np.maximum(np.exp(-np.log(2.0) * fixing / s.fix_half_life[:, None]), 0.05),
        1.0,
    )
    effective = 1.0 + (excess - 1.0) * remaining[None]

    p = BASE_RATES[:, None, None] * s.quality.T[:, :, None] * effective * newness[None]
    strain = world.strain[days][None, :]
    p[L["late_ship"]] *= strain
    p[L["late_transit"]] *= strain
    p[L["no_response"]] *= 1.0 + 0.5 * (strain - 1.0)
    for latent in CARRIER_SENSITIVE:
        p[latent] *= CARRIER_QUALITY[carrier]
    p[L["defect"]] *= CATEGORY_DEFECT[s.category][:, None]
    p[L["remorse_return"]] *= CATEGORY_REMORSE[s.category][:, None] * world.remorse[days][None, :] / newness
    disrupted = world.disruption_severity(s.region, carrier[:, 0], days)
    p[L["late_transit"]] += disrupted
    p[L["lost"]] += 0.04 * disrupted
    np.clip(p, 0.0, 0.9, out=p)
    return Behaviour(np.where(live, expected, 0.0), p, carrier)
