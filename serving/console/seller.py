"""The seller page (/console/sellers/<id>): each standard's rate week by week against its threshold,
the score history, the risk of each standard and its reasons with the context beside them, the recovery
path, the marketplace's warnings and suspensions, every past decision, and the decision form. A POST
records a decision bound to the exact score record shown (record id, model version, spec hash, week);
with `corrects` (the form each reviewer is offered under their own decisions not corrected yet), a
correction of that decision, on the record it was made on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlencode

import pandas as pd
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from features.policy.definition import Policy
from serving.console.app import Console
from serving.console.errors import BadInput
from serving.console.rates import Rates
from serving.console.tables import record_at_risk

@dataclass(frozen=True)
class Chart:
    """One standard's rate week by week against its threshold, laid out for an inline SVG."""

    standard: str
    label: str
    standard_text: str
    width: int
    height: int
    threshold_y: float
    points: list[dict]  # x, y, week, rate (text), evaluated, missing
    path: str  # the polyline through the evaluated and not-evaluated points with volume
    y_ticks: list[dict]  # y, text
    x_ticks: list[dict]  # x, text


def rate_charts(rates: Rates, policy: Policy, width: int = 360, height: int = 120) -> list[Chart]:
    """Per standard of the policy, the seller's rate by snapshot week with the threshold line. Rates are
    the policy's own (features.policy.standing, from the snapshot's gap and volume), so a point past the line
    is a week the standard was missed when it was evaluated."""
    out = []
    if not rates.weeks:
        return out
    left, right, top, bottom = 44, 8, 8, 20
    weeks = rates.weeks
    n = len(weeks)
    xs = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    every = max(1, math.ceil(n / 4))
    x_ticks = [{"x": round(xs[i], 1), "text": f"{weeks[i]:%d %b}"} for i in range(0, n, every)]
    for j, name in enumerate(rates.standards):
        metric = policy.metrics[name]
        values = [float(v) for v in rates.rate[:, j]]
        known = [v for v in values if v == v]
        lo, hi = min([metric.threshold, *known]), max([metric.threshold, *known])
        pad = max((hi - lo) * 0.15, 0.005)
        lo = max(0.0, lo - pad) if lo >= 0 else lo - pad  # a rate stays within 0..100% on the axis
        hi = min(1.0, hi + pad) if hi <= 1 else hi + pad
        span = hi - lo or 1.0

        def y(v: float, lo: float = lo, span: float = span) -> float:
            return round(top + (height - top - bottom) * (1 - (v - lo) / span), 1)

        points = [{"x": round(xs[i], 1), "y": y(v), "week": str(weeks[i]), "rate": f"{v:.1%}",
                   "evaluated": bool(rates.evaluated[i, j]), "missing": bool(rates.missing[i, j])}
                  for i, v in enumerate(values) if v == v]
        path = " ".join(f"{p['x']},{p['y']}" for p in points)
        ticks = [{"y": y(v), "text": f"{v:.0%}" if span >= 0.05 else f"{v:.1%}"} for v in (lo, hi)]
        out.append(Chart(name, metric.label, metric.standard_text, width, height, y(metric.threshold), points, path,
                         ticks, x_ticks))
    return out


def history_chart(history: pd.DataFrame, width: int = 360, height: int = 120) -> dict | None:
    """The seller's risk by scored week, laid out for an inline SVG (risk 0..max, at least 10%)."""
    if history.empty:
        return None
    left, right, top, bottom = 44, 8, 8, 20
    n = len(history)
    hi = max(0.1, float(history["risk_score"].max()) * 1.1)
    hi = min(1.0, hi)
    xs = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    points = [{"x": round(x, 1), "y": round(top + (height - top - bottom) * (1 - v / hi), 1), "week": str(w),
               "risk": f"{v:.1%}"}
              for x, v, w in zip(xs, history["risk_score"], history["as_of"])]
    return {"width": width, "height": height, "points": points, "path": " ".join(f"{p['x']},{p['y']}" for p in points),
            "top": f"{hi:.0%}", "top_y": top, "bottom_y": height - bottom}


def history_rows(history: pd.DataFrame) -> list[dict]:
    """The score history as rows to show, newest first: risk, band, the list the seller was on and its rank."""
    out = []
    for r in history.to_dict("records")[::-1]:
        queue = r.get("queue") if isinstance(r.get("queue"), str) else None
        rank = r.get("queue_rank")
        out.append({"as_of": pd.Timestamp(r["as_of"]).date(), "risk_score": r["risk_score"], "risk_band": r["risk_band"],
                    "list": f"{queue.replace('_', ' ')} #{int(rank)}" if queue and rank == rank else "",
                    "model_version": r["model_version"]})
    return out


def _judged(record: dict) -> str:
    """For a compliant seller whose standard at risk has no reason: the line saying its risk comes from
    being judged, as its queue row shows it (tables.at_risk_words); else ""."""
    _, text, kind = record_at_risk(record)
    return text if kind == "judged" else ""


