"""What the analyst notebooks compute, as functions over frames: where the notebooks' inputs are,
the weekly score table read back, features grouped by the standard they measure, the share of risk
each standard explains, how often each reason is given, the check that the notebooks' SHAP values
are the served ones, a seller's standards week by week, and scores and calibration by cohort.

The notebooks in `notebooks/` call these and only draw; nothing here draws. Readers of files sit in
one section at the top (the notebooks are the edge); everything below them is pure. Like the rest
of `serving`, this reads the `features` and `models` contracts and never imports `training`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from models.cohorts import TENURE_BANDS, expected_calibration_error, tenure_band, volume_band
from models.explain import Explanation, display_value
from features.policy.definition import Policy
from features.platform.settings import Settings
from features.pipeline.spec import FeatureSpec

GENERAL = "general"
"""The group of features that measure no single standard (volume, tenure, warnings, category...)."""
SEGMENTS = ("tenure_band", "volume_band", "category", "region")


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Inputs:
    """Where a notebook reads from: the demo's folders unless the environment says otherwise."""

    root: Path
    events: Path
    features: Path
    scores: Path
    models: Path
    model_uri: str
    seller: str | None  # the deep-dive's seller; None: the riskiest of the latest week
    week: date | None  # the week to explain; None: the latest scored week


def project_root(start: Path) -> Path:
    """The checkout the notebook runs in: the nearest folder at or above `start` with a pyproject.toml
    (Jupyter starts a notebook's kernel in the notebook's own folder)."""
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def inputs_from_env(env: Mapping[str, str], start: Path) -> Inputs:
    """The notebooks' inputs from `features.platform.settings.Settings` read from `env`: SELLER_RISK_DATA (default
    <root>/data) holding events/, features/ and scores/, each overridable (SELLER_RISK_EVENTS,
    SELLER_RISK_FEATURES, SELLER_RISK_SCORES); SELLER_RISK_MODELS (default <root>/models, ignored when
    MLFLOW_TRACKING_URI names a server); SELLER_RISK_MODEL_URI (default the champion); SELLER_RISK_SELLER
    and SELLER_RISK_WEEK (YYYY-MM-DD). Relative paths are from the root."""
    root = project_root(start.resolve())
    s = Settings.from_env(env)

    def path(p: Path) -> Path:
        return p if p.is_absolute() else root / p

    return Inputs(root, path(s.events_dir), path(s.features_dir), path(s.scores_dir), path(s.models), s.model_uri,
                  s.seller, s.week)


# ------------------------------------------------------------------ reading (the only I/O here)


def scored_weeks(scores: Path | str) -> list[date]:
    """The weeks the batch job has written, oldest first."""
    from features.platform.layout import scored_weeks as weeks

    return weeks(scores)


def read_score_table(scores: Path | str, weeks: list[date] | None = None) -> pd.DataFrame:
    """The weekly score table (every row the batch job wrote, reasons as lists of dicts) for the given
    weeks, default all, sorted by week and seller."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.platform import layout

    weeks = scored_weeks(scores) if weeks is None else weeks
    tables = [layout.with_partition_column(pq.read_table(f), w)  # the partition path carries as_of
              for w in weeks for f in layout.score_files(scores, w)]
    if not tables:
        raise FileNotFoundError(f"no weekly scores in {scores}: run `seller-risk score` (or `make demo`) first")
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame.sort_values(["as_of", "seller_id"], kind="stable").reset_index(drop=True)


def read_summaries(scores: Path | str) -> list[dict]:
    """The batch job's run summaries, one per written week, oldest first."""
    from features.platform.layout import summary_file

    out = []
    for w in scored_weeks(scores):
        path = summary_file(scores, w)
        if path.is_file():
            out.append(json.loads(path.read_text()))
    return out


def read_weekly_snapshots(features: Path | str, as_of: date | None = None) -> pd.DataFrame:
    """Feature snapshots (one week, or all) with `as_of` as a date, so they join the score table."""
    from features.pipeline.snapshots import read_snapshots

    frame = read_snapshots(features, as_of)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame


