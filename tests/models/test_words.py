"""The words of the reasons and recovery paths: hand-written sentences for hand-worked standings, a
rate and its movement over the same window, a rate that never reads on the wrong side of its
threshold (a property, over any rate and threshold), a seller that stopped selling told when its
standard is no longer judged, and every recovery sentence naming the record's `back_by`."""

from __future__ import annotations

from datetime import date

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from features.platform.formatting import percent, percent_against
from features.policy.definition import Policy
from features.policy.standing import back_by, standing
from models.reasons.words import (PEERS, judged_line, judged_texts, peer_texts, reason_text, reason_texts, recovery_text, recovery_texts,
                                  status_texts)
from tests.standing_frames import standing_frame


# ------------------------------------------------------------------ reasons


def test_cancellation_reasons_hand_worked(policy: Policy) -> None:
    m = policy.metrics["cancellation_rate"]  # at most 2%, judged from 50 orders
    s = standing(standing_frame(m, [(1, 50), (1, 100), (3, 100), (2, 40), (0, 0)]), m)
    assert reason_text(s, 1) == ("Seller cancellations 1.0% of 100 orders in the last 30 days (standard: at most 2%), "
                                 "up 0.9 points on the 30 days before; 2 more cancellations at this volume would miss it")
    assert reason_text(s, 3).endswith("at this rate it would miss it once 50 orders are judged")
    assert reason_text(s, 4) == "Seller cancellations: no orders in the last 30 days (standard: at most 2%); " \
                                "not judged yet: 0 of the 50 orders it needs"
    assert reason_texts(s, np.arange(5)) == [reason_text(s, i) for i in range(5)]


def test_a_seller_at_risk_only_for_being_judged_gets_one_line_every_list_reads_back(policy: Policy) -> None:
    """A new seller, 0 cancellations of 25 orders (judged from 50): its standard at risk has no reason, and
    the queue page and the CLI show the line its record's exposure context starts with, never a blank."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(0, 25)], trend=float("nan")), m)  # new: no 30 days before
    line = ("Mostly being judged: Seller cancellations 0.0% of 25 orders in the last 30 days (standard: at most 2%, "
            "judged from 50 orders); its risk comes from how much of it is judged, not from anything the seller does on it")
    assert judged_texts(s, np.array([0])) == [line]
    context = [{"group": "history", "features": "Never warned by the marketplace"},
               {"group": "exposure", "features": f"{line}; Orders in the last 7 days: 23"}]
    assert judged_line(context) == line
    assert judged_line([{"group": "exposure", "features": "Orders in the last 7 days: 23"}]) == ""
    assert judged_line([{"group": "context", "features": line}]) == "" and judged_line(None) == ""


def test_a_reason_is_told_beside_what_its_peers_show() -> None:
    """15.9% of the deliveries on a seller's carriers in its region late this week reads as their on-time
    rate, its window named; 5.1% of its category's delivered orders returned, as it is; unknown: nothing."""
    assert peer_texts(PEERS["on_time_delivery_rate"], np.array([0.159, np.nan])) == [
        "; sellers on its carriers in its region: 84.1% in the last 7 days", ""]
    assert peer_texts(PEERS["return_rate"], np.array([0.051, 0.06])) == [
        "; sellers in its category: 5.1% in the last 60 days", "; sellers in its category: 6% in the last 60 days"]


def test_on_time_reasons_hand_worked(policy: Policy) -> None:
    m = policy.metrics["on_time_delivery_rate"]  # at least 90%
    s = standing(standing_frame(m, [(95, 100), (90, 100), (85, 100), (45, 50)], trend=-0.031), m)
    assert "down 3.1 points" in reason_text(s, 0) and "6 more late deliveries at this volume" in reason_text(s, 0)
    assert "1 more late delivery at this volume" in reason_text(s, 1)
    assert reason_text(s, 2).endswith("; missing it now")


def test_a_rate_and_its_movement_read_over_the_same_window(policy: Policy) -> None:
    """A 60-day standard says its rate over the last 30 days (the 30-day feature), never the 30-day
    trend beside its 60-day rate; without the 30-day rate it says nothing of how it moves. A 30-day
    standard keeps its trend."""
    m = policy.metrics["negative_feedback_rate"]  # at most 2% over 60 days, judged from 100 orders
    s = standing(standing_frame(m, [(3, 188), (3, 188)], trend=0.028, recent=[0.028, np.nan]), m)
    assert reason_text(s, 0) == (
        "1-2 star ratings 1.6% of 188 orders in the last 60 days (standard: at most 2%), 2.8% in the last 30 "
        "days; 1 more 1-2 star rating at this volume would miss it")
    assert reason_text(s, 1) == (
        "1-2 star ratings 1.6% of 188 orders in the last 60 days (standard: at most 2%); 1 more 1-2 star rating "
        "at this volume would miss it")
    for text in status_texts(s, np.arange(2)) + recovery_texts(s, np.arange(2), [None, None]):
        assert "points on the 30 days before" not in text and "flat on" not in text
    c = policy.metrics["cancellation_rate"]
    flat = standing(standing_frame(c, [(1, 100)], trend=0.0001, recent=[0.0]), c)
    assert status_texts(flat, np.arange(1)) == [
        "Seller cancellations 1.0% of 100 orders in the last 30 days (standard: at most 2%), flat on the 30 days before"]


