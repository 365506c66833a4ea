"""Where models live: the MLflow tracking store and model registry, and how a model URI becomes a
`RiskModel`. The embedded default is a SQLite file and an artifact folder under `models/` (no server
to start); `MLFLOW_TRACKING_URI` points everything at a real tracking server instead. Shared by
training (which writes) and serving (which reads); nothing happens at import time.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from features.platform.settings import CHALLENGER, CHAMPION, MODEL_NAME, MODELS_DIR, Settings, env_name
from models.risk_model import RiskModel

__all__ = ["CHALLENGER", "CHAMPION", "EXPERIMENT", "MODEL_NAME", "AliasNotFound", "ModelNotFound", "ModelRef",
           "RegistryError", "StoreUnreachable", "alias_version", "ensure_experiment", "is_not_found", "load_risk_model",
           "resolve", "store_errors", "tracking_timeout", "tracking_uri", "use_store"]
EXPERIMENT = MODEL_NAME
DEFAULT_MODELS_DIR = MODELS_DIR


class RegistryError(Exception):
    """A registry or tracking-store problem a person can act on: the message is one line saying what
    is wrong and what to do."""


class StoreUnreachable(RegistryError):
    """The tracking server MLFLOW_TRACKING_URI names does not answer (down, wrong address, overloaded)."""


class ModelNotFound(RegistryError, LookupError):
    """The registry answered, and it holds no such model version."""


class AliasNotFound(ModelNotFound):
    """The registry answered, and no version of the model carries the alias."""


TRACKING_TIMEOUT_ENV = env_name("tracking_timeout")
DEFAULT_TRACKING_TIMEOUT = Settings.model_fields["tracking_timeout"].default
"""Seconds one request to a tracking server may wait for an answer (features.platform.settings). With
TRACKING_TRIES tries and MLflow's short backoff between them, a dead server is reported within about
3 x this + 3 s."""
TRACKING_TRIES = 3


def tracking_timeout() -> float:
    """SELLER_RISK_TRACKING_TIMEOUT when set (seconds, above 0), else the default."""
    try:
        return float(Settings.one("tracking_timeout"))
    except ValueError:
        raw = os.environ.get(TRACKING_TIMEOUT_ENV, "")
        raise RegistryError(f"{TRACKING_TIMEOUT_ENV} must be a number of seconds above 0, not {raw!r}") from None


_EMBEDDED: set[str] = set()
"""Embedded store URIs this process chose. MLflow copies whatever URI it is given into the
MLFLOW_TRACKING_URI variable (for child processes), so a value found there that we put there
ourselves is not a user's choice of server."""


def _embedded_uri(models_dir: Path | str) -> str:
    return f"sqlite:///{Path(models_dir).resolve() / 'mlflow.db'}"


