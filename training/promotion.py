"""The promotion gate and the registry moves it guards.

Training evaluates the challenger, the baselines and the current champion on the same backtest and
decides the gate there (a pure function of those numbers); `promote` reads that verdict and moves
the `champion` alias only when it passed and the champion has not changed since; `rollback` moves it
back. Every move is recorded: the registered model keeps its champion history in a tag, the version
gets tags saying when and why, and each move is a run in the `seller-risk-promotions` experiment.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from training.backtest import CHAMPION, LOGREG, MODEL, ON_CHAMPION_WEEKS, RULE
from training.metrics import CALIBRATION_POPULATIONS, weeks_in

HISTORY_TAG = "champion_history"
PROMOTIONS_EXPERIMENT = "seller-risk-promotions"


@dataclass(frozen=True)
class GateBounds:
    """What a challenger must show to become champion."""

    baseline_margin: float = 0.10  # early-warning PR AUC at least 10% above the best baseline's
    champion_tolerance: float = 0.005  # early-warning PR AUC and ROC AUC at most this below the champion's
    max_ece: float = 0.05  # expected calibration error on all sellers, pooled over the test weeks
    max_week_ece: float = 0.05  # and in every test week alone, on all sellers and on the early-warning set
    min_segment_auc: float = 0.60  # every segment with enough breaches keeps this ROC AUC
    segment_drop: float = 0.05  # and loses at most this against the champion
    min_segment_positives: int = 30
    max_standard_ece: float = 0.05  # each standard's risk, early-warning set, when it has enough breaches
    reason_margin: float = 0.15  # the standard at risk names a breached standard this much more often than the rule


@dataclass
class Gate:
    """The gate's verdict: every check with what it compared."""

    passed: bool
    champion_version: str | None
    checks: list[dict] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [c["detail"] for c in self.checks if not c["passed"]]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Gate:
        return cls(**json.loads(text))


def _m(metrics: dict[str, float], model: str, key: str) -> float:
    return metrics.get(f"{model}.pooled.{key}", float("nan"))


EW = "early_warning.pr_auc"  # the challenger is judged first on ranking the early-warning population


def decide(metrics: dict[str, float], segments: pd.DataFrame, leaks: dict[str, float],
           champion_version: str | None, bounds: GateBounds = GateBounds(),
           reason_sources: dict[str, list[str]] | None = None) -> Gate:
    """Whether the challenger (model `lightgbm` in the backtest) may replace the champion: every
    check below must pass, and each says what it compared.

    `reason_sources`: for each standard a reason can name, the roles of the features whose
    contributions make it (the model's `feature_groups`); anything but behaviour fails the gate."""
    checks = [
        *_beats_baselines(metrics, bounds),
        *_not_worse_than_champion(metrics, champion_version, bounds),
        *_queue_beats_rule(metrics),
        *_calibrated(metrics, bounds),
        *_calibrated_every_week(metrics, bounds),
        *_standards_calibrated(metrics, bounds),
        *(_reasons_are_behaviour(reason_sources) if reason_sources is not None else []),
        *_reasons_name_the_breach(metrics, bounds),
        *_no_segment_collapses(segments, champion_version, bounds),
        *_no_leaked_feature(leaks),
    ]
    return Gate(all(c["passed"] for c in checks), champion_version, checks)


def _check(name: str, ok: bool, detail: str) -> list[dict]:
    """One line of the gate's report."""
    return [{"check": name, "passed": bool(ok), "detail": detail}]


def _beats_baselines(metrics: dict[str, float], bounds: GateBounds) -> list[dict]:
    """The challenger's early-warning PR AUC beats the best baseline by the margin."""
    mine = _m(metrics, MODEL, EW)
    best_name = max((LOGREG, RULE), key=lambda b: _m(metrics, b, EW) if not math.isnan(_m(metrics, b, EW)) else -1)
    best = _m(metrics, best_name, EW)
    need = best * (1 + bounds.baseline_margin)
    return _check("beats baselines", mine >= need,
                  f"early-warning PR AUC {mine:.4f} vs best baseline {best_name} {best:.4f} (needs >= {need:.4f})")


