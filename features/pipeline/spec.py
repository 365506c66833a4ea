"""The feature spec: the ordered seller behaviour vector, declared once.

Each feature has a name, a dtype, a window, a one-line business meaning, a reason template in a
reviewer's words, and the SQL that defines it over the windowed daily flows of `features.pipeline.flows`
(columns `w<days>_<flow>` and `cum_<flow>`, plus `as_of_day`, `onboarded_us`, `last_warning_day`,
`category`, `region`). Training logs the spec's hash and serving refuses a model whose hash differs;
the hash covers the definitions, so changing how a feature is computed changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

import pandas as pd

from features.pipeline.flows import DAY_US, LOST_AFTER_DAYS, metric_parts, next_known_window
from features.policy.measures import RESPONSE_HOURS
from features.policy.definition import Metric, Policy
from features.policy.standing import units

Dtype = Literal["float", "int", "category"]
Role = Literal["behaviour", "exposure", "context"]
"""What a feature says about a seller. *behaviour*: what the seller does (rates, gaps, trends, late
handovers, overdue orders, unanswered messages, warnings): a reviewer can ask the seller to change
it, so only behaviour makes a reason. *exposure*: how much is judged (orders, messages). *context*:
who the seller is (category, region, tenure, fulfilment mix). Exposure and context are shown beside
the reasons, never as one."""
Group = Literal["behaviour", "mechanics", "world", "history", "exposure", "context"]
"""The feature families an ablation drops in turn. *behaviour*: a standard's rates, gaps and trends and the
seller's own doings that drive one standard; *mechanics*: what the label's own arithmetic already fixes about
the coming evaluations (the known part of each coming window, events leaving it, late parcels already certain);
*world*: the marketplace around the seller (its carriers and region, its category, the season's strain), always
context for a reason; *history*: the marketplace's warnings; *exposure* and *context*: as the role says."""
WILSON_Z = 1.96


@dataclass(frozen=True)
class Feature:
    """One column of the seller behaviour vector."""

    name: str
    dtype: Dtype
    window_days: int | None  # None: a state at t, or all history
    description: str
    reason: str  # str.format template with {value}
    sql: str
    missing: str = ""  # the sentence when the value is missing; default: "<template's lead>: no data"
    role: Role = "behaviour"
    standard: str | None = None  # the policy metric this feature measures or drives; None: no single one
    family: Group | None = None  # None: from the role (behaviour of no one standard is history)

    @property
    def group(self) -> Group:
        """The feature's family for ablations (`Group`)."""
        if self.family is not None:
            return self.family
        if self.role == "behaviour":
            return "behaviour" if self.standard else "history"
        return self.role

    @property
    def optional(self) -> bool:
        """Whether a value may be missing, as in training: rates and ratios (an empty window) and
        features with a sentence for missing; counts and categories are always known."""
        return self.dtype == "float" or bool(self.missing)

    def reason_text(self, value: object) -> str:
        """The reason sentence for a value of this feature."""
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            if self.missing:
                return self.missing
            lead = self.reason.split("{")[0].rstrip(" :")
            return f"{lead}: no data"
        return self.reason_format(value)

    @property
    def reason_format(self) -> Callable[[object], str]:
        """The template as a one-argument formatter for a known value (positional: a fifth cheaper
        per call than `value=`, which counts when a million sellers get five reasons each)."""
        return self.reason.replace("{value", "{0").format


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered features of a policy version."""

    policy_version: str
    features: tuple[Feature, ...]
    policy_terms: str = ""  # the policy's rules that decide features and labels (`policy_terms`), as JSON

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.dtype == "category"]

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    @cached_property
    def position(self) -> dict[str, int]:
        """Each feature's column in the model inputs (spec order)."""
        return {f.name: j for j, f in enumerate(self.features)}

    @cached_property
    def hash(self) -> str:
        """Identifies what a model is trained on: the features' names, order, dtypes, windows and
        definitions, and the policy's terms that decide the labels and the status at t (thresholds,
        windows, minimum volumes, channels, horizon), so editing any of them in a policy file refuses
        the models trained before."""
        payload = [(f.name, f.dtype, f.window_days, f.sql) for f in self.features]
        text = json.dumps({"policy": self.policy_version, "features": payload, "terms": self.policy_terms},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({"policy_version": self.policy_version, "hash": self.hash,
                           "policy_terms": json.loads(self.policy_terms or "{}"),
                           "features": [asdict(f) for f in self.features]}, indent=2)


def _ratio(num: str, den: str) -> str:
    return f"CASE WHEN {den} > 0 THEN {num} / CAST({den} AS DOUBLE) END"


def _metric_features(m: Metric) -> list[Feature]:
    """A standard's features: its rate over 7 to 90 days, the volume it is judged on (exposure), how far
    it lies past the threshold, a cautious estimate for small volumes, and its trend (behaviour)."""
    n, w = m.name, m.window_days

    def rate(days: int) -> str:
        return _ratio(*metric_parts(m, days))

    _, den_w = metric_parts(m, w)
    num_30, den_30 = metric_parts(m, 30)
    num_60, den_60 = metric_parts(m, 60)
    standard = f"standard: {m.standard_text}"
    out = [
        Feature(f"{n}_{d}d", "float", d, f"{m.description}, last {d} days.",
                f"{m.label} in the last {d} days: {{value:.1%}} ({standard})", rate(d), standard=n)
        for d in (7, 30, 60, 90)
    ]
    sign = "" if m.direction == "at_most" else "-"
    gap = f"{sign}({rate(w)} - {m.threshold})"
    p, cnt = rate(w), f"CAST({den_w} AS DOUBLE)"
    z2 = WILSON_Z**2
    half = f"{WILSON_Z} * SQRT({p} * (1 - {p}) / {cnt} + {z2} / (4 * {cnt} * {cnt}))"
    centre = f"({p} + {z2} / (2 * {cnt}))"
    bound = f"({centre} + {half}) / (1 + {z2} / {cnt})" if m.direction == "at_most" else \
            f"({centre} - {half}) / (1 + {z2} / {cnt})"
    out += [
        Feature(f"{n}_volume", "int", w, f"Orders (or messages) the {n} standard counts over its {w}-day window.",
                f"{m.label} standard: judged on {{value:,.0f}} {units(m)} "
                f"in the last {w} days (judged from {m.min_count})", den_w, role="exposure", standard=n),
        Feature(f"{n}_gap", "float", w,
                f"How far the {w}-day {n} lies past its standard (positive: missing it).",
                f"{m.label} in the last {w} days against the standard ({m.standard_text}): {{value:+.1%}} "
                "(above zero: missing it by that much)", gap, standard=n),
        Feature(f"{n}_wilson", "float", w,
                f"The {w}-day {n} at its unfavourable 95% Wilson bound, so few orders mean wide doubt.",
                f"{m.label}, cautious estimate for this volume: {{value:.1%}} ({standard})",
                f"CASE WHEN {den_w} > 0 THEN {bound} END", standard=n),
        Feature(f"{n}_trend", "float", 60, f"{n} over the last 30 days minus the 30 days before.",
                f"{m.label}: {{value:+.1%}} in the last 30 days against the 30 before",
                f"{rate(30)} - {_ratio(f'({num_60} - {num_30})', f'({den_60} - {den_30})')}", standard=n),
    ]
    return out


def standard_driven_by(policy: Policy, *measures: str) -> str | None:
    """The policy's standard a behaviour drives: the first metric whose numerator counts one of
    `measures` (in the order given), e.g. late handovers drive on-time delivery at Walmart and late
    shipment at Amazon; None when the policy judges none of them."""
    for measure in measures:
        for m in policy.metrics.values():
            if measure in m.numerator:
                return m.name
    return None


def _general_features(policy: Policy) -> list[Feature]:
    """Volume (exposure), who the seller is (context), and behaviour no rate of a standard shows yet:
    late handovers, orders overdue, messages waiting, the marketplace's warnings."""
    day = f"CAST({DAY_US} AS DOUBLE)"
    late = standard_driven_by(policy, "on_time_deliveries", "late_shipments")
    overdue = standard_driven_by(policy, "seller_cancelled_orders", "late_shipments", "on_time_deliveries")
    answers = standard_driven_by(policy, "contacts_answered_in_time")
    return [
        Feature("orders_7d", "int", 7, "Orders placed in the last 7 days, all channels.",
                "Orders in the last 7 days: {value:,.0f}", "w7_orders_all", role="exposure"),
        Feature("orders_30d", "int", 30, "Orders placed in the last 30 days, all channels.",
                "Orders in the last 30 days: {value:,.0f}", "w30_orders_all", role="exposure"),
        Feature("orders_90d", "int", 90, "Orders placed in the last 90 days, all channels.",
                "Orders in the last 90 days: {value:,.0f}", "w90_orders_all", role="exposure"),
        Feature("order_growth", "float", 60, "Orders in the last 30 days over the 30 days before (1 = flat).",
                "Order volume, last 30 days against the 30 before: {value:.2f}x",
                _ratio("w30_orders_all", "(w60_orders_all - w30_orders_all)"), role="exposure"),
        Feature("gmv_30d", "float", 30, "Sales value of orders in the last 30 days.",
                "Sales in the last 30 days: ${value:,.0f}", "w30_gmv_cents / 100.0", role="exposure"),
        Feature("avg_order_value_30d", "float", 30, "Average order value over the last 30 days.",
                "Average order value in the last 30 days: ${value:,.2f}",
                _ratio("w30_gmv_cents / 100.0", "w30_orders_all"), role="context"),
        Feature("marketplace_fulfilled_share_30d", "float", 30,
                "Share of the last 30 days' orders fulfilled by the marketplace.",
                "Orders fulfilled by the marketplace in the last 30 days: {value:.0%}",
                _ratio("w30_orders_mfn", "w30_orders_all"), role="context"),
        Feature("tenure_days", "float", None, "Days since the seller was approved to sell.",
                "Selling on the marketplace for {value:,.0f} days",
                f"(as_of_day * {DAY_US} - onboarded_us) / {day}", role="context"),
        Feature("late_handover_rate_30d", "float", 30,
                "Seller-shipped orders first scanned by the carrier after the ship-by time, last 30 days.",
                "Parcels handed to the carrier late in the last 30 days: {value:.1%}",
                _ratio("w30_late_handover_sf", "w30_shipped_sf"), standard=late),
        Feature("overdue_unshipped_orders", "int", None,
                "Orders past their promised ship-by time and neither shipped nor cancelled at t.",
                "Orders past their ship-by date and not shipped: {value:,.0f}", "cum_overdue_open", standard=overdue),
        Feature("unanswered_contacts", "int", None, "Customer messages still unanswered at t.",
                "Customer messages waiting for an answer: {value:,.0f}", "cum_unanswered_open", standard=answers),
        Feature("overdue_contacts", "int", None,
                f"Customer messages unanswered {RESPONSE_HOURS} hours or more after they came in, at t.",
                f"Customer messages unanswered for {RESPONSE_HOURS} hours or more: {{value:,.0f}}", "cum_overdue_contacts", standard=answers),
        Feature("warnings_90d", "int", 90, "Performance warnings from the marketplace in the last 90 days.",
                "Marketplace warnings in the last 90 days: {value:,.0f}", "w90_warnings"),
        Feature("warnings_total", "int", None, "Performance warnings from the marketplace ever received.",
                "Marketplace warnings ever received: {value:,.0f}", "cum_warnings"),
        Feature("days_since_last_warning", "int", None, "Whole days since the last warning (empty: never warned).",
                "Last marketplace warning {value:,.0f} days ago", "as_of_day - 1 - last_warning_day",
                missing="Never warned by the marketplace"),
        Feature("category", "category", None, "The seller's primary product category.",
                "Category: {value}", "category", role="context"),
        Feature("region", "category", None, "The region the seller ships from.",
                "Ships from: {value}", "region", role="context"),
        Feature("week_of_year", "int", None,
                "ISO week of the as-of date: the season the horizon falls in (holiday peak, sales), whose "
                "strain on delivery a model can only learn from earlier years.",
                "Week {value:.0f} of the year", "week_of_year",
                missing="Week of the year not given (the caller sent no as-of date)", role="context"),
    ]


RECENT_DAYS = 30
"""The pace a projection assumes for the days to come: the last 30 days' daily volume and rate."""


def _against(m: Metric, num: str, den: str) -> str:
    """The events that count against a standard: its numerator when it is held at most, the rest of its
    denominator when at least (late deliveries out of deliveries, messages answered late out of messages)."""
    return num if m.direction == "at_most" else f"({den} - {num})"


def _gap_sql(m: Metric, rate: str) -> str:
    """SQL: how far a rate lies past the standard (positive: missing it)."""
    return f"{'' if m.direction == 'at_most' else '-'}({rate} - {m.threshold})"


def _projected_next(m: Metric, known: int, every: int) -> str:
    """SQL: the gap to the standard the next evaluation would show if the coming `every` days go at the recent
    pace (the known `known` days plus `every` days at the last RECENT_DAYS days' daily volume and rate); empty
    when that volume would fall below the minimum, so the standard would not be judged."""
    known_num, known_den = metric_parts(m, known)
    recent_num, recent_den = metric_parts(m, RECENT_DAYS)
    pace = f"{every} / CAST({RECENT_DAYS} AS DOUBLE)"
    num = f"(CAST({known_num} AS DOUBLE) + CAST({recent_num} AS DOUBLE) * {pace})"
    den = f"(CAST({known_den} AS DOUBLE) + CAST({recent_den} AS DOUBLE) * {pace})"
    return f"CASE WHEN {den} >= {m.min_count} THEN {_gap_sql(m, _ratio(num, den))} END"


def _standard_mechanics(m: Metric, policy: Policy) -> list[Feature]:
    """The next evaluation of one standard, a cadence on: how the part of its window already known stands,
    what leaves the window before it, and what it would show at the recent pace (none when its window lies
    wholly ahead)."""
    n, w, every = m.name, m.window_days, policy.evaluation_every_days
    known = next_known_window(m, policy)
    if known is None:
        return []
    std, misses = m.standard_text, m.miss_words[1].capitalize()
    num_w, den_w = metric_parts(m, w)
    num_k, den_k = metric_parts(m, known)
    return [
        Feature(f"{n}_next_known_gap", "float", known,
                f"How far the {known} days of {n} that the next evaluation, {every} days on, still counts lie past "
                "the standard.",
                f"{m.label} in the last {known} days, which the next evaluation still counts: {{value:+.1%}} "
                f"against the standard ({std}) (above zero: missing it)",
                _gap_sql(m, _ratio(num_k, den_k)), standard=n, family="mechanics",
                missing=f"{m.label}: nothing to judge yet in the {known} days the next evaluation still counts"),
        Feature(f"{n}_leaving_next", "int", w,
                f"{misses} in the {w}-day window that leave it before the next evaluation, {every} days on.",
                f"{misses} leaving the {w}-day window before the next evaluation: {{value:,.0f}}",
                f"{_against(m, num_w, den_w)} - {_against(m, num_k, den_k)}", standard=n, family="mechanics"),
        Feature(f"{n}_next_projected_gap", "float", w,
                f"The gap to the {n} standard the next evaluation would show if the coming {every} days go as the "
                f"last {RECENT_DAYS} did; empty when it would not be judged (volume below {m.min_count}).",
                f"{m.label} expected at the next evaluation if the coming {every} days go as the last {RECENT_DAYS} "
                f"did: {{value:+.1%}} against the standard ({std}) (above zero: missing it)",
                _projected_next(m, known, every),
                missing=f"{m.label}: too few {units(m)} to be judged at the next evaluation at this pace",
                standard=n, family="mechanics"),
    ]


def _late_parcels(policy: Policy) -> Feature:
    """Parcels already past their promised delivery date at t: each is a late delivery the coming evaluations
    will count (when it arrives), whatever the seller does now."""
    return Feature("late_parcels_in_transit", "int", None,
                   "Seller-shipped parcels past their promised delivery date and not delivered at t: certain late "
                   f"deliveries (parcels not delivered {LOST_AFTER_DAYS} days after shipping count as lost).",
                   "Parcels past their promised delivery date and still in transit: {value:,.0f}",
                   "cum_late_in_transit_sf",
                   standard=standard_driven_by(policy, "on_time_deliveries", "item_not_received_reports"),
                   family="mechanics")


def _mechanics_features(policy: Policy) -> list[Feature]:
    """What the label's own arithmetic already fixes about the coming evaluations (family "mechanics"): per
    standard its next evaluation (`_standard_mechanics`), then the late deliveries already certain at t."""
    return [f for m in policy.metrics.values() for f in _standard_mechanics(m, policy)] + [_late_parcels(policy)]


def _own_rate_minus(rate, policy: Policy, days: int, world_column: str) -> str | None:
    """SQL of the seller's own rate of a world rate's outcome (`features.pipeline.world.WorldRate`) over
    `days` minus the world's, read from the columns of the standard judging it; None when the policy judges
    no such rate."""
    m = rate.judged_by(policy)
    if m is None:
        return None
    num, den = metric_parts(m, days)
    own = _ratio(f"({den} - {num})", den) if rate.good else _ratio(num, den)
    return f"{own} - {world_column}"


def _world(name: str, window: int | None, description: str, reason: str, sql: str, standard: str | None,
           missing: str) -> Feature:
    return Feature(name, "float", window, description, reason, sql, missing=missing, role="context",
                   standard=standard, family="world")


def _world_rates(policy: Policy) -> list[Feature]:
    """Late deliveries and invalid tracking for every seller in the seller's region (7 and 30 days), returns
    and 1-2 star ratings for every seller in its category (60 days), and the seller's own rate against
    them where its policy judges the same rate."""
    from features.pipeline.world import INVALID_TRACKING, LATE_DELIVERY, NEGATIVE_FEEDBACK, RETURNS

    rates = (  # (rate, its measure, feature stem, column stem, whose, what, out of, days, missing)
        (LATE_DELIVERY, "on_time_deliveries", "late_delivery", "world_region_late", "region",
         "late deliveries", "deliveries late", (7, 30), "No deliveries"),
        (INVALID_TRACKING, "valid_tracking_shipments", "invalid_tracking", "world_region_invalid", "region",
         "shipments without valid tracking", "shipments without valid tracking", (7, 30), "No shipments"),
        (RETURNS, "returns", "return", "world_category_return", "category",
         "returns", "delivered orders returned", (60,), "No deliveries"),
        (NEGATIVE_FEEDBACK, "negative_feedback", "negative_feedback", "world_category_negative", "category",
         "1-2 star ratings", "orders rated 1-2 stars", (60,), "No orders"),
    )
    out = []
    for rate, measure, stem, column, whose, what, share, days, none in rates:
        standard = standard_driven_by(policy, measure)
        out += [_world(f"{whose}_{stem}_rate_{d}d", d,
                       f"Share of {share} for all sellers in the seller's {whose}, last {d} days.",
                       f"Sellers in this {whose}: {{value:.1%}} of {share} in the last {d} days",
                       f"{column}_{d}d", standard, f"{none} in this {whose} in the last {d} days") for d in days]
        d = days[-1]
        own = _own_rate_minus(rate, policy, d, f"{column}_{d}d")
        if own:
            out.append(_world(f"{stem}_rate_vs_{whose}_{d}d", d,
                              f"The seller's own share of {share} minus its {whose}'s, last {d} days.",
                              f"This seller's {what} against all sellers in its {whose}, last {d} days: "
                              "{value:+.1%}", own, rate.judged_by(policy).name,
                              f"{none} of this seller or its {whose} to compare in the last {d} days"))
    return out


def _world_strain(policy: Policy) -> list[Feature]:
    """The carriers the seller's recent parcels went with, and the strain on the whole marketplace
    (orders against its recent weeks, late deliveries against its 90 days)."""
    from features.pipeline.world import CARRIER_DAYS, RUNNING_LATE_FACTOR, VOLUME_WEEKS

    late = standard_driven_by(policy, "on_time_deliveries")
    weeks = VOLUME_WEEKS
    return [
        _world("carrier_late_delivery_rate_7d", 7,
               f"Late deliveries in the last 7 days of every seller on the seller's carriers in its region, "
               f"each (region, carrier) weighted by the seller's shipments with it in the last {CARRIER_DAYS} days.",
               "Sellers on the same carriers in this region: {value:.1%} of deliveries late in the last 7 days",
               "world_carrier_late_7d", late, "No recent deliveries on this seller's carriers in its region"),
        _world(f"carriers_running_late_share_{CARRIER_DAYS}d", CARRIER_DAYS,
               f"Share of the seller's shipments of the last {CARRIER_DAYS} days on a carrier running late in its "
               f"region now: 7-day late rate at least {RUNNING_LATE_FACTOR}x its own 90-day rate and above the "
               "marketplace's 7-day rate.",
               f"Shipments of the last {CARRIER_DAYS} days on carriers running late in this region now: {{value:.0%}}",
               "world_carriers_running_late_share", late, f"No shipments in the last {CARRIER_DAYS} days"),
        _world(f"marketplace_order_volume_vs_{weeks}w", 7 * (weeks + 1),
               f"Orders on the whole marketplace in the last 7 days over their weekly average in the {weeks} weeks "
               "before: the season's strain (holiday peak, sales) as it happens.",
               f"Marketplace orders in the last 7 days against the weekly average of the {weeks} weeks before: "
               "{value:.2f}x", "world_market_volume_ratio", None, "No marketplace orders in the weeks before"),
        _world("marketplace_late_delivery_vs_90d", 90,
               "The whole marketplace's 7-day late-delivery rate over its 90-day rate: delivery strained for everyone.",
               "Marketplace late deliveries in the last 7 days against their 90-day level: {value:.2f}x",
               "world_market_late_ratio", late, "No marketplace late deliveries in the last 90 days to compare"),
    ]


def _world_features(policy: Policy) -> list[Feature]:
    """The marketplace around the seller: its carriers and region, its category, the season (family "world"),
    computed across all sellers by `features.pipeline.world`; context for a reason, never one on its own."""
    return _world_rates(policy) + _world_strain(policy)


def feature_spec(policy: Policy) -> FeatureSpec:
    """The features for a policy: its metrics' features first, then volume, tenure and history, then the
    label's mechanics and the world around the seller."""
    features = ([f for m in policy.metrics.values() for f in _metric_features(m)] + _general_features(policy)
                + _mechanics_features(policy) + _world_features(policy))
    return FeatureSpec(policy.version, tuple(features), policy_terms(policy))


def policy_terms(policy: Policy) -> str:
    """The policy's content that changes a feature or a label, as canonical JSON: each metric's measures,
    channels, direction, threshold, window and minimum volume, the evaluation cadence and the horizon
    (not its wording, risk bands or reviewer capacity, which change no model input or label)."""
    metrics = {name: m.model_dump(include={"numerator", "denominator", "direction", "threshold", "window_days",
                                           "min_count", "channels"}) for name, m in policy.metrics.items()}
    return json.dumps({"metrics": metrics, "evaluation_every_days": policy.evaluation_every_days,
                       "horizon_days": policy.horizon_days}, sort_keys=True)
