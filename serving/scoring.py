"""Scoring sellers: features in, score records out. The HTTP service and the weekly batch job both
score through `Scorer`, so a seller gets the same score, band and reasons from either (bit for bit
on the same snapshot): the same model inputs (`RiskModel.matrix`), the same TreeSHAP explanation
(`models.explain`) and the same record layout (`serving.records`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.explain import Reasons, ValuesAt, display_value, explain, frame_values, record_values, top_reasons
from features import layout
from features.policy import Policy, load_policy
from features.settings import CHAMPION_URI, MODELS_DIR
from models.registry import ModelRef, load_risk_model, use_store
from models.risk_model import ModelSpecMismatch, RiskModel
from features.spec import FeatureSpec, feature_spec
from serving.records import REASON_ARROW, SCORE_ARROW

DEFAULT_MODEL_URI = CHAMPION_URI


@dataclass(frozen=True)
class Scored:
    """Scores and reasons for a batch of sellers, column-wise (row i of every array is one seller)."""

    seller_id: np.ndarray
    as_of: np.ndarray  # datetime.date or None per row
    risk_score: np.ndarray
    risk_band: np.ndarray
    band_meaning: np.ndarray
    base_log_odds: float
    reasons: Reasons  # the strongest raising reasons, column-wise
    lowering_reasons: Reasons

    def __len__(self) -> int:
        return len(self.risk_score)


@dataclass(frozen=True)
class Scorer:
    """A pinned model version with the policy and feature spec it was trained for."""

    model: RiskModel
    ref: ModelRef
    spec: FeatureSpec
    policy: Policy
    threads: int = 0  # LightGBM threads per call: 0 = all cores (batches), 1 = one request per worker thread

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

    def bands(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each score's band and what it means: the first band whose upper bound the score is below."""
        uppers = np.array([b.below for b in self.policy.risk_bands])
        idx = np.searchsorted(uppers, scores, side="right").clip(max=len(uppers) - 1)
        names = np.array([b.name for b in self.policy.risk_bands], dtype=object)
        meanings = np.array([b.meaning for b in self.policy.risk_bands], dtype=object)
        return names[idx], meanings[idx]

    def score_matrix(self, X: np.ndarray, values_at: ValuesAt, seller_id: Sequence[str],
                     as_of: Sequence[date | None], top: int = 5, lowering: int = 0) -> Scored:
        """Score model-ready rows (`RiskModel.matrix`) and give their top reasons each way."""
        ex = explain(self.model, X, self.threads)
        band, meaning = self.bands(ex.score)
        up = top_reasons(ex, values_at, self.spec, top, "raises")
        down = top_reasons(ex, values_at, self.spec, lowering, "lowers")
        return Scored(np.asarray(seller_id, dtype=object), np.asarray(as_of, dtype=object),
                      ex.score, band, meaning, ex.base, up, down)

    def score_frame(self, frame: pd.DataFrame, top: int = 5, lowering: int = 0) -> Scored:
        """Score a snapshot (rows with seller_id, as_of and the spec's feature columns)."""
        as_of = frame["as_of"] if "as_of" in frame.columns else pd.Series([None] * len(frame))
        dates = {d: _as_date(d) for d in as_of.unique()}  # a snapshot has one or a few as-of dates
        return self.score_matrix(self.model.matrix(frame), frame_values(frame, self.spec),
                                 frame["seller_id"].astype(str).to_numpy(dtype=object),
                                 as_of.map(dates).to_numpy(dtype=object), top, lowering)

    def score_sellers(self, seller_id: Sequence[str], features: Sequence[Mapping[str, float | str | None]],
                      as_of: Sequence[date | None] | None = None, top: int = 5, lowering: int = 0) -> Scored:
        """Score sellers whose features come as {name: value} (absent or None: missing), as over HTTP."""
        as_of = as_of if as_of is not None else [None] * len(features)
        return self.score_matrix(self.model.matrix_from_records(features), record_values(features, self.spec),
                                 seller_id, as_of, top, lowering)

    def score_ids(self, snapshot: Snapshot, seller_ids: Sequence[str], top: int = 5, lowering: int = 0) -> Scored:
        """Score sellers of an in-memory snapshot by id (KeyError names the first unknown id)."""
        rows = np.array([snapshot.index[s] for s in seller_ids], dtype=np.int64)
        return self.score_matrix(snapshot.X[rows], snapshot.values_at(self.spec, rows), seller_ids,
                                 [snapshot.as_of] * len(rows), top, lowering)

    # ------------------------------------------------------------------ the record, two ways

    def _common(self) -> dict[str, str]:
        return {"model_name": self.ref.name, "model_version": self.ref.version,
                "policy_version": self.policy.version, "feature_spec_hash": self.spec.hash}

    def records(self, scored: Scored) -> list[dict]:
        """Score records as JSON-ready dicts (the HTTP response)."""
        common = self._common()
        cat = self.spec.categorical
        up = _reason_lists(scored.reasons, len(scored), cat)
        down = _reason_lists(scored.lowering_reasons, len(scored), cat)
        return [{"seller_id": str(scored.seller_id[i]), "as_of": scored.as_of[i],
                 "risk_score": float(scored.risk_score[i]), "risk_band": str(scored.risk_band[i]),
                 "band_meaning": str(scored.band_meaning[i]), "base_log_odds": scored.base_log_odds, **common,
                 "reasons": up[i], "lowering_reasons": down[i]} for i in range(len(scored))]

    def table(self, scored: Scored) -> pa.Table:
        """Score records as an Arrow table (the batch job's Parquet rows), built column-wise."""
        n = len(scored)
        common = {k: pa.repeat(pa.scalar(v, pa.string()), n) for k, v in self._common().items()}
        columns = {
            "seller_id": pa.array(scored.seller_id, pa.string()),
            "as_of": pa.array(scored.as_of, pa.date32()),
            "risk_score": pa.array(scored.risk_score, pa.float64()),
            "risk_band": pa.array(scored.risk_band, pa.string()),
            "band_meaning": pa.array(scored.band_meaning, pa.string()),
            "base_log_odds": pa.array(np.full(n, scored.base_log_odds), pa.float64()),
            **common,
            "reasons": _reason_list_array(scored.reasons, n, self.spec.categorical),
            "lowering_reasons": _reason_list_array(scored.lowering_reasons, n, self.spec.categorical),
        }
        return pa.table([columns[name] for name in SCORE_ARROW.names], schema=SCORE_ARROW)


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
    from features.pipeline import snapshot_columns

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