def _not_worse_than_champion(metrics: dict[str, float], champion_version: str | None, bounds: GateBounds) -> list[dict]:
    """Not worse than the champion on the test weeks it never learnt from, the challenger measured on the
    same weeks, within tolerance. Nothing to compare when there is no champion, when it was built for
    another feature spec or its run does not say what it was fitted on, or when its labels reached every
    test week (a model scored on its own training weeks looks better than any backtest: a model trained
    again on the same data would be refused for being itself)."""
    if champion_version is None:
        return []
    unseen = metrics.get(f"{CHAMPION}.unseen_weeks")
    if unseen is None:
        return _check("not worse than champion", True,
                      f"champion v{champion_version} was built for another feature spec, or its run does not say which "
                      "weeks it was fitted on; compared with the baselines only")
    if unseen == 0:
        return _check("not worse than champion", True,
                      f"champion v{champion_version} learnt from labels reaching every test week: no week is out of "
                      "sample for it; compared with the baselines only")
    checks = []
    for key in (EW, "all.roc_auc"):
        mine, theirs = metrics[f"{ON_CHAMPION_WEEKS}.{key}"], _m(metrics, CHAMPION, key)
        checks += _check(f"not worse than champion ({key})", ok := mine >= theirs - bounds.champion_tolerance,
                         f"{key} {mine:.4f} vs champion v{champion_version} {theirs:.4f} on the {unseen:.0f} test "
                         "week(s) it never learnt from" + ("" if ok else f" (more than {bounds.champion_tolerance} worse)"))
    return checks


def _queue_beats_rule(metrics: dict[str, float]) -> list[dict]:
    """The early-warning queue filled by the model is more precise at capacity than the rule's."""
    queue = "early_warning.precision_at_capacity"
    mine_q, rule_q, lr_q = (_m(metrics, m, queue) for m in (MODEL, RULE, LOGREG))
    return _check("queue beats the rule", mine_q > rule_q,
                  f"early-warning queue precision at capacity {mine_q:.1%} vs the rule's {rule_q:.1%} "
                  f"(logistic regression {lr_q:.1%}; recall {_m(metrics, MODEL, 'early_warning.recall_at_capacity'):.1%} "
                  f"vs {_m(metrics, RULE, 'early_warning.recall_at_capacity'):.1%})")


def _calibrated(metrics: dict[str, float], bounds: GateBounds) -> list[dict]:
    """The risk is calibrated overall."""
    ece = _m(metrics, MODEL, "all.ece")
    return _check("calibrated", ece <= bounds.max_ece, f"expected calibration error {ece:.4f} (bound {bounds.max_ece})")


def _calibrated_every_week(metrics: dict[str, float], bounds: GateBounds) -> list[dict]:
    """The risk is calibrated in every test week, not only pooled: a seasonal peak moves one week's base
    rate, and quiet weeks around it pool its error away. Judged on all sellers and on the early-warning set;
    the report names each population's worst week and its error (skipped when the backtest has no weeks)."""
    worst = {}
    for population in CALIBRATION_POPULATIONS:
        weeks = {w: e for w, e in weeks_in(metrics, MODEL, population).items() if not math.isnan(e)}
        if weeks:
            week = max(weeks, key=weeks.get)
            worst[population] = (week, weeks[week], len(weeks))
    if not worst:
        return []
    off = [p for p, (_, e, _) in worst.items() if not e <= bounds.max_week_ece]
    words = "; ".join(f"{p.replace('_', '-')} sellers: worst of {n} weeks {w}, calibration error {e:.4f}"
                      for p, (w, e, n) in worst.items())
    return _check("calibrated every week", not off, f"{words} (bound {bounds.max_week_ece})")


def _standards_calibrated(metrics: dict[str, float], bounds: GateBounds) -> list[dict]:
    """Each standard's risk is calibrated where enough early-warning breaches judge it."""
    prefix = f"{MODEL}.pooled.early_warning.standard."
    standards = sorted({k.removeprefix(prefix).split(".")[0] for k in metrics if k.startswith(prefix)})
    judged = [m for m in standards if metrics[f"{prefix}{m}.positives"] >= bounds.min_segment_positives]
    off = [f"{m}: {metrics[f'{prefix}{m}.ece']:.4f}" for m in judged
           if not metrics[f"{prefix}{m}.ece"] <= bounds.max_standard_ece]
    return _check("each standard's risk calibrated", not off,
                  ("; ".join(off) + f" (bound {bounds.max_standard_ece})") if off else
                  f"{len(judged)} of {len(standards)} standards with >= {bounds.min_segment_positives} early-warning breaches "
                  f"have calibration error <= {bounds.max_standard_ece}")


