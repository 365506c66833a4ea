"""The console's pages as a reviewer and a leader use them, in-process (Starlette's TestClient over the
real app mounted at /console as the service mounts it), over a real score table written by the batch
job with the session's trained model, the session marketplace's snapshots and policy actions, and a
real decision store on SQLite. Every figure shown is checked against the tables it comes from."""

from __future__ import annotations

import html
import math
import re
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from markupsafe import escape
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from typer.testing import CliRunner

from features.platform import layout
from features.policy.definition import load_policy
from features.platform.settings import Settings
from serving.console.leader import leader_week, per_reviewer
from serving.console.queue import QUEUE_PAGE, RECOVERY_PAGE
from serving.console.rates import CHART_WEEKS
from serving.console.seller import rate_charts
from serving.console.tables import Tables, Week
from serving.store.store import ACTIONS, Store
from serving.batch.summary import Z

PASSWORD = "correct horse battery staple"
WEEKS_BACK = 5  # the earlier scored week: its labels (28-day horizon) are known


# ------------------------------------------------------------------ a scored marketplace (shared with test_browser)


def scored_tables(tmp_path_factory: pytest.TempPathFactory, trained, feature_dir: Path) -> tuple[Path, list[date]]:
    """The session marketplace's latest week and the week WEEKS_BACK before it, scored by the batch job
    with the session's model (once per session, whichever console module asks first): (scores folder,
    [latest, earlier])."""
    from serving.batch.job import BatchConfig, run_batch

    out = tmp_path_factory.getbasetemp() / "console-scores" / "scores"
    weeks = [d for d in sorted(layout.table_partitions(layout.snapshots_dir(feature_dir)))]
    latest, earlier = weeks[-1], weeks[-1 - WEEKS_BACK]
    if not (out / "_done").exists():
        models = Path(trained.tracking_uri.removeprefix("sqlite:///")).parent
        for week in (earlier, latest):
            run_batch(BatchConfig(out=out, features_dir=feature_dir, as_of=week, log_mlflow=False,
                                  model_uri=f"models:/seller-risk/{trained.version}", models_dir=models))
            _record_ids_until_the_record_has_them(out, week)
        (out.parent / "_done").touch()
    return out, [latest, earlier]


def _record_ids_until_the_record_has_them(out: Path, week: date) -> None:
    """Stand-in while the batch job does not write `record_id` yet (serving.records is getting it): one
    derived from the row's week, seller and model version, added only when the column is missing, so
    decisions can be bound to a record here. Does nothing once the job writes its own."""
    for f in layout.score_files(out, week):
        t = pq.read_table(f)
        if "record_id" in t.column_names:
            return
        ids = [f"{week}:{s}:v{v}" for s, v in zip(t.column("seller_id").to_pylist(), t.column("model_version").to_pylist())]
        pq.write_table(t.add_column(0, "record_id", pa.array(ids, pa.string())), f)


def sign_in(client: TestClient, username: str = "rita", password: str = PASSWORD):
    page = client.get("/console/login")
    return client.post("/console/login", data={"username": username, "password": password,
                                               "csrf_token": token(page.text)}, follow_redirects=False)


def token(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def mounted(settings: Settings, store: Store) -> TestClient:
    from serving.console.web import create_app

    return TestClient(Starlette(routes=[Mount("/console", create_app(settings, store))]))


@pytest.fixture(scope="module")
def scored(tmp_path_factory, trained, feature_dir) -> tuple[Path, list[date]]:
    return scored_tables(tmp_path_factory, trained, feature_dir)


@pytest.fixture(scope="module")
def settings(scored, feature_dir, marketplace, tmp_path_factory) -> Settings:
    data = tmp_path_factory.mktemp("console-data")
    return Settings(data=data, features=feature_dir, scores=scored[0], events=marketplace[0], secret_key="pages-test",
                    db=f"sqlite:///{data / 'console.db'}")


@pytest.fixture(scope="module")
def store(settings: Settings):
    store = Store.open(settings.db_url)
    store.add_reviewer("rita", PASSWORD, "Rita Reviewer", role="leader")  # also opens the leader page
    store.add_reviewer("sam", PASSWORD)
    yield store
    store.close()


@pytest.fixture()
def client(settings: Settings, store: Store) -> TestClient:
    c = mounted(settings, store)
    assert sign_in(c).status_code == 303
    return c


@pytest.fixture(scope="module")
def week_rows(scored) -> pd.DataFrame:
    scores, (latest, _) = scored
    return pq.read_table(layout.score_files(scores, latest)).to_pandas()


def cells(text: str, table_class: str) -> list[list[str]]:
    """The text of each body row's cells of the first table with this class."""
    body = text.split(f'class="{table_class}"', 1)[1].split("</tbody>", 1)[0].split("<tbody>", 1)[1]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]


