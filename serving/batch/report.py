"""The run summary the job writes beside the week's rows (`_summary.json`) and logs to MLflow,
assembled from the week's figures (`summary`), last week's scores, the drift counts, the earlier weeks
monitored against their matured labels (`monitoring`) and the run's own facts. JSON-ready: plain dicts,
lists and numbers.

The breaches to expect come twice: `expected_breaches` over every scored seller, and `breach_forecast`
over the sellers compliant now (the early-warning population, whose breaches reviewers staff for). Both
intervals hold the model's own error as the matured weeks showed it (models.forecast), and say over how
many weeks; the calibrated-model spread alone is kept beside them (`bernoulli_low`, `bernoulli_high`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from models.forecast import breach_interval, season_seen
from models.registry import fitted_weeks
from serving.batch.drift import DriftCounts, Reference
from serving.batch.monitoring import ALL, forecast, ratios_of, warnings
from serving.batch.ranking import RankedWeek
from serving.batch.summary import (PSI_ALERT, PSI_WATCH, RECOVERY, band_counts, capacity_coverage, drift_table,
                                   expected_breaches, queue_summary, risers)
from serving.batch.table import Stamp, Written
from serving.scoring import Scorer


def summarise(scorer: Scorer, current: pd.DataFrame, as_of: date, previous: pd.DataFrame | None, previous_source: str,
              reference: Reference | None, counts: dict, monitored: list[dict] = (), unseen: str = "") -> dict:
    """The run summary (JSON-ready) from the week's scores, last week's, the drift counts and the matured
    weeks' figures (`monitored`, oldest first; their model errors widen the breach interval), and, when the
    model never trained on the week's season, why (`unseen_season`: the interval widens again)."""
    policy = scorer.policy
    p = current["risk_score"].to_numpy()
    eb = expected_breaches(p, policy.monitoring.interval_level)
    ratios = ratios_of(list(monitored), [])[ALL]
    planned, low, high = breach_interval(p, ratios, eb.level, unseen_season=bool(unseen))
    cov = capacity_coverage(p, policy.review_capacity)
    rise = risers(current, previous) if previous is not None else pd.DataFrame()
    drift = drift_table(reference.bins, counts) if reference is not None else pd.DataFrame()
    return {
        "as_of": str(as_of),
        "model": {"name": scorer.ref.name, "version": scorer.ref.version, "run_id": scorer.ref.run_id},
        "policy_version": policy.version,
        "feature_spec_hash": scorer.spec.hash,
        "sellers_scored": int(len(p)),
        "bands": band_counts(p, current["risk_band"].to_numpy(), policy).to_dict("records"),
        "expected_breaches": {"horizon_days": policy.horizon_days, "expected": eb.expected, "std": eb.std,
                              "interval_level": eb.level, "low": low, "high": high, "planned": planned,
                              "bernoulli_low": eb.low, "bernoulli_high": eb.high, "matured_weeks": len(ratios),
                              "interval_includes": f"the model's own error over {len(ratios)} matured weeks"
                                                   + (f", and {unseen}" if unseen else "")},
        "review_capacity": {"sellers": cov.capacity, "expected_breaches_in_queue": cov.expected_in_queue,
                            "share_of_expected_breaches": cov.share_of_expected,
                            "lowest_score_in_queue": cov.lowest_score_in_queue,
                            "rule": policy.review_capacity.model_dump(exclude_none=True)},
        "risers": {"compared_with": previous_source, "sellers": rise.to_dict("records")},
        "drift": {"reference": reference.source if reference else "none: no training or earlier snapshots found",
                  "watch": PSI_WATCH, "alert": PSI_ALERT, "variables": drift.to_dict("records")},
    }


def week_summary(scorer: Scorer, as_of: date, written: Written, ranked: RankedWeek,
                 previous: tuple[pd.DataFrame | None, str], drift: DriftCounts, monitored: list[dict] = (),
                 labels_from: str = "") -> dict:
    """What the week means for the people who plan and work the queue: the summary's figures, the
    weekly lists, the band cut-offs the service places a seller of this week by, the breach forecast
    among sellers compliant now, and the earlier weeks measured against their matured labels."""
    scores = written.scores["risk_score"].to_numpy()
    counts = drift.with_scores(scores)
    monitored = list(monitored)
    unseen = unseen_season(scorer, as_of)
    summary = summarise(scorer, written.scores, as_of, *previous, drift.reference, counts, monitored, unseen)
    summary.update(queue_summary(scores, ranked.queues, ranked.week.missed_by_standard))
    summary["band_cutoffs"] = ranked.cutoffs.to_json()
    rules = scorer.policy.monitoring
    summary["breach_forecast"] = {"horizon_days": scorer.policy.horizon_days,
                                  **forecast(scores[ranked.queues.queue != RECOVERY], monitored, rules.interval_level,
                                             unseen)}
    summary["monitoring"] = {"labels_from": labels_from, "horizon_days": scorer.policy.horizon_days,
                             "interval_level": rules.interval_level, "warn_after_weeks": rules.warn_after_weeks,
                             "champion_max_age_days": rules.champion_max_age_days, "weeks": monitored,
                             "warnings": warnings(monitored, rules.warn_after_weeks)}
    return summary


def unseen_season(scorer: Scorer, as_of: date) -> str:
    """Why the week's breach interval is wider than the matured weeks say, when the champion never trained
    on its season (models.forecast.season_seen over its training weeks); "" when it did, or when its training
    run does not say which weeks it read."""
    weeks = fitted_weeks(scorer.ref)
    if weeks is None or season_seen((weeks.first, weeks.last), as_of):
        return ""
    return (f"a season the model never trained on (it learnt from {weeks.first} to {weeks.last}): a first holiday peak "
            "can move breaches two- or threefold, which no matured week shows yet")


def run_facts(stamp: Stamp, source: str, partition: Path, files: int, seconds: float) -> dict:
    """The run's own facts: its id, when it scored, where the snapshot came from, what it wrote, how long."""
    return {"run_id": stamp.run_id, "scored_at": stamp.scored_at.isoformat(), "snapshot": source,
            "partition": str(partition), "files": files, "seconds": round(seconds, 2)}