def read_policy_actions(events: Path | str, seller_id: str | None = None) -> pd.DataFrame:
    """The marketplace's enforcement (warnings, suppressions, suspensions, reinstatements), optionally
    for one seller: seller_id, issued_at, action, metric, metric_value, threshold."""
    import duckdb

    where = "WHERE seller_id = ?" if seller_id is not None else ""
    params = [seller_id] if seller_id is not None else []
    files = sorted(str(f) for f in (Path(events) / "policy_actions").glob("*.parquet"))
    sql = (f"SELECT seller_id, issued_at, action, metric, metric_value, threshold "
           f"FROM read_parquet(?) {where} ORDER BY issued_at")
    return duckdb.connect().execute(sql, [files, *params]).df()


# ------------------------------------------------------------------ features and the standards they measure


def feature_groups(spec: FeatureSpec, policy: Policy) -> dict[str, str]:
    """Each feature's group: the policy metric it measures (features are named `<metric>_...`), or
    GENERAL for volume, tenure, warnings, category and region."""
    return {n: metric_of(n, policy) for n in spec.names}


def threshold_line(feature: str, policy: Policy) -> float | None:
    """Where a feature's value crosses its standard, for drawing: the threshold for a metric's rates
    and Wilson bound, 0 for its gap (positive: missing it), the minimum volume for its volume; None
    when the feature has no standard (trends, general features)."""
    for name, m in sorted(policy.metrics.items(), key=lambda kv: len(kv[0]), reverse=True):
        if not feature.startswith(f"{name}_"):
            continue
        suffix = feature.removeprefix(f"{name}_")
        if suffix == "gap":
            return 0.0
        if suffix == "volume":
            return float(m.min_count)
        if suffix == "wilson" or (suffix.endswith("d") and suffix[:-1].isdigit()):
            return m.threshold
        return None
    return None


def threshold_label(feature: str, policy: Policy) -> str | None:
    """What the line `threshold_line` draws means, in a reviewer's words."""
    line = threshold_line(feature, policy)
    if line is None:
        return None
    metric = policy.metrics[metric_of(feature, policy)]
    if feature.endswith("_volume"):
        return f"evaluated from {metric.min_count:,} ({metric.label.lower()})"
    if feature.endswith("_gap"):
        return "standard missed above 0"
    return f"standard: {metric.standard_text}"


def metric_of(feature: str, policy: Policy) -> str:
    """The policy metric a feature measures, or GENERAL."""
    metrics = sorted(policy.metrics, key=len, reverse=True)
    return next((m for m in metrics if feature.startswith(f"{m}_")), GENERAL)


def is_rate(feature: str, spec: FeatureSpec) -> bool:
    """Whether a feature is a share (drawn as a percentage): its reason template formats it as one."""
    return "%}" in spec[feature].reason


def axis_label(feature: str, spec: FeatureSpec) -> str:
    """A readable axis label for a feature's value, with its unit."""
    f = spec[feature]
    template = f.reason
    unit = ("%" if is_rate(feature, spec) else "$" if "${" in template else "days" if "days ago" in template
            or feature == "tenure_days" else "x" if "x" in template.split("}")[-1][:2] else
            "label" if f.dtype == "category" else "count")
    return f"{feature} ({unit})"


