"""The words of the reasons and recovery paths: where a seller stands against a standard, in a
reviewer's sentence. The arithmetic behind them (rates, headroom, recovery counts and days) is the
policy's (`features.policy.standing`); here is only how it reads.

Two rules keep the sentences honest:

- a rate and its trend are read over the same window: a 30-day standard says how its rate moved on
  the 30 days before ("up 0.9 points on the 30 days before"); a standard judged over another window
  says its rate over the last 30 days instead ("2.8% in the last 30 days"), since the trend feature
  is always the last 30 days against the 30 before, never the standard's own window;
- a rate beside its standard never reads on the wrong side of it (`percent_against`: "2.01%" misses
  at most 2%, "1.98%" meets it).

Column-wise: a batch of a million sellers words a few million reasons, so each function takes the
rows of one standard and binds the standard's own words once; the one-seller forms call them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from features.platform.formatting import percent, percent_against
from features.policy.definition import Metric
from features.policy.standing import Standing, evaluation_days, units

FLAT = 0.0005
"""A trend smaller than this (0.05 points) reads as flat."""

TREND_DAYS = 30
"""The trend feature's span: the last 30 days against the 30 before (features.pipeline.spec)."""


def _count(k: int, words: tuple[str, str]) -> str:
    return f"{k:,} {words[0] if k == 1 else words[1]}"


def _duration(days: int) -> str:
    if days < 7:
        return f"{days} day{'' if days == 1 else 's'}"
    weeks = int(days / 7 + 0.5)
    return f"{weeks} week{'' if weeks == 1 else 's'}"


def rate_text(metric: Metric, rate: float) -> str:
    """A rate of the standard, printed against its threshold ("2.01%", "just under 90%")."""
    return percent_against(rate, metric.threshold, metric.direction == "at_most")


def _movement(metric: Metric, trend: float, recent: float) -> str:
    """How the rate moves, over the standard's own window: the trend for a 30-day standard, else the
    rate over the last 30 days; empty when unknown."""
    if metric.window_days != TREND_DAYS:
        return "" if recent != recent else f", {rate_text(metric, recent)} in the last {TREND_DAYS} days"
    if trend != trend:
        return ""
    if abs(trend) < FLAT:
        return f", flat on the {TREND_DAYS} days before"
    return f", {'up' if trend > 0 else 'down'} {abs(trend) * 100:.1f} points on the {TREND_DAYS} days before"


def status_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """The standard's value, volume, standard and how it moves: "Seller cancellations 1.6% of 82 orders
    in the last 30 days (standard: at most 2%), up 0.9 points on the 30 days before"; "1-2 star ratings
    1.6% of 188 orders in the last 60 days (standard: at most 2%), 2.8% in the last 30 days"."""
    m = s.metric
    u, label, window, standard = units(m), m.label, m.window_days, m.standard_text
    judged_from = f", judged from {m.min_count:,} {u}"
    no_volume = f"{label}: no {u} in the last {window} days (standard: {standard})"
    return [no_volume if vol == 0 else
            (f"{label} {rate_text(m, rate)} of {vol:,} {u} in the last {window} days "
             f"(standard: {standard}{'' if evaluated else judged_from}){_movement(m, trend, recent)}")
            for vol, rate, trend, recent, evaluated in zip(
                s.volume[rows].tolist(), s.rate[rows].tolist(), s.trend[rows].tolist(), s.recent[rows].tolist(),
                s.evaluated[rows].tolist())]


JUDGED = "Mostly being judged: "
_JUDGED_END = "; its risk comes from how much of it is judged, not from anything the seller does on it"
"""How the being-judged line starts and ends: `judged_texts` writes it, `judged_line` reads it back."""


def judged_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """For a standard at risk that has no reason (a perfect rate, not judged yet, or behaviour that does
    not raise it): the one line that says where its risk comes from, being judged, shown with the
    context: "Mostly being judged: Seller cancellations 0.0% of 25 orders in the last 30 days (standard:
    at most 2%, judged from 50 orders); its risk comes from how much of it is judged, not from anything
    the seller does on it"."""
    return [f"{JUDGED}{status}{_JUDGED_END}" for status in status_texts(s, rows)]



def judged_line(context) -> str:
    """The being-judged line (`judged_texts`) a record's exposure context starts with, or "" when it has
    none: what every list shows for a compliant seller whose standard at risk has no reason, in place of
    one (the queue page, the CLI's queue), so that no queued row is blank."""
    for c in context if context is not None else ():
        text = c.get("features") or ""
        if c.get("group") == "exposure" and text.startswith(JUDGED) and _JUDGED_END in text:
            return text[:text.index(_JUDGED_END) + len(_JUDGED_END)]
    return ""


@dataclass(frozen=True)
class Peer:
    """What the other sellers show on a standard's events, from a world feature (features.pipeline.world):
    told beside a reason, so that a seller whose late deliveries come from a carrier late for everyone
    reads differently from one that ships late. Context, never a reason of its own."""

    feature: str  # the world feature: a rate of the same events over every seller of a carrier, region or category
    who: str  # "sellers on its carriers in its region"
    days: int  # the feature's window
    misses: bool  # the feature counts the misses of an at-least standard (late, invalid): the standard's rate is 1 - it


PEERS = {
    "on_time_delivery_rate": Peer("carrier_late_delivery_rate_7d", "sellers on its carriers in its region", 7, True),
    "valid_tracking_rate": Peer("region_invalid_tracking_rate_30d", "sellers in its region", 30, True),
    "return_rate": Peer("category_return_rate_60d", "sellers in its category", 60, False),
    "negative_feedback_rate": Peer("category_negative_feedback_rate_60d", "sellers in its category", 60, False),
}
"""The peers a standard's reasons are told beside (the issue's example: "on-time deliveries 86% (sellers on
the same carrier in this region: 84% this week)"); a standard without one, or a row without the feature's
value, has no peer clause."""


