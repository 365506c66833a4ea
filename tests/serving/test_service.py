"""The scoring service as callers meet it: a real `bentoml serve` process on a loopback port, with
the model trained by the session fixture, asked over HTTP. Scores must equal the in-process ones
bit for bit, reasons must add up, and every kind of bad input must get a 4xx that names the field."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from features.platform import layout
from serving.api.routes import DOCS_JSON, READYZ, SCORE, SCORE_SELLER
from serving.api.schema import MAX_SELLERS
from serving.scoring import Scorer
from training.train import TrainResult

BIN = Path(sys.executable).parent
API_KEY = "test-key-9f2c"
pytestmark = pytest.mark.server  # every test here runs bentoml (serve or build) in a process of its own


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(trained: TrainResult, feature_dir: Path, model_uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELLER_RISK_")}
    return {**env, "MLFLOW_TRACKING_URI": trained.tracking_uri, "SELLER_RISK_MODEL_URI": model_uri,
            "SELLER_RISK_FEATURES": str(feature_dir), "SELLER_RISK_WORKERS": "1", **extra}


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([str(BIN / "bentoml"), "serve", "serving.api.service:SellerRisk", "--working-dir", str(root),
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> list[int]:
    """Poll /readyz until it says 200; the statuses seen on the way. Fails if the server exits or
    is not ready in `timeout` seconds, with the end of its log."""
    deadline, seen = time.monotonic() + timeout, []
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            r = requests.get(url + READYZ.path, timeout=2)
            seen.append(r.status_code)
            if r.status_code == 200:
                return seen
        except (requests.ConnectionError, requests.Timeout):  # bound, but no worker answers yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _logged(server: Server, pick: Callable[[dict], bool], n: int, timeout: float = 10) -> list[dict]:
    """The server's log events that `pick` selects, as soon as there are `n` of them (a request's
    line is written after its answer is sent), or whatever there is after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = [e for e in server.events() if pick(e)]
        except json.JSONDecodeError:  # read while a line was half written
            events = []
        if len(events) >= n or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


