"""What each console page shows, as data: the week's queue, a seller's history, a leader's weekly
figures. Pure functions over frames do the work; `Tables` is the one reader, at the edge, of the three
tables the pages draw on (the weekly score table, the feature snapshots and the events' policy_actions),
with each week's queued rows read once and kept until the week's files change (their mtimes and sizes).

Nothing here renders HTML or touches the decision store: the web layer (serving.console.web) passes
the store's decisions in as frames and lists.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from features.platform import layout
from features.policy.definition import Policy, PolicyError, load_policy
from features.policy.standing import standing
from serving.batch.summary import EARLY_WARNING, RECOVERY, expected_breaches

QUEUE_PAGE = 100  # early-warning rows per page
RECOVERY_PAGE = 50  # recovery rows per page
CHART_WEEKS = 13  # a seller's rates are charted over the last quarter of snapshots
RATE_INPUTS = ("volume", "gap", "trend")  # what features.policy.standing reads of each standard

QUEUE_COLUMNS = ["seller_id", "risk_score", "risk_band", "population", "standards_missed_now", "reasons", "recovery",
                 "model_name", "model_version", "policy_version", "feature_spec_hash", "run_id", "scored_at",
                 "queue", "queue_rank", "band_meaning", "context", "standard_at_risk", "risk_by_standard"]
"""What a week's queued rows are read with (plus `record_id` when the table has it; columns the table lacks
are skipped). The seller page shows a queued seller's record from these, so they hold all it shows."""
HISTORY_COLUMNS = ["risk_score", "risk_band", "queue", "queue_rank", "model_version"]


class NotFound(LookupError):
    """A week, seller or record the tables do not hold; the message says which and what there is."""


class BadInput(ValueError):
    """A query or form value that cannot be read (a week that is not a date, an unknown action...)."""


# ------------------------------------------------------------------ reading: the one edge


def _stamp(files: list[Path]) -> tuple:
    """What identifies a set of files' contents for the cache: path, mtime and size of each."""
    out = []
    for f in files:
        st = f.stat()
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass
class Week:
    """One scored week as the queue and leader pages need it: its queued sellers (both lists), with
    the first reason, the standards at risk, category and region, and their full records by seller."""

    as_of: date
    sellers: int  # every scored seller that week
    queued: pd.DataFrame  # one row per queued seller, in list order
    records: pa.Table  # the queued sellers' full rows, same order as `queued`
    has_record_id: bool
    scored_at: datetime | None
    position: dict[str, int] = field(default_factory=dict)  # seller_id -> row of `queued`

    def record(self, seller_id: str) -> dict | None:
        i = self.position.get(seller_id)
        return None if i is None else self.records.slice(i, 1).to_pylist()[0]


