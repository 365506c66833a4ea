"""How good the risk scores are, measured the way reviewers use them.

Reviewers work a weekly queue: the highest-scoring sellers, as many as the team can look at that
week. So beyond ranking (ROC AUC, PR AUC) and calibration (Brier score, ECE), a model is judged by
precision, recall and lift *at capacity*: of the sellers it put in front of reviewers, how many did
go on to breach, and how many of the week's breaches did it catch. Every number is reported on all
sellers and on the early-warning set (sellers who meet every standard at the as-of date).

Input is a frame of scored rows: one per seller and as-of week, with `as_of`, `seller_id`, `breach`
(0/1), `score` (calibrated probability), `compliant_at_t`, and the segment columns `tenure_days`,
`orders_90d` and `category`. Everything here is a pure function of such frames.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from models.cohorts import TENURE_BANDS, VOLUME_BANDS, expected_calibration_error, tenure_band, volume_band
from features.policy.definition import ReviewCapacity

POPULATIONS = ("all", "early_warning", "after_intervention")
"""Every seller-week without a reviewer's action before it, the early-warning part of those, and the
seller-weeks after a contact or warning (reported apart: their outcomes are not the model's to claim)."""
SEGMENT_TYPES = ("tenure_band", "volume_band", "category")

_QUALITY = ("roc_auc", "pr_auc", "brier", "ece")


def weekly_capacity(active_sellers: int, capacity: ReviewCapacity) -> int:
    """How many sellers reviewers can look at in a week with this many active sellers (at least one)."""
    return capacity.sellers_for(active_sellers)


def _in_population(scored: pd.DataFrame, population: str) -> pd.Series:
    """Which rows belong to a population: every seller, or the early-warning set."""
    acted = (scored["after_intervention"].astype("boolean").fillna(False).astype(bool)
             if "after_intervention" in scored.columns else pd.Series(False, index=scored.index))
    if population == "all":
        return ~acted
    if population == "early_warning":
        return scored["compliant_at_t"].astype("boolean").fillna(False).astype(bool) & ~acted
    if population == "after_intervention":
        return acted
    raise ValueError(f"unknown population {population!r}; expected one of {POPULATIONS}")


def populations(scored: pd.DataFrame) -> tuple[str, ...]:
    """The populations reported for these rows: after_intervention only when some row is."""
    return POPULATIONS if _in_population(scored, "after_intervention").any() else POPULATIONS[:2]


def _queue(scored: pd.DataFrame, capacity: ReviewCapacity, population: str = "all") -> pd.DataFrame:
    """The reviewers' weekly queue: each week's top-k of the population by score, with k sized on
    every active seller that week; ties go to the smaller seller_id. Returns the week's k, whether
    each row is in the population and whether it was flagged (aligned with `scored`)."""
    frame = scored[["as_of", "score", "seller_id"]].reset_index(drop=True)  # positional: the index may repeat
    week_rows = frame.groupby("as_of", sort=False)["seller_id"].transform("size")
    sizes = {n: weekly_capacity(int(n), capacity) for n in week_rows.unique()}  # one per distinct week size
    k = week_rows.map(sizes).to_numpy()
    member = _in_population(scored, population).to_numpy(dtype=bool)
    order = frame[member].sort_values(["as_of", "score", "seller_id"], ascending=[True, False, True],
                                      na_position="last")
    position = order.groupby("as_of", sort=False).cumcount()
    flagged = np.zeros(len(frame), dtype=bool)
    flagged[position.index.to_numpy()] = position.to_numpy() < k[position.index.to_numpy()]
    return pd.DataFrame({"k": k, "member": member, "flagged": flagged}, index=scored.index)


def _ratio(num: pd.Series | float, den: pd.Series | float) -> pd.Series | float:
    """num / den, NaN where the denominator is zero."""
    if isinstance(den, pd.Series):
        return num / den.where(den != 0)
    return float(num) / den if den else float("nan")


def at_capacity(scored: pd.DataFrame, capacity: ReviewCapacity, population: str = "all") -> pd.DataFrame:
    """Per as-of week, the reviewers' queue and what it caught: precision, recall and lift at capacity.

    k is sized on every active seller that week; with population="early_warning" the queue is picked
    among sellers who meet every standard at t, and positives, rows and base rate are theirs."""
    q = _queue(scored, capacity, population)
    breach = scored["breach"].to_numpy(dtype="int64") == 1
    flagged, member = q["flagged"].to_numpy(), q["member"].to_numpy()
    parts = pd.DataFrame({
        "as_of": scored["as_of"].to_numpy(),
        "k": q["k"].to_numpy(),
        "flagged": flagged.astype(int),
        "true_positives": (flagged & breach).astype(int),
        "positives": (member & breach).astype(int),
        "rows": member.astype(int),
    })
    weekly = parts.groupby("as_of", sort=True).agg(
        k=("k", "first"), flagged=("flagged", "sum"), true_positives=("true_positives", "sum"),
        positives=("positives", "sum"), rows=("rows", "sum")).reset_index()
    weekly["precision"] = _ratio(weekly["true_positives"], weekly["flagged"])
    weekly["recall"] = _ratio(weekly["true_positives"], weekly["positives"])
    weekly["base_rate"] = _ratio(weekly["positives"], weekly["rows"])
    weekly["lift"] = _ratio(weekly["precision"], weekly["base_rate"])
    return weekly


def _quality(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Ranking and calibration of a set of scores; ranking is NaN unless both outcomes occur."""
    y = np.asarray(y, dtype="int64")
    p = np.asarray(p, dtype="float64")
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p) if len(y) else float("nan"),
    }


def evaluate(scored: pd.DataFrame, capacity: ReviewCapacity) -> dict[str, float]:
    """The model's report card on all sellers and on the early-warning set, keyed "<population>.<metric>"."""
    out: dict[str, float] = {}
    for population in populations(scored):
        rows = scored[_in_population(scored, population).to_numpy()]
        y = rows["breach"].to_numpy(dtype="int64")
        n, positives = len(y), int(y.sum())
        base_rate = _ratio(positives, n)
        weekly = at_capacity(scored, capacity, population)
        tp, flagged = weekly["true_positives"].sum(), weekly["flagged"].sum()
        precision = _ratio(tp, flagged)
        quality = _quality(y, rows["score"].to_numpy())
        metrics = {
            "n": n, "positives": positives, "base_rate": base_rate,
            "roc_auc": quality["roc_auc"], "pr_auc": quality["pr_auc"],
            "precision_at_capacity": precision,
            "recall_at_capacity": _ratio(tp, positives),
            "lift_at_capacity": _ratio(precision, base_rate),
            "brier": quality["brier"], "ece": quality["ece"],
        }
        out |= {f"{population}.{name}": float(value) for name, value in metrics.items()}
    return out


def evaluate_standards(scored: pd.DataFrame, standards: tuple[str, ...]) -> dict[str, float]:
    """Each standard's risk (`risk_<standard>` against `breach_<standard>`) on all sellers and on the
    early-warning set: breaches, base rate, PR AUC and calibration error, keyed
    "<population>.standard.<standard>.<metric>"."""
    out: dict[str, float] = {}
    for population in populations(scored):
        rows = scored[_in_population(scored, population).to_numpy()]
        for m in standards:
            y = rows[f"breach_{m}"].to_numpy(dtype="int64")
            quality = _quality(y, rows[f"risk_{m}"].to_numpy(dtype="float64"))
            metrics = {"positives": int(y.sum()), "base_rate": _ratio(int(y.sum()), len(y)),
                       "pr_auc": quality["pr_auc"], "ece": quality["ece"]}
            out |= {f"{population}.standard.{m}.{k}": float(v) for k, v in metrics.items()}
    return out


def segments(scored: pd.DataFrame) -> pd.DataFrame:
    """The scored rows with the cohorts analysts slice by: tenure band (new under 90 days, or of
    unknown tenure; established otherwise), volume band by orders in the last 90 days, and category."""
    out = scored.copy()
    out["tenure_band"] = tenure_band(out["tenure_days"])
    out["volume_band"] = volume_band(out["orders_90d"]).astype("object")
    return out


def _segment_order(segment_type: str, labels: pd.Series) -> list:
    """Segments in reading order: bands from small to large, categories alphabetically."""
    present = set(labels.dropna().unique())
    declared = {"tenure_band": TENURE_BANDS, "volume_band": VOLUME_BANDS}.get(segment_type)
    if declared is not None:
        return [s for s in declared if s in present]
    return sorted(present, key=str)


def by_segment(scored: pd.DataFrame, capacity: ReviewCapacity) -> pd.DataFrame:
    """The report card per cohort (tenure band, volume band, category), on all sellers and on the
    early-warning set. The reviewers' queue is the whole week's; a cohort's precision and recall at
    capacity count only its own sellers in and out of that queue."""
    labelled = segments(scored)
    columns = ["population", "segment_type", "segment", "n", "positives", "base_rate", "roc_auc", "pr_auc",
               "precision_at_capacity", "recall_at_capacity", "brier", "ece"]
    records = []
    for population in populations(labelled):
        q = _queue(labelled, capacity, population)
        member = q["member"].to_numpy()
        rows = labelled[member].assign(flagged=q["flagged"].to_numpy()[member])
        rows = rows.assign(tp=rows["flagged"].to_numpy() & (rows["breach"].to_numpy(dtype="int64") == 1))
        for segment_type in SEGMENT_TYPES:
            groups = rows.groupby(segment_type, sort=False, observed=True, dropna=True)
            counts = groups.agg(n=("breach", "size"), positives=("breach", "sum"),
                                flagged=("flagged", "sum"), tp=("tp", "sum"))
            for segment in _segment_order(segment_type, rows[segment_type]):
                c = counts.loc[segment]
                part = groups.get_group(segment)
                quality = _quality(part["breach"].to_numpy(), part["score"].to_numpy())
                records.append({
                    "population": population, "segment_type": segment_type, "segment": str(segment),
                    "n": int(c["n"]), "positives": int(c["positives"]),
                    "base_rate": _ratio(c["positives"], c["n"]),
                    "roc_auc": quality["roc_auc"], "pr_auc": quality["pr_auc"],
                    "precision_at_capacity": _ratio(c["tp"], c["flagged"]),
                    "recall_at_capacity": _ratio(c["tp"], c["positives"]),
                    "brier": quality["brier"], "ece": quality["ece"],
                })
    return pd.DataFrame.from_records(records, columns=columns)


# ------------------------------------------------------------------ reason accuracy

REASON_PICKS = {"standard_at_risk": "at_risk", "first_reason": "first_reason", "rule_pick": "rule_pick"}
"""The single standard each method names for a seller (column of the scored rows): the model's standard
at risk (its largest share of the risk), the model's first reason, and the rule's pick (the evaluated
standard closest to its threshold)."""


def _named_breached(rows: pd.DataFrame, column: str, standards: tuple[str, ...]) -> np.ndarray:
    """Per row: the standard named in `column` is one the seller breached within the horizon."""
    named = rows[column].to_numpy(dtype=object)
    out = np.zeros(len(rows), dtype=bool)
    for m in standards:
        out |= (named == m) & (rows[f"breach_{m}"].to_numpy(dtype="int64") == 1)
    return out


def _any_reason_breached(rows: pd.DataFrame, standards: tuple[str, ...]) -> np.ndarray:
    """Per row: some standard among its reasons (`reasons`, comma-separated) was breached."""
    out = np.zeros(len(rows), dtype=bool)
    reasons = rows["reasons"].fillna("").to_numpy(dtype=object)
    for m in standards:
        has = np.fromiter((m in r.split(",") for r in reasons), dtype=bool, count=len(reasons))
        out |= has & (rows[f"breach_{m}"].to_numpy(dtype="int64") == 1)
    return out


def reason_accuracy(scored: pd.DataFrame, capacity: ReviewCapacity, standards: tuple[str, ...]) -> dict[str, float]:
    """Do the reasons name what the seller went on to breach? Among early-warning sellers who breached
    within the horizon, on the week's early-warning queue (what reviewers read: "queue") and on all of
    them ("early_warning"): the share whose standard at risk is one they breached, whose first reason
    is, whose reasons include one, and the same for the rule's pick; and per standard, of the breached
    sellers whose standard at risk it is, the share who breached it. Keyed
    "<population>.reasons.<metric>" and "queue.reasons.<standard>.<metric>"."""
    ew = _in_population(scored, "early_warning").to_numpy()
    breached = scored["breach"].to_numpy(dtype="int64") == 1
    queued = _queue(scored, capacity, "early_warning")["flagged"].to_numpy()
    out: dict[str, float] = {}
    for population, member in (("queue", queued & breached), ("early_warning", ew & breached)):
        rows = scored[member]
        out[f"{population}.reasons.breached_sellers"] = float(len(rows))
        for name, column in REASON_PICKS.items():
            out[f"{population}.reasons.{name}"] = _ratio(float(_named_breached(rows, column, standards).sum()), len(rows))
        out[f"{population}.reasons.any_reason"] = _ratio(float(_any_reason_breached(rows, standards).sum()), len(rows))
        out[f"{population}.reasons.with_reasons"] = _ratio(float((rows["reasons"].fillna("") != "").sum()), len(rows))
    rows = scored[queued & breached]
    right = _named_breached(rows, "at_risk", standards)
    for m in standards:
        named = rows["at_risk"].to_numpy(dtype=object) == m
        out[f"queue.reasons.{m}.named"] = float(named.sum())
        out[f"queue.reasons.{m}.accuracy"] = _ratio(float((named & right).sum()), float(named.sum()))
    return out


# ------------------------------------------------------------------ calibration week by week

CALIBRATION_POPULATIONS = ("all", "early_warning")
"""Calibration is judged week by week on every seller and on the early-warning set: a seasonal peak moves
the base rate of one week, and a figure pooled over the quiet weeks around it hides that week's error."""


def calibration_by_week(scored: pd.DataFrame) -> pd.DataFrame:
    """Per as-of week and population: sellers, breaches, the observed breach rate, the breaches the
    scores expected (their mean) and the expected calibration error (`expected_calibration_error`,
    10 equal-width bins) of that week's scores alone."""
    records = []
    for population in CALIBRATION_POPULATIONS:
        member = scored[_in_population(scored, population).to_numpy()]
        for as_of, week in member.groupby("as_of", sort=True):
            y = week["breach"].to_numpy(dtype="int64")
            p = week["score"].to_numpy(dtype="float64")
            records.append({"population": population, "as_of": pd.Timestamp(as_of), "n": len(y),
                            "positives": int(y.sum()), "base_rate": _ratio(float(y.sum()), len(y)),
                            "mean_score": float(p.mean()) if len(p) else float("nan"),
                            "ece": expected_calibration_error(y, p) if len(y) else float("nan")})
    return pd.DataFrame.from_records(records, columns=["population", "as_of", "n", "positives", "base_rate",
                                                       "mean_score", "ece"])


def worst_week(weekly: pd.DataFrame, population: str = "all") -> tuple[pd.Timestamp | None, float]:
    """The week of a `calibration_by_week` table whose calibration error is largest, and that error
    (None and NaN when the population has no week)."""
    rows = weekly[(weekly["population"] == population) & weekly["ece"].notna()]
    if rows.empty:
        return None, float("nan")
    top = rows.loc[rows["ece"].idxmax()]
    return pd.Timestamp(top["as_of"]), float(top["ece"])


WEEK_KEY = "week"
"""Per-week metrics are keyed "<model>.week.<YYYY-MM-DD>.<population>.<metric>"; the gate finds the worst
week from these keys alone, so the verdict needs no other input than the backtest's metrics."""


def weekly_metrics(weekly: pd.DataFrame) -> dict[str, float]:
    """A `calibration_by_week` table as flat metrics: each week's calibration error, base rate and mean
    score ("week.<date>.<population>.<metric>"), and per population the worst week's error
    ("pooled.<population>.worst_week_ece")."""
    out: dict[str, float] = {}
    for r in weekly.itertuples(index=False):
        key = f"{WEEK_KEY}.{r.as_of:%Y-%m-%d}.{r.population}"
        out |= {f"{key}.ece": float(r.ece), f"{key}.base_rate": float(r.base_rate),
                f"{key}.mean_score": float(r.mean_score)}
    for population in weekly["population"].unique():
        out[f"pooled.{population}.worst_week_ece"] = worst_week(weekly, population)[1]
    return out


def weeks_in(metrics: dict[str, float], model: str, population: str, metric: str = "ece") -> dict[str, float]:
    """Read the per-week values of one model, population and metric back from flat metrics: {date: value}."""
    prefix, suffix = f"{model}.{WEEK_KEY}.", f".{population}.{metric}"
    return {k.removeprefix(prefix).removesuffix(suffix): v for k, v in metrics.items()
            if k.startswith(prefix) and k.endswith(suffix)}
