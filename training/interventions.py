"""Reviewers' decisions as training sees them: a seller-week that follows a contact, a warning or an
escalation is not a plain outcome (a warned seller who recovered is not evidence of low risk), so
those weeks are told apart, kept out of the fit and reported on their own in the backtest.

The decisions come from `seller-risk decisions export` (a Parquet table keyed by seller_id and as_of,
one row per decision, with its action); training reads it when it is there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ACTED = ("contact_seller", "formal_warning", "escalate")
"""The decisions that change what a seller does next (no_action does not)."""
COLUMNS = ("seller_id", "as_of", "action")


def read_decisions(path: Path) -> pd.DataFrame:
    """The decisions in force (seller_id, as_of, action): a decision another one corrects is replaced by
    its correction; a missing column is named."""
    frame = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: the decisions table has no column {', '.join(missing)} "
                         "(write it with `seller-risk decisions export`)")
    if {"id", "corrects"} <= set(frame.columns):
        frame = frame[~frame["id"].isin(frame["corrects"].dropna())]
    out = frame[list(COLUMNS)].copy()
    out["as_of"] = pd.to_datetime(out["as_of"])
    out["seller_id"] = out["seller_id"].astype(str)
    return out


def after_intervention(frame: pd.DataFrame, decisions: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Per row of `frame` (seller_id, as_of): whether a contact, warning or escalation was decided on the
    seller at an as-of date d with d <= as_of < d + horizon (its label window overlaps what the
    reviewer's action may have changed)."""
    acted = decisions.loc[decisions["action"].isin(ACTED), ["seller_id", "as_of"]].drop_duplicates()
    if acted.empty or frame.empty:
        return pd.Series(False, index=frame.index)
    rows = frame[["seller_id", "as_of"]].astype({"seller_id": str}).reset_index()
    pairs = rows.merge(acted.rename(columns={"as_of": "decided"}), on="seller_id")
    hit = (pairs["decided"] <= pairs["as_of"]) & (pairs["as_of"] < pairs["decided"] + pd.Timedelta(days=horizon_days))
    marked = set(pairs.loc[hit, "index"])
    return pd.Series(frame.index.isin(list(marked)), index=frame.index)
