"""The scoring run in MLflow: one run per job in SCORING_EXPERIMENT, tagged with host and pid so a run
whose process died is closed by the next, ended KILLED when the job is stopped, and the summary
logged as its tags, parameters and metrics."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from features.platform.atomic import alive

SCORING_EXPERIMENT = "seller-risk-scoring"
LOCAL_RUN = "local"  # the run id rows carry when the job logs nothing to MLflow


def close_dead_runs(experiment_id: str) -> list[str]:
    """Scoring runs that MLflow still shows RUNNING although their process on this host is gone
    (killed with SIGKILL, or the machine went down) are marked KILLED; returns their ids."""
    from mlflow import MlflowClient

    client, host, closed = MlflowClient(), socket.gethostname(), []
    for r in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        pid = r.data.tags.get("pid", "")
        if r.data.tags.get("host") == host and pid.isdigit() and not alive(int(pid)):
            client.set_terminated(r.info.run_id, status="KILLED")
            closed.append(r.info.run_id)
    return closed


@contextmanager
def scoring_run(models_dir: Path, as_of: date, log: bool) -> Iterator[str]:
    """The week's scoring run, open while the job writes; yields its id (LOCAL_RUN when not logging).
    Ends FINISHED when the block completes, KILLED when anything (an error, a signal) stops it."""
    import mlflow

    from models.registry import ensure_experiment, use_store

    use_store(models_dir)
    if not log:
        yield LOCAL_RUN
        return
    experiment = ensure_experiment(SCORING_EXPERIMENT, models_dir)
    close_dead_runs(experiment)
    run = mlflow.start_run(experiment_id=experiment, run_name=f"score {as_of}",
                           tags={"host": socket.gethostname(), "pid": str(os.getpid())})
    try:
        yield run.info.run_id
    except BaseException:
        mlflow.end_run(status="KILLED")
        raise
    mlflow.end_run()


def model_registered_at(ref) -> str | None:
    """When the scoring model's version was registered (ISO, UTC): how old the champion is. None when the
    registry does not say (the leader page then says the age is unknown rather than guess)."""
    from datetime import UTC, datetime

    from mlflow import MlflowClient

    try:
        ms = MlflowClient().get_model_version(ref.name, ref.version).creation_timestamp
    except Exception:  # the registry's own errors: the age is a warning's input, never a reason to stop scoring
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=0).isoformat() if ms else None


def log_summary(summary: dict, model_uri: str, chunk_rows: int, reasons: int) -> None:
    """The run summary on the open scoring run: tags to find it, parameters, metrics, the JSON itself."""
    import mlflow

    m = summary["model"]
    mlflow.set_tags({"as_of": summary["as_of"], "model_version": m["version"], "policy_version": summary["policy_version"],
                     "feature_spec_hash": summary["feature_spec_hash"]})
    mlflow.log_params({"as_of": summary["as_of"], "model_uri": model_uri, "model_name": m["name"],
                       "model_version": m["version"], "model_run_id": m["run_id"], "snapshot": summary["snapshot"][:490],
                       "partition": summary["partition"][:490], "chunk_rows": chunk_rows, "reasons": reasons,
                       "drift_reference": summary["drift"]["reference"][:490]})
    mlflow.log_metrics({k: float(v) for k, v in _metrics(summary).items()})
    for step, values in monitoring_metrics(summary):
        mlflow.log_metrics(values, step=step)
    mlflow.log_dict(summary, "summary.json")


def _metrics(summary: dict) -> dict[str, float]:
    """The summary's figures a dashboard plots week over week."""
    eb, cap = summary["expected_breaches"], summary["review_capacity"]
    metrics = {"sellers_scored": summary["sellers_scored"], "expected_breaches": eb["expected"],
               "expected_breaches_std": eb["std"], "expected_breaches_low": eb["low"], "expected_breaches_high": eb["high"],
               "capacity_sellers": cap["sellers"], "capacity_expected_breaches": cap["expected_breaches_in_queue"],
               "capacity_share_of_expected_breaches": cap["share_of_expected_breaches"],
               "early_warning_sellers": summary["early_warning"]["sellers"],
               "early_warning_expected_breaches": summary["early_warning"]["expected_breaches"],
               "recovery_sellers": summary["recovery"]["sellers"]}
    forecast = summary.get("breach_forecast", {})
    metrics.update({f"breach_forecast_{k}": forecast[k] for k in ("expected", "planned", "low", "high", "matured_weeks")
                    if k in forecast})
    metrics["monitoring_warnings"] = len(summary.get("monitoring", {}).get("warnings", []))
    metrics.update({f"band.{b['band']}": b["sellers"] for b in summary["bands"]})
    metrics.update({f"psi.{d['variable']}": d["psi"] for d in summary["drift"]["variables"]})
    return metrics


def monitoring_metrics(summary: dict) -> list[tuple[int, dict[str, float]]]:
    """Each monitored week's figures as MLflow metrics, the week's date as the step (days since 1970-01-01),
    so a dashboard plots queue precision, realised/expected and calibration against the week they measure."""
    out = []
    for row in summary.get("monitoring", {}).get("weeks", []):
        step = (date.fromisoformat(row["as_of"]) - date(1970, 1, 1)).days
        values = {"monitor.queue_precision": row["queue"]["precision"],
                  "monitor.queue_expected_precision": row["queue"]["expected_precision"],
                  "monitor.compliant_realised": row["compliant"]["realised"],
                  "monitor.compliant_expected": row["compliant"]["expected"],
                  "monitor.compliant_ratio": row["compliant"]["ratio"],
                  "monitor.compliant_inside": float(row["compliant"]["inside"])}
        values.update({f"monitor.calibration_ratio.{f['standard']}": f["ratio"] for f in row["standards"]})
        out.append((step, {k: float(v) for k, v in values.items() if v == v}))
    return out
