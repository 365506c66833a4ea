"""Settings: one name and one default each, read from the environment and handed on to a child
process unchanged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from features.platform.settings import CHAMPION_URI, Settings, env_name


def test_defaults_and_derived_folders() -> None:
    s = Settings.from_env({})
    assert (s.model_uri, s.models, s.max_batch, s.recycle_every, s.telemetry) == (
        CHAMPION_URI, Path("models"), 256, 100, False)
    assert (s.events_dir, s.features_dir, s.scores_dir) == (Path("data/events"), Path("data/features"), Path("data/scores"))
    moved = Settings.from_env({"SELLER_RISK_DATA": "/srv/risk", "SELLER_RISK_SCORES": "/fast/scores"})
    assert (moved.events_dir, moved.scores_dir) == (Path("/srv/risk/events"), Path("/fast/scores"))


def test_environment_is_typed_and_round_trips() -> None:
    env = {"SELLER_RISK_MAX_BATCH": "1", "SELLER_RISK_TELEMETRY": "1", "SELLER_RISK_WEEK": "2025-12-29",
           "SELLER_RISK_API_KEY": "", "SELLER_RISK_WORKERS": "3", "UNRELATED": "x"}
    s = Settings.from_env(env)
    assert (s.max_batch, s.telemetry, s.week, s.api_key, s.workers) == (1, True, date(2025, 12, 29), None, 3)
    assert Settings.from_env(s.to_env()) == s
    assert s.to_env("max_batch", "telemetry") == {"SELLER_RISK_MAX_BATCH": "1", "SELLER_RISK_TELEMETRY": "1"}
    assert env_name("recycle_every") == "SELLER_RISK_RECYCLE_EVERY"


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(ValidationError, match="max_batch"):
        Settings.from_env({"SELLER_RISK_MAX_BATCH": "many"})


def test_one_setting_is_read_and_checked_alone() -> None:
    env = {"SELLER_RISK_TRACKING_TIMEOUT": "2.5", "SELLER_RISK_MAX_BATCH": "many"}
    assert Settings.one("tracking_timeout", env) == 2.5  # the bad MAX_BATCH is not its concern
    assert Settings.one("tracking_timeout", {}) == 5.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ValueError, match="SELLER_RISK_TRACKING_TIMEOUT"):
            Settings.one("tracking_timeout", {"SELLER_RISK_TRACKING_TIMEOUT": bad})


def test_the_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [env_name(n) for n in Settings.model_fields if f"`{env_name(n)}`" not in readme]
    assert not missing, f"README's settings table lacks {missing}"
