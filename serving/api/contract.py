"""The service's contract: the OpenAPI document at `/docs.json` and the API page at `/docs`.

The document is built from the models that validate requests (serving/api/schema.py) and the score
record (serving/records.py), so what it says is what the service enforces; and it lists, route by
route, every status the service can answer with the body each carries. Categories are enums of the
levels the served model knows (the validator takes any string; the service answers 422 for a level
the model has never seen, and the document says so). It is OpenAPI 3.1, whose schemas are JSON
Schema: pydantic's output goes in unchanged, nullable fields included.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serving.api.schema import RequestModels
from serving.records import ScoreRecord

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REF = "#/components/schemas/{model}"
DOCS, DOCS_JSON = "/docs", "/docs.json"


class ErrorDetail(BaseModel):
    """One problem with a request field, as the validator reports it."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where the problem is: field names and list positions.")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="The kind of problem (pydantic's error type).")


class Error(BaseModel):
    """Every answer but a 2xx: what is wrong, naming the field."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="What is wrong, naming each field: 'sellers[0].features.orders_7d: Input should be ...'.")
    detail: list[ErrorDetail] | None = Field(None, description="A 400 for invalid fields: each problem apart.")


STATUSES: dict[int, str] = {
    400: "The body is not JSON, gives a key twice, is shorter than its Content-Length, or a field is unknown, "
         "missing, of the wrong type or out of its bounds; `error` names each field, `detail` lists them.",
    401: "The API key is missing or wrong (X-API-Key, or Authorization: Bearer).",
    404: "The seller is not in the latest feature snapshot.",
    408: "The body did not arrive in time: it paused for more than {gap:g} s or took more than {total:g} s.",
    413: "The body is over the limit of {max_body:,} bytes; send fewer sellers per request.",
    415: "The Content-Type is not application/json.",
    422: "A category level the model does not know (the schema's enum lists those it does).",
    500: "An unexpected error; the server log has it.",
    503: "The score could not be written to the audit database, so it is not served; `error` names the database.",
    504: "The request was not answered within {timeout:g} s.",
}
ROUTE_ERRORS = {"/score": (400, 401, 408, 413, 415, 422, 500, 503, 504),
                "/score_seller": (400, 401, 404, 408, 413, 415, 500, 503, 504)}


def openapi_document(models: RequestModels, levels: dict[str, list[str]], *, title: str, description: str,
                     version: str, docs: dict[str, str], api_key: bool, telemetry: bool,
                     limits: dict[str, float], example_seller: str | None = None) -> dict:
    """The OpenAPI 3.1 document of the scoring service.

    `docs`: each scoring route's description; `levels`: each category's levels the model knows;
    `api_key`: whether scoring routes need one; `telemetry`: whether /metrics answers; `limits`:
    the numbers the error descriptions quote (gap, total, max_body, timeout); `example_seller`: a
    seller of the snapshot, for the page's example request."""
    schemas: dict[str, Any] = {}
    for model, mode in ((models.score, "validation"), (models.score_seller, "validation"),
                        (ScoreRecord, "serialization"), (Error, "serialization")):
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schema.pop("root_input", None)
        schemas[model.__name__] = schema
    for name, known in levels.items():
        _set_enum(schemas[models.features.__name__]["properties"][name], known)

    def ref(name: str) -> dict:
        return {"$ref": REF.format(model=name)}

    def errors(route: str) -> dict:
        return {str(s): {"description": STATUSES[s].format(**limits), "content": {"application/json": {"schema": ref("Error")}}}
                for s in ROUTE_ERRORS[route] if api_key or s != 401}

    def scoring(route: str, body: str, answer: dict, example: dict | None = None) -> dict:
        media: dict[str, Any] = {"schema": ref(body), **({"example": example} if example else {})}
        operation = {
            "operationId": route.strip("/"), "summary": docs[route].splitlines()[0], "description": docs[route],
            "tags": ["scoring"],
            "requestBody": {"required": True, "content": {"application/json": media}},
            "responses": {"200": {"description": "The score record(s).", "headers": {
                "X-Model-Version": {"description": "Version of the registered model that scored.", "required": True,
                                    "schema": {"type": "string"}},
                "X-Request-ID": {"description": "The request's id in the service log (the caller's X-Request-ID if sent).",
                                 "required": True, "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": answer}}}, **errors(route)},
        }
        if api_key:
            operation["security"] = [{"apiKey": []}, {"bearer": []}]
        return {"post": operation}

    def plain(operation_id: str, summary: str, responses: dict[int, str], media: str = "text/plain",
              tag: str = "infrastructure") -> dict:
        schema = {"type": "object"} if media == "application/json" else {"type": "string"}
        return {"get": {"operationId": operation_id, "summary": summary, "tags": [tag],
                        "responses": {str(s): {"description": d, "content": {media: {"schema": schema}}}
                                      for s, d in responses.items()}}}

    paths = {
        "/score": scoring("/score", models.score.__name__, {"type": "array", "items": ref("ScoreRecord")}),
        "/score_seller": scoring("/score_seller", models.score_seller.__name__, ref("ScoreRecord"),
                                 {"seller_id": example_seller, "reasons": 5} if example_seller else None),
        "/readyz": plain("readyz", "Ready: the model and the feature snapshot are loaded.",
                         {200: "Ready.", 503: "Still loading."}),
        "/livez": plain("livez", "Live: the worker answers.", {200: "Live."}),
        DOCS_JSON: plain("openapi", "This OpenAPI document.", {200: "The document."}, "application/json", "documentation"),
        DOCS: plain("docs", "The API page (Swagger UI) for this document.", {200: "The page."}, "text/html", "documentation"),
    }
    if telemetry:
        paths["/metrics"] = plain("metrics", "Prometheus metrics of the scoring routes.", {200: "Metrics in Prometheus' text format."})
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": version},
        "tags": [{"name": "scoring", "description": "Risk scores with reasons."},
                 {"name": "infrastructure", "description": "Probes for an orchestrator."},
                 {"name": "documentation", "description": "This contract."}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if api_key:
        document["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token."}}
    return document


def _set_enum(prop: dict, known: list[str]) -> None:
    """Document a category field's levels, in the string branch when the field may also be null."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            branch["enum"] = list(known)


PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Seller risk scoring API</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true});</script>
</body>
</html>
"""
"""The API page: BentoML's bundled Swagger UI (served at /static_content) over /docs.json; nothing
is loaded from outside the service."""


class Contract:
    """ASGI middleware that answers GET (and HEAD) `/docs.json` with the document `document()`
    builds, once, on the first request (the service instance, whose model knows the levels, exists
    by then), and `/docs` with the API page; other methods get 405 with `Allow`."""

    def __init__(self, app: ASGIApp, document: Callable[[], dict]) -> None:
        self.app, self.document = app, document
        self._json: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in (DOCS, DOCS_JSON):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            body, media, status = json.dumps({"error": f"{path} takes GET"}).encode(), b"application/json", 405
        elif path == DOCS:
            body, media, status = PAGE, b"text/html; charset=utf-8", 200
        else:
            if self._json is None:
                self._json = json.dumps(self.document()).encode()
            body, media, status = self._json, b"application/json", 200
        headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
