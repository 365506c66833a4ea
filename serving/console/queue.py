"""The queue page (/console/): the week's early-warning queue (sellers compliant now, riskiest first, as
many as reviewers can look at) and the recovery list, a page of each at a time, each row with its status
and who decided; filters by standard, category and region; `?week=` for another scored week."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from features.policy.definition import Policy
from serving.batch.summary import EARLY_WARNING, RECOVERY
from serving.console.app import Console
from serving.console.errors import BadInput

QUEUE_PAGE = 100  # early-warning rows per page
RECOVERY_PAGE = 50  # recovery rows per page


@dataclass(frozen=True)
class Filters:
    """The queue page's filters (empty string: any)."""

    standard: str = ""
    category: str = ""
    region: str = ""

    def apply(self, queued: pd.DataFrame) -> pd.DataFrame:
        mask = np.ones(len(queued), dtype=bool)
        if self.standard:
            mask &= queued["standards"].str.contains(f"|{self.standard}|", regex=False).to_numpy()
        if self.category:
            mask &= (queued["category"] == self.category).to_numpy()
        if self.region:
            mask &= (queued["region"] == self.region).to_numpy()
        return queued[mask]


def latest_decisions(decisions: list) -> dict[str, object]:
    """Per seller, the decision that stands (the newest; a correction is newer than what it corrects)."""
    out: dict[str, object] = {}
    for d in sorted(decisions, key=lambda d: (d.decided_at, d.id)):
        out[d.seller_id] = d
    return out


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    total: int
    page: int
    pages: int


def paged(frame: pd.DataFrame, page: int, size: int, decided: dict[str, object]) -> Page:
    """One page of a list (1-based, clamped), as rows ready to show, each with its status."""
    pages = max(1, math.ceil(len(frame) / size))
    page = min(max(1, page), pages)
    part = frame.iloc[(page - 1) * size: page * size]
    rows = []
    for r in part.to_dict("records"):
        d = decided.get(r["seller_id"])
        r["status"] = "open" if d is None else \
            f"decided: {d.action.replace('_', ' ')}" + (" (corrected)" if d.corrects is not None else "")
        r["decided_by"] = "" if d is None else d.reviewer
        r["path"] = quote(r["seller_id"], safe="")
        r["risk"] = f"{r['risk_score']:.1%}"
        for k in ("category", "region"):
            r[k] = r[k] if isinstance(r[k], str) else ""
        rows.append(r)
    return Page(rows, len(frame), page, pages)


def filter_options(queued: pd.DataFrame, policy: Policy) -> dict[str, list[str]]:
    """What the queue's filters offer: the policy's standards, the week's categories and regions."""
    def levels(col: str) -> list[str]:
        return sorted(str(v) for v in queued[col].dropna().unique()) if col in queued else []
    return {"standard": list(policy.metrics), "category": levels("category"), "region": levels("region")}


def whole_number(text: str | None, name: str, default: int = 1) -> int:
    """A query's page number; BadInput naming the parameter when it is not one."""
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise BadInput(f"{name} {text!r} is not a whole number") from None


def queue_page(console: Console, request: Request, user: str, form) -> Response:
    q = request.query_params
    as_of = console.tables.pick_week(q.get("week"))
    week = console.tables.week(as_of)
    policy = console.tables.policy(None)
    options = filter_options(week.queued, policy)
    filters = Filters(q.get("standard", ""), q.get("category", ""), q.get("region", ""))
    for name, value in (("standard", filters.standard), ("category", filters.category), ("region", filters.region)):
        if value and value not in options[name]:
            raise BadInput(f"{name} {value!r} is not one of: {', '.join(options[name]) or 'none this week'}")
    shown = filters.apply(week.queued)
    decided = latest_decisions(console.store.decisions_for_week(as_of))
    early = paged(shown[shown["queue"] == EARLY_WARNING], whole_number(q.get("page"), "page"), QUEUE_PAGE, decided)
    recovery = paged(shown[shown["queue"] == RECOVERY], whole_number(q.get("rpage"), "rpage"), RECOVERY_PAGE,
                     decided)
    keep = {k: v for k, v in (("week", q.get("week", "")), ("standard", filters.standard),
                              ("category", filters.category), ("region", filters.region)) if v}
    return console.render(request, "queue.html", as_of=as_of, weeks=console.tables.weeks(), week=week,
                          early=early, recovery=recovery, filters=filters, options=options, policy=policy,
                          keep=keep, urlencode=urlencode)


def routes(console: Console) -> list[Route]:
    async def queue(request: Request) -> Response:
        return await console.guarded(request, queue_page)

    return [Route("/", queue, methods=["GET"])]