def section(text: str, heading_id: str) -> str:
    return text.split(f'id="{heading_id}"', 1)[1]


# ------------------------------------------------------------------ sign-in and forms


def test_pages_need_a_signed_in_reviewer(settings, store) -> None:
    c = mounted(settings, store)
    for path in ("/console/", "/console/leader", "/console/sellers/S0000001?week=2025-01-06"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/console/login?next=")
    r = c.get("/console/sellers/S0000001?week=2025-01-06", follow_redirects=True)
    assert r.status_code == 200 and 'name="password"' in r.text
    assert 'value="/console/sellers/S0000001?week=2025-01-06"' in r.text  # back there after signing in


def test_sign_in_refuses_a_wrong_password_and_a_form_without_its_token(settings, store) -> None:
    c = mounted(settings, store)
    assert sign_in(c, password="wrong").status_code == 401
    assert "Wrong username or password." in sign_in(c, username="nobody").text
    r = c.post("/console/login", data={"username": "rita", "password": PASSWORD})
    assert r.status_code == 403 and "CSRF" in r.text
    r = sign_in(c)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    assert c.get("/console/").status_code == 200
    page = c.get("/console/")
    assert c.post("/console/logout", data={"csrf_token": token(page.text)}, follow_redirects=False).status_code == 303
    assert c.get("/console/", follow_redirects=False).status_code == 303


def test_the_sign_in_page_names_a_real_command_for_making_an_account(tmp_path) -> None:
    from serving.main import app

    c = mounted(Settings(data=tmp_path / "data", secret_key="sign-in-test"), None)  # no store or tables needed
    named = re.search(r"<code>seller-risk ([^<]+)</code>", c.get("/console/login").text).group(1).split()
    result = CliRunner().invoke(app, [*named, "--help"])  # USERNAME stands for the argument
    assert result.exit_code == 0, f"`seller-risk {' '.join(named)}` is not a command: {result.output}"
    assert "Create a reviewer account" in result.output


def test_the_session_key_is_made_once_and_kept_private(tmp_path) -> None:
    from serving.console.sessions import secret_key

    s = Settings(data=tmp_path / "data")
    key = secret_key(s)
    path = tmp_path / "data" / "console.key"
    assert len(key) >= 48 and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(s) == key  # the second worker reads it
    assert secret_key(Settings(data=tmp_path / "data", secret_key="given")) == "given"


# ------------------------------------------------------------------ the queue


def test_the_queue_lists_the_weeks_early_warning_sellers_then_the_recovery_list(client, scored, week_rows,
                                                                                 policy) -> None:
    scores, (latest, earlier) = scored
    r = client.get("/console/")
    assert r.status_code == 200
    assert f"Review queue, week of {latest}" in r.text
    early = week_rows[week_rows["queue"] == "early_warning"].sort_values("queue_rank")
    shown = cells(section(r.text, "early-warning"), "list")
    assert len(shown) == min(len(early), QUEUE_PAGE)
    for row, (_, want) in zip(shown, early.head(len(shown)).iterrows()):
        assert row[0] == str(int(want["queue_rank"]))  # a nullable int column reads back as float
        assert row[1] == want["seller_id"]
        assert row[2] == f"{want['risk_score']:.1%}"
        at_risk = want["standard_at_risk"]  # the standard it is likeliest to miss, with its reason when it has one
        assert row[3] == policy.metrics[at_risk].label
        # that standard's own reason, never another standard's
        own = next((x["text"] for x in want["reasons"] if x["standard"] == at_risk), "")
        if own:
            assert row[4] == own
        else:  # none (one seller of this week): the record's line saying its risk comes from being judged on it
            exposure = next(c["features"] for c in want["context"] if c["group"] == "exposure")
            assert row[4].startswith(f"Mostly being judged: {policy.metrics[at_risk].label} ") and row[4] in exposure
            page = client.get(f"/console/sellers/{want['seller_id']}?week={latest}")  # the seller page says it too
            assert f'<p class="reason-judged">{escape(row[4])}</p>' in page.text
        assert row[5] == want["risk_band"]
        assert row[8] == "open"
    recovery = week_rows[week_rows["queue"] == "recovery"].sort_values("queue_rank")
    rec = cells(section(r.text, "recovery"), "list")
    assert len(rec) == min(len(recovery), RECOVERY_PAGE)
    first = recovery.iloc[0]
    # the record's standard at risk: of the standards missed now, the one with the largest share of the risk
    missed = first["standard_at_risk"]
    assert missed in list(first["standards_missed_now"])
    assert rec[0][1] == first["seller_id"] and rec[0][3] == policy.metrics[missed].label
    assert rec[0][4] == next(x["text"] for x in first["recovery"] if x["standard"] == missed)
    assert f'href="/console/sellers/{early.iloc[0]["seller_id"]}?week={latest}"' in r.text
    older = client.get(f"/console/?week={earlier}")
    assert f"Review queue, week of {earlier}" in older.text


def test_the_queue_filters_by_standard_category_and_region(client, scored, week_rows, feature_dir) -> None:
    scores, (latest, _) = scored
    snap = pq.read_table(layout.snapshot_files(feature_dir, latest), columns=["seller_id", "category", "region"]).to_pandas()
    early = week_rows[week_rows["queue"] == "early_warning"].merge(snap, on="seller_id")
    standard = early["standard_at_risk"].value_counts().index[-1]
    category = early["category"].value_counts().index[0]
    region = early["region"].value_counts().index[0]
    for query, keep in (
            (f"standard={standard}", early["standard_at_risk"] == standard),  # the standard at risk alone
            (f"category={category}", early["category"] == category),
            (f"region={region}&category={category}", (early["region"] == region) & (early["category"] == category))):
        r = client.get(f"/console/?{query}")
        assert r.status_code == 200, r.text
        want = early[keep].sort_values("queue_rank")["seller_id"].tolist()[:QUEUE_PAGE]
        assert [row[1] for row in cells(section(r.text, "early-warning"), "list")] == want, query


@pytest.mark.parametrize("query, status, words", [
    ("week=last-monday", 400, "week 'last-monday' is not a date"),
    ("week=2019-01-07", 404, "week 2019-01-07 has no scores"),
    ("standard=speed", 400, "standard 'speed' is not one of"),
    ("page=two", 400, "page 'two' is not a whole number"),
])
def test_bad_queue_input_gets_a_4xx_page_naming_it(client, query, status, words) -> None:
    r = client.get(f"/console/?{query}")
    assert r.status_code == status
    assert words in html.unescape(r.text)


# ------------------------------------------------------------------ a seller and a decision


def test_the_seller_page_shows_the_record_its_standards_history_and_actions(client, scored, week_rows, marketplace,
                                                                             feature_dir, policy) -> None:
    scores, (latest, earlier) = scored
    actions = pd.read_parquet(marketplace[0] / "policy_actions")
    queued = week_rows[week_rows["queue"] == "early_warning"]
    acted = queued[queued["seller_id"].isin(actions["seller_id"])]
    row = (acted if len(acted) else queued).sort_values("queue_rank").iloc[0]
    seller = row["seller_id"]
    r = client.get(f"/console/sellers/{seller}")
    assert r.status_code == 200
    t = r.text
    assert f"Week of {latest}: risk <strong>{row['risk_score']:.1%}</strong>" in t
    assert row["record_id"] in t and row["feature_spec_hash"] in t and f"v{row['model_version']}" in t
    assert f'name="record_id" value="{row["record_id"]}"' in t
    for reason in row["reasons"]:
        assert str(escape(reason["text"])) in t
    reasons_block = t.split('<ol class="reasons">', 1)[1].split("</ol>", 1)[0]
    for ctx in row["context"]:  # context sits beside the reasons, never among them
        assert str(escape(ctx["features"])) not in reasons_block
        assert str(escape(ctx["features"])) in t
    assert t.count('<figure class="chart">') == len(policy.metrics)
    # the score history: both scored weeks, newest first, each with its risk
    history = cells(t, "list history")
    assert [h[0] for h in history] == [str(latest), str(earlier)][:len(history)]
    assert history[0][1] == f"{row['risk_score']:.1%}"
    mine = actions[actions["seller_id"] == seller].sort_values("issued_at", ascending=False)
    shown = cells(t, "list actions")
    if len(mine):
        assert [a[0] for a in shown] == [d.strftime("%Y-%m-%d") for d in mine["issued_at"]]
        assert [a[1] for a in shown] == mine["action"].tolist()
    else:
        assert shown == [["None."]]


def test_the_seller_page_shows_the_risk_of_each_standard_riskiest_first(client, week_rows) -> None:
    # the riskiest seller missing a standard now, the top of the early-warning queue (cached with the week)
    # and the riskiest unqueued seller (read from the table with a filter)
    missing = week_rows[week_rows["standards_missed_now"].map(len) > 0]
    queued = week_rows[week_rows["queue"] == "early_warning"].sort_values("queue_rank")
    unqueued = week_rows[week_rows["queue"].isna()].sort_values("risk_score")
    assert len(missing) and len(queued) and len(unqueued)
    picks = [missing.sort_values("risk_score").iloc[-1], queued.iloc[0], unqueued.iloc[-1]]
    for row in picks:
        r = client.get(f"/console/sellers/{row['seller_id']}")
        assert r.status_code == 200
        by_risk = sorted(row["risk_by_standard"], key=lambda s: -s["risk"])  # stable: policy order on ties
        assert len(by_risk) > 1
        shown = cells(r.text, "list by-standard")
        assert [s[0] for s in shown] == [s["label"] for s in by_risk]
        assert [s[1] for s in shown] == [f"{s['risk']:.1%}" for s in by_risk]
        assert [s[2] for s in shown] == [f"{s['share']:.1%}" for s in by_risk]  # the risk made of its standards
        missed = set(row["standards_missed_now"])
        notes = [", ".join((["standard at risk"] if s["standard"] == row["standard_at_risk"] else [])
                           + (["missed now"] if s["standard"] in missed else [])) for s in by_risk]
        assert [s[3] for s in shown] == notes
        table = r.text.split('class="list by-standard"', 1)[1].split("</tbody>", 1)[0]
        highlighted = re.findall(r'<tr class="[^"]*\bat-risk\b[^"]*"><td>([^<]*)</td>', table)
        assert [html.unescape(h) for h in highlighted] == [s["label"] for s in by_risk
                                                           if s["standard"] == row["standard_at_risk"]]
        if missed:  # the record's own: the missed standard with the largest share
            assert row["standard_at_risk"] == max((s for s in by_risk if s["standard"] in missed),
                                                  key=lambda s: s["share"])["standard"]
        else:  # the largest share, which is the riskiest
            assert row["standard_at_risk"] == by_risk[0]["standard"]


def test_the_rate_charts_are_the_policys_rates_with_the_threshold_line(scored, feature_dir, policy, week_rows) -> None:
    scores, (latest, _) = scored
    seller = week_rows.sort_values("risk_score").iloc[-1]["seller_id"]
    tables = Tables(scores, feature_dir, Path("/nonexistent"), policy.version)
    rates = tables.rates(seller, policy, latest)
    assert rates.weeks[-1] == latest and len(rates.weeks) <= CHART_WEEKS
    snap = pq.read_table(layout.snapshot_files(feature_dir, latest)).to_pandas()
    snap = snap[snap["seller_id"] == seller]
    from features.policy.standing import standing

    for j, name in enumerate(rates.standards):
        s = standing(snap, policy.metrics[name])
        assert rates.rate[-1, j] == pytest.approx(float(s.rate[0]), rel=1e-6, nan_ok=True)
        assert bool(rates.missing[-1, j]) == bool(s.missing[0])
    older = tables.rates(seller, policy, latest - timedelta(days=7 * CHART_WEEKS))  # outside the cache: read
    assert older.weeks and older.weeks[-1] <= latest - timedelta(days=7 * CHART_WEEKS)
    charts = rate_charts(rates, policy)
    c = charts[0]
    metric = policy.metrics[c.standard]
    top, bottom = 8, c.height - 20
    assert top <= c.threshold_y <= bottom
    for p, v in zip(c.points, [v for v in rates.rate[:, 0] if v == v]):  # higher rate, higher on the chart
        above = v > metric.threshold
        assert (p["y"] < c.threshold_y) == above or math.isclose(v, metric.threshold)


def test_a_decision_is_recorded_on_the_record_shown_and_seen_everywhere(client, scored, week_rows, store) -> None:
    scores, (latest, _) = scored
    row = week_rows[week_rows["queue"] == "early_warning"].sort_values("queue_rank").iloc[1]
    seller = row["seller_id"]
    page = client.get(f"/console/sellers/{seller}")
    note = "Called the seller <script>alert(1)</script> & agreed a plan"
    r = client.post(f"/console/sellers/{seller}", follow_redirects=False, data={
        "csrf_token": token(page.text), "record_id": row["record_id"], "week": str(latest),
        "action": "contact_seller", "note": note})
    assert r.status_code == 303 and r.headers["location"] == f"/console/sellers/{seller}?week={latest}"
    after = client.get(r.headers["location"])
    assert f"Decision recorded: contact seller on {seller}" in after.text
    assert "<script>alert(1)</script>" not in after.text
    assert "Called the seller &lt;script&gt;alert(1)&lt;/script&gt; &amp; agreed a plan" in after.text
    history = cells(after.text, "list decisions")
    assert history[0][1:4] == ["rita", "contact seller", note]
    assert "Decision recorded" not in client.get(r.headers["location"]).text  # a flash shows once
    d = store.decisions_for_seller(seller)[0]
    assert (d.record_id, d.as_of, d.model_version, d.feature_spec_hash, d.risk_score, d.reviewer, d.action, d.note) == \
        (row["record_id"], latest, row["model_version"], row["feature_spec_hash"], row["risk_score"], "rita",
         "contact_seller", note)
    queue = cells(section(client.get("/console/").text, "early-warning"), "list")
    mine = next(q for q in queue if q[1] == seller)
    assert mine[8:] == ["decided: contact seller", "rita"]


def test_a_decision_post_is_refused_without_its_token_or_with_bad_values(client, scored, week_rows, store) -> None:
    scores, (latest, _) = scored
    row = week_rows[week_rows["queue"] == "early_warning"].sort_values("queue_rank").iloc[2]
    seller, before = row["seller_id"], len(store.decisions_for_seller(row["seller_id"]))
    good = {"record_id": row["record_id"], "week": str(latest), "action": "formal_warning", "note": "n"}
    r = client.post(f"/console/sellers/{seller}", data=good)
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post(f"/console/sellers/{seller}", data={**good, "csrf_token": "forged"})
    assert r.status_code == 403
    t = token(client.get("/console/").text)
    r = client.post(f"/console/sellers/{seller}", data={**good, "csrf_token": t, "action": "ban_forever"})
    assert r.status_code == 400 and "action &#39;ban_forever&#39; is not one of: " + ", ".join(ACTIONS) in r.text
    r = client.post(f"/console/sellers/{seller}", data={**good, "csrf_token": t, "record_id": "other"})
    assert r.status_code == 400 and "record &#39;other&#39; is not the seller" in r.text
    r = client.post("/console/sellers/S9999999", data={**good, "csrf_token": t})
    assert r.status_code == 404 and "seller &#39;S9999999&#39; is not in the scores of week" in r.text
    assert len(store.decisions_for_seller(seller)) == before


def test_an_unknown_or_hostile_seller_id_gets_an_escaped_404(client, scored) -> None:
    r = client.get("/console/sellers/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.status_code == 404
    assert "<script>alert(1)</script>" not in r.text
    assert "seller &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; is not in the scores" in r.text
    assert client.get("/console/sellers/S0000001?week=someday").status_code == 400


# ------------------------------------------------------------------ the leader


def test_the_leader_page_figures(client, scored, store, feature_dir, settings) -> None:
    scores, (latest, earlier) = scored
    seller_rows = {}
    for week in (latest, earlier):
        t = pq.read_table(layout.score_files(scores, week)).to_pandas()
        seller_rows[week] = t[t["queue"] == "early_warning"]
    # one decision on the earlier week by sam, so both weeks and both reviewers show
    row = seller_rows[earlier].iloc[0]
    c2 = mounted(settings, store)
    sign_in(c2, "sam")
    page = c2.get(f"/console/sellers/{row['seller_id']}?week={earlier}")
    c2.post(f"/console/sellers/{row['seller_id']}", data={
        "csrf_token": token(page.text), "record_id": row["record_id"], "week": str(earlier), "action": "no_action",
        "note": ""})
    r = client.get("/console/leader")
    assert r.status_code == 200
    table = {row[0]: row for row in cells(r.text, "list leader")}
    decisions = store.decisions_frame()
    for week in (latest, earlier):
        p = seller_rows[week]["risk_score"].to_numpy()
        half = 1.959963984540054 * math.sqrt(float((p * (1 - p)).sum()))
        got = table[str(week)]
        assert got[1] == f"{len(p):,}"
        assert got[2] == f"{p.sum():,.1f}"
        assert got[3] == f"{max(0, p.sum() - half):,.1f} to {p.sum() + half:,.1f}"
        mine = decisions[decisions["as_of"] == week]
        covered = mine["seller_id"].isin(set(seller_rows[week]["seller_id"])).groupby(mine["seller_id"]).any().sum()
        assert got[5] == f"{len(mine):,}"
        assert got[6] == f"{covered:,} ({covered / len(p):.1%})"
    labels = pq.read_table(layout.snapshot_files(feature_dir, earlier), columns=["seller_id", "breach"]).to_pandas()
    breached = labels[labels["seller_id"].isin(seller_rows[earlier]["seller_id"])]["breach"].astype(bool).sum()
    assert table[str(earlier)][8] == f"{breached:,} of {len(seller_rows[earlier]):,}"
    assert table[str(latest)][8] == "not known yet"
    reviewers = {row[0]: row for row in cells(r.text, "list reviewers")}
    assert set(reviewers) == set(decisions["reviewer"])
    assert reviewers["sam"][1] == str((decisions["reviewer"] == "sam").sum())


# ------------------------------------------------------------------ pure parts (no marketplace)


def test_leader_week_interval_coverage_and_time_to_decision() -> None:
    queued = pd.DataFrame({"seller_id": ["a", "b", "c", "d"], "queue": ["early_warning"] * 3 + ["recovery"],
                           "risk_score": [0.5, 0.2, 0.1, 0.9]})
    scored_at = datetime(2026, 1, 6, 6, tzinfo=UTC)
    week = Week(date(2026, 1, 5), 100, queued, pa.table({"x": [1]}), True, scored_at)
    decisions = pd.DataFrame({"seller_id": ["a", "a", "d"], "reviewer": ["r", "r", "s"], "action": ["x"] * 3,
                              "decided_at": [scored_at + timedelta(hours=h) for h in (2, 30, 4)]})
    w = leader_week(week, decisions, pd.Series([True, False, None], index=["a", "b", "c"]))
    var = 0.5 * 0.5 + 0.2 * 0.8 + 0.1 * 0.9
    assert (w.queue, w.recovery, w.decisions, w.covered) == (3, 1, 3, 1)
    assert w.expected == pytest.approx(0.8) and w.high == pytest.approx(0.8 + Z[0.95] * math.sqrt(var))
    assert w.low == 0.0  # floored
    assert w.coverage == pytest.approx(1 / 3)
    assert w.median_hours == pytest.approx(3.0)  # first decisions: a after 2 h, d after 4 h
    assert (w.breached, w.labelled) == (1, 2)
    assert per_reviewer(decisions) == [{"reviewer": "r", "total": 2, "actions": {"x": 2}},
                                             {"reviewer": "s", "total": 1, "actions": {"x": 1}}]


def test_a_week_is_read_again_when_its_files_change(tmp_path) -> None:
    policy = load_policy("walmart-us-2026")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_console import score_week

    scores = tmp_path / "scores"
    week = date(2026, 1, 5)
    part = layout.score_partition(scores, week)
    part.mkdir(parents=True)
    rng = np.random.default_rng(1)
    pq.write_table(score_week(200, week, policy, rng), part / "part-00000.parquet")
    tables = Tables(scores, tmp_path / "features", tmp_path / "events", policy.version)
    first = tables.week(week)
    assert tables.week(week) is first  # cached
    pq.write_table(score_week(300, week, policy, rng), part / "part-00000.parquet")
    again = tables.week(week)
    assert again is not first and again.sellers == 300
    assert list(again.queued["queue"].unique()) == ["early_warning", "recovery"]
    early = again.queued[again.queued["queue"] == "early_warning"]
    assert early["queue_rank"].tolist() == list(range(1, len(early) + 1))
