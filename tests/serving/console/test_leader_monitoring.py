"""The leader page's monitoring, in-process: the breach forecast and the monitored weeks from the latest batch
summary, a warning when a figure leaves its interval two weeks running (and none for one week), and a warning
when the scoring model is older than the policy's limit. The weeks' figures come from the real monitoring
functions over small frames whose realised breaches are either what the model expected or none at all."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.platform import layout
from features.platform.settings import Settings
from features.policy.definition import load_policy
from serving.batch.monitoring import forecast, monitor
from serving.console.leader import champion_warning, watch
from serving.store.store import Store
from tests.serving.console.test_pages import PASSWORD, cells, mounted, sign_in

POLICY = load_policy("walmart-us-2026")
WEEKS = [date(2026, 1, 5) + timedelta(days=7 * i) for i in range(4)]
LATEST = WEEKS[-1] + timedelta(days=35)


def matured_week(breaches: bool) -> pd.DataFrame:
    """400 compliant sellers at risk 0.1 (40 expected), the 12 first queued; `breaches`: every tenth seller
    breached (40, as expected), else none did (far below any interval)."""
    n, standards = 400, list(POLICY.metrics)
    hit = (np.arange(n) % 10 == 0) if breaches else np.zeros(n, bool)
    frame = pd.DataFrame({"seller_id": [f"S{i:04d}" for i in range(n)], "risk_score": 0.1,
                          "queue": ["early_warning"] * 12 + [None] * (n - 12), "breach": hit})
    for s in standards:
        frame[f"risk_{s}"] = 0.1 / len(standards)
        frame[f"breach_{s}"] = hit & (np.arange(n) % 80 == 0) if breaches else hit
    return frame


def summary(pattern: list[bool], registered_days_ago: int = 10) -> dict:
    rows = monitor({w: matured_week(b) for w, b in zip(WEEKS, pattern)}, list(POLICY.metrics), 28, 0.9)
    registered = (datetime.now(UTC) - timedelta(days=registered_days_ago)).replace(microsecond=0).isoformat()
    return {"as_of": str(LATEST), "policy_version": POLICY.version,
            "model": {"name": "seller-risk", "version": "3", "run_id": "r", "registered_at": registered},
            "breach_forecast": {"horizon_days": 28, **forecast(np.full(1_000, 0.05), rows, 0.9)},
            "monitoring": {"weeks": rows}}


def test_two_weeks_running_outside_warn_one_does_not() -> None:
    today = datetime.now(UTC).date()
    two = watch(summary([True, True, False, False]), POLICY, today)
    # no breach at all those two weeks: the count among compliant sellers and every standard's calibration
    # (5 expected each) left their intervals; the queue's (1.2 expected of 12) did not
    assert two.warnings[0].startswith("Breaches among compliant sellers fell outside its interval 2 weeks running")
    labels = ", ".join(m.label for m in POLICY.metrics.values())
    assert len(two.warnings) == 2 and two.warnings[1].startswith(f"Calibration of 8 standards ({labels}) fell "
                                                                 "outside their intervals 2 weeks running")
    assert f"{WEEKS[2]}, {WEEKS[3]}" in two.warnings[0] and "fewer than the interval allowed" in two.warnings[0]
    assert watch(summary([True, False, True, False]), POLICY, today).warnings == []
    assert [w["as_of"] for w in two.weeks] == [str(w) for w in reversed(WEEKS)]  # newest first


def test_the_champion_s_age_against_the_policy() -> None:
    today = date(2026, 6, 1)
    assert champion_warning("2026-02-01T00:00:00+00:00", today, 120, "m v1") is None  # 120 days: not older
    said = champion_warning("2026-01-31T00:00:00+00:00", today, 120, "m v1")
    assert said.startswith("The scoring model (m v1) is 121 days old, older than the policy's limit of 120 days")
    assert champion_warning(None, today, 120, "m v1") is None


@pytest.fixture()
def console(tmp_path) -> tuple[Settings, Store]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_console import score_week

    scores = tmp_path / "scores"
    part = layout.score_partition(scores, LATEST)
    part.mkdir(parents=True)
    pq.write_table(score_week(300, LATEST, POLICY, np.random.default_rng(3)), part / "part-00000.parquet")
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(data=data, features=tmp_path / "features", scores=scores, events=tmp_path / "events",
                        secret_key="leader-test", db=f"sqlite:///{data / 'console.db'}", policy=POLICY.version)
    store = Store.open(settings.db_url)
    store.add_reviewer("rita", PASSWORD, "Rita Reviewer", role="leader")
    yield settings, store
    store.close()


def _page(console, written: dict) -> str:
    settings, store = console
    layout.summary_file(settings.scores_dir, LATEST).write_text(json.dumps(written))
    client = mounted(settings, store)
    assert sign_in(client).status_code == 303
    r = client.get("/console/leader")
    assert r.status_code == 200
    return r.text


def test_the_page_shows_the_forecast_the_weeks_and_the_warnings(console) -> None:
    written = summary([True, True, False, False], registered_days_ago=200)
    text = _page(console, written)
    alerts = re.findall(r'role="alert">([^<]*)</p>', text)
    assert len(alerts) == 3 and "2 weeks running" in alerts[0] and "2 weeks running" in alerts[1]
    assert "is 200 days old, older than the policy&#39;s limit of 120 days" in alerts[-1]
    f = written["breach_forecast"]
    assert f"plan for <strong>{f['planned']:,.1f}</strong> breaches" in text
    assert f"{f['low']:,.1f} to {f['high']:,.1f}" in text and "model&#39;s own error over 4 matured weeks" in text
    table = cells(text, "list monitoring")
    assert [r[0] for r in table] == [str(w) for w in reversed(WEEKS)]
    newest = written["monitoring"]["weeks"][-1]["compliant"]
    assert table[0][3] == f"0 / {newest['expected']:,.1f} outside" and table[0][5] == "0.00"
    assert table[0][4] == f"{newest['low']:,.1f} to {newest['high']:,.1f}"
    oldest = written["monitoring"]["weeks"][0]
    assert table[-1][1] == f"{oldest['queue']['precision']:.1%} (2 of 12)"  # S0000 and S0010 breached
    assert table[-1][3] == "40 / 40.0"


def test_one_week_outside_and_a_young_model_show_no_warning(console) -> None:
    text = _page(console, summary([True, True, True, False]))
    assert 'role="alert"' not in text
    assert cells(text, "list monitoring")[0][3].endswith("outside")  # marked, but one week is not a warning
