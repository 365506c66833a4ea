"""`seller-risk features` prints what its snapshots hold; for dates whose horizon has not passed there
is no label yet, and the summary says so instead of printing "nan%"."""

from __future__ import annotations

from types import SimpleNamespace

from features.cli import print_snapshot_summary


def _run(**rates: float) -> SimpleNamespace:
    return SimpleNamespace(policy_version="p1", spec_hash="abc", as_of_dates=["2026-01-05"], rows=120, sellers=120,
                           labelled_rows=0, early_warning_share=0.9, **rates)


def test_one_recent_date_prints_no_nan(capsys, tmp_path) -> None:
    print_snapshot_summary(_run(breach_rate=float("nan"), early_warning_breach_rate=float("nan")), tmp_path)
    out = capsys.readouterr().out
    assert "nan" not in out.lower()
    assert out.count("not known yet: no seller-week's horizon has passed") == 2


def test_known_rates_print_as_percentages(capsys, tmp_path) -> None:
    print_snapshot_summary(_run(breach_rate=0.0612, early_warning_breach_rate=0.031), tmp_path)
    out = capsys.readouterr().out
    assert "6.12%" in out and "3.10%" in out and "not known" not in out