def peer_texts(peer: Peer, values: np.ndarray) -> list[str]:
    """The peer clause for each value of `peer.feature` ("" when unknown): "; sellers on its carriers in
    its region: 84.1% in the last 7 days", the standard's own rate (on time, not late), its window named."""
    rates = 1.0 - values if peer.misses else values
    return ["" if r != r else f"; {peer.who}: {percent(r)} in the last {peer.days} days" for r in rates.tolist()]


def reason_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """Behaviour reasons for a standard at risk, in a reviewer's words: value, standard, how it moves,
    and the headroom ("1 more cancellation at this volume would miss it")."""
    m = s.metric
    u = units(m)
    would_miss = f"at this rate it would miss it once {m.min_count:,} {u} are judged"
    one, many = m.miss_words
    out = []
    for status, vol, rate, evaluated, missing, k in zip(
            status_texts(s, rows), s.volume[rows].tolist(), s.rate[rows].tolist(), s.evaluated[rows].tolist(),
            s.missing[rows].tolist(), s.headroom[rows].tolist()):
        if missing:
            room = "missing it now"
        elif not evaluated:
            room = would_miss if vol and m.misses(rate) else f"not judged yet: {vol:,} of the {m.min_count:,} {u} it needs"
        else:
            room = f"{k:,} more {one if k == 1 else many} at this volume would miss it"
        out.append(f"{status}; {room}")
    return out


def _unjudged(m: Metric, pace: int, weekly: float, when: str) -> str:
    """The way out of a missed standard for a seller selling too little to get back within it first:
    its window falls below the standard's minimum and the standard is no longer judged."""
    u = units(m)
    below = f"fewer than {m.min_count:,} {u} remain in its {m.window_days}-day window {when} and it is no longer judged"
    if pace == 0:
        return f"no orders in the last 7 days: with none coming, {below}"
    return f"at its recent {weekly:,.0f} {u} a week, {below}"


def _back(s: Standing, i: int, t: date | None, offset: int) -> str:
    """When missed standard row `i` of `s` is no longer missed if every outcome from t on is good (the
    sooner way, `Standing.recovery_days`; `offset` days on, the evaluation it lands on), after
    "missing it; "."""
    m = s.metric
    u, w = units(m), m.window_days
    d = int(s.recovery_days[i])
    evaluation = t + timedelta(days=offset) if t else None
    weekly = float(s.pace[i]) * 7.0 / float(s.pace_days[i])  # the new outcomes a week the path assumes
    if s.recovery_unjudged[i]:
        return _unjudged(m, int(s.pace[i]), weekly, f"by the evaluation of {evaluation}" if evaluation
                         else f"in about {_duration(d)}")
    needed = int(s.recovery[i])
    if s.recovery_by_run[i]:
        when = f": back by the evaluation of {evaluation}" if evaluation else ""
        return (f"needs {_count(needed, m.keep_words)} in a row, about {_duration(d)} "
                f"at {weekly:,.0f} {u} a week{when}")
    at_most = m.direction == "at_most"
    within = f"within {percent(m.threshold)}" if at_most else f"to at least {percent(m.threshold)}"
    unit = u[:-1] if u.endswith("s") else u
    bad = int(s.count[i]) if at_most else int(s.volume[i] - s.count[i])
    back = f"by the evaluation of {evaluation}" if evaluation else f"in about {_duration(d)}"
    gone = f"by {t + timedelta(days=w)}" if t else f"within {w} days"
    never = f"; no number of {m.keep_words[1]} in a row brings it back while they are in the window"
    return (f"back {within} {back} if every {unit} from now on is good (its {_count(bad, m.miss_words)} "
            f"{'leaves' if bad == 1 else 'leave'} the {w}-day window {gone} at the latest){never if needed < 0 else ''}")


def recovery_texts(s: Standing, rows: np.ndarray, as_of: np.ndarray | list, every_days: int = 7) -> list[str]:
    """When a missed standard is no longer missed if every outcome from t on is good, the sooner way
    (t = 2026-11-29): "Seller cancellations 3.7% of 82 orders in the last 30 days (standard: at most
    2%): missing it; back within 2% by the evaluation of 2026-12-13 if every order from now on is good
    (its 3 cancellations leave the 30-day window by 2026-12-29 at the latest)"; when the run of good
    outcomes is as soon, "...: missing it; needs 50 orders without a cancellation in a row, about 1 day
    at 700 orders a week: back by the evaluation of 2026-12-06"; for a seller that stopped selling,
    "...: missing it; no orders in the last 7 days: with none coming, fewer than 50 orders remain in its
    30-day window by the evaluation of 2027-01-19 and it is no longer judged". `as_of`: each row's date,
    None for features sent by a caller, whose path says days, not dates."""
    u = units(s.metric)
    offsets = evaluation_days(s.recovery_days[rows], every_days).tolist()
    out = []
    for status, i, t, offset in zip(status_texts(s, rows), np.asarray(rows).tolist(), as_of, offsets):
        if not s.missing[i]:
            out.append(f"{status}: not missing it now")
        elif s.recovery_days[i] < 0:
            out.append(f"{status}: missing it; with no {u} in the window nothing says when it is back")
        else:
            out.append(f"{status}: missing it; {_back(s, i, t, offset)}")
    return out


def reason_text(s: Standing, i: int) -> str:
    """`reason_texts` of one seller."""
    return reason_texts(s, np.array([i]))[0]


def recovery_text(s: Standing, i: int, as_of: date | None = None, every_days: int = 7) -> str:
    """`recovery_texts` of one seller."""
    return recovery_texts(s, np.array([i]), [as_of], every_days)[0]
