"""The model watched against the labels that have matured, as pure functions over frames: for each earlier
scored week whose horizon has passed, how many of the queued sellers did breach (the queue's realised
precision), how many sellers compliant then breached against how many the model expected (and whether that
fell inside the interval the week's forecast would have printed), and each standard's expected against
realised breaches among them (calibration per standard). From those weeks' realised/expected ratios comes
the model's own error that this week's breach forecast (models.forecast) carries.

Every figure has an interval built only from what was known when its week was scored (the ratios of weeks
matured by then), so "outside its interval" means the model surprised us, not that we learned later. A
figure outside its interval `warn_after_weeks` monitored weeks running is a warning for the leader page.

No I/O: `serving.batch.matured` reads the earlier weeks' scores and labels, the job writes the rows into
the week's summary and MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from models.forecast import breach_interval
from serving.batch.summary import EARLY_WARNING, RECOVERY

SCORED = ("seller_id", "risk_score", "queue")
"""What a monitored week needs of its score table (and `risk_<standard>` for each standard)."""
COMPLIANT, QUEUE, ALL = "compliant", "queue", "all"
"""The monitored figures: sellers compliant then, the early-warning queue, every labelled seller."""


def outcomes(scored: pd.DataFrame, labels: pd.DataFrame, standards: Sequence[str], as_of: date) -> pd.DataFrame:
    """A week's scored sellers with their matured labels (sellers without a label dropped): risk_score,
    queue, risk_<s> from the score table; breach, breach_<s> from the week's snapshot."""
    _require(scored, [*SCORED, *(f"risk_{s}" for s in standards)], f"score table of {as_of}")
    _require(labels, ["seller_id", "breach", *(f"breach_{s}" for s in standards)], f"snapshot labels of {as_of}")
    joined = scored.merge(labels, on="seller_id", how="inner", validate="one_to_one")
    return joined[joined["breach"].notna()].reset_index(drop=True)


