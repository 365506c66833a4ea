"""The leader page (/console/leader): the breaches to plan for among sellers compliant now (the latest
batch summary's forecast, whose interval holds the model's own error over the matured weeks); the model
watched against matured labels, week by week (queue precision, realised against expected breaches,
the worst standard's calibration), with a warning when a figure leaves its interval `warn_after_weeks`
weeks running and when the scoring model is older than the policy's limit; per scored week, expected
breaches among early-warning sellers (with a 95% interval) against capacity, decisions made, queue
coverage, time to decision, and for past weeks how many queued sellers did breach; and decisions per
reviewer. A corrected decision is not counted:
a seller's standing decision (the latest; a correction is newer than what it corrects) is, marked
"corrected" when it is a correction. Leaders only, as is the export of every decision
(/console/leader/decisions.parquet, what `seller-risk decisions export` writes)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from features.platform import layout
from features.policy.definition import Policy
from serving.batch.monitoring import warnings as figure_warnings
from serving.batch.summary import EARLY_WARNING, RECOVERY, expected_breaches
from serving.console.app import LEADING, Console
from serving.console.errors import NotFound
from serving.console.tables import Week

@dataclass(frozen=True)
class LeaderWeek:
    as_of: date
    queue: int  # early-warning sellers: the week's reviewer capacity used
    recovery: int
    expected: float  # expected breaches among the early-warning sellers
    low: float
    high: float
    decisions: int  # decisions recorded on the week's records (every list)
    covered: int  # early-warning sellers with a decision
    coverage: float
    median_hours: float | None  # scored_at -> decided_at, per seller's first decision
    breached: int | None  # early-warning sellers that did breach (None: labels not known yet)
    labelled: int | None
    corrected: int = 0  # of the standing decisions, how many are corrections


def leader_week(week: Week, decisions: pd.DataFrame, labels: pd.Series | None) -> LeaderWeek:
    """A week's staffing and quality figures. `decisions` holds the standing decisions on this week's
    records (columns seller_id, decided_at, reviewer, action; `corrects` when known); `labels` the
    early-warning sellers' breach labels."""
    early = week.queued[week.queued["queue"] == EARLY_WARNING]
    forecast = expected_breaches(early["risk_score"].to_numpy(dtype="float64"), level=0.95)
    ew_ids = set(early["seller_id"])
    covered = int(decisions["seller_id"].isin(ew_ids).groupby(decisions["seller_id"]).any().sum()) \
        if len(decisions) else 0
    hours = None
    if len(decisions) and week.scored_at is not None:
        when = decisions["first_decided_at"] if "first_decided_at" in decisions else decisions["decided_at"]
        first = when.groupby(decisions["seller_id"]).min()
        delta = (pd.to_datetime(first, utc=True) - pd.Timestamp(week.scored_at)).dt.total_seconds() / 3600
        hours = float(delta.median())
    breached = labelled = None
    if labels is not None:
        known = labels.dropna()
        labelled, breached = int(len(known)), int(known.astype(bool).sum())
    return LeaderWeek(week.as_of, len(early), int((week.queued["queue"] == RECOVERY).sum()), forecast.expected,
                      forecast.low, forecast.high, int(len(decisions)), covered,
                      covered / len(early) if len(early) else float("nan"), hours, breached, labelled,
                      int(decisions["corrects"].notna().sum()) if "corrects" in decisions else 0)