def _reasons_are_behaviour(reason_sources: dict[str, list[str]]) -> list[dict]:
    """Every standard's reasons speak for its behaviour and for being judged (exposure) only, never for
    history or context (`models.reasons.choose.own_features`)."""
    allowed = {"behaviour", "exposure"}
    wrong = [f"{m}: {', '.join(sorted(set(r) - allowed))}" for m, r in reason_sources.items() if set(r) - allowed]
    return _check("reasons are behaviour", not wrong,
                  ("reasons would show " + "; ".join(wrong)) if wrong else
                  f"the reasons of all {len(reason_sources)} standards speak for behaviour and being judged only")


def _reasons_name_the_breach(metrics: dict[str, float], bounds: GateBounds) -> list[dict]:
    """On the early-warning queue's sellers who went on to breach, the standard at risk is one they
    breached at least `reason_margin` more often than the rule's pick (the evaluated standard closest
    to its threshold); skipped when the backtest measured no reasons."""
    mine = _m(metrics, MODEL, "queue.reasons.standard_at_risk")
    rule = _m(metrics, MODEL, "queue.reasons.rule_pick")
    if math.isnan(mine) or math.isnan(rule):
        return []
    need = rule + bounds.reason_margin
    return _check("reasons name the breach", mine >= need,
                  f"standard at risk breached for {mine:.1%} of the queue's breached sellers vs the rule's pick "
                  f"{rule:.1%} (needs >= {need:.1%}); first reason {_m(metrics, MODEL, 'queue.reasons.first_reason'):.1%}, "
                  f"any reason {_m(metrics, MODEL, 'queue.reasons.any_reason'):.1%}")


def _no_segment_collapses(segments: pd.DataFrame, champion_version: str | None, bounds: GateBounds) -> list[dict]:
    """No segment with enough breaches falls below the ROC AUC floor, or far below the champion's."""
    seg = segments[(segments["population"] == "all") & (segments["positives"] >= bounds.min_segment_positives)]
    mine_seg = seg[seg["model"] == MODEL].set_index(["segment_type", "segment"])["roc_auc"]
    same_weeks = seg[seg["model"] == ON_CHAMPION_WEEKS].set_index(["segment_type", "segment"])["roc_auc"]
    theirs_seg = seg[seg["model"] == CHAMPION].set_index(["segment_type", "segment"])["roc_auc"]
    collapsed = []
    for key, auc in mine_seg.items():
        if not pd.isna(auc) and auc < bounds.min_segment_auc:
            collapsed.append(f"{key[0]}={key[1]}: ROC AUC {auc:.3f} < {bounds.min_segment_auc}")
    for key, auc in same_weeks.items():  # beside the champion, on the weeks it never learnt from
        if (champion_version is not None and not pd.isna(auc) and key in theirs_seg.index
                and auc < theirs_seg[key] - bounds.segment_drop):
            collapsed.append(f"{key[0]}={key[1]}: ROC AUC {auc:.3f} vs champion {theirs_seg[key]:.3f}")
    return _check("no segment collapses", not collapsed,
                  "; ".join(collapsed) if collapsed else f"{len(mine_seg)} segments with >= {bounds.min_segment_positives} breaches hold up")


def _no_leaked_feature(leaks: dict[str, float]) -> list[dict]:
    """No single feature separates breaches suspiciously well (a leak from the future)."""
    return _check("no leaked feature", not leaks,
                  "; ".join(f"{k} alone has ROC AUC {v:.3f}" for k, v in leaks.items()) if leaks else "no feature alone separates breaches suspiciously well")


# ------------------------------------------------------------------ registry moves (I/O)


@dataclass(frozen=True)
class Move:
    """What a promote or rollback did (or refused to do) and why."""

    action: str
    done: bool
    from_version: str | None
    to_version: str | None
    reasons: list[str]