def tracking_uri(models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """MLFLOW_TRACKING_URI when a user set it, else the embedded SQLite store under `models_dir`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env not in _EMBEDDED:
        return env
    return _embedded_uri(models_dir)


def use_store(models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """Point MLflow's tracking and registry at the store; returns its URI. A tracking server is
    checked first, and MLflow's own retries bounded, so a dead one is a `StoreUnreachable` in
    seconds rather than minutes of retrying."""
    uri = tracking_uri(models_dir)
    if uri == _embedded_uri(models_dir):
        Path(models_dir).mkdir(parents=True, exist_ok=True)
        _EMBEDDED.add(uri)
    elif _is_server(uri):
        _HINT["models_dir"] = str(models_dir)
        _bound_mlflow_http(tracking_timeout())
        check_reachable(uri)
    import mlflow  # after the check: importing it takes longer than finding a server down

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


# ------------------------------------------------------------------ a tracking server that does not answer


_HINT = {"models_dir": str(DEFAULT_MODELS_DIR)}
"""The embedded store the last `use_store` would fall back to, for the advice in an error."""
_BOUNDED: dict[str, str] = {}
"""MLflow HTTP settings this process put in the environment (a user's own values are left alone)."""


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _shown(uri: str) -> str:
    """The URI without any user:password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()


def _bound_mlflow_http(timeout: float) -> None:
    """MLflow retries a failed request 7 times with exponential backoff (about 4 minutes) by default:
    bound it to TRACKING_TRIES tries of `timeout` seconds, unless the user chose these settings."""
    bounded = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(TRACKING_TRIES - 1),
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # pauses of 0 s, then 2 s (+ jitter)
               "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}
    for key, value in bounded.items():
        if os.environ.get(key) in (None, _BOUNDED.get(key)):
            os.environ[key] = _BOUNDED[key] = value


def _unreachable(uri: str, detail: str) -> StoreUnreachable:
    return StoreUnreachable(f"tracking server {_shown(uri)} is not reachable ({detail}): start it, or unset "
                            f"MLFLOW_TRACKING_URI to use the embedded store under {_HINT['models_dir'].rstrip('/')}/")


def _probe(uri: str, timeout: float) -> str | None:
    """Why one GET of the server's /health failed to reach it, or None when something answered."""
    import http.client
    import socket
    import ssl
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    url = parts._replace(netloc=netloc, path=parts.path.rstrip("/") + "/health", query="", fragment="").geturl()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
        return None
    except urllib.error.HTTPError as err:  # it answered; only a gateway saying it is down counts as down
        return f"HTTP {err.code} from {host}" if err.code in (502, 503, 504) else None
    except urllib.error.URLError as err:
        reason = err.reason
    except (OSError, http.client.HTTPException) as err:
        reason = err
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return None  # a TLS server answered; MLflow applies the user's certificate settings itself
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"host name {host!r} not found"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionError | http.client.HTTPException):
        return "connection closed without an answer"
    return str(reason) or reason.__class__.__name__


def check_reachable(uri: str) -> None:
    """A bounded check before any work: the server's /health, TRACKING_TRIES tries with short pauses."""
    timeout = tracking_timeout()
    start = time.monotonic()
    for attempt in range(1, TRACKING_TRIES + 1):
        why = _probe(uri, timeout)
        if why is None:
            return
        if attempt < TRACKING_TRIES:
            time.sleep(0.5 * attempt)
    raise _unreachable(uri, f"{why} after {TRACKING_TRIES} tries in {time.monotonic() - start:.1f} s")


def _connection_detail(err: BaseException) -> str | None:
    """How a request failed to reach the server, when that is what `err` (or its causes) says."""
    import socket

    import requests
    import urllib3

    seen: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(seen) < 20 and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    if not any(isinstance(x, requests.RequestException | urllib3.exceptions.HTTPError) for x in seen):
        return None
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    tries = f" after {int(retries) + 1} {'try' if retries == '0' else 'tries'}" if retries.isdigit() else ""
    text = " ".join(str(x) for x in seen)
    if any(isinstance(x, ConnectionRefusedError) for x in seen) or "Connection refused" in text:
        return f"connection refused{tries}"
    if any(isinstance(x, socket.gaierror | urllib3.exceptions.NameResolutionError) for x in seen):
        return f"host name not found{tries}"
    if any(isinstance(x, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError) for x in seen):
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s{tries}"
    if any(isinstance(x, requests.exceptions.RetryError) for x in seen):
        return f"it kept answering with server errors{tries}"
    return f"connection lost{tries}"


def unreachable_error(err: BaseException) -> StoreUnreachable | None:
    """`err` as a StoreUnreachable when it is MLflow failing to reach the tracking server."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    if isinstance(err, StoreUnreachable):
        return err
    if not _is_server(uri):
        return None
    detail = _connection_detail(err)
    return _unreachable(uri, detail) if detail else None


@contextmanager
def store_errors() -> Iterator[None]:
    """Inside, MLflow failing to reach the tracking server, at any step, is raised as StoreUnreachable
    (one line, what to do) instead of MLflow's own exception."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as err:
        unreachable = unreachable_error(err)
        if unreachable is None:
            raise
        raise unreachable from None


def is_not_found(err: BaseException) -> bool:
    """Whether the registry answered "no such model, version or alias" (and not: could not ask)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(err, MlflowException):
        return False
    code = err.error_code
    message = str(err).lower()
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "alias" in message
                                                 and "not found" in message)


# ------------------------------------------------------------------ experiments and model versions


def ensure_experiment(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """The experiment's id, created on first use; on the embedded store its artifacts go under
    `models_dir/artifacts` (a server decides for itself)."""
    import mlflow

    with store_errors():
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if tracking_uri(models_dir) in _EMBEDDED:
            location = (Path(models_dir).resolve() / "artifacts").as_uri()
        return mlflow.create_experiment(name, artifact_location=location)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, pinned."""

    name: str
    version: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve(model_uri: str) -> ModelRef:
    """Pin `models:/name@alias` or `models:/name/version` to a version of the registry. Raises
    AliasNotFound or ModelNotFound only when the registry answered so; StoreUnreachable when it
    could not be asked."""
    from mlflow import MlflowClient

    rest = model_uri.removeprefix("models:/")
    name, alias = rest.split("@", 1) if "@" in rest else (rest.partition("/")[0], None)
    version = None if alias is not None else rest.partition("/")[2]
    if (not model_uri.startswith("models:/") or not name or (alias is None and not (version or "").isdigit())
            or alias == ""):
        raise ValueError(f"expected a registry URI like models:/{MODEL_NAME}@{CHAMPION} or models:/{MODEL_NAME}/3, "
                         f"got {model_uri!r}")
    client = MlflowClient()
    with store_errors():
        try:
            if alias is not None:
                mv = client.get_model_version_by_alias(name, alias)
            else:
                mv = client.get_model_version(name, version)
        except Exception as err:
            if not is_not_found(err):
                raise
            if alias is not None:
                raise AliasNotFound(f"no model version has the alias {alias!r} in {name!r}: "
                                    "train and promote one first") from None
            raise ModelNotFound(_missing_version(client, name, version)) from None
    return ModelRef(mv.name, str(mv.version), mv.run_id)


_SPAN = re.compile(r"(train|valid) (\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class FittedWeeks:
    """The as-of weeks a registered model was fitted and calibrated on, and the snapshots they came from.
    A week is out of sample for it only once its labels never reached the model: after `last` plus the
    label horizon (training.folds.before, the same rule the backtest's folds keep)."""

    features_dir: Path
    first: date
    last: date


def fitted_weeks(ref: ModelRef) -> FittedWeeks | None:
    """Read from the version's training run (its `final` split and `features_dir` parameters); None when
    the run does not say (no run, deleted, on another server, or logged before these parameters)."""
    from mlflow import MlflowClient

    if not ref.run_id:
        return None
    try:
        params = MlflowClient().get_run(ref.run_id).data.params
    except Exception:  # a run deleted or on another server: nothing to say
        return None
    spans = {m.group(1): (m.group(2), m.group(3)) for m in _SPAN.finditer(params.get("final", ""))}
    if "train" not in spans or "features_dir" not in params:
        return None
    last = spans.get("valid", spans["train"])[1]
    return FittedWeeks(Path(params["features_dir"]), date.fromisoformat(spans["train"][0]), date.fromisoformat(last))


def _missing_version(client, name: str, version: str) -> str:
    """Why `name` version `version` is not there, and which versions are."""
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    if not versions:
        return f"model {name!r} has no registered versions: train one first (seller-risk train)"
    return f"model version {version} of {name!r} does not exist (latest: {max(versions)})"


def alias_version(client, name: str, alias: str) -> str | None:
    """The version that carries `alias`, or None when the registry says none does (or the model
    does not exist yet); StoreUnreachable when it could not be asked."""
    with store_errors():
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except Exception as err:
            if is_not_found(err):
                return None
            raise


def load_risk_model(model_uri: str) -> tuple[RiskModel, ModelRef]:
    """Download a registered model version once and read it natively (no pickle)."""
    import mlflow

    ref = resolve(model_uri)
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # a progress bar per file is noise in logs
    with tempfile.TemporaryDirectory(prefix="seller-risk-model-") as tmp, _env(quiet):
        with store_errors():
            local = mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=tmp)
        return RiskModel.load_dir(local), ref


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
