"""The service's contract: the OpenAPI document at `/docs.json` and the API page at `/docs`.

The document is built from the models that validate requests (serving/api/schema.py) and the score
record (serving/records.py), so what it says is what the service enforces; and it lists, route by
route from the table of routes (serving/api/routes.py), every status the service can answer with the
body each carries. Categories are enums of the levels the served model knows (the validator takes any
string; the service answers 422 for a level the model has never seen, and the document says so). It
is OpenAPI 3.1, whose schemas are JSON Schema: pydantic's output goes in unchanged, nullable fields
included.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from serving.api.routes import DOCS, DOCS_JSON, ROUTES, SCORING, Route
from serving.api.schema import RequestModels

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REF = "#/components/schemas/{model}"


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


def openapi_document(models: RequestModels, levels: dict[str, list[str]], *, title: str, description: str,
                     version: str, api_key: bool, telemetry: bool, limits: dict[str, float],
                     example_seller: str | None = None) -> dict:
    """The OpenAPI 3.1 document of the scoring service: every route of serving/api/routes.py.

    `levels`: each category's levels the model knows; `api_key`: whether scoring routes need one;
    `telemetry`: whether /metrics answers; `limits`: the numbers the statuses' descriptions quote
    (gap, total, max_body, timeout); `example_seller`: a seller of the snapshot, for the page's
    example request."""
    paths = {}
    for route in ROUTES:
        if route.with_telemetry_only and not telemetry:
            continue
        operation = (_scoring(route, models, api_key, limits, example_seller) if route.body is not None
                     else _plain(route, limits))
        paths[route.path] = {route.method.lower(): operation}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": version},
        "tags": [{"name": "scoring", "description": "Risk scores with reasons."},
                 {"name": "infrastructure", "description": "Probes for an orchestrator."},
                 {"name": "documentation", "description": "This contract."}],
        "paths": paths,
        "components": {"schemas": _schemas(models, levels)},
    }
    if api_key:
        document["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token."}}
    return document


def _schemas(models: RequestModels, levels: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON Schemas of the scoring routes' bodies and answers and of the error body, each
    category with the levels the model knows."""
    answers = dict.fromkeys(_model(r.answer) for r in SCORING)
    schemas: dict[str, Any] = {}
    for model, mode in ([(models.body(r), "validation") for r in SCORING]
                        + [(a, "serialization") for a in answers] + [(Error, "serialization")]):
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schema.pop("root_input", None)
        schemas[model.__name__] = schema
    for name, known in levels.items():
        _set_enum(schemas[models.features.__name__]["properties"][name], known)
    return schemas


def _scoring(route: Route, models: RequestModels, api_key: bool, limits: dict[str, float],
             example_seller: str | None) -> dict:
    """A scoring route's operation: its JSON body, the score record(s) it answers with the headers
    that carry, and each error with the error body."""
    example = route.example(example_seller) if route.example and example_seller else None
    media: dict[str, Any] = {"schema": _ref(models.body(route).__name__), **({"example": example} if example else {})}
    operation = {
        "operationId": route.name, "summary": route.doc.splitlines()[0], "description": route.doc,
        "tags": [route.tag],
        "requestBody": {"required": True, "content": {"application/json": media}},
        "responses": {"200": {"description": route.statuses[200].format(**limits), "headers": {
            "X-Model-Version": {"description": "Version of the registered model that scored.", "required": True,
                                "schema": {"type": "string"}},
            "X-Request-ID": {"description": "The request's id in the service log (the caller's X-Request-ID if sent).",
                             "required": True, "schema": {"type": "string"}}},
            "content": {route.media: {"schema": _answer(route.answer)}}},
            **{str(s): {"description": route.statuses[s].format(**limits),
                        "content": {"application/json": {"schema": _ref(Error.__name__)}}}
               for s in route.statuses if s != 200 and (api_key or s != 401)}},
    }
    if api_key:
        operation["security"] = [{"apiKey": []}, {"bearer": []}]
    return operation


def _plain(route: Route, limits: dict[str, float]) -> dict:
    """A route answered by the server itself (probes, this document, metrics): each status with a
    plain body of its media type."""
    schema = {"type": "object"} if route.media == "application/json" else {"type": "string"}
    return {"operationId": route.name, "summary": route.doc, "tags": [route.tag],
            "responses": {str(s): {"description": d.format(**limits), "content": {route.media: {"schema": schema}}}
                          for s, d in route.statuses.items()}}


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _model(answer: object) -> Any:
    """The model of an answer, the items' for a list."""
    return get_args(answer)[0] if get_origin(answer) is list else answer


def _answer(answer: object) -> dict:
    """The schema of a 200's body: a reference to its model, or an array of them."""
    if get_origin(answer) is list:
        return {"type": "array", "items": _ref(_model(answer).__name__)}
    return _ref(_model(answer).__name__)


def _set_enum(prop: dict, known: list[str]) -> None:
    """Document a category field's levels, in the string branch when the field may also be null."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            branch["enum"] = list(known)


PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Seller risk scoring API</title>
<link rel="stylesheet" href="/static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "{DOCS_JSON.path}", dom_id: "#swagger-ui", deepLinking: true}});</script>
</body>
</html>
""".encode()
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
        if scope["type"] != "http" or path not in (DOCS.path, DOCS_JSON.path):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            body, media, status = json.dumps({"error": f"{path} takes GET"}).encode(), b"application/json", 405
        elif path == DOCS.path:
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