class Tables:
    """The console's reader of the score table, the snapshots and the policy actions. Thread-safe;
    a week is re-read when any of its files changes."""

    def __init__(self, scores: Path, features: Path, events: Path, policy: str) -> None:
        self.scores, self.features, self.events, self.policy_name = Path(scores), Path(features), Path(events), policy
        self._lock = threading.Lock()
        self._weeks: dict[date, tuple[tuple, Week]] = {}
        self._actions: tuple[tuple, pd.DataFrame] | None = None
        self._rates: tuple[tuple, RateCube] | None = None
        self._duck = None
        self._policies: dict[str, Policy] = {}

    # the weeks
    def weeks(self) -> list[date]:
        """Scored weeks, newest first."""
        return sorted(layout.scored_weeks(self.scores), reverse=True)

    def pick_week(self, text: str | None) -> date:
        """The week a `?week=` names (a scored one), else the latest scored week."""
        weeks = self.weeks()
        if not weeks:
            raise NotFound(f"the score table {self.scores} holds no scored week yet: run `seller-risk score`")
        if text is None or text == "":
            return weeks[0]
        try:
            week = date.fromisoformat(text)
        except ValueError:
            raise BadInput(f"week {text!r} is not a date: give it as YYYY-MM-DD") from None
        if week not in weeks:
            shown = ", ".join(str(w) for w in weeks[:8]) + (" ..." if len(weeks) > 8 else "")
            raise NotFound(f"week {week} has no scores; scored weeks: {shown}")
        return week

    def week(self, as_of: date) -> Week:
        files = layout.score_files(self.scores, as_of)
        if not files:
            raise NotFound(f"week {as_of} has no scores in {self.scores}")
        snap = layout.snapshot_files(self.features, as_of)
        key = _stamp(files) + _stamp(snap)
        hit = self._weeks.get(as_of)
        if hit is not None and hit[0] == key:
            return hit[1]
        with self._lock:
            hit = self._weeks.get(as_of)
            if hit is not None and hit[0] == key:
                return hit[1]
            week = read_week(as_of, files, snap)
            self._weeks[as_of] = (key, week)
            return week

    # one seller
    def record(self, as_of: date, seller_id: str) -> dict:
        """A seller's full score row of a week (the cached one when queued, else read with a filter)."""
        week = self.week(as_of)
        row = week.record(seller_id)
        if row is not None:
            return row
        files = layout.score_files(self.scores, as_of)
        rows = self._query("SELECT * FROM read_parquet($files) WHERE seller_id = $id LIMIT 1",
                           {"files": [str(f) for f in files], "id": seller_id})
        if rows.empty:
            raise NotFound(f"seller {seller_id!r} is not in the scores of week {as_of} "
                           f"({week.sellers:,} sellers scored)")
        return _plain_row(rows.iloc[0].to_dict())

    def history(self, seller_id: str) -> pd.DataFrame:
        """The seller's score week by week (every scored week holding it), oldest first."""
        files = [str(f) for f in layout.score_files(self.scores)]
        if not files:
            return pd.DataFrame(columns=["as_of", *HISTORY_COLUMNS])
        return self._query(f"SELECT CAST(as_of AS DATE) AS as_of, {', '.join(HISTORY_COLUMNS)} "
                           "FROM read_parquet($files, hive_partitioning = true, union_by_name = true) WHERE seller_id = $id "
                           "ORDER BY as_of",
                           {"files": files, "id": seller_id})

    def rates(self, seller_id: str, policy: Policy, upto: date, weeks: int = CHART_WEEKS) -> Rates:
        """Each standard's rate for the seller over the last `weeks` snapshots up to `upto`: from the
        in-memory cube of the latest snapshots when it covers them, else read from the snapshots."""
        parts = layout.table_partitions(layout.snapshots_dir(self.features))
        chosen = [(d, p) for d, p in parts.items() if d <= upto][-weeks:]
        if not chosen:
            return Rates([], list(policy.metrics), np.zeros((0, len(policy.metrics))), np.zeros((0, 0), bool),
                         np.zeros((0, 0), bool))
        latest = list(parts.items())[-weeks:]
        if {d for d, _ in chosen} <= {d for d, _ in latest}:
            cube = self._cube(latest, policy)
            return cube.seller(seller_id, [d for d, _ in chosen])
        files = [str(f) for _, p in chosen for f in layout.partition_files(p)]
        cols = [f'"{m}_{s}"' for m in policy.metrics for s in RATE_INPUTS]
        rows = self._query(f"SELECT CAST(as_of AS DATE) AS as_of, {', '.join(cols)} "
                           "FROM read_parquet($files, hive_partitioning = true, union_by_name = true) "
                           "WHERE seller_id = $id ORDER BY as_of", {"files": files, "id": seller_id})
        return rates_of(rows, policy)

    def _cube(self, weeks: list[tuple[date, Path]], policy: Policy) -> RateCube:
        files = [f for _, p in weeks for f in layout.partition_files(p)]
        key = (policy.version, _stamp(files))
        if self._rates is not None and self._rates[0] == key:
            return self._rates[1]
        with self._lock:
            if self._rates is not None and self._rates[0] == key:
                return self._rates[1]
            cube = RateCube.read(weeks, policy)
            self._rates = (key, cube)
            return cube

    def _query(self, sql: str, params: dict) -> pd.DataFrame:
        """A DuckDB query on the console's one connection (a cursor per call: pages run in threads);
        the connection keeps the Parquet files' metadata between requests."""
        if self._duck is None:
            with self._lock:
                if self._duck is None:
                    import duckdb

                    con = duckdb.connect()
                    con.execute("SET threads = 1")  # one page, one core: the other serves the next request
                    con.execute("SET parquet_metadata_cache = true")
                    self._duck = con
        cursor = self._duck.cursor()
        try:
            return cursor.execute(sql, params).df()
        finally:
            cursor.close()

    def actions(self, seller_id: str) -> pd.DataFrame:
        """The marketplace's warnings, suppressions and suspensions of the seller, newest first."""
        frame = self._all_actions()
        if frame.empty:
            return frame
        return frame[frame["seller_id"] == seller_id].sort_values("issued_at", ascending=False)

    def _all_actions(self) -> pd.DataFrame:
        files = _table_files(self.events, "policy_actions")
        key = _stamp(files)
        if self._actions is not None and self._actions[0] == key:
            return self._actions[1]
        with self._lock:
            frame = (pa.concat_tables([pq.read_table(f) for f in files]).to_pandas() if files
                     else pd.DataFrame(columns=["seller_id", "issued_at", "action", "metric", "metric_value", "threshold"]))
            self._actions = (key, frame)
            return frame

    def labels(self, as_of: date, seller_ids: list[str]) -> pd.Series | None:
        """Did each seller breach within the horizon after `as_of` (the snapshot's `breach` label)? None
        while the week's labels are not known yet (the horizon has not passed)."""
        files = layout.snapshot_files(self.features, as_of)
        if not files:
            return None
        t = pq.read_table(files, columns=["seller_id", "breach"])
        if t.num_rows == 0 or t.column("breach").null_count == t.num_rows:
            return None
        frame = t.to_pandas().set_index("seller_id")["breach"]
        return frame.reindex(seller_ids)

    def policy(self, version: str | None) -> Policy:
        """The policy a record was scored under (by its version), else the configured one."""
        for name in (version, self.policy_name):
            if not name:
                continue
            if name not in self._policies:
                try:
                    self._policies[name] = load_policy(name)
                except PolicyError:
                    continue
            return self._policies[name]
        raise NotFound(f"policy {version or self.policy_name!r} is not shipped with this installation")


