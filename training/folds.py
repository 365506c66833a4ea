"""Rolling-origin folds in time. Each fold fits trees on early weeks, stops early and calibrates on
a later slice, and is tested on later weeks still; consecutive slices are separated by more than
one label horizon, so no training label ever looks into the weeks it is judged on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Fold:
    """The as-of dates of each slice of one fold (test is empty for the final model)."""

    name: str
    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    def describe(self) -> str:
        def span(d: tuple[pd.Timestamp, ...]) -> str:
            return f"{d[0]:%Y-%m-%d}..{d[-1]:%Y-%m-%d} ({len(d)} wk)" if d else "-"

        return f"{self.name}: train {span(self.train)} | valid {span(self.valid)} | test {span(self.test)}"


def before(dates: Sequence[pd.Timestamp], start: pd.Timestamp, horizon_days: int) -> list[pd.Timestamp]:
    """Dates whose label window (t, t + horizon] ends strictly before `start`."""
    return [d for d in dates if d + pd.Timedelta(days=horizon_days) < start]


def _fold(name: str, dates: list[pd.Timestamp], test: list[pd.Timestamp], valid_end: pd.Timestamp | None,
          horizon_days: int, valid_weeks: int) -> Fold:
    pool = before(dates, valid_end, horizon_days) if valid_end is not None else dates
    valid = pool[-valid_weeks:]
    train = before(dates, valid[0], horizon_days) if valid else []
    if len(valid) < valid_weeks or not train:
        raise ValueError(f"{name}: not enough weekly as-of dates with labels ({len(dates)}) for a training slice, "
                         f"a {valid_weeks}-week validation slice and gaps of {horizon_days} days; "
                         "use fewer folds or a longer history")
    return Fold(name, tuple(train), tuple(valid), tuple(test))


def rolling_origin(dates: Sequence[pd.Timestamp], horizon_days: int, n_folds: int = 3, test_weeks: int = 4,
                   valid_weeks: int = 4) -> list[Fold]:
    """`n_folds` folds whose test blocks of `test_weeks` dates tile the end of the history."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    if len(dates) <= n_folds * test_weeks:
        raise ValueError(f"not enough weekly as-of dates with labels ({len(dates)}) for {n_folds} test blocks of "
                         f"{test_weeks} weeks and the training before them; use fewer folds or a longer history")
    folds = []
    for k in range(n_folds):
        end = len(dates) - (n_folds - 1 - k) * test_weeks
        test = dates[end - test_weeks:end]
        folds.append(_fold(f"fold{k + 1}", dates, test, test[0], horizon_days, valid_weeks))
    return folds


def final_split(dates: Sequence[pd.Timestamp], horizon_days: int, valid_weeks: int = 4) -> Fold:
    """The model to register: trees on all but the newest weeks, which stop and calibrate it."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    return _fold("final", dates, [], None, horizon_days, valid_weeks)


def rows(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
    """The rows of a slice."""
    return frame[frame["as_of"].isin(dates)]
