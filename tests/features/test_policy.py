"""Policies are data: the shipped file loads as DESIGN.md states it, and a bad file names its bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.policy.definition import POLICY_DIR, PolicyError, load_policy

EXPECTED = {  # metric: (direction, threshold, window days), from DESIGN.md
    "cancellation_rate": ("at_most", 0.02, 30),
    "on_time_delivery_rate": ("at_least", 0.90, 30),
    "valid_tracking_rate": ("at_least", 0.99, 30),
    "refund_rate": ("at_most", 0.06, 30),
    "seller_response_rate": ("at_least", 0.95, 30),
    "negative_feedback_rate": ("at_most", 0.02, 60),
    "return_rate": ("at_most", 0.06, 60),
    "item_not_received_rate": ("at_most", 0.02, 60),
}


def test_walmart_policy_holds_the_eight_standards() -> None:
    p = load_policy("walmart-us-2026")
    assert p.version == "walmart-us-2026" and p.horizon_days == 28
    assert {k: (m.direction, m.threshold, m.window_days) for k, m in p.metrics.items()} == EXPECTED
    assert p.metrics["negative_feedback_rate"].channels == ("seller", "marketplace")
    assert all(m.channels == ("seller",) for k, m in p.metrics.items() if k != "negative_feedback_rate")
    assert p.metrics["on_time_delivery_rate"].misses(0.89) and not p.metrics["on_time_delivery_rate"].misses(0.90)
    assert p.metrics["cancellation_rate"].misses(0.021) and not p.metrics["cancellation_rate"].misses(0.02)
    assert p.metrics["on_time_delivery_rate"].standard_text == "at least 90%"


def _write(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((POLICY_DIR / "walmart-us-2026.yaml").read_text())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda r: r["metrics"]["cancellation_rate"].update(treshold=0.02), "metrics.cancellation_rate.treshold"),
        (lambda r: r["metrics"]["refund_rate"].update(threshold="six percent"), "metrics.refund_rate.threshold"),
        (lambda r: r["metrics"]["return_rate"].update(numerator="returnz"), "metrics.return_rate.numerator"),
        (lambda r: r["metrics"]["return_rate"].update(direction="below"), "metrics.return_rate.direction"),
        (lambda r: r["metrics"]["return_rate"].update(channels=["drone"]), "metrics.return_rate.channels"),
        (lambda r: r.pop("horizon_days"), "horizon_days"),
        (lambda r: r["risk_bands"].reverse(), "risk_bands"),
    ],
)
def test_a_bad_policy_file_names_the_bad_key(tmp_path: Path, edit, names: str) -> None:
    with pytest.raises(PolicyError, match=names.replace(".", r"\.")):
        load_policy(_write(tmp_path, edit))


def test_an_unknown_policy_lists_the_shipped_ones() -> None:
    with pytest.raises(PolicyError, match="walmart-us-2026"):
        load_policy("no-such-marketplace")
