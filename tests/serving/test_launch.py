"""How `seller-risk serve` starts BentoML (serving.api.launch.bentoml_command): the environment its
workers read, here the decisions and audit database. Nothing is started; the scorer stands in with
the two things the command reads of it (its pinned model reference and its policy)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from features.policy.definition import load_policy
from features.platform.settings import DEFAULT_POLICY
from models.registry import ModelRef
from serving.api.launch import bentoml_command
from serving.main import app

SCORER = SimpleNamespace(ref=ModelRef("seller-risk", "3", None), policy=load_policy(DEFAULT_POLICY))


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: str | None, shell_db: str | None) -> dict[str, str]:
    monkeypatch.setenv("SELLER_RISK_DATA", str(tmp_path / "data"))
    if shell_db is None:
        monkeypatch.delenv("SELLER_RISK_DB", raising=False)
    else:
        monkeypatch.setenv("SELLER_RISK_DB", shell_db)
    _, env = bentoml_command("127.0.0.1", 3000, SCORER, tmp_path / "features", tmp_path / "models", 2, db)
    return env


def test_the_db_given_reaches_the_workers_over_the_shells(monkeypatch, tmp_path) -> None:
    url = "postgresql+psycopg://rita:secret@db.internal:5432/decisions"
    assert _env(monkeypatch, tmp_path, url, "sqlite:////elsewhere/shell.db")["SELLER_RISK_DB"] == url
    assert _env(monkeypatch, tmp_path, url, None)["SELLER_RISK_DB"] == url


def test_without_a_db_the_workers_get_the_shells_else_the_data_folders(monkeypatch, tmp_path) -> None:
    assert _env(monkeypatch, tmp_path, None, "sqlite:////elsewhere/shell.db")["SELLER_RISK_DB"] == \
        "sqlite:////elsewhere/shell.db"
    default = f"sqlite:///{(tmp_path / 'data' / 'console.db').resolve().as_posix()}"
    assert _env(monkeypatch, tmp_path, None, None)["SELLER_RISK_DB"] == default


def test_serve_offers_db_as_replay_does() -> None:
    runner = CliRunner()
    serve, replay = (runner.invoke(app, [name, "--help"], env={"COLUMNS": "200", "TERM": "dumb"}) for name in ("serve", "replay"))
    assert serve.exit_code == 0 and replay.exit_code == 0
    assert "--db" in serve.output and "--db" in replay.output
