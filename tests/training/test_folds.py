"""Rolling-origin folds: no training label ever looks into the weeks a fold is judged on."""

from __future__ import annotations

import pandas as pd
import pytest

from training.folds import final_split, rolling_origin

HORIZON = 28
DATES = list(pd.date_range("2025-01-13", periods=48, freq="7D"))


def _label_end(d: pd.Timestamp) -> pd.Timestamp:
    return d + pd.Timedelta(days=HORIZON)


@pytest.mark.parametrize("n_folds", [1, 3, 5])
def test_folds_never_overlap_in_label_time(n_folds: int) -> None:
    folds = rolling_origin(DATES, HORIZON, n_folds=n_folds)
    assert len(folds) == n_folds
    for f in folds:
        # every training label window ends before the validation slice starts, and so on
        assert _label_end(max(f.train)) < min(f.valid)
        assert _label_end(max(f.valid)) < min(f.test)
        assert len(f.valid) == 4 and len(f.test) == 4
        assert set(f.train).isdisjoint(f.valid) and set(f.valid).isdisjoint(f.test)
    # the test blocks tile the end of the history, oldest fold first, without overlap
    tests = [d for f in folds for d in f.test]
    assert tests == DATES[-4 * n_folds:]
    # each fold only learns from its own past
    for earlier, later in zip(folds, folds[1:]):
        assert max(later.train) > max(earlier.train)


def test_the_exact_layout_of_three_folds() -> None:
    f1 = rolling_origin(DATES, HORIZON)[0]
    # test = dates 36-39; validation: the last 4 dates whose labels end before date 36 (27-31 -> 28-31);
    # training: dates whose labels end before date 28 (0-23)
    assert f1.test == tuple(DATES[36:40])
    assert f1.valid == tuple(DATES[28:32])
    assert f1.train == tuple(DATES[:24])


def test_final_split_keeps_the_newest_weeks_for_stopping_and_calibration() -> None:
    final = final_split(DATES, HORIZON)
    assert final.valid == tuple(DATES[-4:]) and final.test == ()
    assert _label_end(max(final.train)) < min(final.valid)


def test_too_short_a_history_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="not enough weekly as-of dates"):
        rolling_origin(DATES[:20], HORIZON, n_folds=3)
