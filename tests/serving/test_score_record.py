"""The score record a reviewer reads: reasons by standard (never a feature), where the seller stands,
exposure and context beside, every group's contribution adding up to the score, and for a seller
missing a standard now the way back; and the week's two lists (early-warning queue, recovery list)."""

from __future__ import annotations

import json
import math
from datetime import date
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.platform import layout
from features.policy.definition import ReviewCapacity
from features.policy.standing import standings
from features.platform.formatting import percent
from models.reasons.words import PEERS, reason_text, recovery_text
from serving.batch.summary import EARLY_WARNING, RECOVERY, weekly_queues
from serving.records import SCORE_ARROW, ScoreRecord

# ------------------------------------------------------------------ the weekly lists, in memory


def test_weekly_queues_put_compliant_sellers_in_the_queue_and_the_rest_on_the_recovery_list() -> None:
    ids = np.array(["S1", "S2", "S3", "S4", "S5", "S6", "S7"], dtype=object)
    score = np.array([0.9, 0.8, 0.7, 0.7, 0.1, 0.95, 0.2])
    missed = np.array([0, 0, 0, 0, 0, 1, 2])  # S6 misses one standard, S7 two
    unrecoverable = np.zeros(7, dtype=int)
    needed = np.array([0, 0, 0, 0, 0, 40, 3])
    q = weekly_queues(ids, score, missed, unrecoverable, needed, ReviewCapacity(sellers_per_week=3))
    early = [ids[i] for i in np.argsort(q.rank) if q.queue[i] == EARLY_WARNING]
    assert early == ["S1", "S2", "S3"]  # compliant only, riskiest first; S3 before S4 on the id
    assert q.early_warning == q.capacity == 3
    recovery = sorted((q.rank[i], ids[i]) for i in range(7) if q.queue[i] == RECOVERY)
    assert recovery == [(1, "S7"), (2, "S6")]  # most standards missed first, whatever the score
    assert q.queue[3] is None and q.rank[3] == 0 and q.queue[4] is None
    # capacity counts every active seller, but only compliant ones can fill it
    q = weekly_queues(ids, score, missed, unrecoverable, needed, ReviewCapacity(share_of_active_sellers=1.0))
    assert q.capacity == 7 and q.early_warning == 5 and q.recovery == 2
    # among equally many misses: one no run of good orders fixes first, then the larger need
    q = weekly_queues(ids[:3], score[:3], np.array([1, 1, 1]), np.array([0, 1, 0]), np.array([5, 0, 9]),
                      ReviewCapacity(sellers_per_week=1))
    assert list(q.rank) == [3, 1, 2] and q.early_warning == 0


# ------------------------------------------------------------------ records of the trained model


@pytest.fixture(scope="module")
def scorer(trained):
    from serving.scoring import Scorer

    models_dir = Path(trained.tracking_uri.removeprefix("sqlite:///")).parent
    return Scorer.load(f"models:/seller-risk/{trained.version}", models_dir)


@pytest.fixture(scope="module")
def snapshot(feature_dir: Path) -> pd.DataFrame:
    from features.pipeline.snapshots import read_snapshots

    latest = date.fromisoformat(json.loads(layout.manifest_file(feature_dir).read_text())["as_of_dates"][-1])
    frame = read_snapshots(feature_dir, latest)
    frame["as_of"] = latest
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def scored(scorer, snapshot):
    return scorer.score_frame(snapshot, top=5, lowering=3)


@pytest.fixture(scope="module")
def records(scorer, scored) -> list[dict]:
    return scorer.records(scored)


def test_the_http_records_are_the_batch_tables_rows(records, scorer, scored) -> None:
    """One computation (`Scorer.columns`), two views: every value of every record, nested ones included,
    is the batch table's, and the table has the score files' schema."""
    table = scorer.table(scored)
    assert table.schema.equals(SCORE_ARROW, check_metadata=True)
    assert table.to_pylist() == records