def _as_date(value: object) -> date | None:
    """A calendar date from whatever a frame holds (date, Timestamp, datetime64, string)."""
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # a Timestamp is a datetime, which is a date: take its day
        return value.date()
    return value if isinstance(value, date) else pd.Timestamp(value).date()


def _number_or_label(reasons: Reasons, categorical: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A reason's value as the record holds it: a number for numeric features, a label for categories."""
    is_cat = np.isin(reasons.feature, categorical)
    number = np.where(is_cat | (reasons.value == None), np.nan, reasons.value).astype("float64")  # noqa: E711
    label = np.where(is_cat, reasons.value, None)
    return number, label


def _reason_lists(reasons: Reasons, n: int, categorical: list[str]) -> list[list[dict]]:
    out: list[list[dict]] = [[] for _ in range(n)]
    number, label = _number_or_label(reasons, categorical)
    for i in range(len(reasons)):
        out[int(reasons.row[i])].append({
            "rank": int(reasons.rank[i]), "feature": str(reasons.feature[i]),
            "value": None if np.isnan(number[i]) else float(number[i]), "label": label[i],
            "contribution": float(reasons.contribution[i]), "probability_change": float(reasons.probability_change[i]),
            "direction": reasons.direction, "text": str(reasons.text[i])})
    return out


def _reason_list_array(reasons: Reasons, n: int, categorical: list[str]) -> pa.ListArray:
    """Reasons (sorted by row, then rank) as one list of structs per seller."""
    offsets = np.searchsorted(reasons.row, np.arange(n + 1), side="left").astype("int32")
    number, label = _number_or_label(reasons, categorical)
    struct = pa.StructArray.from_arrays(
        [pa.array(reasons.rank, pa.int32()), pa.array(reasons.feature, pa.string()),
         pa.array(number, pa.float64(), from_pandas=True), pa.array(label, pa.string()),
         pa.array(reasons.contribution, pa.float64()), pa.array(reasons.probability_change, pa.float64()),
         pa.repeat(pa.scalar(reasons.direction, pa.string()), len(reasons)),
         pa.array(reasons.text, pa.string())],
        fields=list(REASON_ARROW))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)