def importance(contributions: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Features by mean absolute contribution (calibrated log-odds), largest first."""
    mean_abs = np.abs(np.asarray(contributions)).mean(axis=0)
    return (pd.DataFrame({"feature": names, "mean_abs_contribution": mean_abs})
            .sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True))


def share_by_standard(contributions: np.ndarray, names: list[str], groups: Mapping[str, str],
                      labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """How much of the model's explanation each standard carries: per group of features, the share of
    all absolute contributions (what moves scores either way) and the share of all risk-raising
    contributions (what pushes sellers up); largest raising share first."""
    c = np.asarray(contributions, dtype="float64")
    g = np.array([groups[n] for n in names], dtype=object)
    frame = pd.DataFrame({"group": g, "abs": np.abs(c).sum(axis=0), "raising": np.clip(c, 0, None).sum(axis=0)})
    out = frame.groupby("group", sort=False).sum()
    out["share_abs"] = out["abs"] / out["abs"].sum() if out["abs"].sum() else np.nan
    out["share_raising"] = out["raising"] / out["raising"].sum() if out["raising"].sum() else np.nan
    out = out.reset_index().sort_values("share_raising", ascending=False, kind="stable").reset_index(drop=True)
    out["label"] = [(labels or {}).get(x, x) for x in out["group"]]
    return out[["group", "label", "share_abs", "share_raising"]]


# ------------------------------------------------------------------ reasons as served


def reason_frame(reasons: list[dict], index=None) -> pd.DataFrame:
    """A record's reasons as a table, with every field as a column even when there is no reason (a
    seller nothing of whose behaviour carries the policy's minimum effect)."""
    from serving.records import Reason

    return pd.DataFrame(reasons, index=index, columns=list(Reason.model_fields))


def reasons_long(scores: pd.DataFrame, column: str = "reasons") -> pd.DataFrame:
    """The score table's reasons one row each: seller_id, as_of, risk_score, risk_band, then the reason's
    fields (rank, standard, label, contribution, probability_change, value, volume, headroom, text)."""
    keep = ["seller_id", "as_of", "risk_score", "risk_band"]
    exploded = scores[keep + [column]].explode(column, ignore_index=True).dropna(subset=[column])
    detail = reason_frame(list(exploded[column]), index=exploded.index)
    return pd.concat([exploded[keep], detail], axis=1).drop(columns=["direction"])  # every column, even with no reason


def weekly_cutoffs(scores: Path | str, scorer):
    """The band cut-offs the weekly batch runs of the scorer's model wrote into the score table, by week
    (`serving.bands.CutoffsReader`), for `Scorer.ranked`: a seller scored in the notebook gets the band
    the batch gave it."""
    from serving.bands import CutoffsReader

    return CutoffsReader(scores, scorer.ref.run_id, recheck_s=0.0)


def top_band(scores: pd.DataFrame, policy: Policy) -> str:
    """The band reviewers work first that anyone is in this week: the first ranked band (the
    early-warning queue, `review`) when it is populated, else the next populated one."""
    present = set(scores["risk_band"])
    for band in policy.ranked_bands:
        if band.name in present:
            return band.name
    raise ValueError("no scored seller compliant now")


def reason_frequency(reasons: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """How often each standard is among the sellers' reasons: sellers given it (any rank), share of the
    sellers, how often it is the first reason, its mean contribution and one example sentence; with
    `labels` (standard -> a reviewer's name for it) a label column beside the standard."""
    sellers = reasons[["seller_id", "as_of"]].drop_duplicates().shape[0]
    g = reasons.groupby("standard", sort=False)
    out = pd.DataFrame({
        "sellers": g.size(),
        "first_reason": g["rank"].apply(lambda r: int((r == 1).sum())),
        "mean_contribution": g["contribution"].mean(),
        "example": g["text"].first(),
    })
    out["share_of_sellers"] = out["sellers"] / sellers if sellers else np.nan
    out = out.reset_index().sort_values(["sellers", "standard"], ascending=[False, True], kind="stable")
    if labels is not None:
        out.insert(1, "label", [labels.get(x, x) for x in out["standard"]])
    return out.reset_index(drop=True)


def served_agreement(served: pd.DataFrame, contributions: np.ndarray, seller_ids: np.ndarray,
                     names: list[str]) -> pd.DataFrame:
    """Each served reason (from `reasons_long`) beside the notebook's own value for the same seller and
    standard (its `standard` column; `feature` in per-feature tables): served, notebook, difference.
    `contributions` are rows x `names` (for reasons by standard: the notebook's TreeSHAP of each
    standard's own model, `standard_contributions`). The two must agree: both are TreeSHAP in calibrated log-odds of the
    same model on the same snapshot."""
    key = "standard" if "standard" in served.columns else "feature"
    row = pd.Series(np.arange(len(seller_ids)), index=pd.Index(seller_ids, name="seller_id"))
    col = pd.Series(np.arange(len(names)), index=names)
    i = row.reindex(served["seller_id"]).to_numpy()
    j = col.reindex(served[key]).to_numpy()
    if np.isnan(i.astype("float64")).any() or np.isnan(j.astype("float64")).any():
        raise KeyError(f"served reasons name sellers or {key}s the notebook did not explain")
    mine = np.asarray(contributions)[i.astype(int), j.astype(int)]
    out = served[["seller_id", key, "contribution"]].rename(columns={"contribution": "served"}).copy()
    out["notebook"] = mine
    out["difference"] = out["notebook"] - out["served"]
    return out.reset_index(drop=True)


def standard_contributions(model, X: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, list[str]]:
    """What each standard's reason speaks for, computed with the `shap` package: for every standard with
    a booster, its TreeSHAP values (calibrated log-odds of the standard's own model) summed over the
    features its reasons speak for (`models.reasons.choose.own_features`); rows x standards, and the
    standards' names. The served reasons' contributions must agree."""
    import shap

    from models.reasons.choose import own_features

    out = np.zeros((len(X), len(model.standards)))
    for k, sm in enumerate(model.standards):
        if sm.booster is not None:
            values = np.asarray(shap.TreeExplainer(sm.booster).shap_values(X))
            out[:, k] = sm.calibration.slope * values[:, own_features(spec, sm.standard)].sum(axis=1)
    return out, list(model.standard_names)


def group_contributions(contributions: np.ndarray, spec: FeatureSpec, policy: Policy) -> tuple[np.ndarray, list[str]]:
    """Per-feature contributions (rows x features, spec order) summed per group as the reasons are:
    each standard's behaviour features, then history, exposure and context; and the group names."""
    from models.explain import feature_groups as groups_of

    groups = groups_of(spec, list(policy.metrics))
    return np.asarray(contributions) @ groups.matrix, list(groups.names)


def explanation_rows(ex: Explanation, frame: pd.DataFrame, spec: FeatureSpec, rows: np.ndarray | list[int]) -> dict:
    """What a SHAP waterfall of some rows needs: values (calibrated log-odds), base value, the rows'
    display values (categories as labels) and the feature names."""
    rows = np.asarray(rows, dtype=int)
    data = np.array([[display_value(v) for v in frame[spec.names].iloc[r].tolist()] for r in rows], dtype=object)
    return {"values": ex.contributions[rows], "base_values": np.full(len(rows), ex.base), "data": data,
            "feature_names": list(spec.names)}


def display_matrix(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The features as numbers for colouring SHAP plots: categories by their level's code (missing: NaN)."""
    out = pd.DataFrame(index=frame.index)
    for n in spec.names:
        col = frame[n]
        if n in spec.categorical:
            codes = col.astype("object").astype("category").cat.codes
            out[n] = codes.where(codes >= 0).astype("float64")
        else:
            out[n] = pd.to_numeric(col, errors="coerce").astype("float64")
    return out


# ------------------------------------------------------------------ one seller


def riskiest_seller(scores: pd.DataFrame) -> str:
    """The seller with the highest score in the latest week of a score table (ties: smallest id)."""
    latest = scores[scores["as_of"] == scores["as_of"].max()]
    return str(latest.sort_values(["risk_score", "seller_id"], ascending=[False, True]).iloc[0]["seller_id"])


def standards_history(snapshots: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """One seller's (or many sellers') policy metrics week by week against the standards, long: as_of,
    seller_id, metric, label, value (the rate over the metric's own window), threshold, direction,
    window_days, evaluated (enough volume to be judged) and missed."""
    parts = []
    for name, m in policy.metrics.items():
        value = pd.to_numeric(snapshots[f"{name}_{m.window_days}d"], errors="coerce")
        evaluated = snapshots[f"evaluated_{name}"].astype("boolean").fillna(False).astype(bool)
        missed = snapshots[f"miss_{name}"].astype("boolean").fillna(False).astype(bool)
        parts.append(pd.DataFrame({"as_of": pd.to_datetime(snapshots["as_of"]).dt.date.to_numpy(),
                                   "seller_id": snapshots["seller_id"].to_numpy(), "metric": name, "label": m.label,
                                   "value": value.to_numpy(), "threshold": m.threshold, "direction": m.direction,
                                   "window_days": m.window_days, "evaluated": evaluated.to_numpy(),
                                   "missed": missed.to_numpy()}))
    return pd.concat(parts, ignore_index=True).sort_values(["seller_id", "metric", "as_of"], kind="stable") \
        .reset_index(drop=True)


def reason_history(records: list[dict], top: int = 8) -> pd.DataFrame:
    """How a seller's reasons moved week by week: as_of x standard (its label), the contribution of each
    of the `top` standards most often among the reasons (0 where it was no reason that week)."""
    rows = [{"as_of": r["as_of"], "standard": x["label"], "contribution": x["contribution"]}
            for r in records for x in r["reasons"]]
    if not rows:
        return pd.DataFrame()
    long = pd.DataFrame(rows)
    keep = long.groupby("standard")["contribution"].agg(["size", "sum"]) \
        .sort_values(["size", "sum"], ascending=False).head(top).index
    wide = long[long["standard"].isin(keep)].pivot_table(index="as_of", columns="standard", values="contribution",
                                                         aggfunc="sum", fill_value=0.0)
    return wide[list(keep)].sort_index()


def score_history(records: list[dict]) -> pd.DataFrame:
    """A seller's score records as a weekly table: as_of, risk_score, risk_band, first reason."""
    return pd.DataFrame([{"as_of": r["as_of"], "risk_score": r["risk_score"], "risk_band": r["risk_band"],
                          "first_reason": r["reasons"][0]["text"] if r["reasons"] else ""}
                         for r in records]).sort_values("as_of").reset_index(drop=True)


# ------------------------------------------------------------------ cohorts and model health


def with_segments(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with the cohorts analysts slice by: tenure band (new: under models.cohorts.NEW_SELLER_DAYS or unknown),
    volume band by orders in the last 90 days, category and region (from the features)."""
    out = frame.copy()
    out["tenure_band"] = pd.Categorical(tenure_band(out["tenure_days"]), categories=list(TENURE_BANDS), ordered=True)
    out["volume_band"] = volume_band(out["orders_90d"])  # ordered, small to large
    out["category"] = out["category"].astype("object")
    out["region"] = out["region"].astype("object")
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (NaN unless both outcomes occur)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=bool)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error, as training's promotion gate measures it."""
    return expected_calibration_error(y, p, bins)


def segment_scores(frame: pd.DataFrame, segments: tuple[str, ...] = SEGMENTS) -> pd.DataFrame:
    """Per cohort (long: segment_type, segment): sellers, mean and median score, share in each band
    is left to the caller; with a `breach` label present also the observed breach rate, the gap
    between mean score and observed rate, calibration error and ROC AUC on the labelled rows."""
    rows = []
    labelled = "breach" in frame.columns
    for seg in segments:
        for value, part in frame.groupby(seg, sort=True, dropna=True, observed=True):
            rec = {"segment_type": seg, "segment": str(value), "sellers": len(part),
                   "mean_score": float(part["risk_score"].mean()), "median_score": float(part["risk_score"].median())}
            if labelled:
                lab = part[part["breach"].notna()]
                y, p = lab["breach"].to_numpy(dtype="float64"), lab["risk_score"].to_numpy(dtype="float64")
                rec.update({"labelled": len(lab), "breaches": int(y.sum()),
                            "breach_rate": float(y.mean()) if len(y) else float("nan"),
                            "mean_score_labelled": float(p.mean()) if len(p) else float("nan"),
                            "calibration_gap": float(p.mean() - y.mean()) if len(y) else float("nan"),
                            "ece": calibration_error(y, p), "roc_auc": _auc(y, p)})
            rows.append(rec)
    return pd.DataFrame(rows)


def reliability(frame: pd.DataFrame, by: str, bins: int = 5) -> pd.DataFrame:
    """Observed breach rate against mean score in score quantile bins, per value of `by` (labelled
    rows only): by, bin, sellers, mean_score, breach_rate."""
    lab = frame[frame["breach"].notna()]
    out = []
    for value, part in lab.groupby(by, sort=True, dropna=True, observed=True):
        q = min(bins, max(1, part["risk_score"].nunique()))
        b = pd.qcut(part["risk_score"].rank(method="first"), q, labels=False)
        t = part.assign(bin=b).groupby("bin").agg(sellers=("risk_score", "size"), mean_score=("risk_score", "mean"),
                                                  breach_rate=("breach", "mean")).reset_index()
        t.insert(0, by, value)
        out.append(t)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[by, "bin", "sellers", "mean_score",
                                                                              "breach_rate"])


def weekly_segment_scores(frame: pd.DataFrame, segment: str) -> pd.DataFrame:
    """Mean score and share of sellers per week and cohort value (which categories or regions drift):
    as_of, <segment>, sellers, share, mean_score."""
    g = frame.groupby(["as_of", segment], sort=True, dropna=True, observed=True)
    out = g.agg(sellers=("risk_score", "size"), mean_score=("risk_score", "mean")).reset_index()
    out["share"] = out["sellers"] / out.groupby("as_of")["sellers"].transform("sum")
    return out


def capacity_over_time(summaries: list[dict]) -> pd.DataFrame:
    """From the batch summaries: per week, expected breaches and their interval, the reviewers'
    capacity, the breaches expected in their queue and its share of all expected breaches."""
    rows = []
    for s in summaries:
        eb, cap = s["expected_breaches"], s["review_capacity"]
        rows.append({"as_of": date.fromisoformat(s["as_of"]), "sellers_scored": s["sellers_scored"],
                     "expected_breaches": eb["expected"], "low": eb["low"], "high": eb["high"],
                     "capacity": cap["sellers"], "expected_in_queue": cap["expected_breaches_in_queue"],
                     "share_in_queue": cap["share_of_expected_breaches"], "model_version": s["model"]["version"]})
    return pd.DataFrame(rows)


def drift_over_time(summaries: list[dict]) -> pd.DataFrame:
    """From the batch summaries: PSI per week and variable (long: as_of, variable, psi, level), and
    the reference each was measured against."""
    rows = [{"as_of": date.fromisoformat(s["as_of"]), **v, "reference": s["drift"]["reference"]}
            for s in summaries for v in s["drift"]["variables"]]
    return pd.DataFrame(rows, columns=["as_of", "variable", "psi", "level", "reference"])


def bands_over_time(summaries: list[dict]) -> pd.DataFrame:
    """Sellers per band and week, from the batch summaries (as_of x band)."""
    rows = [{"as_of": date.fromisoformat(s["as_of"]), "band": b["band"], "sellers": b["sellers"]}
            for s in summaries for b in s["bands"]]
    if not rows:
        return pd.DataFrame()
    order = list(dict.fromkeys(r["band"] for r in rows))
    return pd.DataFrame(rows).pivot(index="as_of", columns="band", values="sellers")[order]


def psi_limits() -> tuple[float, float]:
    """The PSI levels the batch summary reads as watch and alert."""
    from serving.batch.summary import PSI_ALERT, PSI_WATCH

    return PSI_WATCH, PSI_ALERT


def env_inputs() -> Inputs:
    """Inputs from this process's environment, relative to the working folder."""
    return inputs_from_env(os.environ, Path.cwd())
