"""The service's HTTP routes, declared once: each route's path and method, the model of its body and
of its answer, every status it can answer and what that means, whether the API key guards it,
whether it is traced, and its documentation.

Everything that names a route reads it here: the BentoML methods, the Guard's routes and the tracing
exclusions (serving/api/service.py), the OpenAPI document and the API page (serving/api/contract.py),
the request `seller-risk serve` prints (serving/cli.py), the benchmarks and the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from serving.records import ScoreRecord

STATUSES: dict[int, str] = {
    400: "The body is not JSON, gives a key twice, is shorter than its Content-Length, or a field is unknown, "
         "missing, of the wrong type or out of its bounds; `error` names each field, `detail` lists them.",
    401: "The API key is missing or wrong (X-API-Key, or Authorization: Bearer).",
    404: "The seller is not in the latest feature snapshot.",
    408: "The body did not arrive in time: it paused for more than {gap:g} s or took more than {total:g} s.",
    413: "The body is over the limit of {max_body:,} bytes; send fewer sellers per request.",
    415: "The Content-Type is missing, is not application/json, or names a charset other than utf-8.",
    422: "A category level the model does not know (the schema's enum lists those it does).",
    500: "An unexpected error; the server log has it.",
    503: "The score could not be written to the audit database, so it is not served; `error` names the database.",
    504: "The request was not answered within {timeout:g} s.",
}
"""What each error of a scoring route means; the braces are the service's limits (serving/api/contract.py)."""


@dataclass(frozen=True, eq=False)
class Route:
    """One HTTP route of the service, as a caller sees it."""

    path: str
    name: str
    """Its OpenAPI operationId; a scoring route's method in serving/api/service.py bears this name."""
    doc: str
    """What it answers, for the OpenAPI document: the first line is the summary."""
    statuses: dict[int, str]
    """Every status it can answer, with what that means (the braces quote the service's limits)."""
    method: Literal["GET", "POST"] = "GET"
    tag: Literal["scoring", "infrastructure", "documentation"] = "infrastructure"
    body: Literal["score", "score_seller"] | None = None
    """The request model (a field of serving.api.schema.RequestModels) that validates its JSON body."""
    answer: object = None
    """The model of a 200's JSON body (`list[Model]` for a list); None for a plain answer of `media`."""
    media: str = "text/plain"
    keyed: bool = False
    """Behind the Guard (serving/api/guard.py): the API key when one is set, POST with a JSON body within
    the size limit, one log line per request."""
    traced: bool = False
    """OpenTelemetry spans for it only with SELLER_RISK_TELEMETRY=1 (they cost more than scoring a seller)."""
    with_telemetry_only: bool = False
    """Served, and documented, only with SELLER_RISK_TELEMETRY=1."""
    example: Callable[[str], dict] | None = None
    """A body to try it with, for a seller of the snapshot."""


def _errors(*statuses: int) -> dict[int, str]:
    return {s: STATUSES[s] for s in statuses}


def _one_seller(seller_id: str) -> dict:
    """A seller of the snapshot with its five strongest reasons."""
    return {"seller_id": seller_id, "reasons": 5}


SCORE = Route(
    "/score", "score", "Score sellers from features the caller sends (missing optional features count as missing).",
    {200: "The score record(s).", **_errors(400, 401, 408, 413, 415, 422, 500, 503, 504)},
    method="POST", tag="scoring", body="score", answer=list[ScoreRecord], media="application/json",
    keyed=True, traced=True)
SCORE_SELLER = Route(
    "/score_seller", "score_seller", "Score one seller from the latest feature snapshot.",
    {200: "The score record(s).", **_errors(400, 401, 404, 408, 413, 415, 500, 503, 504)},
    method="POST", tag="scoring", body="score_seller", answer=ScoreRecord, media="application/json",
    keyed=True, traced=True, example=_one_seller)
READYZ = Route("/readyz", "readyz", "Ready: the model and the feature snapshot are loaded.",
               {200: "Ready.", 503: "Still loading."})
LIVEZ = Route("/livez", "livez", "Live: the worker answers.", {200: "Live."})
DOCS_JSON = Route("/docs.json", "openapi", "This OpenAPI document.", {200: "The document."},
                  tag="documentation", media="application/json")
DOCS = Route("/docs", "docs", "The API page (Swagger UI) for this document.", {200: "The page."},
             tag="documentation", media="text/html")
METRICS = Route("/metrics", "metrics", "Prometheus metrics of the scoring routes.",
                {200: "Metrics in Prometheus' text format."}, with_telemetry_only=True)

ROUTES: tuple[Route, ...] = (SCORE, SCORE_SELLER, READYZ, LIVEZ, DOCS_JSON, DOCS, METRICS)
"""Every route, in the order of the OpenAPI document (the reviewer console, mounted at /console, is
a web app of its own)."""
SCORING: tuple[Route, ...] = tuple(r for r in ROUTES if r.body is not None)
"""The routes that score: a BentoML method each, a JSON body validated by its request model."""
