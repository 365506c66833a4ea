"""Robustness of the model across simulated marketplaces (issue 23): for each regime, simulate a marketplace
whose test weeks hold the holiday peak, build its features, backtest the model and its baselines, and print
one table of the early-warning ranking, the queue at capacity, calibration and the forecast interval against
the issue's bounds (training/robustness.py).

    .venv/bin/python benchmarks/bench_robustness.py                          # five regimes, 2,000 sellers
    .venv/bin/python benchmarks/bench_robustness.py --regimes baseline carrier_outages --sellers 800
    .venv/bin/python benchmarks/bench_robustness.py --report                 # the table of the last run kept
    .venv/bin/python benchmarks/bench_robustness.py --ceiling                # and what a model that saw the
                                                                             # sellers' hidden state reaches
    .venv/bin/python benchmarks/bench_robustness.py --ceiling ahead          # ... the state of the coming weeks

Each run writes the table and the per-week forecasts (Parquet and CSV) under benchmarks/out/robustness/
(git-ignored) and appends one line per regime to benchmarks/out/bench_robustness_runs.jsonl. Training uses
SELLER_RISK_TRAIN_THREADS threads (default 2; 1 on a shared machine). The default size took 6.3 minutes with
--ceiling (7.1 with --ceiling ahead) on an idle 2-core machine with one training thread; without the ceiling,
less.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
from rich.console import Console

from features.platform.terminal import staged_progress
from features.simulation.regime import REGIMES
from training.ceiling import KINDS
from training.robustness import (
    RESULTS,
    RobustnessConfig,
    ceiling_view,
    run_robustness,
    table_view,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
RUNS = OUT / "bench_robustness_runs.jsonl"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regimes", nargs="+", choices=list(REGIMES), default=list(REGIMES))
    ap.add_argument("--sellers", type=int, default=2000)
    ap.add_argument("--weeks", type=int, default=56, help="weeks of history (56 from --start: the peak is tested)")
    ap.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 6))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--trials", type=int, default=0, help="search hyperparameters per regime (0: the fixed ones)")
    ap.add_argument("--out", type=Path, default=OUT / "robustness")
    ap.add_argument("--keep", action="store_true", help="keep each marketplace's events and features")
    ap.add_argument("--ceiling", nargs="?", const="at_t", default="", choices=KINDS,
                    help="also backtest a model given the sellers' hidden state at t (at_t, the default) or over the "
                         "coming weeks (ahead), training/ceiling.py: a second table says which bounds no model reaches")
    ap.add_argument("--report", action="store_true", help="print the table of the last run kept under --out")
    return ap.parse_args()


def _title(cfg: RobustnessConfig, seconds: float | None) -> str:
    took = f", {seconds / 60:.1f} min" if seconds is not None else ""
    return (f"Robustness: {cfg.sellers:,} sellers x {cfg.weeks} weeks from {cfg.start}, seed {cfg.seed}, "
            f"{cfg.n_folds} folds of {cfg.test_weeks} test weeks ({os.cpu_count()} cores{took})")


def _print(console: Console, table: pd.DataFrame, bounds, title: str) -> None:
    """The results table, and the model beside the ceiling when the run measured one."""
    console.print(table_view(table, bounds, title))
    if "ceiling_pr_auc" in table.columns:
        kind = table["ceiling"].iloc[0] if "ceiling" in table.columns else "at_t"
        seen = "at t" if kind == "at_t" else "over the coming weeks (what no model can know)"
        console.print(ceiling_view(table, bounds, f"The model beside a model given the sellers' hidden state {seen} "
                                                  "(red in both: no model reaches the bound here)"))


def main() -> None:
    args = _args()
    # models.risk_model.model_frame builds the model's matrix a column at a time; pandas warns once per fold
    warnings.filterwarnings("ignore", category=pd.errors.PerformanceWarning)
    cfg = RobustnessConfig(out=args.out, regimes=tuple(args.regimes), sellers=args.sellers, weeks=args.weeks,
                           start=args.start, seed=args.seed, trials=args.trials, keep=args.keep,
                           ceiling=args.ceiling)
    console = Console(width=220)
    if args.report:
        table = pd.read_parquet(args.out / f"{RESULTS}.parquet")
        kept = replace(cfg, sellers=int(table["sellers"].iloc[0]), weeks=int(table["weeks"].iloc[0]))
        _print(console, table, cfg.bounds, _title(kept, None))
        return
    start = time.perf_counter()
    with staged_progress() as report:
        result = run_robustness(cfg, report)
    seconds = time.perf_counter() - start
    written = write_results(result, args.out)
    _print(console, result.table, cfg.bounds, _title(cfg, seconds))
    console.print("written: " + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
                                          for p in written))
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    with RUNS.open("a") as fh:  # every run kept, one line per regime
        for row in result.table.to_dict("records"):
            fh.write(json.dumps({"seconds": seconds, "threads": cfg.threads, "trials": cfg.trials, "seed": cfg.seed,
                                 **row}, default=str) + "\n")


if __name__ == "__main__":
    main()