def record_view(record: dict) -> dict:
    """A score record as the seller page shows it: reasons by standard, context beside them (never as a
    reason), the recovery path, and what the record is (model, spec hash, snapshot date)."""
    return {
        "record_id": record.get("record_id"),
        "seller_id": record["seller_id"],
        "risk": f"{record['risk_score']:.1%}",
        "risk_band": record["risk_band"],
        "band_meaning": record.get("band_meaning", ""),
        "population": "missing a standard now" if record.get("population") == "missing_now" else "compliant now",
        "missed": list(record.get("standards_missed_now") or []),
        "by_standard": by_standard(record),
        "reasons": [r for r in record.get("reasons") or [] if r.get("direction", "raises") == "raises"],
        "judged": _judged(record),
        "context": list(record.get("context") or []),
        "recovery": list(record.get("recovery") or []),
        "model": f"{record['model_name']} v{record['model_version']}",
        "feature_spec_hash": record["feature_spec_hash"],
        "policy_version": record.get("policy_version", ""),
        "queue": record.get("queue"),
        "queue_rank": record.get("queue_rank"),
    }


def by_standard(record: dict) -> list[dict]:
    """The record's risk of missing each standard, riskiest first (policy order among equal risks): its label,
    the risk and its share of the seller's risk as percentages (the shares add up to the risk score), whether
    it is the record's standard at risk and whether it is missed now."""
    at_risk = record.get("standard_at_risk")
    missed = set(record.get("standards_missed_now") or [])
    def risk(r: dict) -> float | None:  # None and NaN: no risk known
        v = r.get("risk")
        return None if v is None or v != v else float(v)

    rows = [r for r in record.get("risk_by_standard") or [] if r]
    rows = sorted(rows, key=lambda r: -risk(r) if risk(r) is not None else math.inf)
    return [{"standard": r["standard"], "label": r.get("label") or r["standard"].replace("_", " "),
             "risk": "" if risk(r) is None else f"{risk(r):.1%}",
             "share": "" if r.get("share") is None else f"{float(r['share']):.1%}",
             "at_risk": r["standard"] == at_risk, "missed": r["standard"] in missed} for r in rows]


def seller_page(console: Console, request: Request, user: str, form) -> Response:
    seller_id = request.path_params["seller_id"]
    as_of = console.tables.pick_week(request.query_params.get("week"))
    return show_seller(console, request, seller_id, as_of)


def show_seller(console: Console, request: Request, seller_id: str, as_of: date, status: int = 200,
                error: str | None = None, note: str = "") -> Response:
    """The seller's page for week `as_of`; with `error`, the decision form's problem and the note kept."""
    record = console.tables.record(as_of, seller_id)
    policy = console.tables.policy(record.get("policy_version"))
    history = console.tables.history(seller_id)
    rates = console.tables.rates(seller_id, policy, as_of)
    actions = console.tables.actions(seller_id)
    decisions = console.store.decisions_for_seller(seller_id)
    return console.render(
        request, "seller.html", status=status, as_of=as_of, seller_id=seller_id, record=record_view(record),
        charts=rate_charts(rates, policy), history=history_rows(history),
        history_chart=history_chart(history), actions=actions.to_dict("records"),
        decisions=decisions, corrected={d.corrects for d in decisions if d.corrects is not None},
        choices=console.actions(), error=error, note=note, policy=policy)


def decide(console: Console, request: Request, user: str, form) -> Response:
    """Record the reviewer's decision on the seller's score record of the form's week, then show the
    seller's page again (with a note of what was recorded), or the form again with what was wrong."""
    from serving.store.store import DecisionRefused, RecordRef

    seller_id = request.path_params["seller_id"]
    as_of = console.tables.pick_week(str(form.get("week", "")) or None)
    action, note = str(form.get("action", "")), str(form.get("note", ""))
    record_id = str(form.get("record_id", ""))
    corrects = _decision_id(form.get("corrects"))
    record = console.tables.record(as_of, seller_id)

    def again(message: str) -> Response:
        return show_seller(console, request, seller_id, as_of, status=400, error=message, note=note)

    if action not in console.actions():
        return again(f"action {action!r} is not one of: {', '.join(console.actions())}")
    if not record.get("record_id"):
        return again("this week's score table has no record ids yet, so a decision cannot be bound to its "
                     "record: re-run `seller-risk score` for the week")
    if record_id != record["record_id"]:
        return again(f"record {record_id!r} is not the seller's {as_of} score record "
                     f"({record['record_id']}): reload the page and decide again")
    ref = RecordRef(record_id=record["record_id"], seller_id=seller_id, as_of=as_of,
                    model_name=record["model_name"], model_version=record["model_version"],
                    feature_spec_hash=record["feature_spec_hash"], risk_score=float(record["risk_score"]))
    try:
        decision = console.store.record_decision(ref, user, action, note, corrects)
    except DecisionRefused as err:
        return again(str(err))
    what = "Decision recorded" if corrects is None else f"Correction of decision #{corrects} recorded"
    request.session["flash"] = (f"{what}: {action.replace('_', ' ')} on {seller_id} "
                                f"(record {decision.record_id}, {as_of}).")
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/sellers/{quote(seller_id, safe='')}?{urlencode({'week': str(as_of)})}",
                            status_code=303)


def _decision_id(value) -> int | None:
    """The form's `corrects`: empty for a new decision, else the id of the decision it corrects."""
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise BadInput(f"corrects {str(value)!r} is not a decision id") from None


def routes(console: Console) -> list[Route]:
    async def seller(request: Request) -> Response:
        return await console.guarded(request, decide if request.method == "POST" else seller_page)

    return [Route("/sellers/{seller_id:path}", seller, methods=["GET", "POST"])]  # an id may hold any character
