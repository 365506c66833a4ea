"""The search is bounded by its trials, so one seed gives one model whatever the machine's speed;
a time budget is a safety limit that says when it cut the search short."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.policy.definition import load_policy
from features.platform.settings import DEFAULT_POLICY
from features.pipeline.spec import feature_spec
from training.folds import rolling_origin
from training.search import search

pytestmark = pytest.mark.training  # each search trains LightGBM models, trial after trial


def _frame(seed: int = 0, weeks: int = 20, sellers: int = 120) -> pd.DataFrame:
    """A small labelled frame of every spec feature, with a breach that follows cancellations."""
    spec = feature_spec(load_policy(DEFAULT_POLICY))
    rng = np.random.default_rng(seed)
    n = weeks * sellers
    frame = pd.DataFrame({"seller_id": np.tile([f"S{i:07d}" for i in range(sellers)], weeks),
                          "as_of": np.repeat(pd.date_range("2025-01-06", periods=weeks, freq="7D"), sellers)})
    for f in spec.features:
        frame[f.name] = (rng.choice(["toys", "home"], n) if f.dtype == "category"
                         else rng.integers(0, 200, n).astype("float64") if f.dtype == "int" else rng.random(n))
    frame["breach"] = rng.random(n) < 0.1 + 0.6 * frame["cancellation_rate_30d"]
    frame["compliant_at_t"] = rng.random(n) < 0.8
    return frame


def test_one_seed_one_result_and_every_trial_runs() -> None:
    frame = _frame()
    spec = feature_spec(load_policy(DEFAULT_POLICY))
    fold = rolling_origin(sorted(frame["as_of"].unique()), 28, n_folds=1)[0]
    first = search(frame, fold, spec, seed=3, n_trials=2)
    again = search(frame, fold, spec, seed=3, n_trials=2)
    assert len(first.trials) == 2 and not first.cut_short
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.pr_auc for t in first.trials] == [t.pr_auc for t in again.trials]
    assert first.chosen.number == again.chosen.number


def test_a_budget_that_cuts_the_search_says_so() -> None:
    frame = _frame()
    spec = feature_spec(load_policy(DEFAULT_POLICY))
    fold = rolling_origin(sorted(frame["as_of"].unique()), 28, n_folds=1)[0]
    cut = search(frame, fold, spec, seed=3, n_trials=50, budget_s=1e-3)  # Optuna stops after the first trial
    assert cut.cut_short and len(cut.trials) < cut.asked == 50 and cut.budget_s == 1e-3
