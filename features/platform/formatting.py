"""How a rate reads in a reviewer's words, declared once: the policy's standards, the feature spec's
reasons and the printed summaries all write a threshold the same way."""

from __future__ import annotations


def percent(rate: float) -> str:
    """A rate as a percentage: whole when it is a whole percent (2%, 90%), else to one decimal (99.5%).
    Rounded to a millionth of a percent first, so 0.07 (7.000000000000001 in floating point) reads 7%."""
    return f"{rate:.0%}" if round(rate * 100, 6) % 1 == 0 else f"{rate:.1%}"