def _plain_row(row: dict) -> dict:
    """A DuckDB row as pyarrow's to_pylist gives it: lists of dicts as lists, NaN/NaT as None."""
    out = {}
    for k, v in row.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif v is pd.NaT or (isinstance(v, float) and v != v):
            v = None
        elif isinstance(v, pd.Timestamp):
            v = v.to_pydatetime()
        out[k] = v
    return out


def _table_files(events: Path, name: str) -> list[Path]:
    """An event table's Parquet files: NAME.parquet, or the files under a folder NAME/."""
    single = events / f"{name}.parquet"
    if single.is_file():
        return [single]
    folder = events / name
    return sorted(p for p in folder.rglob("*.parquet") if p.is_file()) if folder.is_dir() else []


def read_week(as_of: date, files: list[Path], snapshot: list[Path]) -> Week:
    """Read a week's queued rows once (both lists), with category and region from the week's snapshot."""
    dataset = ds.dataset(files, format="parquet")
    names = dataset.schema.names
    has_id = "record_id" in names
    columns = [c for c in (["record_id"] if has_id else []) + QUEUE_COLUMNS if c in names]
    table = dataset.to_table(columns=columns, filter=ds.field("queue").is_valid())
    sellers = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    table = table.take(_list_order(table))
    queued = queue_frame(table)
    if snapshot:
        snap = pq.read_table(snapshot, columns=["seller_id", "category", "region"]).to_pandas()
        snap = snap.drop_duplicates("seller_id").set_index("seller_id")
        queued["category"] = snap["category"].reindex(queued["seller_id"]).astype(object).to_numpy()
        queued["region"] = snap["region"].reindex(queued["seller_id"]).astype(object).to_numpy()
    else:
        queued["category"] = queued["region"] = None
    scored_at = None
    if "scored_at" in table.column_names and table.num_rows:
        value = table.column("scored_at")[0].as_py()
        scored_at = value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    position = {s: i for i, s in enumerate(queued["seller_id"])}
    return Week(as_of, sellers, queued, table, has_id, scored_at, position)


