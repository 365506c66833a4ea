"""The earlier weeks whose labels have matured, read for monitoring: their scores from the score table and
their breach labels from the features folder's snapshots (features.platform.layout says where each lives).

A week is monitored when it was scored, its horizon has passed by this run's as-of (week + horizon <= as-of,
so a run for an old week never looks at labels from after it), and the snapshot of that week holds labels
(the pipeline leaves them empty until the whole horizon lies inside the events). At most the policy's
`monitoring.lookback_weeks` latest such weeks are read, so a run's cost stays bounded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from features.platform import layout
from features.policy.definition import Policy
from serving.batch.monitoring import outcomes

Progress = Callable[[int, int], None]


def due_weeks(out: Path, as_of: date, policy: Policy) -> list[date]:
    """Scored weeks before `as_of` whose horizon has passed by it, the latest `lookback_weeks`, oldest first."""
    horizon = timedelta(days=policy.horizon_days)
    due = [w for w in layout.scored_weeks(out) if w < as_of and w + horizon <= as_of]
    return due[-policy.monitoring.lookback_weeks:]


def read_scored(out: Path, as_of: date, standards: list[str]) -> pd.DataFrame:
    """A week's sellers from the score table: seller_id, risk_score, queue and risk_<standard> (from
    risk_by_standard)."""
    files = layout.score_files(out, as_of)
    t = ds.dataset(files, format="parquet").to_table(columns=["seller_id", "risk_score", "queue", "risk_by_standard"])
    frame = t.select(["seller_id", "risk_score", "queue"]).to_pandas()
    nested = t.column("risk_by_standard").combine_chunks()
    flat = pc.list_flatten(nested)
    parent = pc.list_parent_indices(nested).to_numpy()
    names = flat.field("standard").to_numpy(zero_copy_only=False)
    risks = flat.field("risk").to_numpy(zero_copy_only=False)
    for s in standards:
        col = pd.Series(float("nan"), index=frame.index)
        mask = names == s
        col.iloc[parent[mask]] = risks[mask]
        frame[f"risk_{s}"] = col.to_numpy()
    return frame


def read_labels(features_dir: Path, as_of: date, standards: list[str]) -> pd.DataFrame | None:
    """A week's breach labels from its snapshot (seller_id, breach, breach_<standard>); None when the
    snapshot is absent or its labels are not known yet."""
    files = layout.snapshot_files(features_dir, as_of)
    if not files:
        return None
    columns = ["seller_id", "breach", *(f"breach_{s}" for s in standards)]
    present = set(pq.read_schema(files[0]).names)
    if not set(columns) <= present:
        missing = ", ".join(sorted(set(columns) - present))
        raise ValueError(f"snapshot {layout.snapshot_partition(features_dir, as_of)}: missing label column(s) {missing}")
    t = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    if t.num_rows == 0 or t.column("breach").null_count == t.num_rows:
        return None
    return t.to_pandas()


def matured_outcomes(out: Path, features_dir: Path, as_of: date, policy: Policy,
                     progress: Progress | None = None) -> dict[date, pd.DataFrame]:
    """Each due week's scored sellers joined with their matured labels (weeks without labels left out)."""
    standards = list(policy.metrics)
    weeks = due_weeks(out, as_of, policy)
    found = {}
    for i, week in enumerate(weeks, 1):
        labels = read_labels(features_dir, week, standards)
        if labels is not None:
            found[week] = outcomes(read_scored(out, week, standards), labels, standards, week)
        if progress:
            progress(i, len(weeks))
    return found
