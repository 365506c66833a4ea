"""The leader page (/console/leader): per scored week, expected breaches among early-warning sellers
(with a 95% interval) against capacity, decisions made, queue coverage, time to decision, and for past
weeks how many queued sellers did breach; and decisions per reviewer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pandas as pd
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.batch.summary import EARLY_WARNING, RECOVERY, expected_breaches
from serving.console.app import Console
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


def leader_week(week: Week, decisions: pd.DataFrame, labels: pd.Series | None) -> LeaderWeek:
    """A week's staffing and quality figures. `decisions` holds the decisions on this week's records
    (columns seller_id, decided_at, reviewer, action); `labels` the early-warning sellers' breach labels."""
    early = week.queued[week.queued["queue"] == EARLY_WARNING]
    forecast = expected_breaches(early["risk_score"].to_numpy(dtype="float64"), level=0.95)
    ew_ids = set(early["seller_id"])
    covered = int(decisions["seller_id"].isin(ew_ids).groupby(decisions["seller_id"]).any().sum()) \
        if len(decisions) else 0
    hours = None
    if len(decisions) and week.scored_at is not None:
        first = decisions.groupby("seller_id")["decided_at"].min()
        delta = (pd.to_datetime(first, utc=True) - pd.Timestamp(week.scored_at)).dt.total_seconds() / 3600
        hours = float(delta.median())
    breached = labelled = None
    if labels is not None:
        known = labels.dropna()
        labelled, breached = int(len(known)), int(known.astype(bool).sum())
    return LeaderWeek(week.as_of, len(early), int((week.queued["queue"] == RECOVERY).sum()), forecast.expected,
                      forecast.low, forecast.high, int(len(decisions)), covered,
                      covered / len(early) if len(early) else float("nan"), hours, breached, labelled)


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


def decisions_table_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's decisions frame with the columns the leader page reads: as_of a date, decided_at UTC."""
    cols = ["seller_id", "as_of", "record_id", "action", "reviewer", "decided_at"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    out = frame.copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["decided_at"] = pd.to_datetime(out["decided_at"], utc=True)
    return out


def leader_page(console: Console, request: Request, user: str, form) -> Response:
    weeks = console.tables.weeks()
    if not weeks:
        raise NotFound(f"the score table {console.settings.scores_dir} holds no scored week yet")
    frame = console.store.decisions_frame()
    all_decisions = decisions_table_from_frame(frame)
    rows = []
    for as_of in weeks:
        week = console.tables.week(as_of)
        mine = all_decisions[all_decisions["as_of"] == as_of]
        early = week.queued[week.queued["queue"] == EARLY_WARNING]["seller_id"].tolist()
        rows.append(leader_week(week, mine, console.tables.labels(as_of, early)))
    return console.render(request, "leader.html", rows=rows, reviewers=per_reviewer(all_decisions),
                          isnan=math.isnan)


def routes(console: Console) -> list[Route]:
    async def leader(request: Request) -> Response:
        return await console.guarded(request, leader_page)

    return [Route("/leader", leader, methods=["GET"])]
