"""Scoring sellers: features in, score records out. The HTTP service and the weekly batch job both
score through `Scorer`, so a seller gets the same score, band and reasons from either (bit for bit
on the same snapshot): the same model inputs (`RiskModel.matrix`), the same TreeSHAP explanation
(`models.explain`) and the same record layout (`serving.records`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.util import hash_array

from models.explain import (OTHER_GROUPS, Groups, ValuesAt, context_texts, display_value, explain, feature_groups,
                            frame_values, group_contributions, record_values)
from models.reasons.choose import REASONS_SHOWN, StandardReasons, at_risk, choose_reasons
from models.reasons.shares import standard_shares
from features.platform import layout
from features.policy.definition import Policy, load_policy
from features.platform.settings import CHAMPION_URI, MODELS_DIR
from features.policy.standing import Standing, back_by, standing_inputs, standings
from models.reasons.words import PEERS, Peer, judged_texts, peer_texts, reason_texts, recovery_texts
from models.registry import ModelRef, load_risk_model, use_store
from models.risk_model import ModelSpecMismatch, RiskModel
from features.pipeline.spec import FeatureSpec, feature_spec
from serving.bands import QueueCutoffs, assign_bands
from serving.records import Lists, Nullable, RecordColumns, Repeated

DEFAULT_MODEL_URI = CHAMPION_URI


@dataclass(frozen=True)
class ReasonRows:
    """Reasons by standard for a batch, column-wise and sorted by row then rank, with where the seller
    stands against each (rate, volume, headroom; -1: no headroom) and the sentence."""

    reasons: StandardReasons
    label: np.ndarray  # object
    value: np.ndarray  # float, NaN without volume
    volume: np.ndarray  # int
    headroom: np.ndarray  # int, -1: missing it now or not judged
    text: np.ndarray  # object

    @property
    def row(self) -> np.ndarray:
        return self.reasons.row

    def __len__(self) -> int:
        return len(self.reasons)


@dataclass(frozen=True)
class RecoveryRows:
    """For each (seller, standard missed now), sorted by row then policy order: what brings it back."""

    row: np.ndarray
    standard: np.ndarray  # object
    needed: np.ndarray  # int, -1: no number of good outcomes suffices alone
    back_by: np.ndarray  # datetime64[D]: the evaluation it is back by if every outcome is good, NaT: as_of unknown
    text: np.ndarray  # object

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class Scored:
    """Scores, reasons by standard and standings for a batch of sellers, column-wise (row i of every
    array is one seller)."""

    record_id: np.ndarray  # object: the audit id (`record_ids`)
    seller_id: np.ndarray
    as_of: np.ndarray  # datetime.date or None per row
    risk_score: np.ndarray
    standard_risk: np.ndarray  # rows x model standards: the risk of missing each, consistent with risk_score
    shares: np.ndarray  # rows x model standards: each one's share of risk_score (they add up to it)
    risk_band: np.ndarray
    band_meaning: np.ndarray
    base_log_odds: float
    groups: Groups
    by_group: np.ndarray  # rows x groups: each group's contribution (calibrated log-odds)
    missing: np.ndarray  # rows x standards (policy order): missed at as_of
    reasons: ReasonRows  # the standards raising the risk most
    lowering_reasons: ReasonRows
    context: np.ndarray  # rows x OTHER_GROUPS: short texts
    recovery: RecoveryRows

    def __len__(self) -> int:
        return len(self.risk_score)

    @property
    def missing_now(self) -> np.ndarray:
        """Per row: misses at least one standard at as_of."""
        return _any_missed(self.missing)


def _any_missed(missing: np.ndarray) -> np.ndarray:
    """Per row of a rows x standards table of misses: misses at least one (no standards: none)."""
    return missing.any(axis=1) if missing.shape[1] else np.zeros(len(missing), dtype=bool)


@dataclass(frozen=True)
class Scorer:
    """A pinned model version with the policy and feature spec it was trained for."""

    model: RiskModel
    ref: ModelRef
    spec: FeatureSpec
    policy: Policy
    threads: int = 0  # LightGBM threads per call: 0 = all cores (batches), 1 = one request per worker thread
    queue: Callable[[date | None], QueueCutoffs | None] | None = None  # band cut-offs by as-of date (`ranked`)

    def __post_init__(self) -> None:
        self.model.check_spec(self.spec)
        if tuple(self.spec.names) != self.model.feature_names:
            raise ModelSpecMismatch("the model's feature order differs from the feature spec's")

    @classmethod
    def load(cls, model_uri: str = DEFAULT_MODEL_URI, models_dir: Path | str = MODELS_DIR, threads: int = 0) -> Scorer:
        """Resolve `model_uri` in the registry (an alias is pinned to its version now), read the
        model natively, and refuse it if it was trained for another feature spec or policy."""
        use_store(models_dir)
        model, ref = load_risk_model(model_uri)
        policy = load_policy(model.policy_version)
        return cls(model, ref, feature_spec(policy), policy, threads)

    # ------------------------------------------------------------------ scoring

    def bands(self, scores: np.ndarray, missing_now: np.ndarray, as_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each seller's band and what it means, relative to the weekly queue of its as-of date
        (`serving.bands`): the recovery band when missing a standard now, else by the cut-offs `queue`
        gives for that date (none: `unranked`)."""
        names = np.empty(len(scores), dtype=object)
        meanings = np.empty(len(scores), dtype=object)
        days = list(dict.fromkeys(as_of))  # a snapshot has one or a few as-of dates
        for day in days:
            rows = slice(None) if len(days) == 1 else np.fromiter((d == day for d in as_of), bool, len(as_of))
            cutoffs = self.queue(day) if self.queue is not None else None
            names[rows], meanings[rows] = assign_bands(scores[rows], missing_now[rows], self.policy, cutoffs, as_of[rows])
        return names, meanings

    def ranked(self, queue: Callable[[date | None], QueueCutoffs | None] | None) -> Scorer:
        """The same scorer, placing sellers in bands by `queue`'s cut-offs (a week's, or a reader's)."""
        return replace(self, queue=queue)

    @cached_property
    def groups(self) -> Groups:
        return feature_groups(self.spec, list(self.policy.metrics))

    @cached_property
    def _peer_columns(self) -> dict[str, tuple[Peer, int]]:
        """For each standard with a peer (models.reasons.words.PEERS) whose feature the model reads: the
        peer and where its feature sits in the model inputs."""
        at = self.spec.position
        return {m: (p, at[p.feature]) for m, p in PEERS.items() if m in self.policy.metrics and p.feature in at}

    @cached_property
    def _standing_columns(self) -> dict[str, int]:
        """Where each feature a standing is read from sits in the model inputs."""
        return {c: self.spec.position[c] for c in standing_inputs(self.policy)}

    def standings(self, X: np.ndarray) -> dict[str, Standing]:
        """Where each row stands against every standard, read from the model inputs (so a seller
        scored over HTTP and in the batch stands exactly the same)."""
        return standings({c: X[:, j] for c, j in self._standing_columns.items()}, self.policy)

    def score_matrix(self, X: np.ndarray, values_at: ValuesAt, seller_id: Sequence[str],
                     as_of: Sequence[date | None], top: int = REASONS_SHOWN, lowering: int = 0) -> Scored:
        """Score model-ready rows (`RiskModel.matrix`), give the standards at risk each way (up to
        `top` and `lowering`), where the seller stands and, for a standard missed now, its recovery."""
        ex = explain(self.model, X, self.threads)
        per_standard = self.model.standard_risk(X, ex.score, self.threads)
        groups = self.groups
        by_group = group_contributions(ex, groups)
        stand = self.standings(X)
        as_of = np.asarray(as_of, dtype=object)
        missing = (np.column_stack([s.missing for s in stand.values()]) if stand
                   else np.zeros((len(X), 0), dtype=bool))
        band, meaning = self.bands(ex.score, _any_missed(missing), as_of)
        shares = standard_shares(ex.score, per_standard)
        up, down = (_reason_rows(choose_reasons(self.model, X, shares, stand, self.spec, self.policy.reasons.min_effect,
                                                k, direction, self.threads), stand, self.policy, X, self._peer_columns)
                    for k, direction in ((top, "raises"), (lowering, "lowers")))
        seller_id = np.asarray(seller_id, dtype=object)
        ids = record_ids(X, seller_id, as_of, self.ref.name, self.ref.version, self.spec.hash)
        context = context_texts(ex, groups, self.spec, values_at)
        _say_when_judged(context, self._at_risk(shares, missing), up.reasons, stand, missing)
        return Scored(ids, seller_id, as_of, ex.score, per_standard, shares, band, meaning, ex.base, groups, by_group,
                      missing, up, down, context,
                      _recovery_rows(missing, stand, as_of, self.policy.evaluation_every_days))

    def score_frame(self, frame: pd.DataFrame, top: int = REASONS_SHOWN, lowering: int = 0) -> Scored:
        """Score a snapshot (rows with seller_id, as_of and the spec's feature columns)."""
        as_of = frame["as_of"] if "as_of" in frame.columns else pd.Series([None] * len(frame))
        dates = {d: _as_date(d) for d in as_of.unique()}  # a snapshot has one or a few as-of dates
        return self.score_matrix(self.model.matrix(frame), frame_values(frame, self.spec),
                                 frame["seller_id"].astype(str).to_numpy(dtype=object),
                                 as_of.map(dates).to_numpy(dtype=object), top, lowering)

    def score_sellers(self, seller_id: Sequence[str], features: Sequence[Mapping[str, float | str | None]],
                      as_of: Sequence[date | None] | None = None, top: int = REASONS_SHOWN, lowering: int = 0) -> Scored:
        """Score sellers whose features come as {name: value} (absent or None: missing), as over HTTP."""
        as_of = as_of if as_of is not None else [None] * len(features)
        return self.score_matrix(self.model.matrix_from_records(features), record_values(features, self.spec),
                                 seller_id, as_of, top, lowering)

    def score_ids(self, snapshot: Snapshot, seller_ids: Sequence[str], top: int = REASONS_SHOWN, lowering: int = 0) -> Scored:
        """Score sellers of an in-memory snapshot by id (KeyError names the first unknown id)."""
        rows = np.array([snapshot.index[s] for s in seller_ids], dtype=np.int64)
        return self.score_matrix(snapshot.X[rows], snapshot.values_at(self.spec, rows), seller_ids,
                                 [snapshot.as_of] * len(rows), top, lowering)

    # ------------------------------------------------------------------ the record, two ways

    def standard_at_risk(self, scored: Scored) -> np.ndarray:
        """Per row, the standard with the largest share of the risk, or for a seller missing standards the
        missed one with the largest share (None when the model has no per-standard risks); for a
        compliant seller its reason, when it has one, is the first."""
        return self._at_risk(scored.shares, scored.missing)

    def _at_risk(self, shares: np.ndarray, missing: np.ndarray) -> np.ndarray:
        standards = self._standards[0]
        policy_order = {m: j for j, m in enumerate(self.policy.metrics)}
        return at_risk(shares, standards, missing[:, [policy_order[m] for m in standards]])

    @cached_property
    def _standards(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The model's standards (the order of its per-standard risks) and their labels."""
        standards = tuple(self.model.standard_names)
        return standards, tuple(self.policy.metrics[m].label for m in standards)

    @cached_property
    def _metrics(self) -> np.ndarray:
        """The policy's standards in policy order (the order of `Scored.missing`'s columns)."""
        return np.asarray(list(self.policy.metrics), dtype=object)

    def _common(self) -> dict[str, str]:
        return {"model_name": self.ref.name, "model_version": self.ref.version,
                "policy_version": self.policy.version, "feature_spec_hash": self.spec.hash}

    def columns(self, scored: Scored) -> RecordColumns:
        """Every field of the score record (serving.records.ScoreRecord), computed once and column-wise:
        the HTTP records and the batch table are two views of these."""
        n = len(scored)
        g = scored.groups
        rows, cols = np.nonzero(scored.missing)
        standards, labels = self._standards
        others = slice(g.standards, None)
        return RecordColumns(n, {
            "record_id": scored.record_id,
            "seller_id": scored.seller_id,
            "as_of": scored.as_of,
            "risk_score": scored.risk_score,
            "standard_at_risk": self.standard_at_risk(scored),
            "risk_by_standard": Lists({
                "standard": Repeated(standards, n), "label": Repeated(labels, n),
                "risk": scored.standard_risk.ravel(), "share": scored.shares.ravel()}, width=len(standards)),
            "risk_band": scored.risk_band,
            "band_meaning": scored.band_meaning,
            "population": np.where(scored.missing_now, "missing_now", "compliant_now"),
            "standards_missed_now": Lists(self._metrics[cols], rows),
            "base_log_odds": Repeated((scored.base_log_odds,), n),
            **{k: Repeated((v,), n) for k, v in self._common().items()},
            "reasons": _reason_lists(scored.reasons),
            "lowering_reasons": _reason_lists(scored.lowering_reasons),
            "context": Lists({"group": Repeated(tuple(g.names[others]), n),
                              "contribution": scored.by_group[:, others].ravel(), "features": scored.context.ravel()},
                             width=len(g.names[others])),
            "contributions": Lists({"group": Repeated(tuple(g.names), n), "contribution": scored.by_group.ravel()},
                                   width=len(g.names)),
            "recovery": _recovery_lists(scored.recovery),
        })

    def records(self, scored: Scored) -> list[dict]:
        """Score records as JSON-ready dicts (the HTTP response)."""
        return self.columns(scored).rows()

    def table(self, scored: Scored) -> pa.Table:
        """Score records as an Arrow table (the batch job's Parquet rows)."""
        return self.columns(scored).table()


@dataclass(frozen=True)
class Snapshot:
    """A feature snapshot held in memory as model inputs, so any of its sellers can be scored by
    id without touching pandas per request (the HTTP service's look-ups)."""

    path: Path
    as_of: date | None
    spec_hash: str
    index: dict[str, int]  # seller_id -> row
    X: np.ndarray  # RiskModel.matrix of every row
    labels: dict[str, np.ndarray]  # categorical features' own labels, for the reasons' words

    @classmethod
    def load(cls, folder: Path | str, scorer: Scorer) -> Snapshot:
        """The latest snapshot of a features folder (`seller-risk features --out`), refused if it
        was built for another feature spec than the scorer's or its columns are not the spec's."""
        folder = Path(folder)
        latest, spec_file = layout.latest_snapshot(folder), layout.spec_file(folder)
        if not latest.exists() or not spec_file.exists():
            raise FileNotFoundError(f"no feature snapshot in {folder}: expected {layout.LATEST} and {layout.SPEC_FILE} "
                                    "(run `seller-risk features` first)")
        problem = snapshot_mismatch(folder, [latest], scorer)
        if problem:
            raise ModelSpecMismatch(problem)
        frame = pd.read_parquet(latest)
        dates = frame["as_of"].dropna().unique() if "as_of" in frame.columns else []
        ids = frame["seller_id"].astype(str).to_numpy()
        return cls(folder, _as_date(dates[0]) if len(dates) else None, scorer.spec.hash,
                   {sid: i for i, sid in enumerate(ids)}, scorer.model.matrix(frame),
                   {n: frame[n].to_numpy(dtype=object) for n in scorer.spec.categorical})

    def __len__(self) -> int:
        return len(self.index)

    def values_at(self, spec: FeatureSpec, rows: np.ndarray) -> ValuesAt:
        """Display values of the sellers at `rows`, read from the model inputs (numbers exactly as
        the snapshot holds them, as floats) and the categorical labels."""
        def at(pos: np.ndarray, cols: np.ndarray) -> list:
            out = []
            for i, j in zip(rows[pos], cols):
                name = spec.names[j]
                out.append(display_value(self.labels[name][i]) if name in self.labels else display_value(self.X[i, j]))
            return out
        return at


def snapshot_mismatch(features_dir: Path, files: Sequence[Path], scorer: Scorer) -> str | None:
    """Why the scorer's model cannot score these snapshot files of a `seller-risk features --out`
    folder, or None: the folder was built with another feature spec, or a file lacks one of the
    spec's feature columns or has a column the spec does not define."""
    from features.pipeline.sql import snapshot_columns

    spec_file = layout.spec_file(features_dir)
    if spec_file.is_file():
        stored = json.loads(spec_file.read_text()).get("hash")
        if stored != scorer.spec.hash:
            return (f"{features_dir} was built with feature spec {stored}, but model {scorer.ref.name} "
                    f"v{scorer.ref.version} needs spec {scorer.spec.hash}; rebuild the snapshots or score "
                    "with a model trained on them")
    allowed = set(snapshot_columns(scorer.policy, scorer.spec))
    for f in files:
        cols = pq.read_schema(f).names
        missing = [n for n in ["seller_id", *scorer.spec.names] if n not in cols]
        if missing:
            return f"snapshot {f} lacks feature column(s) of spec {scorer.spec.hash}: {', '.join(missing)}"
        extra = [c for c in cols if c not in allowed]
        if extra:
            return f"snapshot {f} has column(s) that feature spec {scorer.spec.hash} does not define: {', '.join(extra)}"
    return None


def record_ids(X: np.ndarray, seller_id: np.ndarray, as_of: np.ndarray, model_name: str, model_version: str,
               spec_hash: str) -> np.ndarray:
    """Each record's id: 16 hex digits of a hash of the model (name, version, spec), the as-of date,
    the seller and the exact model inputs, so the same seller scored on the same snapshot by the same
    model has the same id over HTTP and in the batch, and `replay` can tell a record from its inputs.
    The hash is pandas' keyed, process-independent `hash_pandas_object` of a frame with those columns (the
    model, the as-of date and the seller as text, then the bits of each input as uint64, so -0.0, 0.0 and
    every NaN stay apart), computed here on numpy arrays without building the frame: one seller costs
    microseconds, and the ids stay those of the audit trail (a test holds them to pandas' own)."""
    n = len(X)
    text = np.empty(3 * n, dtype=object)
    text[:n] = f"{model_name}\x1f{model_version}\x1f{spec_hash}"
    text[n:2 * n] = [str(d) for d in as_of]
    text[2 * n:] = seller_id
    hashed = np.concatenate([hash_array(text, categorize=False).reshape(3, n).T,
                             hash_array(np.ascontiguousarray(X).view("uint64").ravel()).reshape(n, X.shape[1])], axis=1)
    return np.asarray([f"{v:016x}" for v in _combine_columns(hashed)], dtype=object)


_UINT64 = (1 << 64) - 1


@lru_cache
def _multipliers(columns: int) -> tuple[int, ...]:
    """The multipliers pandas' `combine_hash_arrays` (CPython's tuple hash) uses for a row of `columns` hashes."""
    out, m = [], 1000003
    for i in range(columns):
        out.append(m)
        m = (m + 82520 + 2 * (columns - i)) & _UINT64
    return tuple(out)


def _combine_columns(hashed: np.ndarray) -> list[int]:
    """Each row's hashes (rows x columns, uint64) combined into one, exactly as pandas combines a frame's
    columns: over Python integers for a few rows (a request), column by column over numpy for a batch."""
    mults = _multipliers(hashed.shape[1])
    if len(hashed) <= 8:
        out = []
        for row in hashed.tolist():
            h = 0x345678
            for a, m in zip(row, mults):
                h = ((h ^ a) * m) & _UINT64
            out.append((h + 97531) & _UINT64)
        return out
    acc = np.full(len(hashed), 0x345678, dtype=np.uint64)
    for j, m in enumerate(mults):
        acc ^= hashed[:, j]
        acc *= np.uint64(m)
    return (acc + np.uint64(97531)).tolist()


def _as_date(value: object) -> date | None:
    """A calendar date from whatever a frame holds (date, Timestamp, datetime64, string)."""
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # a Timestamp is a datetime, which is a date: take its day
        return value.date()
    return value if isinstance(value, date) else pd.Timestamp(value).date()


def _say_when_judged(context: np.ndarray, at_risk: np.ndarray, reasons: StandardReasons,
                     stand: dict[str, Standing], missing: np.ndarray) -> None:
    """A compliant seller whose standard at risk has no reason (a perfect rate, not judged yet, or
    behaviour that does not raise it) is told in one line, first in its exposure context, that the risk
    comes from being judged (in place)."""
    compliant = ~_any_missed(missing)
    exposure = OTHER_GROUPS.index("exposure")
    for name in dict.fromkeys(at_risk[compliant].tolist()):  # the standards some compliant seller is at risk on
        if name not in stand:
            continue
        s = stand[name]
        without = (at_risk == name) & compliant
        without[reasons.row[reasons.standard == name]] = False
        rows = np.flatnonzero(without)
        if len(rows):
            lines = judged_texts(s, rows)
            context[rows, exposure] = [f"{line}; {c}" if c else line for line, c in zip(lines, context[rows, exposure])]


def _reason_rows(reasons: StandardReasons, stand: dict[str, Standing], policy: Policy, X: np.ndarray,
                 peers: Mapping[str, tuple[Peer, int]]) -> ReasonRows:
    """Reasons by standard with where each seller stands against the standard, worded (one pass per
    standard), each with what its peers show when the standard has a peer."""
    n = len(reasons)
    label = np.empty(n, dtype=object)
    value = np.full(n, np.nan)
    volume = np.zeros(n, dtype="int64")
    headroom = np.full(n, -1, dtype="int64")
    text = np.empty(n, dtype=object)
    for name in dict.fromkeys(reasons.standard.tolist()):  # the standards some reason is about
        s = stand[name]
        where = np.flatnonzero(reasons.standard == name)
        rows = reasons.row[where]
        label[where] = policy.metrics[name].label
        value[where] = s.rate[rows]
        volume[where] = s.volume[rows]
        headroom[where] = s.headroom[rows]
        words = reason_texts(s, rows)
        if name in peers:
            peer, j = peers[name]
            words = [w + p for w, p in zip(words, peer_texts(peer, X[rows, j]))]
        text[where] = words
    return ReasonRows(reasons, label, value, volume, headroom, text)


def _recovery_rows(missing: np.ndarray, stand: dict[str, Standing], as_of: np.ndarray, every_days: int) -> RecoveryRows:
    """One entry per (seller, standard missed now), sorted by seller then policy order."""
    rows, cols = np.nonzero(missing)
    names = list(stand)
    needed = np.empty(len(rows), dtype="int64")
    back = np.full(len(rows), np.datetime64("NaT", "D"))
    text = np.empty(len(rows), dtype=object)
    for j in dict.fromkeys(cols.tolist()):  # the standards someone misses
        where = np.flatnonzero(cols == j)
        s = stand[names[j]]
        needed[where] = s.recovery[rows[where]]
        back[where] = back_by(s.recovery_days[rows[where]], as_of[rows[where]], every_days)
        text[where] = recovery_texts(s, rows[where], as_of[rows[where]], every_days)
    return RecoveryRows(rows, np.asarray(names, dtype=object)[cols], needed, back, text)


def _reason_lists(r: ReasonRows) -> Lists:
    """Reasons (sorted by row, then rank) as one list per seller; no value without volume, no headroom
    when missing the standard now or not judged."""
    x = r.reasons
    return Lists({
        "rank": x.rank, "standard": x.standard, "label": r.label, "contribution": x.contribution,
        "probability_change": x.probability_change, "direction": Repeated((x.direction,), len(r)),
        "value": Nullable(r.value, np.isnan(r.value)), "volume": r.volume,
        "headroom": Nullable(r.headroom, r.headroom < 0), "text": r.text}, x.row)


def _recovery_lists(r: RecoveryRows) -> Lists:
    """Each seller's way back, one item per standard missed now (no `needed` when no run suffices alone)."""
    return Lists({"standard": r.standard, "needed": Nullable(r.needed, r.needed < 0), "back_by": r.back_by,
                  "text": r.text}, r.row)
