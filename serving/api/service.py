"""The BentoML scoring service: how risky is this seller, and why.

At start each worker pins `models:/seller-risk@champion` (or the URI it is given) to a version,
reads the LightGBM model natively, refuses it if it was trained for another feature spec or
policy, loads the latest feature snapshot, and only then answers `/readyz`. The endpoints are thin:
they translate JSON to `serving.scoring.Scorer` calls and back, so a seller gets the same record
here as from the batch job.

Settings come from the environment (`features.platform.settings.Settings`, one SELLER_RISK_* variable each;
`seller-risk serve` sets them from its options): the model URI, the embedded store, the features
folder, the policy whose feature spec shapes the request schema, the API key, the body limit,
workers and threads, telemetry, request coalescing and connection recycling.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from datetime import date

import bentoml
from starlette.responses import Response

from features.policy.definition import load_policy
from features.platform.settings import Settings, env_name
from features.pipeline.spec import feature_spec
from serving.api import connections
from serving.api.schema import request_models
from serving.api.coalesce import Coalescer
from serving.api.contract import Contract, openapi_document
from serving.api.guard import BODY_GAP_S, BODY_S, MODEL_VERSION_HEADER, SCORED_WITH_HEADER, SELLERS_HEADER, Guard
from serving.api.routes import ROUTES, SCORE, SCORE_SELLER
from serving.api.audit import ServedAudit, sent_features, served_rows, snapshot_features
from serving.console.web import create_app as console_app
from serving.records import ScoreRecord
from serving.bands import CutoffsReader
from serving.scoring import Scorer, Snapshot

log = logging.getLogger("seller_risk.service")


SETTINGS = Settings.from_env()  # BentoML reads the service's workers and limits when it imports this module
SPEC = feature_spec(load_policy(SETTINGS.policy))  # the request schema is the code's feature spec
MODELS = request_models(SPEC)
SellerRequest = MODELS.seller
TIMEOUT_S = 5
AUDIT_MARGIN_S = 2
"""Of a request's TIMEOUT_S, what the audit write may not take: scoring, waiting to be coalesced and the reply."""
connections.install()  # a request must arrive within 5 s (uvicorn sets no limit); before the worker starts uvicorn