def test_a_rate_missing_the_standard_never_reads_like_one_meeting_it(policy: Policy) -> None:
    """3 of 149 (2.013%) misses at most 2%, 5 of 253 (1.976%) meets it; 449 of 499 on time (89.98%)
    misses at least 90%. The 30-day rate beside a 60-day standard reads the same way."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 149), (5, 253)]), m)
    assert s.missing.tolist() == [True, False]
    assert reason_text(s, 0).startswith("Seller cancellations 2.01% of 149 orders")
    assert reason_text(s, 1).startswith("Seller cancellations 2.0% of 253 orders")
    o = policy.metrics["on_time_delivery_rate"]
    assert reason_text(standing(standing_frame(o, [(449, 499)]), o), 0).startswith("On-time deliveries 89.98% of 499")
    n = policy.metrics["negative_feedback_rate"]
    assert ", 2.01% in the last 30 days" in reason_text(standing(standing_frame(n, [(3, 188)], recent=[3 / 149]), n), 0)


def _reads_missing(text: str, threshold: float, at_most: bool) -> bool:
    """What a reader concludes from a printed rate beside the printed threshold (`percent`): missing
    when it reads past it; level with it meets ("at most" and "at least" include it)."""
    if text.startswith("just over "):
        assert text == f"just over {percent(threshold)}"
        return at_most
    if text.startswith("just under "):
        assert text == f"just under {percent(threshold)}"
        return not at_most
    shown, line = float(text.rstrip("%")), float(percent(threshold).rstrip("%"))
    return shown > line if at_most else shown < line


THRESHOLDS = st.one_of(st.sampled_from([0.0, 0.02, 0.06, 0.9, 0.95, 0.99, 0.995, 1.0]),
                       st.floats(0.0, 1.0, allow_nan=False))


@given(rate=st.floats(0.0, 1.0, allow_nan=False), threshold=THRESHOLDS, at_most=st.booleans())
def test_a_printed_rate_never_contradicts_its_standard(rate: float, threshold: float, at_most: bool) -> None:
    """For any rate and threshold, the printed rate against the printed threshold reads missing exactly
    when the rate misses; a printed number is the rate rounded, and one decimal when it is clear."""
    text = percent_against(rate, threshold, at_most)
    misses = rate > threshold if at_most else rate < threshold
    assert _reads_missing(text, threshold, at_most) == misses, text
    if not text.startswith("just"):
        number = text.rstrip("%")
        assert abs(float(number) - rate * 100) <= 0.05 + 1e-9
        if abs(rate - threshold) > 0.0015:
            assert len(number.split(".")[1]) == 1


@given(count=st.integers(0, 5000), extra=st.integers(0, 5000))
def test_a_count_over_a_volume_reads_on_its_side(count: int, extra: int) -> None:
    """Rates as the standards see them (a count over a volume) against the policy's thresholds."""
    volume = count + extra
    if volume == 0:
        return
    for threshold in (0.02, 0.06, 0.9, 0.95, 0.99):
        for at_most in (True, False):
            rate = count / volume
            text = percent_against(rate, threshold, at_most)
            assert _reads_missing(text, threshold, at_most) == (rate > threshold if at_most else rate < threshold)


# ------------------------------------------------------------------ recovery


def test_recovery_when_the_window_turns_over_sooner(policy: Policy) -> None:
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 100)], trend=np.nan), m)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; back within "
        "2% by the evaluation of 2026-12-13 if every order from now on is good (its 3 cancellations leave the "
        "30-day window by 2026-12-29 at the latest)")
    assert recovery_text(s, 0) == (  # features sent by a caller: no as-of date, so days
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; back within "
        "2% in about 1 week if every order from now on is good (its 3 cancellations leave the 30-day window within "
        "30 days at the latest)")
    s = standing(standing_frame(m, [(3, 100)]), m)
    assert recovery_text(s, 0, date(2025, 12, 29)) == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%), up 0.9 points on the "
        "30 days before: missing it; back within 2% by the evaluation of 2026-01-12 if every order from now on is "
        "good (its 3 cancellations leave the 30-day window by 2026-01-28 at the latest)")


