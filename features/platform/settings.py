"""Every setting of seller-risk, its default and the environment variable that sets it, declared
once. The command-line options default to these, the HTTP service and the notebooks read them
from the environment (`Settings.from_env`), and `seller-risk serve` hands them to BentoML's workers
the same way (`Settings.to_env`), so a setting has one name and one default everywhere.

Nothing is read at import time: callers ask for `Settings.from_env()` when they start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "SELLER_RISK_"
"""Every setting's environment variable is this prefix and the field name in capitals."""

DEFAULT_POLICY = "walmart-us-2026"
"""The policy a marketplace is simulated and judged by when none is named."""

MODEL_NAME = "seller-risk"
"""The registered model's name in the MLflow registry."""
CHAMPION, CHALLENGER = "champion", "challenger"
"""The registry aliases: what is served, and what training proposes."""
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"

DATA_DIR = Path("data")
"""Where the demo writes events, snapshots and scores (git-ignored)."""
MODELS_DIR = Path("models")
"""The embedded MLflow store, beside the model code (ignored when MLFLOW_TRACKING_URI names a server)."""


class Settings(BaseModel):
    """The settings of a run, a worker or a notebook; each field is `SELLER_RISK_<FIELD>`."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    # where things are
    data: Path = Field(DATA_DIR, description="Folder holding events/, features/ and scores/.")
    events: Path | None = Field(None, description="Event tables (default <data>/events).")
    features: Path | None = Field(None, description="Feature snapshots, `seller-risk features --out` (default <data>/features).")
    scores: Path | None = Field(None, description="The weekly score table (default <data>/scores).")
    models: Path = Field(MODELS_DIR, description="The embedded MLflow store (MLFLOW_TRACKING_URI, when set, wins).")
    model_uri: str = Field(CHAMPION_URI, description="The registered model to score with: an alias or a version.")
    policy: str = Field(DEFAULT_POLICY, description="Policy (name or YAML path) whose feature spec shapes the HTTP request schema.")
    # the HTTP service
    api_key: str | None = Field(None, description="When set, scoring requests must carry it (X-API-Key or Bearer).")
    max_body_bytes: int = Field(1 << 20, gt=0, description="Largest request body accepted.")
    workers: int = Field(2, ge=1, description="Service worker processes (one per core).")
    threads: int = Field(1, ge=1, description="Threads per service worker.")
    telemetry: bool = Field(False, description="Prometheus metrics and OpenTelemetry spans on the scoring routes.")
    max_batch: int = Field(256, ge=1, description="Most sellers scored in one call when requests arrive together (1: off).")
    recycle_every: int = Field(100, ge=0, description="Ask a kept-alive client to reconnect after about this many requests (0: never).")
    # the reviewer console and its database
    db: str | None = Field(None, description="Decisions and audit database, a SQLAlchemy URL (default sqlite:///<data>/console.db; "
                                             "PostgreSQL: postgresql+psycopg://user:pass@host/db).")
    secret_key: str | None = Field(None, description="Signs console sessions and forms (default: a random key kept in <data>/console.key).")
    session_idle_minutes: int = Field(30, ge=1, description="A console session unused this long ends (sign in again).")
    session_hours: int = Field(12, ge=1, description="A console session ends this long after sign-in, however used.")
    behind_https: bool = Field(False, description="The service is reached over HTTPS (e.g. behind a proxy): session cookies are `Secure`.")
    audit_retention_days: int = Field(90, ge=1, description="Served records older than this many days move from the audit "
                                                            "database to Parquet files (`seller-risk audit archive`).")
    audit_archive: Path | None = Field(None, description="Where `seller-risk audit archive` writes them (default <data>/audit).")
    audit_sync: Literal["full", "normal"] = Field("full", description="full: each served record's audit row is on disk before "
                                                                 "its reply (survives a power cut); normal: handed to the OS "
                                                                 "(survives the service crashing, not the machine), a "
                                                                 "fraction of the cost per request.")
    # the tracking store
    tracking_timeout: float = Field(5.0, gt=0, allow_inf_nan=False,
                                    description="Seconds one request to a tracking server may wait (3 tries).")
    # training
    train_threads: int = Field(2, ge=1, description="Threads LightGBM trains with. One seed gives one model for one thread "
                                                    "count (default 2: the same model on any machine of 2 cores or more).")
    # the feature pipeline
    duckdb_memory: str = Field("6GB", description="DuckDB's memory limit while building snapshots.")
    # the analysts' notebooks
    seller: str | None = Field(None, description="The deep-dive notebook's seller (default: the riskiest of the week).")
    week: date | None = Field(None, description="The week the notebooks explain (default: the latest scored week).")

    @field_validator("api_key", "seller", "db", "secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def events_dir(self) -> Path:
        return self.events or self.data / "events"

    @property
    def features_dir(self) -> Path:
        return self.features or self.data / "features"

    @property
    def scores_dir(self) -> Path:
        return self.scores or self.data / "scores"

    @property
    def audit_archive_dir(self) -> Path:
        return self.audit_archive or self.data / "audit"

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data / 'console.db').as_posix()}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from environment variables (this process's by default); `overrides` win."""
        env = os.environ if env is None else env
        values = {name: env[env_name(name)] for name in cls.model_fields if env.get(env_name(name)) is not None}
        return cls.model_validate({**values, **overrides})

    @classmethod
    def one(cls, name: str, env: Mapping[str, str] | None = None) -> object:
        """One setting from the environment, checked alone (another variable's bad value does not stop it);
        a bad value raises ValueError naming the variable."""
        env = os.environ if env is None else env
        raw = env.get(env_name(name))
        if raw is None or not raw.strip():
            return cls.model_fields[name].default
        try:
            return getattr(cls.model_validate({name: raw.strip()}), name)
        except ValueError as err:
            reason = err.errors()[0]["msg"] if hasattr(err, "errors") else str(err)
            raise ValueError(f"{env_name(name)}={raw!r}: {reason}") from None

    def to_env(self, *names: str) -> dict[str, str]:
        """The named settings (all that are set, by default) as environment variables, for a child process."""
        out = {}
        for name in names or tuple(self.model_fields):
            value = getattr(self, name)
            if value is not None:
                out[env_name(name)] = str(int(value)) if isinstance(value, bool) else str(value)
        return out


def env_name(field: str) -> str:
    """The environment variable of a setting, e.g. `max_batch` -> `SELLER_RISK_MAX_BATCH`."""
    return ENV_PREFIX + field.upper()
