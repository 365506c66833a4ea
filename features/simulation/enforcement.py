"""The simulated marketplace's own enforcement: it keeps daily counts of every measure in
`features.policy.measures`, evaluates the policy weekly exactly as the policy file says, and warns,
suppresses, suspends and reinstates sellers, who react (most fix things after a warning).

This is the marketplace's side, as a real marketplace computes its own metrics; the feature
pipeline recomputes the same metrics from the events, and the tests hold the two to agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.policy.measures import MEASURES
from features.policy.definition import Policy
from features.simulation.population import Sellers

CHANNELS = ("seller", "marketplace")

GOOD, WARNED, SUPPRESSED, SUSPENDED = 0, 1, 2, 3
SUPPRESS_AFTER_DAYS = 28  # still missing a standard four weeks after a warning
SUSPEND_AFTER_DAYS = 56  # and eight weeks after it
CLEAR_AFTER_EVALUATIONS = 4  # compliant weeks that lift a warning
SUPPRESSED_VOLUME = 0.35  # share of demand a seller keeps while listings are suppressed
ACTION_DELAY_SECONDS = 6 * 3600  # actions take effect the morning after an evaluation


class Ledger:
    """Daily counts of each measure, per fulfilment channel, for one chunk of sellers."""

    def __init__(self, n_sellers: int, n_days: int) -> None:
        self.n_sellers, self.n_days = n_sellers, n_days
        self.counts = {m: np.zeros((len(CHANNELS), n_sellers, n_days), np.int32) for m in MEASURES}

    def add(self, measure: str, channel: np.ndarray, seller: np.ndarray, seconds: np.ndarray) -> None:
        """Count events (each on its channel, seller and time in seconds since the start)."""
        day = seconds // 86400
        keep = (day >= 0) & (day < self.n_days)
        flat = (channel[keep].astype(np.int64) * self.n_sellers + seller[keep]) * self.n_days + day[keep]
        self.counts[measure] += np.bincount(flat, minlength=self.counts[measure].size).reshape(
            self.counts[measure].shape
        ).astype(np.int32)

    def window(self, measure: str, channels: tuple[str, ...], end_day: int, days: int) -> np.ndarray:
        """Per seller, the events in the `days` days before day `end_day` (that day excluded)."""
        rows = [CHANNELS.index(c) for c in channels]
        lo = max(end_day - days, 0)
        return self.counts[measure][rows, :, lo:end_day].sum(axis=(0, 2), dtype=np.int64)


@dataclass
class Evaluation:
    """Every policy metric for every seller at one evaluation date, metrics in policy order."""

    rates: np.ndarray  # (metrics, sellers); nan where the denominator is zero
    volume: np.ndarray  # (metrics, sellers) denominators
    evaluated: np.ndarray  # (metrics, sellers) volume at or above the metric's minimum
    misses: np.ndarray  # (metrics, sellers) evaluated and failing the standard


def evaluate(policy: Policy, ledger: Ledger, end_day: int) -> Evaluation:
    """Evaluate the policy as of midnight starting day `end_day`."""
    rates, volume, evaluated, misses = [], [], [], []
    for metric in policy.metrics.values():
        num = sum(ledger.window(m, metric.channels, end_day, metric.window_days) for m in metric.numerator)
        den = ledger.window(metric.denominator, metric.channels, end_day, metric.window_days)
        rate = np.divide(num, den, out=np.full(den.shape, np.nan), where=den > 0)
        ok = den >= metric.min_count
        miss = ok & ((rate > metric.threshold) if metric.direction == "at_most" else (rate < metric.threshold))
        rates.append(rate), volume.append(den), evaluated.append(ok), misses.append(miss)
    return Evaluation(np.array(rates), np.array(volume), np.array(evaluated), np.array(misses))


@dataclass
class Enforcement:
    """Each seller's standing with the marketplace, and the actions taken so far."""

    n: int
    status: np.ndarray = field(init=False)
    since: np.ndarray = field(init=False)  # day the escalation clock started
    streak: np.ndarray = field(init=False)  # consecutive compliant evaluations while warned
    suspended_until: np.ndarray = field(init=False)
    will_return: np.ndarray = field(init=False)
    fix_start: np.ndarray = field(init=False)
    actions: list[tuple[np.ndarray, int, int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = np.zeros(self.n, np.int8)
        self.since = np.zeros(self.n, np.int64)
        self.streak = np.zeros(self.n, np.int64)
        self.suspended_until = np.zeros(self.n, np.int64)
        self.will_return = np.zeros(self.n, bool)
        self.fix_start = np.full(self.n, np.inf)

    def volume_factor(self) -> np.ndarray:
        """Share of demand each seller keeps under their current standing."""
        return np.select([self.status == SUPPRESSED, self.status == SUSPENDED], [SUPPRESSED_VOLUME, 0.0], 1.0)

    def _record(self, who: np.ndarray, day: int, action: str, metric: np.ndarray, value: np.ndarray,
                threshold: np.ndarray) -> None:
        if who.size:
            code = ("warning", "suppression", "suspension", "reinstatement").index(action)
            self.actions.append((who, day, code, metric, value, threshold))

    def _start_fixing(self, rng: np.random.Generator, who: np.ndarray, prob: np.ndarray, day: int) -> None:
        respond = who[rng.random(who.size) < prob]
        lag = rng.integers(3, 22, respond.size)
        self.fix_start[respond] = np.minimum(self.fix_start[respond], day + lag)

    def step(self, rng: np.random.Generator, policy: Policy, sellers: Sellers, ev: Evaluation, day: int) -> None:
        """Apply the marketplace's response to one weekly evaluation at day `day`."""
        live = sellers.onboard_day < day
        missing = ev.misses.any(axis=0) & live
        worst = _worst_metric(policy, ev)
        thresholds = np.array([m.threshold for m in policy.metrics.values()])
        value = ev.rates[worst, np.arange(self.n)]

        def record(who: np.ndarray, action: str) -> None:
            self._record(who, day, action, worst[who], value[who], thresholds[worst[who]])

        def blank(who: np.ndarray) -> None:
            self._record(who, day, "reinstatement", np.full(who.size, -1), np.full(who.size, np.nan),
                         np.full(who.size, np.nan))

        back = np.flatnonzero((self.status == SUSPENDED) & (day >= self.suspended_until) & self.will_return)
        blank(back)
        self.status[back], self.since[back], self.streak[back] = WARNED, day + 28, 0
        self.fix_start[back] = np.minimum(self.fix_start[back], day)

        warn = np.flatnonzero((self.status == GOOD) & missing)
        record(warn, "warning")
        self.status[warn], self.since[warn], self.streak[warn] = WARNED, day, 0
        self._start_fixing(rng, warn, sellers.respond_prob[warn], day)

        warned = self.status == WARNED
        self.streak = np.where(warned & ~missing, self.streak + 1, np.where(warned, 0, self.streak))
        cleared = np.flatnonzero(warned & (self.streak >= CLEAR_AFTER_EVALUATIONS))
        self.status[cleared] = GOOD

        suppress = np.flatnonzero(warned & missing & (day - self.since >= SUPPRESS_AFTER_DAYS))
        record(suppress, "suppression")
        self.status[suppress] = SUPPRESSED
        self._start_fixing(rng, suppress, np.full(suppress.size, 0.5), day)

        suppressed = self.status == SUPPRESSED
        lifted = np.flatnonzero(suppressed & ~missing)
        blank(lifted)
        self.status[lifted], self.since[lifted], self.streak[lifted] = WARNED, day, 0

        suspend = np.flatnonzero(suppressed & missing & (day - self.since >= SUSPEND_AFTER_DAYS))
        record(suspend, "suspension")
        self.status[suspend] = SUSPENDED
        self.suspended_until[suspend] = day + rng.integers(28, 57, suspend.size)
        self.will_return[suspend] = rng.random(suspend.size) < 0.6


def _worst_metric(policy: Policy, ev: Evaluation) -> np.ndarray:
    """Per seller, the missed metric furthest past its threshold (relative to the allowed room)."""
    severity = []
    for i, metric in enumerate(policy.metrics.values()):
        rate = np.nan_to_num(ev.rates[i], nan=0.0 if metric.direction == "at_most" else 1.0)
        if metric.direction == "at_most":
            s = rate / max(metric.threshold, 1e-9)
        else:
            s = (1.0 - rate) / max(1.0 - metric.threshold, 1e-9)
        severity.append(np.where(ev.misses[i], s, -np.inf))
    return np.argmax(np.array(severity), axis=0)
