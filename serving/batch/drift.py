"""Population drift: what the scored week is compared with (a sample of the weeks the model was
trained on, else the earlier snapshots), cut into bins once per model version and cached, and the
scored week's counts in those bins, added a chunk at a time. The PSI itself is `summary.drift_table`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.platform import layout
from serving.batch.summary import Bins, reference_bins
from serving.scoring import Scorer

TOP_FEATURES = 10  # features whose drift the summary reports: the model's largest by total gain
REFERENCE_ROWS = 50_000  # sample of the training weeks the drift reference is cut from
NOT_WATCHED = frozenset({"week_of_year"})
"""Features whose drift means nothing: the scored week is never the training weeks' mix of weeks of
the year, so the calendar's PSI is an alert every week (8.3 on the demo)."""


@dataclass(frozen=True)
class Reference:
    """What the scored population is compared with: per variable, its bins and the reference counts."""

    source: str
    bins: dict[str, tuple[Bins, np.ndarray]]

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "bins": [{**b.to_dict(), "counts": c.tolist()}
                                                           for b, c in self.bins.values()]})

    @classmethod
    def from_json(cls, text: str) -> Reference:
        d = json.loads(text)
        return cls(d["source"], {b["name"]: (Bins.from_dict(b), np.asarray(b["counts"], dtype="int64"))
                                 for b in d["bins"]})


def drift_features(scorer: Scorer, n: int = TOP_FEATURES) -> list[str]:
    """The features drift is watched on: the model's `n` largest by total split gain, the calendar aside."""
    gain = scorer.model.booster.feature_importance("gain")
    order = [i for i in np.argsort(-gain, kind="stable") if scorer.model.feature_names[i] not in NOT_WATCHED]
    return [scorer.model.feature_names[i] for i in order[:n]]


def sample_weeks(features_dir: Path, first: date, last: date, columns: list[str], rows: int) -> pd.DataFrame:
    """A repeatable sample of `rows` seller-weeks of the snapshots from `first` to `last`."""
    import duckdb

    files = [str(f) for f in layout.snapshot_files(features_dir)]
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    if not files:
        return pd.DataFrame(columns=columns)
    con = duckdb.connect()
    con.execute("SET threads = 1")  # a repeatable sample
    return con.execute(f"SELECT {cols} FROM read_parquet($files, hive_partitioning = true) "
                       "WHERE as_of BETWEEN $first AND $last "
                       f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE (7)",
                       {"files": files, "first": first, "last": last}).df()


def build_reference(scorer: Scorer, sample: pd.DataFrame, features: list[str], source: str) -> Reference:
    """Bins and counts of the score and the watched features in a reference sample."""
    scores = scorer.model.probability(scorer.model.matrix(sample))
    bins = {"risk_score": reference_bins("risk_score", scores)}
    categorical = set(scorer.spec.categorical)
    bins.update({f: reference_bins(f, sample[f], f in categorical) for f in features})
    values = {"risk_score": scores, **{f: sample[f] for f in features}}
    return Reference(source, {n: (b, b.counts(values[n])) for n, b in bins.items()})


def drift_reference(scorer: Scorer, features_dir: Path, as_of: date, out: Path) -> Reference | None:
    """The population drift is measured against. First choice: a sample of the weeks the model was
    trained and calibrated on (its run's `final` split, read from the run's `features_dir`), cached
    per model version. Fallback when those snapshots are gone: the snapshots before the scored week
    in the folder being scored. None when neither exists."""
    features = drift_features(scorer)
    cache = layout.reference_file(out, scorer.ref.name, scorer.ref.version)
    if cache.is_file():
        return Reference.from_json(cache.read_text())
    columns = ["seller_id", *scorer.spec.names]
    ref = _training_reference(scorer, features, columns)
    if ref is not None:
        _keep(cache, ref)
        return ref
    sample = sample_weeks(features_dir, date(1970, 1, 1), as_of - timedelta(days=1), columns, REFERENCE_ROWS)
    if len(sample) == 0:
        return None
    return build_reference(scorer, sample, features,
                           f"snapshots before {as_of} in {features_dir} (the model's training weeks are not available)")


def _training_reference(scorer: Scorer, features: list[str], columns: list[str]) -> Reference | None:
    """The reference cut from the model's own training weeks; None when they are gone or empty."""
    from models.registry import fitted_weeks

    weeks = fitted_weeks(scorer.ref)
    if weeks is None or not layout.snapshots_dir(weeks.features_dir).is_dir():
        return None
    folder, first, last = weeks.features_dir, weeks.first, weeks.last
    sample = sample_weeks(folder, first, last, columns, REFERENCE_ROWS)
    if not len(sample):
        return None
    return build_reference(scorer, sample, features,
                           f"training weeks {first}..{last} of model v{scorer.ref.version} ({folder})")


def _keep(cache: Path, ref: Reference) -> None:
    """The reference written to its cache file whole (a reader never sees half of it)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    tmp.write_text(ref.to_json())
    tmp.replace(cache)


@dataclass
class DriftCounts:
    """The scored week's counts in the reference's bins, per watched variable, added a chunk at a
    time as the job writes (the score's own counts come last, from the week's scores)."""

    reference: Reference | None
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame) -> None:
        """A chunk of the snapshot counted into the watched features' bins."""
        for name in self.watched:
            c = self.reference.bins[name][0].counts(frame[name])
            self.counts[name] = self.counts.get(name, 0) + c

    @property
    def watched(self) -> list[str]:
        return [n for n in (self.reference.bins if self.reference else {}) if n != "risk_score"]

    def with_scores(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable's counts, the week's risk scores included."""
        if self.reference is not None:
            self.counts["risk_score"] = self.reference.bins["risk_score"][0].counts(scores)
        return self.counts
