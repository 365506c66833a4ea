"""The table of HTTP routes (serving/api/routes.py) is the one place a route is declared: the service's
methods, the Guard and the benchmark's wrk script all agree with it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from features.pipeline.spec import feature_spec
from features.policy.definition import Policy
from serving.api.guard import Guard
from serving.api.routes import READYZ, ROUTES, SCORE, SCORE_SELLER, SCORING, STATUSES
from serving.api.schema import request_models

ROOT = Path(__file__).resolve().parents[2]


def test_each_route_is_declared_once_with_what_its_statuses_mean() -> None:
    assert len({r.path for r in ROUTES}) == len(ROUTES) and len({r.name for r in ROUTES}) == len(ROUTES)
    for route in ROUTES:
        assert route.path.startswith("/") and 200 in route.statuses, route.path
        if route.body is not None:  # a scoring route: POST, behind the key, errors as STATUSES says
            assert route.method == "POST" and route.keyed and route.answer is not None, route.path
            assert all(route.statuses[s] == STATUSES[s] for s in route.statuses if s != 200), route.path
    assert SCORING == (SCORE, SCORE_SELLER) and not READYZ.keyed  # probes need no key


def test_each_scoring_route_names_the_request_model_of_its_body(policy: Policy) -> None:
    models = request_models(feature_spec(policy))
    assert models.body(SCORE) is models.score and models.body(SCORE_SELLER) is models.score_seller
    body = models.score_seller.model_validate(SCORE_SELLER.example("S0000001"))  # the example is a valid body
    assert body.seller_id == "S0000001" and body.reasons == 5


def test_the_service_has_a_method_for_each_scoring_route_and_no_other() -> None:
    """Imported in a process of its own: the module reads its settings and patches uvicorn on import."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELLER_RISK_")}
    out = subprocess.run([sys.executable, "-c", "import json; from serving.api.service import SellerRisk; "
                          "print(json.dumps({n: a.route for n, a in SellerRisk.apis.items()}))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {r.name: r.path for r in SCORING}


def test_the_guard_checks_only_its_routes_and_each_route_s_method() -> None:
    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = Guard(app, routes=[r for r in ROUTES if r.keyed], max_body_bytes=1024, api_key=None)

    def call(method: str, path: str) -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)
        scope = {"type": "http", "method": method, "path": path, "headers": []}
        asyncio.run(guard(scope, receive, send))
        return sent

    refused = call("GET", SCORE.path)[0]
    assert refused["status"] == 405 and (b"allow", SCORE.method.encode()) in refused["headers"]
    assert call("GET", READYZ.path)[0]["status"] == 200  # not the Guard's: passed through untouched


def test_the_benchmark_s_wrk_script_names_a_route_of_the_table() -> None:
    """benchmarks/score_seller.lua cannot import the table: the route it says it loads must be one."""
    first = (ROOT / "benchmarks" / "score_seller.lua").read_text().splitlines()[0]
    method, path = re.search(r"\b(GET|POST) (/[\w.]+)", first).groups()
    assert (method, path) == (SCORE_SELLER.method, SCORE_SELLER.path)
    assert f'wrk.method = "{SCORE_SELLER.method}"' in (ROOT / "benchmarks" / "score_seller.lua").read_text()
