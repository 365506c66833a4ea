"""One week of orders for a chunk of sellers, and everything that follows from them: shipment,
carrier scans, delivery, cancellations, contacts and the seller's answers, returns, refunds
and ratings. Every outcome is drawn from the seller's propensities on the day of the order;
all of it is vectorised over orders. Times are whole seconds since the simulation start, and
events after the extract cut-off are dropped, as an extract taken at the cut-off would."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.events.schema import CONTACT_TOPICS, REFUND_REASONS, RETURN_REASONS
from features.simulation.behaviour import Behaviour
from features.simulation.enforcement import Ledger
from features.simulation.population import L, Sellers
from features.simulation.world import CATEGORY_LOG_PRICE, REGION_TRANSIT_DAYS

HOUR, DAY = 3600, 86400
SHIP_CUTOFF_HOUR = 17
CANCEL_REASONS = ("out_of_stock", "unable_to_ship", "pricing_error", "buyer_request")
DEFECT_REASONS = np.array([RETURN_REASONS.index(r) for r in ("damaged", "wrong_item", "not_as_described", "defective")])
REMORSE_REASONS = np.array([RETURN_REASONS.index(r) for r in ("no_longer_needed", "size_or_fit", "better_price")])
MARKETPLACE_SCALE = np.array([0.05, 0.1, 0.5, 0.0, 0.3, 0.6, 1.0, 0.0])  # fulfilment network vs seller
RATING_GOOD = np.array([0.01, 0.02, 0.06, 0.2, 0.71])
RATING_BAD = np.array([0.30, 0.17, 0.18, 0.15, 0.20])
TOPIC_CODE = {t: i for i, t in enumerate(CONTACT_TOPICS)}

Table = dict[str, np.ndarray]


@dataclass
class Week:
    """The rows one week adds to each table (ids local to the chunk's counters)."""

    orders: Table
    returns: Table
    refunds: Table
    feedback: Table
    contacts: Table


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + rng.random(np.shape(lo)) * (hi - lo)


def _no_midnight(t: np.ndarray) -> np.ndarray:
    """Whole seconds, never exactly midnight, so that 'at or before t' and 'before t' agree."""
    t = np.floor(t).astype(np.int64)
    return t + (t % DAY == 0)


def _choice(rng: np.random.Generator, options: np.ndarray, n: int, p: np.ndarray | None = None) -> np.ndarray:
    return options[rng.choice(len(options), n, p=p)]


def _ratings(rng: np.random.Generator, bad: np.ndarray) -> np.ndarray:
    u = rng.random(bad.size)
    good_r = np.searchsorted(np.cumsum(RATING_GOOD), u, side="right") + 1
    bad_r = np.searchsorted(np.cumsum(RATING_BAD), u, side="right") + 1
    return np.minimum(np.where(bad, bad_r, good_r), 5)


def simulate_week(
    rng: np.random.Generator,
    s: Sellers,
    b: Behaviour,
    days: np.ndarray,
    cutoff: int,
    ledger: Ledger,
) -> Week:
    """Draw the orders placed on `days` and their consequences, counting them in `ledger`.

    The steps below run in a fixed order and each draws from `rng` in a fixed order: that order is
    part of the output's identity (same seed, same bytes), so a step is never reordered or skipped.
    Each returns new columns over the week's orders (`o`), which later steps read."""
    o = _placed(rng, s, b, days)
    o |= _cancellations(rng, o)
    o |= _fulfilment(rng, o)
    o |= _returns(rng, o)
    c = _contacts(rng, b, days, o)
    o |= {k: c[k] for k in ("inr", "inr_at")}  # reported not received: refunds follow
    r = _refunds(rng, o)
    o |= _ratings_of(rng, o)
    known = _extract(o, c, r, cutoff)
    _count_week(ledger, o, c, r, known)
    return _week(b, o, c, r, known)


def _placed(rng: np.random.Generator, s: Sellers, b: Behaviour, days: np.ndarray) -> Table:
    """The orders placed on `days`: who sold them, on which channel, when, for how much, and what
    the seller promised (ship by the cut-off hour after handling, deliver by the end of the transit)."""
    counts = rng.poisson(b.expected_orders)
    flat = np.repeat(np.arange(counts.size), counts.ravel())
    si, di = flat // len(days), flat % len(days)
    day = days[di]
    n = si.size
    mfn = rng.random(n) < s.mfn_share[si]
    p = b.propensity[:, si, di]
    p[:, mfn] *= MARKETPLACE_SCALE[:, None]

    ordered = _no_midnight(day * DAY + rng.integers(1, DAY, n))
    handling = np.where(mfn, 1, s.handling_days[si])
    ship_by = (day + handling) * DAY + SHIP_CUTOFF_HOUR * HOUR
    transit = np.where(mfn, 2, REGION_TRANSIT_DAYS[s.region[si]])
    deliver_by = (day + handling + transit + 1) * DAY - 1
    value = np.round(rng.lognormal(CATEGORY_LOG_PRICE[s.category[si]] + s.price_level[si], 0.6), 2)
    items = 1 + rng.poisson(0.35, n)
    return {"si": si, "di": di, "mfn": mfn, "p": p, "channel": mfn.astype(np.int8), "ordered": ordered,
            "ship_by": ship_by, "deliver_by": deliver_by, "value": value, "items": items}


def _cancellations(rng: np.random.Generator, o: Table) -> Table:
    """Orders the seller cancels (by propensity) or the buyer does, when and why."""
    n, p, ordered = o["si"].size, o["p"], o["ordered"]
    seller_cancel = rng.random(n) < p[L["cancel"]]
    buyer_cancel = ~seller_cancel & (rng.random(n) < 0.012)
    cancelled = seller_cancel | buyer_cancel
    cancelled_at = np.where(
        seller_cancel, _between(rng, ordered + HOUR, ordered + 48 * HOUR), _between(rng, ordered + 600, ordered + 6 * HOUR)
    )
    cancelled_by = np.where(seller_cancel, 0, np.where(buyer_cancel, 1, -1))
    cancel_reason = np.where(seller_cancel, rng.choice(3, n, p=[0.7, 0.2, 0.1]), np.where(buyer_cancel, 3, -1))
    return {"seller_cancel": seller_cancel, "buyer_cancel": buyer_cancel, "cancelled": cancelled,
            "cancelled_at": cancelled_at, "cancelled_by": cancelled_by, "cancel_reason": cancel_reason}


def _fulfilment(rng: np.random.Generator, o: Table) -> Table:
    """What happens to the orders not cancelled: shipped (late or not, with valid tracking or not),
    handed to the carrier, lost or delivered (on time or late)."""
    n, p, ordered, ship_by, deliver_by = o["si"].size, o["p"], o["ordered"], o["ship_by"], o["deliver_by"]
    active = ~o["cancelled"]
    late_ship = active & (rng.random(n) < p[L["late_ship"]])
    shipped = np.where(
        late_ship,
        _between(rng, ship_by + 2 * HOUR, ship_by + 72 * HOUR),
        _between(rng, ordered + HOUR // 2, np.maximum(ship_by - 600, ordered + HOUR)),
    )
    bad_tracking = active & (rng.random(n) < p[L["bad_tracking"]])
    late_handover = active & (rng.random(n) < 0.3 * p[L["late_ship"]] + 0.01)
    handover = shipped + _between(rng, HOUR // 2, 20 * HOUR) + late_handover * _between(rng, DAY, 2.5 * DAY)
    pickup = np.where(bad_tracking, shipped + 12 * HOUR, handover)
    lost = active & ((rng.random(n) < p[L["lost"]]) | (bad_tracking & (rng.random(n) < 0.05)))
    late_transit = active & (rng.random(n) < p[L["late_transit"]])
    slack = deliver_by - pickup
    on_time_arrival = np.where(slack > DAY, pickup + _between(rng, 0.3, 0.97) * slack, pickup + _between(rng, DAY, 3 * DAY))
    late_arrival = np.maximum(deliver_by, pickup) + _between(rng, 3 * HOUR, 5 * DAY)
    delivered = np.where(late_transit, late_arrival, on_time_arrival)
    is_delivered = active & ~lost
    late = is_delivered & (delivered > deliver_by)
    return {"active": active, "shipped": shipped, "bad_tracking": bad_tracking, "handover": handover, "lost": lost,
            "delivered": delivered, "is_delivered": is_delivered, "late": late}


def _returns(rng: np.random.Generator, o: Table) -> Table:
    """Delivered orders that turn out defective (some returned) or that the buyer returns anyway."""
    n, p, delivered, is_delivered = o["si"].size, o["p"], o["delivered"], o["is_delivered"]
    defect = is_delivered & (rng.random(n) < p[L["defect"]])
    remorse = is_delivered & ~defect & (rng.random(n) < p[L["remorse_return"]])
    defect_reason = _choice(rng, DEFECT_REASONS, n, p=[0.35, 0.2, 0.3, 0.15])
    returned_defect = defect & (rng.random(n) < 0.6)
    returned = returned_defect | remorse
    return_reason = np.where(defect, defect_reason, _choice(rng, REMORSE_REASONS, n, p=[0.5, 0.35, 0.15]))
    requested = np.where(defect, _between(rng, delivered + 6 * HOUR, delivered + 6 * DAY),
                         _between(rng, delivered + DAY, delivered + 14 * DAY))
    return {"defect": defect, "remorse": remorse, "defect_reason": defect_reason, "returned_defect": returned_defect,
            "returned": returned, "return_reason": return_reason, "requested": requested}


def _contacts(rng: np.random.Generator, b: Behaviour, days: np.ndarray, o: Table) -> Table:
    """Customer contacts about the orders (marketplace-fulfilled orders are answered by the
    marketplace) and about no order in particular, and when the seller answers, if ever; also
    which orders were reported not received, and when (`inr`, `inr_at`), which refunds follow."""
    n, si, di, lost, late = o["si"].size, o["si"], o["di"], o["lost"], o["late"]
    deliver_by, delivered = o["deliver_by"], o["delivered"]
    seller_run = ~o["mfn"]
    very_late = late & (delivered > deliver_by + 3 * DAY)
    inr = seller_run & ((lost & (rng.random(n) < 0.85)) | (very_late & (rng.random(n) < 0.25))
                        | (o["bad_tracking"] & o["is_delivered"] & (rng.random(n) < 0.04)))
    inr_at = _between(rng, deliver_by + DAY, deliver_by + np.where(lost, 8, 3) * DAY)
    wismo = seller_run & (late | lost) & (rng.random(n) < 0.25)
    damaged_msg = seller_run & o["defect"] & (rng.random(n) < 0.45)
    return_msg = seller_run & o["remorse"] & (rng.random(n) < 0.2)
    question = seller_run & (rng.random(n) < 0.03)
    cancel_msg = seller_run & o["buyer_cancel"] & (rng.random(n) < 0.3)
    contact_parts = [
        (inr, inr_at, TOPIC_CODE["item_not_received"]),
        (wismo, _between(rng, deliver_by + HOUR, deliver_by + 2 * DAY), TOPIC_CODE["where_is_my_order"]),
        (damaged_msg, _between(rng, delivered + HOUR, delivered + 3 * DAY), TOPIC_CODE["damaged_item"]),
        (return_msg, o["requested"] - _between(rng, HOUR, 20 * HOUR), TOPIC_CODE["return_request"]),
        (question, _between(rng, o["ordered"] + 60, o["ordered"] + 2 * DAY), TOPIC_CODE["product_question"]),
        (cancel_msg, o["cancelled_at"] - 300, TOPIC_CODE["cancel_request"]),
    ]
    c_order = np.concatenate([np.flatnonzero(m) for m, _, _ in contact_parts])
    c_opened = _no_midnight(np.concatenate([t[m] for m, t, _ in contact_parts]))
    c_topic = np.concatenate([np.full(m.sum(), code) for m, _, code in contact_parts])
    # contacts about no order in particular (questions from shoppers)
    walk_in = rng.poisson(b.expected_orders * 0.015)
    w_flat = np.repeat(np.arange(walk_in.size), walk_in.ravel())
    w_si, w_di = w_flat // len(days), w_flat % len(days)
    w_opened = _no_midnight(days[w_di] * DAY + rng.integers(1, DAY, w_flat.size))
    c = {"seller": np.concatenate([si[c_order], w_si]), "day_idx": np.concatenate([di[c_order], w_di]),
         "opened": np.concatenate([c_opened, w_opened]),
         "topic": np.concatenate([c_topic, np.full(w_flat.size, TOPIC_CODE["product_question"])]),
         "order": np.concatenate([c_order, np.full(w_flat.size, -1)])}
    return {**c, "response": _responses(rng, b, c), "inr": inr, "inr_at": inr_at}


def _responses(rng: np.random.Generator, b: Behaviour, c: Table) -> np.ndarray:
    """When the seller first answers each contact: most within 48 hours, the unanswered late or never (-1)."""
    c_opened = c["opened"]
    m = c_opened.size
    unanswered = rng.random(m) < b.propensity[L["no_response"], c["seller"], c["day_idx"]]
    never = unanswered & (rng.random(m) < 0.5)
    answered = np.where(
        unanswered,
        c_opened + 48 * HOUR + _between(rng, np.full(m, HOUR), np.full(m, 5 * DAY)),
        c_opened + np.minimum(rng.exponential(6 * HOUR, m), 47.5 * HOUR) + 60,
    )
    return np.where(never, -1, _no_midnight(answered))


def _refunds(rng: np.random.Generator, o: Table) -> Table:
    """Refunds: seller-caused returns, partial refunds for defects kept, refunds for parcels never received."""
    n, defect, value, delivered = o["si"].size, o["defect"], o["value"], o["delivered"]
    kept_defect = defect & ~o["returned_defect"] & (rng.random(n) < 0.5)
    inr_refund = o["inr"] & o["lost"]
    refund_parts = [
        (o["returned"], _between(rng, o["requested"] + 4 * DAY, o["requested"] + 12 * DAY), value, defect,
         o["return_reason"]),
        (kept_defect, _between(rng, delivered + DAY, delivered + 7 * DAY),
         np.round(value * _between(rng, 0.2, 1.0), 2), np.ones(n, bool), o["defect_reason"]),
        (inr_refund, o["inr_at"] + _between(rng, 2 * DAY, 7 * DAY), value, np.ones(n, bool),
         np.full(n, REFUND_REASONS.index("not_received"))),
    ]
    return {
        "order": np.concatenate([np.flatnonzero(mask) for mask, *_ in refund_parts]),
        "at": _no_midnight(np.concatenate([t[mask] for mask, t, *_ in refund_parts])),
        "amount": np.concatenate([a[mask] for mask, _, a, *_ in refund_parts]),
        "resp": np.concatenate([resp[mask] for mask, _, _, resp, _ in refund_parts]),
        "reason": np.concatenate([why[mask] for mask, *_, why in refund_parts]),
    }


def _ratings_of(rng: np.random.Generator, o: Table) -> Table:
    """Ratings: bad experiences are rated more often and worse."""
    n, lost, cancelled = o["si"].size, o["lost"], o["cancelled"]
    bad = o["late"] | o["defect"] | lost | o["seller_cancel"]
    rated = ~o["buyer_cancel"] & (rng.random(n) < np.where(bad, 0.25, 0.10))
    experienced = np.where(cancelled, o["cancelled_at"], np.where(lost, o["deliver_by"] + 7 * DAY, o["delivered"]))
    f_at = _no_midnight(experienced + _between(rng, np.full(n, 12 * HOUR), np.full(n, 14 * DAY)))
    return {"rated": rated, "f_at": f_at, "ratings": _ratings(rng, bad)}


def _extract(o: Table, c: Table, r: Table, cutoff: int) -> Table:
    """What an extract at the cut-off knows: each event's time in whole seconds, and whether it
    happened by the cut-off (a contact's answer after it is not known yet: -1)."""
    known = lambda t: t <= cutoff  # noqa: E731
    k = {"shipped": _no_midnight(o["shipped"]), "handover": _no_midnight(o["handover"]),
         "delivered": _no_midnight(o["delivered"]), "cancelled": _no_midnight(o["cancelled_at"]),
         "requested": _no_midnight(o["requested"])}
    has_ship = o["active"] & known(k["shipped"])
    return {**k, "has_ship": has_ship,
            "has_handover": has_ship & ~o["bad_tracking"] & known(k["handover"]),
            "has_delivery": o["is_delivered"] & known(k["delivered"]),
            "has_cancel": o["cancelled"] & known(k["cancelled"]),
            "has_return": o["returned"] & known(k["requested"]),
            "c_keep": known(c["opened"]), "c_response": np.where(known(c["response"]), c["response"], -1),
            "r_keep": known(r["at"]), "f_keep": o["rated"] & known(o["f_at"])}


def _count_week(ledger: Ledger, o: Table, c: Table, r: Table, k: Table) -> None:
    """The week's events counted in the ledger as the marketplace sees them at the cut-off."""
    channel, si = o["channel"], o["si"]
    _count(ledger, channel, si, o["ordered"], k["has_ship"], k["shipped"], o["ship_by"], o["bad_tracking"],
           k["has_delivery"], k["delivered"], o["deliver_by"], k["has_cancel"] & o["seller_cancel"], k["cancelled"],
           k["has_return"], k["requested"])
    c_keep, c_response, c_opened, c_seller = k["c_keep"], k["c_response"], c["opened"], c["seller"]
    c_channel = np.zeros(c_opened.size, np.int8)
    inr_kept = c_keep & (c["topic"] == TOPIC_CODE["item_not_received"])
    ledger.add("item_not_received_reports", c_channel[inr_kept], c_seller[inr_kept], c_opened[inr_kept])
    due = np.where(c_response >= 0, np.minimum(c_response, c_opened + 48 * HOUR), c_opened + 48 * HOUR)
    ledger.add("contacts_due", c_channel[c_keep], c_seller[c_keep], due[c_keep])
    in_time = c_keep & (c_response >= 0) & (c_response <= c_opened + 48 * HOUR)
    ledger.add("contacts_answered_in_time", c_channel[in_time], c_seller[in_time], c_response[in_time])
    refund_ok = k["r_keep"] & r["resp"]
    ledger.add("seller_responsible_refunds", channel[r["order"][refund_ok]], si[r["order"][refund_ok]],
               r["at"][refund_ok])
    negative = k["f_keep"] & (o["ratings"] <= 2)
    ledger.add("negative_feedback", channel[negative], si[negative], o["f_at"][negative])


def _week(b: Behaviour, o: Table, c: Table, r: Table, k: Table) -> Week:
    """The rows the week adds to each table, as an extract at the cut-off holds them (-1: not yet)."""
    si, di = o["si"], o["di"]
    has_ship, has_cancel, has_return = k["has_ship"], k["has_cancel"], k["has_return"]
    r_keep, f_keep, c_keep = k["r_keep"], k["f_keep"], k["c_keep"]
    return Week(
        orders={
            "order": np.arange(o["si"].size), "seller": si, "ordered_at": o["ordered"], "channel": o["channel"],
            "order_value": o["value"], "item_count": o["items"], "promised_ship_by": o["ship_by"],
            "promised_delivery_by": o["deliver_by"],
            "shipped_at": np.where(has_ship, k["shipped"], -1),
            "carrier_handover_at": np.where(k["has_handover"], k["handover"], -1),
            "carrier": np.where(has_ship, b.carrier[si, di], -1),
            "tracking_valid": np.where(has_ship, (~o["bad_tracking"]).astype(np.int8), -1),
            "delivered_at": np.where(k["has_delivery"], k["delivered"], -1),
            "cancelled_at": np.where(has_cancel, k["cancelled"], -1),
            "cancelled_by": np.where(has_cancel, o["cancelled_by"], -1),
            "cancel_reason": np.where(has_cancel, o["cancel_reason"], -1),
        },
        returns={
            "order": np.flatnonzero(has_return), "seller": si[has_return], "requested_at": k["requested"][has_return],
            "reason": o["return_reason"][has_return], "seller_responsible": o["defect"][has_return],
        },
        refunds={
            "order": r["order"][r_keep], "seller": si[r["order"][r_keep]], "refunded_at": r["at"][r_keep],
            "amount": r["amount"][r_keep], "reason": r["reason"][r_keep], "seller_responsible": r["resp"][r_keep],
        },
        feedback={
            "order": np.flatnonzero(f_keep), "seller": si[f_keep], "submitted_at": o["f_at"][f_keep],
            "rating": o["ratings"][f_keep],
        },
        contacts={
            "order": c["order"][c_keep], "seller": c["seller"][c_keep], "opened_at": c["opened"][c_keep],
            "topic": c["topic"][c_keep], "first_response_at": k["c_response"][c_keep],
        },
    )


def _count(ledger: Ledger, channel: np.ndarray, si: np.ndarray, ordered: np.ndarray, has_ship: np.ndarray,
           shipped: np.ndarray, ship_by: np.ndarray, bad_tracking: np.ndarray, has_delivery: np.ndarray,
           delivered: np.ndarray, deliver_by: np.ndarray, seller_cancel: np.ndarray, cancelled: np.ndarray,
           has_return: np.ndarray, requested: np.ndarray) -> None:
    """Count the order-table measures as the marketplace sees them."""
    def add(measure: str, mask: np.ndarray, when: np.ndarray) -> None:
        ledger.add(measure, channel[mask], si[mask], when[mask])

    add("orders", np.ones(si.size, bool), ordered)
    add("seller_cancelled_orders", seller_cancel, cancelled)
    add("shipped_orders", has_ship, shipped)
    add("late_shipments", has_ship & (shipped > ship_by), shipped)
    add("valid_tracking_shipments", has_ship & ~bad_tracking, shipped)
    add("delivered_orders", has_delivery, delivered)
    add("on_time_deliveries", has_delivery & (delivered <= deliver_by), delivered)
    add("returns", has_return, requested)