@bentoml.service(
    name="seller_risk",
    workers=SETTINGS.workers,
    threads=SETTINGS.threads,  # the endpoints are async (scoring one seller takes ~0.5 ms): no thread hop
    # BentoML's timeout middleware keeps each request's timer alive for the whole timeout (1.4.40),
    # so a long one fills the heap at thousands of requests/s; a seller scores in milliseconds
    traffic={"timeout": TIMEOUT_S},
    logging={"access": {"enabled": False}},  # the Guard writes one structured line per request instead
    # Prometheus request metrics and OpenTelemetry spans cost more than scoring a seller (measured with
    # benchmarks/bench_service.py); SELLER_RISK_TELEMETRY=1 turns them on for the scoring routes
    metrics={"enabled": SETTINGS.telemetry},
    tracing={"excluded_urls": [] if SETTINGS.telemetry else [r.path for r in ROUTES if r.traced]},
)
class SellerRisk:
    """Seller risk scores with reasons a reviewer can act on."""

    def __init__(self) -> None:
        _log_to_stdout()
        started = time.perf_counter()
        self._ready = False
        scorer, self.snapshot = _load(threads=1)
        # bands place a seller in the weekly ranking the batch job wrote for this model version (serving/bands.py)
        self.scorer = scorer.ranked(CutoffsReader(SETTINGS.scores_dir, scorer.ref.run_id))
        self.levels = {n: sorted(codes) for n, codes in self.scorer.model.category_codes.items()}
        # requests that arrive together are scored in one call (serving/coalesce.py): same answers, less cost
        self.by_id: Coalescer[str, tuple] = Coalescer(self._score_ids, SETTINGS.max_batch)
        self.by_features: Coalescer[tuple, tuple] = Coalescer(self._score_features, SETTINGS.max_batch)
        # every record served is first written to the decisions database (serving/audit.py), opened on first use
        self.audit = ServedAudit(SETTINGS.db_url, within_s=TIMEOUT_S - AUDIT_MARGIN_S)
        _warm_up(self.scorer, self.snapshot, self.audit)
        # what was loaded lives as long as the worker: keep it out of the garbage collector's full
        # passes, which otherwise walk it all and stall requests (p99 at 8 in flight: 184 -> 6 ms)
        gc.freeze()
        self._ready = True
        log.info(json.dumps({"event": "ready", "model": self.scorer.ref.uri, "model_uri": SETTINGS.model_uri,
                             "feature_spec_hash": SPEC.hash, "policy_version": self.scorer.policy.version,
                             "snapshot_as_of": str(self.snapshot.as_of), "snapshot_sellers": len(self.snapshot),
                             "load_s": round(time.perf_counter() - started, 3)}))

    @bentoml.on_deployment
    def refuse_a_mismatch() -> None:
        """Once, before any worker starts: a model or snapshot that every worker would refuse stops
        `bentoml serve` with one clear message, instead of workers failing and restarting forever."""
        _log_to_stdout()
        _load(threads=0)

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.api(route=SCORE.path, input_spec=MODELS.body(SCORE))  # the schema's model: unknown fields refused
    async def score(self, sellers: list[SellerRequest], reasons: int = 5,  # type: ignore[valid-type]
                    lowering_reasons: int = 0) -> list[ScoreRecord]:
        """SCORE: the sellers sent, scored together with others in flight, each record audited first."""
        features = [s.features.model_dump(exclude_none=True) for s in sellers]
        for i, f in enumerate(features):
            bad = self._unknown_level(f)
            if bad:
                return _error(422, f"sellers[{i}].features.{bad}")
        records, together = await self.by_features.submit(
            (reasons, lowering_reasons), [(s.seller_id, f, s.as_of) for s, f in zip(sellers, features)])
        unaudited = await self.audit.wait(logged for _, logged in records)
        if unaudited:
            return _error(503, unaudited)
        return self._reply([r for r, _ in records], together)

    @bentoml.api(route=SCORE_SELLER.path, input_spec=MODELS.body(SCORE_SELLER))
    async def score_seller(self, seller_id: str, reasons: int = 5, lowering_reasons: int = 0) -> ScoreRecord:
        """SCORE_SELLER: a seller of the snapshot, scored together with others in flight, audited first."""
        if seller_id not in self.snapshot.index:
            return _error(404, f"seller_id {seller_id!r} is not in the feature snapshot of {self.snapshot.as_of} "
                               f"({len(self.snapshot):,} active sellers)")
        records, together = await self.by_id.submit((reasons, lowering_reasons), [seller_id])
        unaudited = await self.audit.wait([records[0][1]])
        if unaudited:
            return _error(503, unaudited)
        return self._reply(records[0][0], together, sellers=1)

    def _score_ids(self, key: tuple[int, int], seller_ids: list[str]) -> list[tuple]:
        """(record, its audit write) per seller: one write for the call, awaited before each reply."""
        scored = self.scorer.score_ids(self.snapshot, seller_ids, *key)
        logged = self.audit.submit(served_rows(self.scorer, scored, snapshot_features(self.snapshot, self.scorer, seller_ids)))
        return [(r, logged) for r in self.scorer.records(scored)]

    def _score_features(self, key: tuple[int, int], sellers: list[tuple]) -> list[tuple]:
        ids, features, as_of = zip(*sellers)
        scored = self.scorer.score_sellers(ids, features, as_of, *key)
        logged = self.audit.submit(served_rows(self.scorer, scored, sent_features(self.scorer, features)))
        return [(r, logged) for r in self.scorer.records(scored)]

    def _unknown_level(self, features: dict) -> str | None:
        for name, levels in self.levels.items():
            value = features.get(name)
            if value is not None and value not in self.scorer.model.category_codes[name]:
                return f"{name}: {value!r} is not a level the model knows (one of: {', '.join(levels)})"
        return None

    def _reply(self, payload: dict | list, together: int, sellers: int | None = None) -> Response:
        n = sellers if sellers is not None else len(payload)
        return Response(json.dumps(payload, default=_json_default), media_type="application/json",
                        headers={MODEL_VERSION_HEADER: self.scorer.ref.version, SELLERS_HEADER: str(n),
                                 SCORED_WITH_HEADER: str(together)})