def _list_order(table: pa.Table) -> np.ndarray:
    """Rows in list order: the early-warning queue first, then the recovery list, each by rank."""
    q = np.asarray(table.column("queue").to_pylist(), dtype=object)
    rank = table.column("queue_rank").to_numpy(zero_copy_only=False)
    return np.lexsort((rank, q != EARLY_WARNING))


# ------------------------------------------------------------------ a seller's rates


@dataclass(frozen=True)
class Rates:
    """One seller's standards week by week: rate (NaN without volume), evaluated, missed; (weeks, standards)."""

    weeks: list[date]
    standards: list[str]
    rate: np.ndarray
    evaluated: np.ndarray
    missing: np.ndarray


def rates_of(rows: pd.DataFrame, policy: Policy) -> Rates:
    """A seller's snapshot rows (as_of, each standard's volume, gap and trend) as the policy's rates."""
    names = list(policy.metrics)
    if rows.empty:
        return Rates([], names, np.zeros((0, len(names))), np.zeros((0, len(names)), bool),
                     np.zeros((0, len(names)), bool))
    stands = [standing(rows, policy.metrics[m]) for m in names]
    weeks = [pd.Timestamp(d).date() for d in rows["as_of"]]  # DuckDB gives Timestamps; the pages speak dates
    return Rates(weeks, names, np.column_stack([s.rate for s in stands]),
                 np.column_stack([s.evaluated for s in stands]), np.column_stack([s.missing for s in stands]))


@dataclass
class RateCube:
    """Every seller's rate per standard over the latest snapshot weeks, kept in memory so a seller page
    needs one binary search, not a scan of every week's file: (weeks, sellers, standards) float32 rates
    (NaN: no volume, or not in that week's snapshot) and evaluated / missed flags. About 3.4 MB per week
    per 100,000 sellers with 8 standards."""

    weeks: list[date]
    standards: list[str]
    ids: np.ndarray  # sorted seller ids (every week's)
    rate: np.ndarray
    evaluated: np.ndarray
    missing: np.ndarray

    @classmethod
    def read(cls, weeks: list[tuple[date, Path]], policy: Policy) -> RateCube:
        names = list(policy.metrics)
        columns = ["seller_id", *(f"{m}_{s}" for m in names for s in RATE_INPUTS)]
        frames = [pq.read_table(layout.partition_files(p), columns=columns).to_pandas() for _, p in weeks]
        ids = np.unique(np.concatenate([f["seller_id"].to_numpy(dtype=str) for f in frames])) if frames \
            else np.array([], dtype=str)
        shape = (len(frames), len(ids), len(names))
        rate = np.full(shape, np.nan, dtype="float32")
        evaluated, missing = np.zeros(shape, bool), np.zeros(shape, bool)
        for w, frame in enumerate(frames):
            at = np.searchsorted(ids, frame["seller_id"].to_numpy(dtype=str))
            for j, m in enumerate(names):
                s = standing(frame, policy.metrics[m])
                rate[w, at, j], evaluated[w, at, j], missing[w, at, j] = s.rate, s.evaluated, s.missing
        return cls([d for d, _ in weeks], names, ids, rate, evaluated, missing)

    def seller(self, seller_id: str, weeks: list[date]) -> Rates:
        i = int(np.searchsorted(self.ids, seller_id))
        rows = [self.weeks.index(d) for d in weeks]
        if i >= len(self.ids) or self.ids[i] != seller_id:
            return Rates([], self.standards, np.zeros((0, len(self.standards))), np.zeros((0, 0), bool),
                         np.zeros((0, 0), bool))
        rate = self.rate[rows, i, :].astype("float64")
        known = ~np.isnan(rate).all(axis=1)  # weeks the seller was in the snapshot
        return Rates([d for d, k in zip(weeks, known) if k], self.standards, rate[known],
                     self.evaluated[rows, i, :][known], self.missing[rows, i, :][known])


# ------------------------------------------------------------------ the queue page