def _alias_version(client, name: str, alias: str) -> str | None:
    from models.registry import alias_version

    return alias_version(client, name, alias)


def _history(client, name: str) -> list[str]:
    """The versions that have been champion, oldest first (empty when nothing was registered)."""
    from models.registry import is_not_found, store_errors

    with store_errors():
        try:
            tags = client.get_registered_model(name).tags
        except Exception as err:
            if is_not_found(err):  # no such registered model yet
                return []
            raise
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def _gate(client, name: str, version: str) -> Gate | str:
    """The gate verdict training recorded for `version`, or why it cannot be read."""
    import mlflow

    from models.registry import store_errors

    with store_errors():
        run_id = client.get_model_version(name, version).run_id
        try:
            return Gate.from_json(mlflow.artifacts.load_text(f"runs:/{run_id}/gate.json"))
        except Exception as err:
            from models.registry import unreachable_error

            if unreachable_error(err) is not None:
                raise
            first = (str(err).splitlines() or [err.__class__.__name__])[0]
            return f"v{version} has no readable gate verdict (gate.json in run {run_id}: {first}); retrain it"


def _record(move: Move, name: str, models_dir) -> None:
    """Each move is a run in the promotions experiment, and tags on the versions it touched."""
    import mlflow
    from mlflow import MlflowClient

    from models.registry import ensure_experiment

    client = MlflowClient()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    exp = ensure_experiment(PROMOTIONS_EXPERIMENT, models_dir)
    with mlflow.start_run(experiment_id=exp, run_name=f"{move.action} {move.from_version}->{move.to_version}"):
        mlflow.log_params({"action": move.action, "done": move.done, "model": name,
                           "from_version": move.from_version, "to_version": move.to_version})
        mlflow.log_text("\n".join(move.reasons) + "\n", "reasons.txt")
    if move.to_version:
        client.set_model_version_tag(name, move.to_version, f"last_{move.action}",
                                     f"{when} {'done' if move.done else 'refused'}")


def promote(name: str, models_dir, force: bool = False) -> Move:
    """Move `champion` to the current `challenger` when its gate passed against this champion."""
    from mlflow import MlflowClient

    from models.registry import CHALLENGER, CHAMPION as CHAMPION_ALIAS

    client = MlflowClient()
    challenger = _alias_version(client, name, CHALLENGER)
    champion = _alias_version(client, name, CHAMPION_ALIAS)
    if challenger is None:
        return Move("promote", False, champion, None, [f"{name} has no {CHALLENGER}: train one first"])
    if challenger == champion:
        return Move("promote", False, champion, challenger, [f"v{challenger} is already the champion"])
    gate = _gate(client, name, challenger)
    if isinstance(gate, str):
        reasons, done = [f"FAILED: {gate}"], False
    else:
        reasons = [("passed: " if c["passed"] else "FAILED: ") + f"{c['check']}: {c['detail']}" for c in gate.checks]
        done = gate.passed
    if not isinstance(gate, str) and gate.champion_version != champion:
        done = False
        reasons.append(f"FAILED: the gate compared v{challenger} with champion {gate.champion_version or 'none'}, "
                       f"but the champion is now {champion or 'none'}; retrain to compare on the same backtest")
    if force and not done:
        done = True
        reasons.append("forced: promoted despite the failures above")
    move = Move("promote", done, champion, challenger, reasons)
    if done:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, challenger)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(_history(client, name) + [challenger]))
    _record(move, name, models_dir)
    return move


def rollback(name: str, models_dir) -> Move:
    """Move `champion` back to the version that held it before the current one."""
    from mlflow import MlflowClient

    from models.registry import CHAMPION as CHAMPION_ALIAS

    client = MlflowClient()
    history = _history(client, name)
    current = _alias_version(client, name, CHAMPION_ALIAS)
    if len(history) < 2 or history[-1] != current:
        move = Move("rollback", False, current, None,
                    [f"no earlier champion to go back to (history: {history or 'empty'}, champion: {current or 'none'})"])
    else:
        previous = history[-2]
        client.set_registered_model_alias(name, CHAMPION_ALIAS, previous)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
        move = Move("rollback", True, current, previous, [f"champion moved back from v{current} to v{previous}"])
    _record(move, name, models_dir)
    return move