def _require(frame: pd.DataFrame, columns: list[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")


def figure(risk: np.ndarray, realised: float, ratios: Sequence[float], level: float) -> dict:
    """Realised breaches against the model's expected (the sum of risks), with the interval the week's
    forecast gave (its planning figure, low, high) and whether the realised count fell inside it."""
    expected = float(np.sum(risk))
    planned, low, high = breach_interval(risk, ratios, level)
    return {"sellers": int(len(risk)), "expected": expected, "realised": float(realised),
            "ratio": realised / expected if expected > 0 else float("nan"), "planned": planned, "low": low,
            "high": high, "inside": bool(low <= realised <= high), "matured_weeks": len(ratios)}


def week_figures(week: pd.DataFrame, standards: Sequence[str], ratios: dict[str, list[float]],
                 level: float) -> dict:
    """One matured week's figures: the queue's realised precision, realised against expected among the
    sellers compliant then, and per standard among them. `ratios` holds, per figure (QUEUE, COMPLIANT, each
    standard), the realised/expected ratios of the weeks matured before this week was scored."""
    compliant = week[week["queue"].ne(RECOVERY) | week["queue"].isna()]
    queued = week[week["queue"] == EARLY_WARNING]
    q = figure(queued["risk_score"].to_numpy(float), float(queued["breach"].astype(bool).sum()),
               ratios.get(QUEUE, []), level)
    k = max(q["sellers"], 1)
    q.update({"precision": q["realised"] / k if q["sellers"] else float("nan"),
              "expected_precision": q["expected"] / k if q["sellers"] else float("nan"),
              "precision_low": q["low"] / k, "precision_high": q["high"] / k})
    per_standard = [{"standard": s, **figure(compliant[f"risk_{s}"].to_numpy(float),
                                             float(compliant[f"breach_{s}"].astype(bool).sum()),
                                             ratios.get(s, []), level)} for s in standards]
    return {"queue": q,
            COMPLIANT: figure(compliant["risk_score"].to_numpy(float), float(compliant["breach"].astype(bool).sum()),
                              ratios.get(COMPLIANT, []), level),
            ALL: figure(week["risk_score"].to_numpy(float), float(week["breach"].astype(bool).sum()),
                        ratios.get(ALL, []), level),
            "standards": per_standard, "worst_standard": worst_standard(per_standard)}


def worst_standard(per_standard: list[dict]) -> dict | None:
    """The standard whose realised breaches stray furthest from the expected, in log ratio (a standard
    with none expected or none realised counts as one breach to keep it finite)."""
    if not per_standard:
        return None
    def stray(f: dict) -> float:
        return abs(np.log(max(f["realised"], 1.0) / max(f["expected"], 1.0)))
    return max(per_standard, key=stray)


def monitor(weeks: dict[date, pd.DataFrame], standards: Sequence[str], horizon_days: int, level: float) -> list[dict]:
    """The figures of every matured week (oldest first), each built with the ratios of the weeks whose
    labels had matured when it was scored (week + horizon <= its as-of): what its forecast knew."""
    rows: list[dict] = []
    for as_of in sorted(weeks):
        known = [r for r in rows if date.fromisoformat(r["as_of"]) + timedelta(days=horizon_days) <= as_of]
        figures = week_figures(weeks[as_of], standards, ratios_of(known, standards), level)
        rows.append({"as_of": str(as_of), "matured_on": str(as_of + timedelta(days=horizon_days)),
                     "sellers_labelled": int(len(weeks[as_of])), **figures})
    return rows


def ratios_of(rows: list[dict], standards: Sequence[str]) -> dict[str, list[float]]:
    """Per figure, the realised/expected ratios of the monitored weeks `rows` the model's error is learnt
    from: weeks with breaches expected; a week with none realised counts as half a breach (a log ratio
    must be finite, and leaving such a week out would hide the model's worst misses)."""
    def ratio(f: dict | None) -> list[float]:
        return [max(f["realised"], 0.5) / f["expected"]] if f and f["expected"] > 0 else []
    out = {key: [x for r in rows for x in ratio(r[key])] for key in (QUEUE, COMPLIANT, ALL)}
    for s in standards:
        out[s] = [x for r in rows for f in r["standards"] if f["standard"] == s for x in ratio(f)]
    return out


def forecast(risk: np.ndarray, rows: list[dict], level: float, unseen: str = "") -> dict:
    """This week's breach forecast among `risk` (sellers compliant now): the model's expected, the planning
    figure and its interval with the model's own error over the matured weeks `rows` and, when `unseen` says
    the model never trained on the week's season, a seasonal error too; and a sentence that says so."""
    ratios = ratios_of(rows, [])[COMPLIANT]
    planned, low, high = breach_interval(risk, ratios, level, unseen_season=bool(unseen))
    n = len(ratios)
    says = (f"includes the model's own error over {n} matured week{'s' if n != 1 else ''} (realised against "
            "expected breaches among sellers compliant then), not only the spread of a calibrated model"
            if n else "assumes the model may be a quarter off either way (a wide prior: no week has matured yet), "
                      "not only the spread of a calibrated model")
    says += f"; and {unseen}" if unseen else ""
    return {"population": "compliant_now", "sellers": int(len(risk)), "expected": float(np.sum(risk)),
            "planned": planned, "interval_level": level, "low": low, "high": high, "matured_weeks": n,
            "interval_includes": says}


def warnings(rows: list[dict], run: int = 2) -> list[dict]:
    """Figures outside their interval in the last `run` monitored weeks running (consecutive rows), each
    with the weeks: queue precision, realised against expected breaches, and each standard's calibration."""
    if len(rows) < run:
        return []
    last = rows[-run:]
    out = []
    checks = [("queue precision", lambda r: r[QUEUE]), ("breaches among compliant sellers", lambda r: r[COMPLIANT])]
    checks += [(f"calibration of {f['standard']}", lambda r, s=f["standard"]: _standard(r, s))
               for f in last[-1]["standards"]]
    for name, pick in checks:
        figs = [pick(r) for r in last]
        if all(f is not None and f["sellers"] and not f["inside"] for f in figs):
            out.append({"figure": name, "weeks": [r["as_of"] for r in last],
                        "ratios": [f["ratio"] for f in figs],
                        "direction": "fewer" if all(f["realised"] < f["low"] for f in figs) else
                                     "more" if all(f["realised"] > f["high"] for f in figs) else "both ways"})
    return out


def _standard(row: dict, standard: str) -> dict | None:
    return next((f for f in row["standards"] if f["standard"] == standard), None)