def queue_frame(table: pa.Table) -> pd.DataFrame:
    """One row per queued seller: the list, rank, risk, band, the standard at risk and its reason (the
    record's `standard_at_risk`, the standard it is likeliest to miss, with that standard's reason when it
    has one, else the first reason; for a seller missing a standard: the first standard missed and its
    recovery path)."""
    reasons = table.column("reasons").to_pylist()
    missed = table.column("standards_missed_now").to_pylist()
    recovery = table.column("recovery").to_pylist()
    at_risk = (table.column("standard_at_risk").to_pylist() if "standard_at_risk" in table.column_names
               else [None] * table.num_rows)
    first_standard, first_text, standards = [], [], []
    for r, m, rec, a in zip(reasons, missed, recovery, at_risk):
        r, m, rec = r or [], m or [], rec or []
        if m:
            first_standard.append(m[0])
            first_text.append(rec[0]["text"] if rec else (r[0]["text"] if r else ""))
        else:
            shown = next((x for x in r if x["standard"] == a), r[0] if r else None)
            first_standard.append(a or (shown["standard"] if shown else ""))
            first_text.append(shown["text"] if shown else "")
        standards.append("|" + "|".join(dict.fromkeys([*m, *([a] if a else []), *(x["standard"] for x in r)])) + "|")
    return pd.DataFrame({
        "seller_id": table.column("seller_id").to_pylist(),
        "record_id": table.column("record_id").to_pylist() if "record_id" in table.column_names else None,
        "queue": table.column("queue").to_pylist(),
        "queue_rank": table.column("queue_rank").to_numpy(zero_copy_only=False),
        "risk_score": table.column("risk_score").to_numpy(),
        "risk_band": table.column("risk_band").to_pylist(),
        "standard": first_standard,
        "reason": first_text,
        "standards": standards,
        "model_version": table.column("model_version").to_pylist(),
    })


@dataclass(frozen=True)
class Filters:
    """The queue page's filters (empty string: any)."""

    standard: str = ""
    category: str = ""
    region: str = ""

    def apply(self, queued: pd.DataFrame) -> pd.DataFrame:
        mask = np.ones(len(queued), dtype=bool)
        if self.standard:
            mask &= queued["standards"].str.contains(f"|{self.standard}|", regex=False).to_numpy()
        if self.category:
            mask &= (queued["category"] == self.category).to_numpy()
        if self.region:
            mask &= (queued["region"] == self.region).to_numpy()
        return queued[mask]


def latest_decisions(decisions: list) -> dict[str, object]:
    """Per seller, the decision that stands (the newest; a correction is newer than what it corrects)."""
    out: dict[str, object] = {}
    for d in sorted(decisions, key=lambda d: (d.decided_at, d.id)):
        out[d.seller_id] = d
    return out


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    total: int
    page: int
    pages: int


def paged(frame: pd.DataFrame, page: int, size: int, decided: dict[str, object]) -> Page:
    """One page of a list (1-based, clamped), as rows ready to show, each with its status."""
    pages = max(1, math.ceil(len(frame) / size))
    page = min(max(1, page), pages)
    part = frame.iloc[(page - 1) * size: page * size]
    rows = []
    for r in part.to_dict("records"):
        d = decided.get(r["seller_id"])
        r["status"] = "open" if d is None else f"decided: {d.action.replace('_', ' ')}"
        r["decided_by"] = "" if d is None else d.reviewer
        r["path"] = quote(r["seller_id"], safe="")
        r["risk"] = f"{r['risk_score']:.1%}"
        for k in ("category", "region"):
            r[k] = r[k] if isinstance(r[k], str) else ""
        rows.append(r)
    return Page(rows, len(frame), page, pages)


def filter_options(queued: pd.DataFrame, policy: Policy) -> dict[str, list[str]]:
    """What the queue's filters offer: the policy's standards, the week's categories and regions."""
    def levels(col: str) -> list[str]:
        return sorted(str(v) for v in queued[col].dropna().unique()) if col in queued else []
    return {"standard": list(policy.metrics), "category": levels("category"), "region": levels("region")}


# ------------------------------------------------------------------ the seller page


@dataclass(frozen=True)
class Chart:
    """One standard's rate week by week against its threshold, laid out for an inline SVG."""

    standard: str
    label: str
    standard_text: str
    width: int
    height: int
    threshold_y: float
    points: list[dict]  # x, y, week, rate (text), evaluated, missing
    path: str  # the polyline through the evaluated and not-evaluated points with volume
    y_ticks: list[dict]  # y, text
    x_ticks: list[dict]  # x, text