@dataclass
class Server:
    url: str
    log: Path
    ready_at: float
    first_ready_log_line: int  # index of the "ready" event among the log's JSON lines, when /readyz first said 200

    def post(self, route: str, body: object = None, *, key: str | None = API_KEY, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        h = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {}), **(headers or {})}
        return requests.post(self.url + route, data=data if data is not None else json.dumps(body), headers=h, timeout=30)

    def events(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


@pytest.fixture(scope="module")
def server(trained: TrainResult, feature_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("service") / "serve.log"
    env = _env(trained, feature_dir, f"models:/seller-risk/{trained.version}", SELLER_RISK_API_KEY=API_KEY,
               SELLER_RISK_RECYCLE_EVERY="10", SELLER_RISK_DB=f"sqlite:///{log.parent / 'console.db'}",
               SELLER_RISK_SCORES=str(log.parent / "scores"))  # no weekly ranking until a test writes one
    proc = _serve(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        early = _wait_ready(proc, url, log)
        ready_at = time.time()
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        ready_lines = [i for i, e in enumerate(lines) if e.get("event") == "ready"]
        assert set(early) <= {200, 503}, early
        yield Server(url, log, ready_at, ready_lines[0] if ready_lines else -1)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def latest(feature_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(layout.latest_snapshot(feature_dir))


@pytest.fixture(scope="module")
def scorer(trained: TrainResult) -> Scorer:
    from features.policy.definition import load_policy
    from models.registry import ModelRef
    from features.pipeline.spec import feature_spec

    policy = load_policy(trained.model.policy_version)
    return Scorer(trained.model, ModelRef("seller-risk", trained.version, trained.run_id), feature_spec(policy), policy)


def _features(latest: pd.DataFrame, scorer: Scorer, i: int) -> dict:
    """A snapshot row as a caller would send it: JSON values, missing ones left out."""
    row = latest.iloc[i]
    out = {}
    for name in scorer.spec.names:
        v = row[name]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out[name] = v.item() if hasattr(v, "item") else v
    return out


# ---------------------------------------------------------------------------- start and answers


def _code_spec_hash() -> str:
    """The hash of the code's feature spec for the default policy (what the service must report)."""
    from features.policy.definition import load_policy
    from features.platform.settings import DEFAULT_POLICY
    from features.pipeline.spec import feature_spec

    return feature_spec(load_policy(DEFAULT_POLICY)).hash


def test_ready_only_after_the_model_and_snapshot_are_loaded(server: Server) -> None:
    assert server.first_ready_log_line >= 0, "the worker logged no 'ready' event before /readyz said 200"
    ready = server.events()[server.first_ready_log_line]
    assert ready["model"].startswith("models:/seller-risk/") and ready["snapshot_sellers"] > 0
    assert ready["feature_spec_hash"] == _code_spec_hash()


def test_a_snapshot_seller_scores_over_http_exactly_as_in_process(server: Server, scorer: Scorer,
                                                                 latest: pd.DataFrame) -> None:
    local = scorer.records(scorer.score_frame(latest, top=5, lowering=3))
    picks = list(np.argsort([-r["risk_score"] for r in local], kind="stable")[:5]) + [0, len(local) - 1]
    for i in picks:
        r = server.post(SCORE_SELLER.path, {"seller_id": latest["seller_id"].iloc[i], "reasons": 5, "lowering_reasons": 3})
        assert r.status_code == 200, r.text
        expected = json.loads(json.dumps(local[i], default=str))
        assert r.json() == expected  # floats survive JSON exactly: bit for bit
        assert r.headers["x-model-version"] == scorer.ref.version and r.headers["x-request-id"]


def test_requests_in_flight_together_are_scored_together_with_each_its_own_exact_answer(
        server: Server, scorer: Scorer, latest: pd.DataFrame) -> None:
    """Coalescing (serving/coalesce.py) must change the cost, never the answer: 96 requests, 32 in
    flight at a time, two different reason counts mixed, each equal to its in-process record."""
    n = 96
    local = {k: scorer.records(scorer.score_frame(latest.iloc[:n], top=k, lowering=1)) for k in (2, 5)}

    def ask(i: int) -> tuple[int, requests.Response]:
        k = 5 if i % 2 else 2
        return i, server.post(SCORE_SELLER.path, {"seller_id": latest["seller_id"].iloc[i], "reasons": k,
                                                "lowering_reasons": 1}, headers={"X-Request-ID": f"together-{i}"})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, range(n)))
    for i, r in answers:
        assert r.status_code == 200, r.text
        assert r.json() == json.loads(json.dumps(local[5 if i % 2 else 2][i], default=str)), i
        assert "x-scored-with" not in r.headers  # for the log only
    together = [e["scored_with"] for e in _logged(server, lambda e: str(e.get("request_id")).startswith("together-"), n)]
    assert len(together) == n and min(together) >= 1
    assert max(together) > 1, "no two requests in flight together were scored in one call"


def test_kept_alive_connections_are_asked_to_reconnect_now_and_then(server: Server, latest: pd.DataFrame) -> None:
    """About one answer in SELLER_RISK_RECYCLE_EVERY (10 here) says `Connection: close`, so the
    workers get to share a client pool's connections; the client just reconnects."""
    seller = latest["seller_id"].iloc[3]
    with requests.Session() as session:
        answers = [session.post(server.url + SCORE_SELLER.path, json={"seller_id": seller},
                                headers={"X-API-Key": API_KEY}, timeout=30) for _ in range(200)]
    assert all(r.status_code == 200 for r in answers)
    assert len({r.json()["risk_score"] for r in answers}) == 1
    closes = sum(r.headers.get("connection", "").lower() == "close" for r in answers)
    assert 5 <= closes <= 50, closes  # binomial(200, 1/10): mean 20


def test_sent_features_score_like_the_snapshot_and_reasons_add_up(server: Server, scorer: Scorer,
                                                                  latest: pd.DataFrame) -> None:
    rows = [0, 1, 2, 3]
    body = {"sellers": [{"seller_id": latest["seller_id"].iloc[i], "features": _features(latest, scorer, i)} for i in rows],
            "reasons": 81, "lowering_reasons": 81}
    r = server.post(SCORE.path, body)
    assert r.status_code == 200, r.text
    local = scorer.records(scorer.score_frame(latest.iloc[rows], top=81, lowering=81))
    for got, want in zip(r.json(), local):
        assert got["as_of"] is None
        assert got["risk_score"] == want["risk_score"] and got["reasons"] == want["reasons"]
        # every group's contribution (standards, history, exposure, context) with the base gives the score
        logit = got["base_log_odds"] + sum(x["contribution"] for x in got["contributions"])
        assert abs(logit - math.log(got["risk_score"] / (1 - got["risk_score"]))) < 1e-9
        assert got["contributions"] == want["contributions"] and got["lowering_reasons"] == want["lowering_reasons"]
        assert got["standards_missed_now"] == want["standards_missed_now"]
        ranks = [x["rank"] for x in got["reasons"]]
        assert ranks == list(range(1, len(ranks) + 1))


def test_missing_optional_features_are_missing_values(server: Server, scorer: Scorer, latest: pd.DataFrame) -> None:
    features = _features(latest, scorer, 5)
    optional = [n for n in scorer.spec.names if scorer.spec[n].optional and n in features]
    trimmed = {k: v for k, v in features.items() if k not in optional[:10]}
    r = server.post(SCORE.path, {"sellers": [{"seller_id": "x", "features": trimmed}]})
    assert r.status_code == 200, r.text
    frame = latest.iloc[[5]].copy()
    frame[optional[:10]] = np.nan
    assert r.json()[0]["risk_score"] == scorer.records(scorer.score_frame(frame))[0]["risk_score"]


def test_one_structured_log_line_per_request_without_feature_values(server: Server, scorer: Scorer,
                                                                   latest: pd.DataFrame) -> None:
    features = _features(latest, scorer, 7)
    features["gmv_30d"] = 98765.4321  # a value that must not reach the log
    r = server.post(SCORE.path, {"sellers": [{"seller_id": "S-log-check", "features": features}]},
                    headers={"X-Request-ID": "req-log-check"})
    assert r.status_code == 200
    mine = _logged(server, lambda e: e.get("request_id") == "req-log-check", 1)
    assert len(mine) == 1
    assert mine[0]["route"] == SCORE.path and mine[0]["status"] == 200 and mine[0]["sellers"] == 1
    assert mine[0]["model_version"] == scorer.ref.version and mine[0]["latency_ms"] > 0
    log = server.log.read_text()
    # the value as JSON would print it: a bare "98765" also turns up inside random request ids' hex
    assert "98765.4321" not in log and "gmv_30d" not in log


# ---------------------------------------------------------------------------- hard to misuse


def _one(latest: pd.DataFrame, scorer: Scorer, **change: object) -> dict:
    features = _features(latest, scorer, 0)
    for k, v in change.items():
        if v is _DROP:
            features.pop(k, None)
        else:
            features[k] = v
    return {"sellers": [{"seller_id": "S1", "features": features}]}


_DROP = object()


def _raw(body: dict) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize("case, status, names", [
    ("unknown feature", 400, "late_rate_30d"),
    ("wrong type", 400, "on_time_delivery_rate_30d"),
    ("NaN", 400, "cancellation_rate_30d"),
    ("Infinity", 400, "refund_rate_30d"),
    ("fractional count", 400, "orders_7d"),
    ("negative count", 400, "orders_30d"),
    ("missing required", 400, "region"),
    ("unknown category", 422, "category"),
    ("empty list", 400, "sellers"),
    ("too many sellers", 400, "sellers"),
    ("misspelt top-level field", 400, "seller"),
    ("too many reasons", 400, "reasons"),
    ("not JSON", 400, "JSON"),
])
def test_bad_input_is_a_4xx_naming_the_field(server: Server, scorer: Scorer, latest: pd.DataFrame,
                                             case: str, status: int, names: str) -> None:
    ok = _one(latest, scorer)
    bodies: dict[str, bytes] = {
        "unknown feature": _raw(_one(latest, scorer, late_rate_30d=0.1)),
        "wrong type": _raw(_one(latest, scorer, on_time_delivery_rate_30d="0.93")),
        "NaN": _raw(_one(latest, scorer, cancellation_rate_30d=0.01)).replace(
            b'"cancellation_rate_30d": 0.01', b'"cancellation_rate_30d": NaN'),
        "Infinity": _raw(_one(latest, scorer, refund_rate_30d=0.01)).replace(
            b'"refund_rate_30d": 0.01', b'"refund_rate_30d": Infinity'),
        "fractional count": _raw(_one(latest, scorer, orders_7d=3.5)),
        "negative count": _raw(_one(latest, scorer, orders_30d=-4)),
        "missing required": _raw(_one(latest, scorer, region=_DROP)),
        "unknown category": _raw(_one(latest, scorer, category="fireworks")),
        "empty list": _raw({"sellers": []}),
        "too many sellers": _raw({"sellers": ok["sellers"] * (MAX_SELLERS + 1)}),
        "misspelt top-level field": _raw({"seller": ok["sellers"]}),
        "too many reasons": _raw({**ok, "reasons": 500}),
        "not JSON": b'{"sellers": [',
    }
    assert bodies["NaN"] != _raw(_one(latest, scorer, cancellation_rate_30d=0.01))
    r = server.post(SCORE.path, data=bodies[case])
    assert r.status_code == status, r.text
    assert names in r.json()["error"]  # the message itself names the field, not only a detail list
    if case == "fractional count":
        assert r.json()["error"] == "sellers[0].features.orders_7d: Input should be a multiple of 1"


def test_pickle_and_other_content_types_are_refused(server: Server) -> None:
    import pickle

    r = server.post(SCORE_SELLER.path, data=pickle.dumps({"seller_id": "S0000001"}),
                    headers={"Content-Type": "application/vnd.bentoml+pickle"})
    assert r.status_code == 415 and "application/vnd.bentoml+pickle" in r.json()["error"]
    r = server.post(SCORE_SELLER.path, data=b"seller_id=S0000001", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_a_body_over_the_limit_is_413(server: Server) -> None:
    big = json.dumps({"seller_id": "S" + "0" * (1 << 20)}).encode()
    r = server.post(SCORE_SELLER.path, data=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(40):
            yield b" " * 65536
    r = requests.post(server.url + SCORE_SELLER.path, data=chunks(),
                      headers={"Content-Type": "application/json", "X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 413


def test_unknown_seller_is_404(server: Server) -> None:
    r = server.post(SCORE_SELLER.path, {"seller_id": "S-does-not-exist"})
    assert r.status_code == 404 and "S-does-not-exist" in r.json()["error"]


def test_api_key_is_required_when_set(server: Server, latest: pd.DataFrame) -> None:
    seller = {"seller_id": latest["seller_id"].iloc[0]}
    assert server.post(SCORE_SELLER.path, seller, key=None).status_code == 401
    assert server.post(SCORE_SELLER.path, seller, key="wrong").status_code == 401
    assert server.post(SCORE_SELLER.path, seller, headers={"Authorization": f"Bearer {API_KEY}"}, key=None).status_code == 200
    assert requests.get(server.url + READYZ.path, timeout=5).status_code == 200  # probes need no key


# ---------------------------------------------------------------------------- refusing a model at start


def test_a_model_for_another_feature_spec_is_refused_at_start(trained: TrainResult, feature_dir: Path,
                                                              tmp_path: Path) -> None:
    """Register the same trees under another feature-spec hash in a store of its own: the server
    must stop at start, saying why, and never become ready."""
    import mlflow

    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    metadata = {**trained.model.metadata(), "feature_spec_hash": "0000000000000000"}
    boosters = tmp_path / "boosters"  # the per-standard boosters travel with the model
    boosters.mkdir()
    script = (
        "import mlflow, lightgbm as lgb, sys, json\n"
        f"mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})\n"
        f"mlflow.create_experiment('x', artifact_location={(store / 'artifacts').as_uri()!r})\n"
        "mlflow.set_experiment('x')\n"
        f"b = lgb.Booster(model_str=open({str(tmp_path / 'model.txt')!r}).read())\n"
        "with mlflow.start_run():\n"
        f"    mlflow.lightgbm.log_model(b, name='model', metadata=json.loads({json.dumps(json.dumps(metadata))}),"
        f" extra_files={trained.model.save_standards(boosters)!r}, registered_model_name='seller-risk')\n")
    (tmp_path / "model.txt").write_text(trained.model.booster.model_to_string())
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    env = {**_env(trained, feature_dir, "models:/seller-risk/1"), "MLFLOW_TRACKING_URI": uri}
    log = tmp_path / "serve.log"
    proc = _serve(env, _free_port(), log)
    try:
        code = proc.wait(timeout=120)
    finally:
        _stop(proc)
    text = log.read_text()
    assert code != 0
    assert "trained for feature spec 0000000000000000" in text and _code_spec_hash() in text
    assert mlflow is not None


def test_serve_command_refuses_an_unknown_model_with_one_line(trained: TrainResult, feature_dir: Path, tmp_path: Path) -> None:
    env = _env(trained, feature_dir, "unused")
    r = subprocess.run([str(BIN / "seller-risk"), "serve", "--model", "models:/seller-risk@nobody",
                        "--features", str(feature_dir), "--port", str(_free_port())],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "alias 'nobody'" in r.stderr and "Traceback" not in r.stderr


def test_serve_command_prints_a_curl_that_scores_the_riskiest_seller(trained: TrainResult, feature_dir: Path,
                                                                    scorer: Scorer, latest: pd.DataFrame,
                                                                    tmp_path: Path) -> None:
    """`seller-risk serve` (what `make demo` ends with) starts a server, and the curl it prints,
    pasted into a shell, returns the score record of the snapshot's riskiest seller."""
    port, log = _free_port(), tmp_path / "serve.log"
    env = _env(trained, feature_dir, "unused")
    proc = subprocess.Popen([str(BIN / "seller-risk"), "serve", "--model", f"models:/seller-risk/{trained.version}",
                             "--features", str(feature_dir), "--port", str(port), "--workers", "1"],
                            env={**env, "COLUMNS": "400"}, cwd=tmp_path, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}", log)
        [curl] = [line.strip() for line in log.read_text().splitlines() if line.strip().startswith("curl -s -X POST")]
        pasted = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        record = json.loads(pasted.stdout)
        local = scorer.records(scorer.score_frame(latest))
        riskiest = max(local, key=lambda r: r["risk_score"])
        assert record["seller_id"] == riskiest["seller_id"] and record["risk_score"] == riskiest["risk_score"]
        assert 1 <= len(record["reasons"]) <= 5 and record == json.loads(json.dumps(riskiest, default=str))
    finally:
        _stop(proc)


def test_bentofile_builds_a_bento(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")}
    r = subprocess.run([str(BIN / "bentoml"), "build", str(root), "--output", "tag"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    built = list((tmp_path / "bentoml" / "bentos" / "seller_risk").glob("*/src/serving/api/service.py"))
    assert built, "the bento holds no serving/api/service.py"
    assert list((tmp_path / "bentoml" / "bentos" / "seller_risk").glob("*/src/models/risk_model.py"))
    assert not list((tmp_path / "bentoml" / "bentos" / "seller_risk").glob("*/src/serving/cli.py"))
    shutil.rmtree(tmp_path / "bentoml")


def test_the_batch_job_and_the_service_give_a_seller_the_same_record(server: Server, trained: TrainResult,
                                                                     feature_dir: Path, latest: pd.DataFrame,
                                                                     tmp_path: Path) -> None:
    """The weekly batch job and the HTTP service, on the same snapshot: same score, same band, reasons,
    standings, context, contributions and recovery, bit for bit (a queued seller's band_meaning also names
    its list). The service places sellers by the cut-offs the batch run wrote, read without a restart."""
    from serving.batch.job import BatchConfig, run_batch
    from serving.batch.table import read_record

    models_dir = Path(trained.tracking_uri.removeprefix("sqlite:///")).parent
    as_of = latest["as_of"].iloc[0]
    scores = server.log.parent / "scores"  # where the service reads the weekly cut-offs
    some = latest["seller_id"].iloc[0]
    assert server.post(SCORE_SELLER.path, {"seller_id": some}).json()["risk_band"] in ("unranked", "recovery")
    run_batch(BatchConfig(scores, features_dir=feature_dir, as_of=as_of,
                          model_uri=f"models:/seller-risk/{trained.version}", models_dir=models_dir,
                          chunk_rows=700, log_mlflow=False))
    from serving.batch.table import read_scores
    from tests.serving.test_batch import same_record

    lists = read_scores(scores, as_of, ["seller_id", "queue", "queue_rank", "risk_band"]).to_pandas()
    ends = [lists.loc[lists["queue"] == q].sort_values("queue_rank")["seller_id"].iloc[i]
            for q in ("early_warning", "recovery") for i in (0, -1)]  # each list's first and last (the cut-off)
    deadline = time.monotonic() + 10  # the service looks at the score table at most once a second
    while server.post(SCORE_SELLER.path, {"seller_id": ends[0]}).json()["risk_band"] == "unranked":
        assert time.monotonic() < deadline, "the service never saw the batch run's cut-offs"
        time.sleep(0.1)
    nexts = lists.loc[lists["risk_band"] == "next", "seller_id"].iloc[:1].tolist()
    bands = set()
    for seller in [*latest["seller_id"].iloc[[0, 500, 1000]], *ends, *nexts]:
        served = server.post(SCORE_SELLER.path, {"seller_id": seller, "reasons": 5}).json()
        batch = json.loads(json.dumps(read_record(scores, as_of, seller), default=str))
        same_record(batch, served)
        assert served["contributions"] and (served["recovery"] != []) == (served["population"] == "missing_now")
        bands.add(served["risk_band"])
    assert {"review", "next", "recovery"} <= bands


def test_the_openapi_page_documents_every_feature(server: Server, scorer: Scorer) -> None:
    spec = requests.get(server.url + DOCS_JSON.path, timeout=10).json()
    text = json.dumps(spec)
    for name in scorer.spec.names:
        assert f'"{name}"' in text, name
    assert scorer.spec["on_time_delivery_rate_30d"].description in text
    assert SCORE.path in spec["paths"] and SCORE_SELLER.path in spec["paths"]