def test_recovery_when_the_good_run_is_as_soon(policy: Policy) -> None:
    """61 of 3,000 (2.033%) reads 2.03%: it misses at most 2%. At 70 orders in the last 7 days, the
    50 clean orders take 5 days at 70 orders a week, not the window's 700."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(61, 3000)], trend=np.nan), m)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 2.03% of 3,000 orders in the last 30 days (standard: at most 2%): missing it; needs 50 "
        "orders without a cancellation in a row, about 1 day at 700 orders a week: back by the evaluation of "
        "2026-12-06")
    s = standing(standing_frame(m, [(3, 100)], trend=np.nan, orders_7d=[70]), m)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; needs 50 "
        "orders without a cancellation in a row, about 5 days at 70 orders a week: back by the evaluation of "
        "2026-12-06")


def test_recovery_of_an_at_least_standard(policy: Policy) -> None:
    m = policy.metrics["on_time_delivery_rate"]
    s = standing(standing_frame(m, [(85, 100)], trend=-0.031), m)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "On-time deliveries 85.0% of 100 delivered orders in the last 30 days (standard: at least 90%), down 3.1 "
        "points on the 30 days before: missing it; back to at least 90% by the evaluation of 2026-12-13 if every "
        "delivered order from now on is good (its 15 late deliveries leave the 30-day window by 2026-12-29 at the "
        "latest)")


def test_recovery_when_no_good_run_helps(policy: Policy) -> None:
    m = policy.metrics["cancellation_rate"].model_copy(update={"threshold": 0.0})
    s = standing(standing_frame(m, [(1, 100)], trend=np.nan), m)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 1.0% of 100 orders in the last 30 days (standard: at most 0%): missing it; back within "
        "0% by the evaluation of 2027-01-03 if every order from now on is good (its 1 cancellation leaves the 30-day "
        "window by 2026-12-29 at the latest); no number of orders without a cancellation in a row brings it back "
        "while they are in the window")


def test_a_seller_that_stopped_selling_is_told_when_it_is_no_longer_judged(policy: Policy) -> None:
    """3 cancellations of 100 orders (at most 2%, judged from 50), no orders in the last 7 days, as of
    2026-12-29: with none coming the share stays 3%; 100 * (30 - d) / 30 orders remain after d days,
    at most 49 from d = 16 (30 * 51 / 100 = 15.3); the first evaluation on or after day 16 is day 21,
    2027-01-19. No good run is promised. Without an as-of date the path says days."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 100)], trend=np.nan, orders_7d=[0]), m)
    t = date(2026, 12, 29)
    text = recovery_text(s, 0, t, 7)
    assert text == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; no orders in "
        "the last 7 days: with none coming, fewer than 50 orders remain in its 30-day window by the evaluation of "
        "2027-01-19 and it is no longer judged")
    assert "every order from now on is good" not in text and "needs" not in text
    assert back_by(s.recovery_days, np.array([t]), 7).astype(object).tolist() == [date(2027, 1, 19)]
    assert recovery_text(s, 0).endswith("fewer than 50 orders remain in its 30-day window in about 2 weeks and it is "
                                        "no longer judged")


def test_a_seller_selling_too_little_to_recover_is_told_so(policy: Policy) -> None:
    """10 of 100 at 7 orders in the last 7 days: back within 2% only on day 28, but at most 49 orders
    remain from day 22 (tests/features/test_standing.py): no longer judged, by the evaluation of day 28."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(10, 100)], trend=np.nan, orders_7d=[7]), m)
    assert recovery_text(s, 0, date(2026, 12, 29), 7) == (
        "Seller cancellations 10.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; at its "
        "recent 7 orders a week, fewer than 50 orders remain in its 30-day window by the evaluation of 2027-01-26 "
        "and it is no longer judged")


def test_every_recovery_sentence_names_the_records_back_by(policy: Policy) -> None:
    """Over many sellers of every standard, any pace: the sentence's evaluation date is `back_by`'s,
    and the one-seller form is the column-wise one's."""
    rng = np.random.default_rng(7)
    t = date(2026, 12, 29)
    every = policy.evaluation_every_days
    for m in policy.metrics.values():
        volume = rng.integers(m.min_count, 600, 300)
        count = (rng.random(300) * volume).astype(int)
        recent = rng.choice([np.nan, 0.0, 3.0, 40.0, 400.0], 300)
        s = standing(standing_frame(m, list(zip(count.tolist(), volume.tolist())), orders_7d=recent.tolist()), m)
        rows = np.flatnonzero(s.missing)
        assert len(rows) > 20, m.name
        texts = recovery_texts(s, rows, [t] * len(rows), every)
        dates = back_by(s.recovery_days[rows], np.array([t] * len(rows)), every).astype(object).tolist()
        for i, text, back in zip(rows.tolist(), texts, dates):
            assert f"by the evaluation of {back}" in text, text
            assert text == recovery_text(s, i, t, every)
            assert ("no longer judged" in text) == bool(s.recovery_unjudged[i])