def rate_charts(rates: Rates, policy: Policy, width: int = 360, height: int = 120) -> list[Chart]:
    """Per standard of the policy, the seller's rate by snapshot week with the threshold line. Rates are
    the policy's own (features.policy.standing, from the snapshot's gap and volume), so a point past the line
    is a week the standard was missed when it was evaluated."""
    out = []
    if not rates.weeks:
        return out
    left, right, top, bottom = 44, 8, 8, 20
    weeks = rates.weeks
    n = len(weeks)
    xs = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    every = max(1, math.ceil(n / 4))
    x_ticks = [{"x": round(xs[i], 1), "text": f"{weeks[i]:%d %b}"} for i in range(0, n, every)]
    for j, name in enumerate(rates.standards):
        metric = policy.metrics[name]
        values = [float(v) for v in rates.rate[:, j]]
        known = [v for v in values if v == v]
        lo, hi = min([metric.threshold, *known]), max([metric.threshold, *known])
        pad = max((hi - lo) * 0.15, 0.005)
        lo = max(0.0, lo - pad) if lo >= 0 else lo - pad  # a rate stays within 0..100% on the axis
        hi = min(1.0, hi + pad) if hi <= 1 else hi + pad
        span = hi - lo or 1.0

        def y(v: float, lo: float = lo, span: float = span) -> float:
            return round(top + (height - top - bottom) * (1 - (v - lo) / span), 1)

        points = [{"x": round(xs[i], 1), "y": y(v), "week": str(weeks[i]), "rate": f"{v:.1%}",
                   "evaluated": bool(rates.evaluated[i, j]), "missing": bool(rates.missing[i, j])}
                  for i, v in enumerate(values) if v == v]
        path = " ".join(f"{p['x']},{p['y']}" for p in points)
        ticks = [{"y": y(v), "text": f"{v:.0%}" if span >= 0.05 else f"{v:.1%}"} for v in (lo, hi)]
        out.append(Chart(name, metric.label, metric.standard_text, width, height, y(metric.threshold), points, path,
                         ticks, x_ticks))
    return out


def history_chart(history: pd.DataFrame, width: int = 360, height: int = 120) -> dict | None:
    """The seller's risk by scored week, laid out for an inline SVG (risk 0..max, at least 10%)."""
    if history.empty:
        return None
    left, right, top, bottom = 44, 8, 8, 20
    n = len(history)
    hi = max(0.1, float(history["risk_score"].max()) * 1.1)
    hi = min(1.0, hi)
    xs = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    points = [{"x": round(x, 1), "y": round(top + (height - top - bottom) * (1 - v / hi), 1), "week": str(w),
               "risk": f"{v:.1%}"}
              for x, v, w in zip(xs, history["risk_score"], history["as_of"])]
    return {"width": width, "height": height, "points": points, "path": " ".join(f"{p['x']},{p['y']}" for p in points),
            "top": f"{hi:.0%}", "top_y": top, "bottom_y": height - bottom}


def history_rows(history: pd.DataFrame) -> list[dict]:
    """The score history as rows to show, newest first: risk, band, the list the seller was on and its rank."""
    out = []
    for r in history.to_dict("records")[::-1]:
        queue = r.get("queue") if isinstance(r.get("queue"), str) else None
        rank = r.get("queue_rank")
        out.append({"as_of": pd.Timestamp(r["as_of"]).date(), "risk_score": r["risk_score"], "risk_band": r["risk_band"],
                    "list": f"{queue.replace('_', ' ')} #{int(rank)}" if queue and rank == rank else "",
                    "model_version": r["model_version"]})
    return out


def record_view(record: dict) -> dict:
    """A score record as the seller page shows it: reasons by standard, context beside them (never as a
    reason), the recovery path, and what the record is (model, spec hash, snapshot date)."""
    return {
        "record_id": record.get("record_id"),
        "seller_id": record["seller_id"],
        "risk": f"{record['risk_score']:.1%}",
        "risk_band": record["risk_band"],
        "band_meaning": record.get("band_meaning", ""),
        "population": "missing a standard now" if record.get("population") == "missing_now" else "compliant now",
        "missed": list(record.get("standards_missed_now") or []),
        "by_standard": by_standard(record),
        "reasons": [r for r in record.get("reasons") or [] if r.get("direction", "raises") == "raises"],
        "context": list(record.get("context") or []),
        "recovery": list(record.get("recovery") or []),
        "model": f"{record['model_name']} v{record['model_version']}",
        "feature_spec_hash": record["feature_spec_hash"],
        "policy_version": record.get("policy_version", ""),
        "queue": record.get("queue"),
        "queue_rank": record.get("queue_rank"),
    }