def per_reviewer(decisions: pd.DataFrame) -> list[dict]:
    """Decisions per reviewer, with their actions, most active first."""
    if decisions.empty:
        return []
    counts = decisions.groupby(["reviewer", "action"]).size().unstack(fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts = counts.sort_values("total", ascending=False)
    return [{"reviewer": r, "total": int(row["total"]),
             "actions": {a: int(row[a]) for a in counts.columns if a != "total" and row[a]}}
            for r, row in counts.iterrows()]


def standing(frame: pd.DataFrame) -> pd.DataFrame:
    """The decisions no later decision corrects (one per correction chain), each with `first_decided_at`:
    when the seller was first decided on that week, before any correction (time to decision counts that)."""
    if frame is None or frame.empty or "corrects" not in frame:
        return frame
    first = frame.groupby(["seller_id", "as_of"])["decided_at"].transform("min")
    kept = ~frame["id"].isin(frame["corrects"].dropna().astype("int64"))
    return frame.assign(first_decided_at=first)[kept]


def decisions_table_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's decisions frame with the columns the leader page reads: as_of a date, decided_at UTC;
    decisions since corrected left out."""
    cols = ["seller_id", "as_of", "record_id", "action", "reviewer", "decided_at", "corrects"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    out = standing(frame).copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["decided_at"] = pd.to_datetime(out["decided_at"], utc=True)
    return out


@dataclass(frozen=True)
class Watch:
    """What the latest batch summary says about the model against matured labels, for the page."""

    forecast: dict | None  # the latest week's breach forecast among sellers compliant now
    weeks: list[dict]  # monitored weeks, newest first
    warnings: list[str] = field(default_factory=list)
    model_age_days: int | None = None
    max_age_days: int | None = None


def champion_warning(registered_at: str | None, today: date, max_age_days: int, model: str) -> str | None:
    """A warning when the scoring model's version was registered more than `max_age_days` before `today`."""
    if not registered_at:
        return None
    age = (today - datetime.fromisoformat(registered_at).date()).days
    if age <= max_age_days:
        return None
    return (f"The scoring model ({model}) is {age} days old, older than the policy's limit of {max_age_days} days: "
            "retrain and put a challenger through the promotion gate.")


def watch(summary: dict | None, policy: Policy, today: date) -> Watch:
    """The monitoring the page shows from the latest summary: rows newest first, and the warnings (a figure
    outside its interval `warn_after_weeks` monitored weeks running; a model older than the policy allows)."""
    if not summary:
        return Watch(None, [])
    rules = policy.monitoring
    rows = summary.get("monitoring", {}).get("weeks", [])
    said = _said(figure_warnings(rows, rules.warn_after_weeks), policy)
    model = summary.get("model", {})
    registered = model.get("registered_at")
    old = champion_warning(registered, today, rules.champion_max_age_days, f"{model.get('name')} v{model.get('version')}")
    age = (today - datetime.fromisoformat(registered).date()).days if registered else None
    return Watch(summary.get("breach_forecast"), list(reversed(rows)), said + ([old] if old else []), age,
                 rules.champion_max_age_days)


def _said(found: list[dict], policy: Policy) -> list[str]:
    """The figure warnings in a leader's words; the standards' calibration warnings of the same weeks in one."""
    def weeks(w: dict) -> str:
        return (f"{len(w['weeks'])} weeks running ({', '.join(w['weeks'])}: realised/expected "
                f"{', '.join(f'{r:.2f}' for r in w['ratios'])}, {w['direction']} than the interval allowed)")
    prefix = "calibration of "
    said = [f"{w['figure'].capitalize()} fell outside its interval {weeks(w)}." for w in found
            if not w["figure"].startswith(prefix)]
    standards = [w for w in found if w["figure"].startswith(prefix)]
    if standards:
        names = [w["figure"].removeprefix(prefix) for w in standards]
        labels = ", ".join(policy.metrics[n].label if n in policy.metrics else n for n in names)
        said.append(f"Calibration of {len(names)} standard{'s' if len(names) > 1 else ''} ({labels}) fell outside "
                    f"{'their intervals' if len(names) > 1 else 'its interval'} {weeks(standards[0])}.")
    return said


def latest_summary(scores: Path, weeks: list[date]) -> dict | None:
    """The newest scored week's run summary (the one that monitored every matured week before it)."""
    path = layout.summary_file(scores, weeks[0])
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def leader_page(console: Console, request: Request, user: str, form) -> Response:
    weeks = console.tables.weeks()
    if not weeks:
        raise NotFound(f"the score table {console.settings.scores_dir} holds no scored week yet")
    summary = latest_summary(console.tables.scores, weeks)
    policy = console.tables.policy(summary.get("policy_version") if summary else None)
    frame = console.store.decisions_frame()
    all_decisions = decisions_table_from_frame(frame)
    rows = []
    for as_of in weeks:
        week = console.tables.week(as_of)
        mine = all_decisions[all_decisions["as_of"] == as_of]
        early = week.queued[week.queued["queue"] == EARLY_WARNING]["seller_id"].tolist()
        rows.append(leader_week(week, mine, console.tables.labels(as_of, early)))
    return console.render(request, "leader.html", rows=rows, reviewers=per_reviewer(all_decisions),
                          isnan=math.isnan, watch=watch(summary, policy, datetime.now(UTC).date()))


def export(console: Console, request: Request, user: str, form) -> Response:
    """Every decision as the Parquet table `seller-risk decisions export` writes (corrections included)."""
    import io

    import pyarrow.parquet as pq

    from serving.store.cli import decisions_table

    buffer = io.BytesIO()
    pq.write_table(decisions_table(console.store.decisions_frame()), buffer)
    return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": 'attachment; filename="decisions.parquet"',
                             "Cache-Control": "no-store"})


def routes(console: Console) -> list[Route]:
    async def leader(request: Request) -> Response:
        return await console.guarded(request, leader_page, LEADING)

    async def decisions(request: Request) -> Response:
        return await console.guarded(request, export, LEADING)

    return [Route("/leader", leader, methods=["GET"]), Route("/leader/decisions.parquet", decisions, methods=["GET"])]