def test_every_record_is_a_valid_score_record_whose_groups_add_up_to_the_score(records, scorer) -> None:
    groups = [*scorer.policy.metrics, "history", "exposure", "context"]
    for r in records:
        ScoreRecord.model_validate(r)
        assert [c["group"] for c in r["contributions"]] == groups
        logit = r["base_log_odds"] + sum(c["contribution"] for c in r["contributions"])
        assert abs(logit - math.log(r["risk_score"] / (1 - r["risk_score"]))) < 1e-9
        by_group = {c["group"]: c["contribution"] for c in r["contributions"]}
        assert [c["group"] for c in r["context"]] == ["history", "exposure", "context"]
        assert all(c["contribution"] == by_group[c["group"]] and c["features"] for c in r["context"])
        # the risk made of its standards: the shares add up to the risk, the largest is the standard at risk
        # (for a seller missing standards, the missed one with the largest share)
        share = {x["standard"]: x["share"] for x in r["risk_by_standard"]}
        assert abs(sum(share.values()) - r["risk_score"]) < 1e-12
        candidates = r["standards_missed_now"] or list(share)
        assert r["standard_at_risk"] == max(candidates, key=lambda m: (share[m], -list(share).index(m)))
        min_effect = scorer.policy.reasons.min_effect
        for reasons, sign in ((r["reasons"], 1), (r["lowering_reasons"], -1)):
            assert [x["rank"] for x in reasons] == list(range(1, len(reasons) + 1))
            assert all(sign * x["contribution"] > 0 and sign * x["probability_change"] >= min_effect for x in reasons)
        ordered = [share[x["standard"]] for x in r["reasons"]]
        assert ordered == sorted(ordered, reverse=True)  # by the standard's share of the risk
        exposure = next(c["features"] for c in r["context"] if c["group"] == "exposure")
        if not r["standards_missed_now"] and any(x["standard"] == r["standard_at_risk"] for x in r["reasons"]):
            assert r["reasons"][0]["standard"] == r["standard_at_risk"]
            assert not exposure.startswith("Mostly being judged")
        elif not r["standards_missed_now"]:  # no reason for it: told in one line that being judged is the risk
            label = scorer.policy.metrics[r["standard_at_risk"]].label
            assert exposure.startswith(f"Mostly being judged: {label}")
        assert len(r["reasons"]) <= 5 and len(r["lowering_reasons"]) <= 3
        # a reason is a standard, never a feature's value
        assert all(x["standard"] in scorer.policy.metrics and not x["text"].startswith("Orders in the last")
                   for x in r["reasons"] + r["lowering_reasons"])


def test_every_reason_is_worded_as_standing_words_it(records, snapshot, scorer) -> None:
    """The batch words its reasons column-wise (`reason_texts`); each sentence is `reason_text`'s, then,
    for a standard with peers, what the other sellers show, read off the snapshot's world feature."""
    stand = standings(snapshot, scorer.policy)
    n = peered = 0
    for i, r in enumerate(records):
        for x in r["reasons"] + r["lowering_reasons"]:
            want = reason_text(stand[x["standard"]], i)
            peer = PEERS.get(x["standard"])
            if peer is not None and not pd.isna(value := snapshot.iloc[i][peer.feature]):
                rate = 1.0 - float(value) if peer.misses else float(value)
                want += f"; {peer.who}: {percent(rate)} in the last {peer.days} days"
                peered += 1
            assert x["text"] == want
            n += 1
    assert n > len(records) // 2 and peered > 0


def test_the_population_and_the_recovery_follow_the_snapshots_own_status(records, snapshot, scorer) -> None:
    """Missed now, read back from the features, is the pipeline's own status at t (miss_<metric>)."""
    names = list(scorer.policy.metrics)
    missed = snapshot[[f"miss_{m}" for m in names]].fillna(False).astype(bool).to_numpy()
    n_missing = 0
    for r, row in zip(records, missed):
        want = [m for m, x in zip(names, row) if x]
        assert r["standards_missed_now"] == want
        assert r["population"] == ("missing_now" if want else "compliant_now")
        assert [x["standard"] for x in r["recovery"]] == want  # a way back exactly for each standard missed now
        n_missing += bool(want)
    assert 0 < n_missing < len(records)