def _load(threads: int) -> tuple[Scorer, Snapshot]:
    """The pinned model and the latest snapshot, refused unless both match the request schema's spec."""
    scorer = Scorer.load(SETTINGS.model_uri, SETTINGS.models, threads=threads)
    if scorer.spec.hash != SPEC.hash:
        raise RuntimeError(f"the request schema was built for feature spec {SPEC.hash}, the model needs "
                           f"{scorer.spec.hash}: set {env_name('policy')} to {scorer.policy.version}")
    snapshot = Snapshot.load(SETTINGS.features_dir, scorer)
    # the explainer's tables built and its code compiled (models/treeshap.py) before the first request
    scorer.model.contributions(snapshot.X[:1], threads=1)
    return scorer, snapshot


def _document() -> dict:
    """The OpenAPI document of the running service: its request models, and the category levels of
    the model this worker loaded."""
    service = bentoml.get_current_service()
    return openapi_document(
        MODELS, service.levels, title="Seller risk scoring", description=SellerRisk.inner.__doc__ or "",
        version=f"{service.scorer.ref.uri} (feature spec {SPEC.hash})",
        api_key=SETTINGS.api_key is not None, telemetry=SETTINGS.telemetry,
        limits={"gap": BODY_GAP_S, "total": BODY_S, "max_body": SETTINGS.max_body_bytes, "timeout": TIMEOUT_S},
        example_seller=next(iter(service.snapshot.index), None))


SellerRisk.add_asgi_middleware(Guard, routes=[r for r in ROUTES if r.keyed],
                               max_body_bytes=SETTINGS.max_body_bytes, api_key=SETTINGS.api_key,
                               recycle_every=SETTINGS.recycle_every)
SellerRisk.add_asgi_middleware(Contract, document=_document)
# the reviewer console on the same port (reviewers sign in; the Guard's API key covers only the scoring routes);
# it reads nothing until its first request
SellerRisk.mount_asgi_app(console_app(SETTINGS), path="/console", name="console")


def _error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json",
                    headers={SELLERS_HEADER: "0"})


def _json_default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _NoRequestValues(logging.Filter):
    """BentoML logs a refused request's validation error with the values sent; a 4xx is already
    answered and logged by the Guard, so those records are dropped (real errors still pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def _warm_up(scorer: Scorer, snapshot: Snapshot, audit: ServedAudit) -> None:
    """Score a seller of the snapshot once, unserved, before the worker says it is ready: the trees'
    TreeSHAP tables, the compiled kernels and the policy's cached terms are built now, and the audit
    database is opened and its write rehearsed (rolled back, nothing kept), so the first request is as
    fast as the hundredth (benchmarks/bench_service.py times both)."""
    if not len(snapshot):
        return
    first = next(iter(snapshot.index))
    for lowering in (0, 1):
        scored = scorer.score_ids(snapshot, [first], top=5, lowering=lowering)
        scorer.records(scored)
    why = audit.warm_up(served_rows(scorer, scored, snapshot_features(snapshot, scorer, [first])))
    if why is not None:
        log.warning(json.dumps({"event": "audit_not_warmed", "database": audit.database, "why": why}))


def _log_to_stdout() -> None:
    """Structured lines (one JSON object each) on stdout, for the service's and the Guard's loggers."""
    bentoml_errors = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _NoRequestValues) for f in bentoml_errors.filters):
        bentoml_errors.addFilter(_NoRequestValues())
    for name in ("seller_risk.service", "seller_risk.requests"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
