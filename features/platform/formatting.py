"""How a rate reads in a reviewer's words, declared once: the policy's standards, the feature spec's
reasons and the printed summaries all write a threshold the same way, and a rate beside its
threshold never reads on the wrong side of it."""

from __future__ import annotations

MOST_DECIMALS = 4
"""The most decimals of a percent a rate is printed with to tell it from its threshold (0.0001 points);
closer than that it reads "just over 2%" or "just under 90%"."""


def percent(rate: float) -> str:
    """A rate as a percentage: whole when it is a whole percent (2%, 90%), else to one decimal (99.5%).
    Rounded to a millionth of a percent first, so 0.07 (7.000000000000001 in floating point) reads 7%."""
    return f"{rate:.0%}" if round(rate * 100, 6) % 1 == 0 else f"{rate:.1%}"


def percent_against(rate: float, threshold: float, at_most: bool) -> str:
    """A rate printed beside its standard's threshold (as `percent` prints it) so that a rate missing
    the standard never reads like one meeting it, nor the other way round: to one decimal (1.6%), with
    more decimals when one would put it level with or across the threshold ("2.01%" misses at most 2%,
    "1.98%" meets it, "89.96%" misses at least 90%), and "just over 2%" / "just under 90%" when even
    `MOST_DECIMALS` do not tell them apart. A rate level with the printed threshold meets the standard
    ("at most" and "at least" include it). NaN (no volume) reads "no rate"."""
    if rate != rate:
        return "no rate"
    shown_threshold = percent(threshold)
    line = float(shown_threshold[:-1])
    misses = rate > threshold if at_most else rate < threshold
    for decimals in range(1, MOST_DECIMALS + 1):
        text = f"{rate * 100:.{decimals}f}"
        shown = float(text)
        if (shown > line if at_most else shown < line) == misses:
            return f"{text}%"
    if misses:
        return f"just {'over' if at_most else 'under'} {shown_threshold}"
    return shown_threshold  # meets it, yet above a threshold printed rounded down (or below one rounded up): level