def test_a_hand_checked_seller_missing_its_cancellations(records, snapshot, scorer) -> None:
    """One seller missing the cancellation standard, recounted by hand: the count of cancellations,
    the orders without a cancellation in a row that bring it back, and the sentences."""
    metric = scorer.policy.metrics["cancellation_rate"]
    at = [i for i, r in enumerate(records) if "cancellation_rate" in r["standards_missed_now"]]
    assert at, "the test marketplace has a seller missing the cancellation standard"
    i = at[0]
    r, row = records[i], snapshot.iloc[i]
    volume = int(row["cancellation_rate_volume"])
    rate = float(row[f"cancellation_rate_{metric.window_days}d"])
    cancelled = round(rate * volume)
    threshold = Fraction(repr(metric.threshold))
    assert Fraction(cancelled, volume) > threshold
    g = next(g for g in range(100_000) if Fraction(cancelled, volume + g) <= threshold)  # by brute force
    [rec] = [x for x in r["recovery"] if x["standard"] == "cancellation_rate"]
    assert rec["needed"] == g
    s = standings(snapshot.iloc[[i]].reset_index(drop=True), scorer.policy)["cancellation_rate"]
    assert rec["text"] == recovery_text(s, 0, r["as_of"], scorer.policy.evaluation_every_days)
    # no longer missed if every order from now is good, new orders coming at its pace of the last 7 days
    # (features.policy.standing): the run, or the cancellations (spread evenly) leaving the window,
    # whichever is sooner, unless too few orders remain in the window to judge it before; then the
    # next evaluation
    w, every, o7, never = metric.window_days, scorer.policy.evaluation_every_days, int(row["orders_7d"]), 10**9
    over = threshold.denominator * cancelled - threshold.numerator * volume
    turnover = max(1, math.ceil(Fraction(w * 7 * over, 7 * over + threshold.numerator * w * o7))) if o7 else never
    run = max(1, math.ceil(Fraction(g * 7, o7))) if o7 else never
    shrinks = volume * 7 - o7 * w
    leave = max(1, math.ceil(Fraction(w * 7 * (volume - metric.min_count + 1), shrinks))) if shrinks > 0 else never
    days = min(run, turnover, leave)
    assert rec["back_by"] == date.fromordinal(r["as_of"].toordinal() + math.ceil(days / every) * every)
    assert (f"by the evaluation of {rec['back_by']} and it is no longer judged" if leave < min(run, turnover)
            else f"needs {g:,} order" if run <= turnover
            else f"by the evaluation of {rec['back_by']} if every order from now on is good") in rec["text"]
    for x in r["reasons"] + r["lowering_reasons"]:
        st = standings(snapshot.iloc[[i]].reset_index(drop=True), scorer.policy)[x["standard"]]
        assert x["text"] == reason_text(st, 0) and x["label"] == scorer.policy.metrics[x["standard"]].label
        assert x["volume"] == int(row[f"{x['standard']}_volume"])
        window = scorer.policy.metrics[x["standard"]].window_days
        value = row[f"{x['standard']}_{window}d"]
        assert (x["value"] is None) if pd.isna(value) else x["value"] == pytest.approx(float(value), abs=1e-12)


def test_a_compliant_sellers_reasons_say_how_close_it_is(records, snapshot, scorer) -> None:
    """For a compliant seller judged on a standard at risk, the headroom is the number of further misses
    at this volume that would break it, recounted here."""
    checked = 0
    for i, r in enumerate(records):
        if r["population"] != "compliant_now":
            continue
        for x in r["reasons"]:
            m = scorer.policy.metrics[x["standard"]]
            if x["headroom"] is None:
                continue
            volume, rate = x["volume"], snapshot.iloc[i][f"{x['standard']}_{m.window_days}d"]
            count = round(float(rate) * volume)
            t = Fraction(repr(m.threshold))
            k = x["headroom"]
            if m.direction == "at_most":  # k more misses break it, k - 1 do not
                assert Fraction(count + k, volume) > t and Fraction(count + k - 1, volume) <= t
            else:
                assert Fraction(count - k, volume) < t and Fraction(count - k + 1, volume) >= t
            assert f"{k:,} more" in x["text"]
            checked += 1
        if checked >= 20:
            break
    assert checked >= 5