def by_standard(record: dict) -> list[dict]:
    """The record's risk of missing each standard, riskiest first (policy order among equal risks): its label,
    the risk as a percentage, whether it is the record's standard at risk and whether it is missed now."""
    at_risk = record.get("standard_at_risk")
    missed = set(record.get("standards_missed_now") or [])
    def risk(r: dict) -> float | None:  # None and NaN: no risk known
        v = r.get("risk")
        return None if v is None or v != v else float(v)

    rows = [r for r in record.get("risk_by_standard") or [] if r]
    rows = sorted(rows, key=lambda r: -risk(r) if risk(r) is not None else math.inf)
    return [{"standard": r["standard"], "label": r.get("label") or r["standard"].replace("_", " "),
             "risk": "" if risk(r) is None else f"{risk(r):.1%}",
             "at_risk": r["standard"] == at_risk, "missed": r["standard"] in missed} for r in rows]


# ------------------------------------------------------------------ the leader page


@dataclass(frozen=True)
class LeaderWeek:
    as_of: date
    queue: int  # early-warning sellers: the week's reviewer capacity used
    recovery: int
    expected: float  # expected breaches among the early-warning sellers
    low: float
    high: float
    decisions: int  # decisions recorded on the week's records (every list)
    covered: int  # early-warning sellers with a decision
    coverage: float
    median_hours: float | None  # scored_at -> decided_at, per seller's first decision
    breached: int | None  # early-warning sellers that did breach (None: labels not known yet)
    labelled: int | None


def leader_week(week: Week, decisions: pd.DataFrame, labels: pd.Series | None) -> LeaderWeek:
    """A week's staffing and quality figures. `decisions` holds the decisions on this week's records
    (columns seller_id, decided_at, reviewer, action); `labels` the early-warning sellers' breach labels."""
    early = week.queued[week.queued["queue"] == EARLY_WARNING]
    forecast = expected_breaches(early["risk_score"].to_numpy(dtype="float64"), level=0.95)
    ew_ids = set(early["seller_id"])
    covered = int(decisions["seller_id"].isin(ew_ids).groupby(decisions["seller_id"]).any().sum()) \
        if len(decisions) else 0
    hours = None
    if len(decisions) and week.scored_at is not None:
        first = decisions.groupby("seller_id")["decided_at"].min()
        delta = (pd.to_datetime(first, utc=True) - pd.Timestamp(week.scored_at)).dt.total_seconds() / 3600
        hours = float(delta.median())
    breached = labelled = None
    if labels is not None:
        known = labels.dropna()
        labelled, breached = int(len(known)), int(known.astype(bool).sum())
    return LeaderWeek(week.as_of, len(early), int((week.queued["queue"] == RECOVERY).sum()), forecast.expected,
                      forecast.low, forecast.high, int(len(decisions)), covered,
                      covered / len(early) if len(early) else float("nan"), hours, breached, labelled)


def per_reviewer(decisions: pd.DataFrame) -> list[dict]:
    """Decisions per reviewer, with their actions, most active first."""
    if decisions.empty:
        return []
    counts = decisions.groupby(["reviewer", "action"]).size().unstack(fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts = counts.sort_values("total", ascending=False)
    return [{"reviewer": r, "total": int(row["total"]),
             "actions": {a: int(row[a]) for a in counts.columns if a != "total" and row[a]}}
            for r, row in counts.iterrows()]


def decisions_table_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's decisions frame with the columns the leader page reads: as_of a date, decided_at UTC."""
    cols = ["seller_id", "as_of", "record_id", "action", "reviewer", "decided_at"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    out = frame.copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["decided_at"] = pd.to_datetime(out["decided_at"], utc=True)
    return out
