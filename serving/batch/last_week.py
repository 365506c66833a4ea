"""Last week's scores, the ones this week's risers are measured from."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.platform import layout
from serving.bands import assign_bands
from serving.batch.ranking import rank_week, week_cutoffs
from serving.batch.summary import capacity_k
from serving.scoring import Scorer


def previous_scores(out: Path, previous: date, features_dir: Path, scorer: Scorer,
                    chunk_rows: int) -> tuple[pd.DataFrame | None, str]:
    """Last week's scores to find the risers: the job's own partition for that week when there is one
    (what reviewers saw), else last week's snapshot scored now by the same model; None if neither."""
    part = layout.score_partition(out, previous)
    files = layout.score_files(out, previous)
    if files:
        prev = pa.concat_tables([pq.read_table(f, columns=["seller_id", "risk_score", "risk_band", "model_version"])
                                 for f in files]).to_pandas()
        versions = ", ".join(f"v{v}" for v in sorted(prev.pop("model_version").unique()))
        return prev, f"{previous} scores in {part} (model {versions})"
    files = layout.snapshot_files(features_dir, previous)
    if not files:
        return None, f"no scores or snapshot for {previous}"
    week = rank_week(scorer, files, previous, chunk_rows)
    missing = week.missed > 0
    cutoffs = week_cutoffs(scorer, week, previous, capacity_k(scorer.policy.review_capacity, len(missing)))
    band = assign_bands(week.risk_score, missing, scorer.policy, cutoffs)[0]
    return (pd.DataFrame({"seller_id": week.seller_id, "risk_score": week.risk_score, "risk_band": band}),
            f"{previous} snapshot scored now with model v{scorer.ref.version}")
