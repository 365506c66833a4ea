"""The console's one reader, at the edge, of the three tables the pages draw on: the weekly score
table, the feature snapshots and the events' policy_actions. `Tables` keeps each week's queued rows
(read once, with `read_week`) until the week's files change (their mtimes and sizes), and the latest
weeks' rates in memory (serving.console.rates).

Nothing here renders HTML or touches the decisions store: the page modules (queue, seller, leader)
build what they show from what this reads and from the store's decisions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from features.platform import layout
from features.policy.definition import Policy, PolicyError, load_policy
from models.reasons.words import judged_line
from serving.batch.summary import EARLY_WARNING
from serving.console.errors import BadInput, NotFound
from serving.records import queue_columns
from serving.console.rates import CHART_WEEKS, RATE_INPUTS, RateCube, Rates, rates_of

QUEUE_COLUMNS = [*queue_columns(), "run_id", "scored_at", "queue", "queue_rank"]
"""What a week's queued rows are read with: the score record's fields the console reads
(`serving.records.queue_columns`, declared with the record) and the batch job's own columns; columns
the table lacks (an older table's) are skipped. The seller page shows a queued seller's record from
these, so they hold all it shows."""
HISTORY_COLUMNS = ["risk_score", "risk_band", "queue", "queue_rank", "model_version"]


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
    columns = [c for c in QUEUE_COLUMNS if c in names]
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


def at_risk_words(reasons: list | None, missed: list | None, recovery: list | None, at_risk: str | None,
                  context: list | None) -> tuple[str, str, str]:
    """A record's standard at risk (for a seller missing standards, the missed one with the largest share)
    and what is said of it, with its kind: the standard's own reason ("behaviour"), else the line saying its
    risk comes from being judged ("judged"), or for a seller missing a standard its recovery path
    ("recovery"). What the queue row and the seller page both say."""
    reasons, missed, recovery = reasons or [], missed or [], recovery or []
    at_risk = at_risk or (missed[0] if missed else "")
    if missed:
        return at_risk, next((x["text"] for x in recovery if x["standard"] == at_risk),
                             recovery[0]["text"] if recovery else ""), "recovery"
    own = next((x["text"] for x in reasons if x["standard"] == at_risk), "")
    return (at_risk, own, "behaviour") if own else (at_risk, judged_line(context), "judged")


def record_at_risk(record: dict) -> tuple[str, str, str]:
    """`at_risk_words` of one score record (the seller page, the CLI's queue table)."""
    return at_risk_words(record.get("reasons"), record.get("standards_missed_now"), record.get("recovery"),
                         record.get("standard_at_risk"), record.get("context"))


def queue_frame(table: pa.Table) -> pd.DataFrame:
    """One row per queued seller: the list, rank, risk, band, and the record's standard at risk (for a
    seller missing standards, the missed one with the largest share of the risk) with that standard's
    own reason (when it has none, the record's line saying its risk comes from being judged), or, for a
    seller missing a standard, its recovery path: what the seller page and the HTTP record say, never
    another standard's reason. The standard filter finds a seller by its
    standard at risk, or by the standards it misses now."""
    reasons = table.column("reasons").to_pylist()
    missed = table.column("standards_missed_now").to_pylist()
    recovery = table.column("recovery").to_pylist()
    at_risk = (table.column("standard_at_risk").to_pylist() if "standard_at_risk" in table.column_names
               else [None] * table.num_rows)
    first_standard, first_text, kind, standards = [], [], [], []
    for r, m, rec, a in zip(reasons, missed, recovery, at_risk):
        a, text, k = at_risk_words(r, m, rec, a, None)  # the context, read below for the few that need it
        first_standard.append(a)
        first_text.append(text)
        kind.append(k)
        standards.append("|" + "|".join(dict.fromkeys(m or ([a] if a else []))) + "|")
    judged = [i for i, k in enumerate(kind) if k == "judged"]
    if judged and "context" in table.column_names:
        for i, c in zip(judged, table.column("context").take(judged).to_pylist()):
            first_text[i] = judged_line(c)
    return pd.DataFrame({
        "seller_id": table.column("seller_id").to_pylist(),
        "record_id": table.column("record_id").to_pylist() if "record_id" in table.column_names else None,
        "queue": table.column("queue").to_pylist(),
        "queue_rank": table.column("queue_rank").to_numpy(zero_copy_only=False),
        "risk_score": table.column("risk_score").to_numpy(),
        "risk_band": table.column("risk_band").to_pylist(),
        "standard": first_standard,
        "reason": first_text,
        "reason_kind": kind,  # behaviour (the standard's own reason), judged (its being-judged line), recovery
        "standards": standards,
        "model_version": table.column("model_version").to_pylist(),
    })
