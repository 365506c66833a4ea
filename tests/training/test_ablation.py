"""The feature ablation: a spec without one family, the backtest run again without each family on a tiny
simulated marketplace (one row per family, the fitted models' inputs lack the family, the all-features run
is the backtest's own model), and `seller-risk ablation` printing the table and logging one MLflow run."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest

from features.pipeline.spec import FeatureSpec, feature_spec
from features.policy.definition import Policy
from training.ablation import ALL, GROUPS, Run, table, without

PARAMS = {"learning_rate": 0.1, "num_leaves": 7, "max_depth": 3, "min_child_samples": 20, "feature_fraction": 1.0,
          "bagging_fraction": 1.0, "lambda_l2": 1.0, "num_threads": 1}


def test_without_removes_exactly_one_family_and_keeps_the_policy(policy: Policy) -> None:
    spec = feature_spec(policy)
    for group in GROUPS:
        kept = without(spec, group)
        assert [f.name for f in kept.features] == [f.name for f in spec.features if f.group != group]
        assert (kept.policy_version, kept.policy_terms) == (spec.policy_version, spec.policy_terms)
    assert len(without(spec, "history").features) == len(spec.features) - sum(f.group == "history" for f in spec.features)
    with pytest.raises(ValueError, match="unknown feature group 'season'"):
        without(spec, "season")


def test_the_table_compares_each_family_with_all_features() -> None:
    runs = [Run(ALL, (), {"early_warning.pr_auc": 0.40, "early_warning.precision_at_capacity": 0.50, "all.ece": 0.01}, ("a", "b")),
            Run("history", ("b",), {"early_warning.pr_auc": 0.35, "early_warning.precision_at_capacity": 0.52,
                                    "all.ece": 0.02}, ("a",)),
            Run("world", (), {}, (), "no features in this group: skipped")]
    t = table(runs).set_index("group")
    assert list(t.index) == [ALL, "history", "world"]
    assert t.loc["history", "pr_auc_change"] == pytest.approx(-0.05)
    assert t.loc["history", "queue_precision_change"] == pytest.approx(0.02)
    assert (t.loc["history", "features_dropped"], t.loc["history", "dropped"]) == (1, "b")
    assert t.loc[ALL, "pr_auc_change"] == 0.0
    assert math.isnan(t.loc["world", "pr_auc"]) and t.loc["world", "note"] == "no features in this group: skipped"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, policy: Policy):
    """24 weeks of 300 sellers, their snapshots, and one rolling-origin fold of 2 test weeks."""
    from features.pipeline.snapshots import build_snapshots
    from features.simulation.run import SimulationConfig, simulate_marketplace
    from training.dataset import load_training_set
    from training.folds import rolling_origin

    root = tmp_path_factory.mktemp("ablation")
    simulate_marketplace(SimulationConfig(300, date(2025, 1, 6), 24, 5, workers=1), policy, root / "events",
                         write_latent=False)
    build_snapshots(root / "events", root / "features", policy)
    data = load_training_set(root / "features")
    return root, data, rolling_origin(data.dates, policy.horizon_days, n_folds=1, test_weeks=2, valid_weeks=2)


def _family(spec: FeatureSpec, group: str) -> set[str]:
    return {f.name for f in spec.features if f.group == group}


@pytest.mark.slow
def test_each_run_drops_its_family_from_the_models_inputs(tiny) -> None:
    from training.ablation import ablate
    from training.backtest import MODEL, run_backtest

    _, data, folds = tiny
    runs = ablate(data.frame, folds, data.spec, data.policy, PARAMS, seed=3)
    t = table(runs)
    assert list(t["group"]) == [ALL, *GROUPS]
    base = runs[0]
    assert set(base.inputs) == set(data.spec.names)
    for run, row in zip(runs[1:], t.to_dict("records")[1:], strict=True):
        family = _family(data.spec, run.group)
        assert row["features_dropped"] == len(family) == len(run.dropped)
        if not family:
            assert run.skipped == row["note"] == "no features in this group: skipped" and not run.inputs
            continue
        assert set(run.inputs) == set(data.spec.names) - family  # the fitted booster never saw the family
        assert 0 < row["pr_auc"] <= 1 and row["pr_auc_change"] == pytest.approx(row["pr_auc"] - base.metrics["early_warning.pr_auc"])
    assert any(_family(data.spec, g) for g in GROUPS)
    # the run with every feature is the backtest's own model: same folds, parameters, seed, same numbers
    bt = run_backtest(data.frame, folds, data.spec, data.policy, PARAMS, seed=3)
    for key in ("early_warning.pr_auc", "early_warning.precision_at_capacity", "all.ece"):
        assert base.metrics[key] == bt.metrics[f"{MODEL}.pooled.{key}"]


@pytest.mark.slow
def test_the_command_prints_the_table_and_logs_one_run(tiny) -> None:
    import json

    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from models.registry import use_store
    from serving.main import app
    from training.ablation import ABLATIONS_EXPERIMENT

    root, data, _ = tiny
    models = root / "models"
    args = ["ablation", "--features", str(root / "features"), "--models", str(models), "--folds", "1",
            "--group", "history", "--group", "world", "--params", json.dumps(PARAMS)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Feature ablation" in result.output and "history" in result.output
    assert "no features in this group: skipped" in result.output or _family(data.spec, "world")
    use_store(models)
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name(ABLATIONS_EXPERIMENT).experiment_id])
    assert run.data.params["groups"] == "history,world"
    assert run.data.tags["params_from"] == "given (--params)"
    assert 0 < run.data.metrics["without_history.early_warning.pr_auc"] <= 1
    assert "all_features.early_warning.precision_at_capacity" in run.data.metrics
    local = Path(client.download_artifacts(run.info.run_id, "ablation.csv", str(root)))
    assert local.read_text().splitlines()[0].startswith("group,features_dropped,dropped,note,pr_auc")
    bad = CliRunner().invoke(app, ["ablation", "--features", str(root / "features"), "--models", str(models),
                                   "--group", "season"])
    assert bad.exit_code == 2 and "unknown feature group" in bad.output


def test_the_command_without_snapshots_or_with_bad_parameters_says_why(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.main import app

    base = ["ablation", "--features", str(tmp_path / "none"), "--models", str(tmp_path / "models")]
    missing = CliRunner().invoke(app, base)
    assert missing.exit_code == 2 and "holds no feature snapshots" in missing.output
    bad = CliRunner().invoke(app, [*base, "--params", "{learning_rate: 0.1}"])
    assert bad.exit_code == 2 and "--params is not JSON" in bad.output
