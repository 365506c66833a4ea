"""Robustness: the model judged on several simulated marketplaces, not only the one the promotion gate
reads, so that a change that fits one marketplace's quirks shows up as failing another.

For each named regime (features/simulation/regime.py: today's marketplace, a harsher holiday peak,
frequent regional carrier outages, fast growers outrunning their capacity, small sellers near the minimum
counts) the run simulates a marketplace whose last test weeks hold the holiday peak, builds its features,
backtests the model and its baselines with the training code (rolling-origin folds, `run_backtest`), and
reads four things off the test weeks, each against the bound issue 23 sets:

- ranking the early-warning population: the model's PR AUC over the rule's (>= 1.6x);
- the early-warning queue at reviewer capacity: the model's precision over the rule's (>= 1.3x), and above
  the logistic regression's;
- calibration on all sellers: pooled over the test weeks (<= 0.02) and in the worst test week (<= 0.05);
- the leader's forecast: the share of test weeks whose realised breaches among compliant sellers lie inside
  `models.forecast.breach_interval` (>= 80%), the interval built, as the weekly batch builds it, from the
  realised/expected ratios of the weeks whose labels had matured by then.

Each fold's validation weeks are scored too (the backtest is run with them added to the fold's test
weeks), because they are the matured weeks a forecast made at the fold's first test week has to learn the
model's error from; every metric above reads the real test weeks only. The metrics are pure functions of
the scored rows, below; the run itself (simulate, build, backtest) is `run_robustness`. With `ceiling` set it
also backtests a model given the sellers' hidden state (training/ceiling.py), whose figures the table keeps
beside the model's: a bound that model misses too is out of any model's reach on that marketplace.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from features.platform.settings import DEFAULT_POLICY, Settings
from features.policy.definition import ReviewCapacity
from features.simulation.regime import REGIMES
from models.forecast import season_seen
from training.backtest import LOGREG, MODEL, RULE
from training.folds import Fold
from training.metrics import calibration_by_week, evaluate, worst_week

Report = Callable[[str, int, int], None]
Interval = Callable[..., tuple[float, float, float]]

PARAMS = {"learning_rate": 0.0407, "num_leaves": 32, "max_depth": 4, "min_child_samples": 360,
          "feature_fraction": 0.973, "bagging_fraction": 0.939, "lambda_l2": 0.0775}
"""The model's hyperparameters on every marketplace (no search by default: a search per regime would fit
each marketplace's quirks, the thing this run is meant to catch, and cost most of the run's time)."""
RESULTS, WEEKS = "robustness", "robustness_weeks"
"""File stems of the results table (one row per regime) and the per-week forecast table, in Parquet and CSV."""


@dataclass(frozen=True)
class RobustnessBounds:
    """What the model must show on every marketplace (issue 23)."""

    pr_auc_over_rule: float = 1.6
    precision_over_rule: float = 1.3
    max_pooled_ece: float = 0.02
    max_week_ece: float = 0.05
    min_interval_coverage: float = 0.80


@dataclass(frozen=True)
class RobustnessConfig:
    """Which marketplaces, how big, and how to backtest them. The default calendar, 56 weeks from
    2025-01-06, gives a year of history whose last three test blocks of four weeks run from late October
    to early January: the holiday peak lies in the test weeks, and no earlier peak in the training."""

    out: Path
    regimes: tuple[str, ...] = tuple(REGIMES)
    sellers: int = 2000
    weeks: int = 56
    start: date = date(2025, 1, 6)
    seed: int = 7
    policy: str = DEFAULT_POLICY  # the marketplace's policy (name or YAML path)
    n_folds: int = 3
    test_weeks: int = 4
    valid_weeks: int = 4
    trials: int = 0  # > 0: search the hyperparameters on each marketplace's first fold instead of PARAMS
    level: float = 0.90  # of the forecast interval
    threads: int = field(default_factory=lambda: Settings.from_env().train_threads)
    keep: bool = False  # keep each marketplace's events and features under out/<regime>/
    ceiling: str = ""  # "at_t" or "ahead": also backtest a model given the sellers' hidden state (training/ceiling.py)
    bounds: RobustnessBounds = field(default_factory=RobustnessBounds)


@dataclass(frozen=True)
class RobustnessResult:
    table: pd.DataFrame  # one row per regime (`regime_row`)
    weeks: pd.DataFrame  # per regime and test week: the forecast interval and the realised breaches


# ------------------------------------------------------------------ the metrics: pure functions of scored rows


def with_slices(scored: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
    """Backtest rows (scored on each fold's validation and test weeks) marked `slice` "valid" or "test"
    by the week's place in its own fold."""
    valid = {(f.name, pd.Timestamp(d)) for f in folds for d in f.valid}
    keys = zip(scored["fold"], pd.to_datetime(scored["as_of"]))
    return scored.assign(slice=["valid" if k in valid else "test" for k in keys])


def weekly_breaches(rows: pd.DataFrame) -> pd.DataFrame:
    """Per fold, slice and as-of week of one model's early-warning rows: sellers, breaches expected (the
    sum of the calibrated scores) and breaches realised."""
    ew = rows[rows["compliant_at_t"].astype(bool) & ~rows["after_intervention"].astype(bool)]
    return (ew.groupby(["fold", "slice", "as_of"], sort=True)
            .agg(sellers=("score", "size"), expected=("score", "sum"), realised=("breach", "sum"))
            .reset_index())


def matured_ratios(history: pd.DataFrame, week: pd.Timestamp, horizon_days: int) -> list[float]:
    """Realised/expected breaches of the weeks in `history` whose labels had matured by `week` (their
    horizon ends at or before it), oldest first. A week with no breach counts half a breach: the forecast's
    model of the error is a log-normal ratio, which a ratio of 0 would break, and one breach fewer than the
    smallest possible count is the usual correction."""
    done = history[pd.to_datetime(history["as_of"]) + pd.Timedelta(days=horizon_days) <= week]
    done = done[done["expected"] > 0].sort_values("as_of")
    return (done["realised"].clip(lower=0.5) / done["expected"]).astype(float).tolist()


def forecast_history(weekly: pd.DataFrame, fold: str, out_of_sample_only: bool = False) -> pd.DataFrame:
    """The weeks a forecast in `fold`'s test weeks learns the model's error from: every fold's test weeks
    (scored by the model of their time, as the weekly batch would have), and this fold's validation weeks
    unless `out_of_sample_only` (its model was early-stopped and calibrated on them). A week that is both
    one fold's validation week and an earlier fold's test week counts once, as the test week."""
    test = weekly["slice"] == "test"
    mine = test | (weekly["fold"] == fold) if not out_of_sample_only else test
    rows = weekly[mine].assign(_valid=~test[mine]).sort_values(["as_of", "_valid"])
    return rows.drop_duplicates("as_of", keep="first").drop(columns="_valid")


def forecast_weeks(rows: pd.DataFrame, horizon_days: int, level: float, interval: Interval,
                   out_of_sample_only: bool = False, trained: dict[str, Sequence] | None = None) -> pd.DataFrame:
    """Per test week of one model's rows: the forecast interval of breaches among compliant sellers
    (`interval(risk, matured_ratios, level)`, models.forecast.breach_interval's signature), the breaches
    realised, and whether they fell inside. With `trained` (each fold's training as-of dates) the interval is
    also told whether the week's season was in its model's training (`unseen_season`, models.forecast.season_seen),
    as the batch job tells it from the champion's."""
    weekly = weekly_breaches(rows)
    ew = rows[rows["compliant_at_t"].astype(bool) & ~rows["after_intervention"].astype(bool)]
    records = []
    for r in weekly[weekly["slice"] == "test"].itertuples(index=False):
        ratios = matured_ratios(forecast_history(weekly, r.fold, out_of_sample_only), r.as_of, horizon_days)
        risk = ew.loc[(ew["fold"] == r.fold) & (ew["as_of"] == r.as_of), "score"].to_numpy(dtype="float64")
        unseen = None if trained is None else not season_seen(trained[r.fold], r.as_of)
        expected, low, high = (interval(risk, ratios, level) if unseen is None
                               else interval(risk, ratios, level, unseen_season=unseen))
        records.append({"as_of": pd.Timestamp(r.as_of), "fold": r.fold, "sellers": int(r.sellers),
                        "sum_of_risks": float(r.expected), "expected": expected, "low": low, "high": high,
                        "realised": int(r.realised), "inside": bool(low <= r.realised <= high),
                        "matured_weeks": len(ratios), "unseen_season": bool(unseen)})
    return pd.DataFrame.from_records(records, columns=["as_of", "fold", "sellers", "sum_of_risks", "expected", "low",
                                                       "high", "realised", "inside", "matured_weeks", "unseen_season"])


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def ranking_and_queue(test_rows: pd.DataFrame, capacity: ReviewCapacity) -> dict[str, float]:
    """Early-warning PR AUC and queue precision at capacity of the model, the rule and the logistic
    regression on the test weeks (training.metrics.evaluate), and the model's ratios to the rule's."""
    out: dict[str, float] = {}
    for name, model in (("model", MODEL), ("rule", RULE), ("logreg", LOGREG)):
        m = evaluate(test_rows[test_rows["model"] == model], capacity)
        out[f"pr_auc_{name}"] = m["early_warning.pr_auc"]
        out[f"precision_{name}"] = m["early_warning.precision_at_capacity"]
        if name == "model":
            out |= {"early_warning_rows": m["early_warning.n"], "early_warning_base_rate": m["early_warning.base_rate"],
                    "ece_pooled": m["all.ece"], "ece_early_warning_pooled": m["early_warning.ece"]}
    out["pr_auc_over_rule"] = _ratio(out["pr_auc_model"], out["pr_auc_rule"])
    out["precision_over_rule"] = _ratio(out["precision_model"], out["precision_rule"])
    out["precision_over_logreg"] = _ratio(out["precision_model"], out["precision_logreg"])
    return out


def calibration_weeks(model_rows: pd.DataFrame) -> dict[str, object]:
    """The model's worst test week by calibration error, on all sellers and on the early-warning set
    (training.metrics.calibration_by_week)."""
    weekly = calibration_by_week(model_rows)
    week, ece = worst_week(weekly, "all")
    _, ece_ew = worst_week(weekly, "early_warning")
    return {"ece_worst_week": ece, "worst_week": week, "ece_early_warning_worst_week": ece_ew}


def verdicts(row: dict, bounds: RobustnessBounds) -> dict[str, bool]:
    """Each bound of issue 23 met or not (a NaN never meets one), and all of them."""
    checks = {
        "pass_pr_auc": row["pr_auc_over_rule"] >= bounds.pr_auc_over_rule,
        "pass_queue": (row["precision_over_rule"] >= bounds.precision_over_rule
                       and row["precision_model"] > row["precision_logreg"]),
        "pass_calibration": row["ece_pooled"] <= bounds.max_pooled_ece and row["ece_worst_week"] <= bounds.max_week_ece,
        "pass_interval": row["interval_coverage"] >= bounds.min_interval_coverage,
    }
    return {**{k: bool(v) for k, v in checks.items()}, "passed": all(bool(v) for v in checks.values())}


def regime_row(scored: pd.DataFrame, folds: Sequence[Fold], capacity: ReviewCapacity, horizon_days: int,
               level: float, bounds: RobustnessBounds, interval: Interval) -> tuple[dict, pd.DataFrame]:
    """One marketplace's line of the table, from its backtest rows scored on the validation and test
    weeks of `folds`, and its per-week forecast table."""
    marked = with_slices(scored, folds)
    test = marked[marked["slice"] == "test"]
    model_rows = marked[marked["model"] == MODEL]
    trained = {f.name: list(f.train) for f in folds}
    weeks = forecast_weeks(model_rows, horizon_days, level, interval, trained=trained)
    honest = forecast_weeks(model_rows, horizon_days, level, interval, out_of_sample_only=True, trained=trained)
    row = {"test_weeks": int(test["as_of"].nunique()),
           "first_test_week": pd.Timestamp(test["as_of"].min()), "last_test_week": pd.Timestamp(test["as_of"].max()),
           **ranking_and_queue(test, capacity), **calibration_weeks(test[test["model"] == MODEL]),
           "interval_coverage": float(weeks["inside"].mean()) if len(weeks) else float("nan"),
           "interval_coverage_out_of_sample": float(honest["inside"].mean()) if len(honest) else float("nan"),
           "interval_width": (float(((weeks["high"] - weeks["low"]) / weeks["expected"]).mean()) if len(weeks)
                              else float("nan")),
           "unseen_season_weeks": int(weeks["unseen_season"].sum()),
           "realised_over_expected": _ratio(float(weeks["realised"].sum()), float(weeks["sum_of_risks"].sum()))}
    return row | verdicts(row, bounds), weeks.assign(inside_out_of_sample=honest["inside"].to_numpy())


# ------------------------------------------------------------------ the run (I/O: simulate, build, backtest)


CEILING = {"pr_auc_model": "ceiling_pr_auc", "pr_auc_over_rule": "ceiling_pr_auc_over_rule",
           "precision_model": "ceiling_precision", "precision_over_rule": "ceiling_precision_over_rule",
           "ece_pooled": "ceiling_ece_pooled", "ece_worst_week": "ceiling_ece_worst_week"}
"""The columns of the ceiling's row (training/ceiling.py) kept beside the model's, renamed."""


def ceiling_columns(row: dict) -> dict:
    """The ceiling's figures out of its own `regime_row`, under the names the table keeps them."""
    return {new: row[old] for old, new in CEILING.items()}


def extended(folds: Sequence[Fold]) -> list[Fold]:
    """The folds with their validation weeks scored too (added to the test weeks); training and
    calibration are unchanged, so the test weeks' scores are the plain backtest's."""
    return [Fold(f.name, f.train, f.valid, tuple(f.valid) + tuple(f.test)) for f in folds]


def _params(cfg: RobustnessConfig, frame: pd.DataFrame, folds: list[Fold], spec, say: Report, name: str) -> dict:
    """PARAMS, or the search's choice on the first fold when `cfg.trials` asks for one."""
    from training.search import best_guess, search

    if cfg.trials <= 0:
        return {**best_guess(), **PARAMS, "num_threads": cfg.threads}
    from training.dataset import untouched

    result = search(untouched(frame), folds[0], spec, cfg.seed, cfg.trials, threads=cfg.threads,
                    progress=lambda d, t: say(f"{name}: search", d, t))
    return result.chosen.params


def backtest_regime(name: str, cfg: RobustnessConfig, say: Report, interval: Interval) -> tuple[dict, pd.DataFrame]:
    """Simulate the regime's marketplace, build its features, backtest; its table row and forecast weeks."""
    from features.pipeline.snapshots import build_snapshots
    from features.policy.definition import load_policy
    from features.simulation.regime import regime
    from features.simulation.run import SimulationConfig, simulate_marketplace
    from training.backtest import run_backtest
    from training.dataset import load_training_set
    from training.folds import rolling_origin

    work = Path(cfg.out) / name
    policy = load_policy(cfg.policy)
    sim = SimulationConfig(cfg.sellers, cfg.start, cfg.weeks, cfg.seed, regime=regime(name))
    summary = simulate_marketplace(sim, policy, work / "events", write_latent=bool(cfg.ceiling),
                                   progress=lambda d, t: say(f"{name}: simulate", d, t))
    build_snapshots(work / "events", work / "features", policy, progress=lambda d, t: say(f"{name}: features", d, t))
    data = load_training_set(work / "features")
    folds = rolling_origin(data.dates, policy.horizon_days, cfg.n_folds, cfg.test_weeks, cfg.valid_weeks)
    params = _params(cfg, data.frame, folds, data.spec, say, name)
    bt = run_backtest(data.frame, extended(folds), data.spec, data.policy, params, cfg.seed,
                      progress=lambda d, t: say(f"{name}: backtest (folds)", d, t))
    row, weeks = regime_row(bt.scored, folds, policy.review_capacity, policy.horizon_days, cfg.level, cfg.bounds,
                            interval)
    if cfg.ceiling:
        from training.ceiling import read_hidden_state, with_hidden_state

        frame, spec = with_hidden_state(data.frame, read_hidden_state(work / "events"), data.spec, cfg.ceiling,
                                        policy.horizon_days)
        top = run_backtest(frame, extended(folds), spec, data.policy, params, cfg.seed,
                           progress=lambda d, t: say(f"{name}: ceiling (folds)", d, t))
        top_row, _ = regime_row(top.scored, folds, policy.review_capacity, policy.horizon_days, cfg.level,
                                cfg.bounds, interval)
        row |= {"ceiling": cfg.ceiling} | ceiling_columns(top_row)
    if not cfg.keep:
        shutil.rmtree(work, ignore_errors=True)
    facts = {"regime": name, "knobs": regime(name).describe(), "sellers": cfg.sellers, "weeks": cfg.weeks,
             "breach_share": summary.rates["breach_within_horizon_share"], "disruptions": summary.counts["disruptions"]}
    return facts | row, weeks.assign(regime=name)


def run_robustness(cfg: RobustnessConfig, report: Report | None = None,
                   interval: Interval | None = None) -> RobustnessResult:
    """Every regime of `cfg`, one after the other; the table and the per-week forecasts."""
    if interval is None:
        from models.forecast import breach_interval as interval
    unknown = [r for r in cfg.regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime(s) {', '.join(unknown)}; expected some of {', '.join(REGIMES)}")
    say = report or (lambda *_: None)
    rows, weeks = [], []
    for i, name in enumerate(cfg.regimes):
        say("Regimes", i, len(cfg.regimes))
        row, w = backtest_regime(name, cfg, say, interval)
        rows.append(row)
        weeks.append(w)
    say("Regimes", len(cfg.regimes), len(cfg.regimes))
    return RobustnessResult(pd.DataFrame(rows), pd.concat(weeks, ignore_index=True))


def write_results(result: RobustnessResult, out: Path) -> list[Path]:
    """The table and the per-week forecasts as Parquet and CSV under `out`; the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, frame in ((RESULTS, result.table), (WEEKS, result.weeks)):
        frame.to_parquet(out / f"{stem}.parquet", index=False)
        frame.to_csv(out / f"{stem}.csv", index=False, date_format="%Y-%m-%d")
        written += [out / f"{stem}.parquet", out / f"{stem}.csv"]
    return written


def _mark(ok: bool, text: str) -> str:
    return f"[green]{text}[/]" if ok else f"[red]{text}[/]"


def table_view(table: pd.DataFrame, bounds: RobustnessBounds, title: str):
    """The results as one rich table: a row per regime, each bound's column green when met, red when not.
    EW: the early-warning population (compliant now); m: the model; LR: the logistic regression; real/risks:
    breaches realised among compliant sellers over the sum of their risks, over the test weeks."""
    from rich.table import Table

    from features.platform.terminal import num

    view = Table(title=title)
    for col in ("regime", "EW base", "EW PR AUC m/rule/LR", f"x rule >={bounds.pr_auc_over_rule}",
                "queue prec m/rule/LR", f"x rule >={bounds.precision_over_rule}, x LR >1",
                f"ECE <={bounds.max_pooled_ece}", f"worst wk <={bounds.max_week_ece}",
                f"in intvl >={bounds.min_interval_coverage:.0%}", "(out of smpl)", "width/exp", "real/risks",
                "all met"):
        view.add_column(col, justify="left" if col == "regime" else "right", no_wrap=True)
    for r in table.to_dict("records"):
        worst = f"{num(r['ece_worst_week'])} ({r['worst_week']:%m-%d})" if pd.notna(r["worst_week"]) else "-"
        view.add_row(
            r["regime"], num(r["early_warning_base_rate"], pct=True),
            f"{num(r['pr_auc_model'])}/{num(r['pr_auc_rule'])}/{num(r['pr_auc_logreg'])}",
            _mark(r["pass_pr_auc"], f"{r['pr_auc_over_rule']:.2f}x"),
            f"{num(r['precision_model'], True)}/{num(r['precision_rule'], True)}/{num(r['precision_logreg'], True)}",
            _mark(r["pass_queue"], f"{r['precision_over_rule']:.2f}x, {r['precision_over_logreg']:.2f}x"),
            _mark(r["ece_pooled"] <= bounds.max_pooled_ece, num(r["ece_pooled"])),
            _mark(r["ece_worst_week"] <= bounds.max_week_ece, worst),
            _mark(r["pass_interval"], num(r["interval_coverage"], pct=True)),
            num(r["interval_coverage_out_of_sample"], pct=True),
            f"{r['interval_width']:.2f}" if pd.notna(r.get("interval_width")) else "-",
            f"{r['realised_over_expected']:.2f}",
            _mark(r["passed"], "yes" if r["passed"] else "no"))
    return view


def ceiling_view(table: pd.DataFrame, bounds: RobustnessBounds, title: str):
    """The model beside the ceiling (a model given the sellers' hidden state, training/ceiling.py) for each
    bound: where the ceiling misses a bound too (red), no model reaches it on that marketplace."""
    from rich.table import Table

    from features.platform.terminal import num

    view = Table(title=title)
    for col in ("regime", f"EW PR AUC x rule >={bounds.pr_auc_over_rule}: model / ceiling",
                f"queue x rule >={bounds.precision_over_rule}: model / ceiling",
                f"ECE <={bounds.max_pooled_ece}: model / ceiling", f"worst wk <={bounds.max_week_ece}: model / ceiling"):
        view.add_column(col, justify="left" if col == "regime" else "right", no_wrap=True)
    times = "{:.2f}x".format
    pairs = (("pr_auc_over_rule", "ceiling_pr_auc_over_rule", lambda v: v >= bounds.pr_auc_over_rule, times),
             ("precision_over_rule", "ceiling_precision_over_rule", lambda v: v >= bounds.precision_over_rule, times),
             ("ece_pooled", "ceiling_ece_pooled", lambda v: v <= bounds.max_pooled_ece, num),
             ("ece_worst_week", "ceiling_ece_worst_week", lambda v: v <= bounds.max_week_ece, num))
    for r in table.to_dict("records"):
        cells = []
        for model, top, met, text in pairs:
            cells.append(f"{_mark(met(r[model]), text(r[model]))} / {_mark(met(r[top]), text(r[top]))}")
        view.add_row(r["regime"], *cells)
    return view
