"""Benchmark the feature pipeline: 52 weekly snapshots in one pass (daily flows, then rolling
windows) against the naive way (one full aggregation over the events per as-of date), side by
side in one run, each method in its own process (wall time, peak memory of the process tree).

    .venv/bin/python benchmarks/bench_features.py                       # 2,000 and 100,000 sellers
    .venv/bin/python benchmarks/bench_features.py --scenario small

The naive way runs every date on the small marketplace; on the large one it runs a sample of
dates (--naive-dates) and the table extrapolates its per-date median to all 52, saying so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from measure import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SCENARIOS = {"small": (2_000, 0), "large": (100_000, 4)}  # sellers, naive dates sampled (0: all)
TARGET_S, TARGET_GB = 120.0, 8.0


def _events(sellers: int) -> Path:
    """A 52-week simulated marketplace of this size, made once and reused."""
    events = OUT / f"events-{sellers}"
    if not (events / "_manifest.json").exists():
        cli = str(Path(sys.executable).with_name("seller-risk"))
        run_measured([cli, "simulate", "--sellers", str(sellers), "--weeks", "52", "--seed", "7",
                      "--out", str(events), "--no-latent"])
    return events


# ------------------------------------------------------------------ the two methods, in a worker


def incremental(events: Path) -> dict:
    from features.policy.definition import load_policy
    from features.pipeline.snapshots import build_snapshots

    run = build_snapshots(events, OUT / "features-incremental", load_policy("walmart-us-2026"))
    return {"dates": len(run.as_of_dates), "rows": run.rows}


def naive(events: Path, sample: int) -> dict:
    """For each as-of date alone: scan every event, aggregate its windows, compute its features."""
    from features.policy.definition import load_policy
    from features.pipeline.snapshots import plan_dates, prepare_duckdb, seller_buckets, seller_ranges
    from features.pipeline.spec import feature_spec
    from features.events.validation import open_events, read_cutoff

    policy = load_policy("walmart-us-2026")
    spec = feature_spec(policy)
    con = open_events(events)
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = '6GB'")
    ranges = seller_ranges(con, seller_buckets(con))  # the same seller buckets as the one pass
    days, _ = plan_dates(con, read_cutoff(events), policy, None)
    chosen = days if not sample else [days[round(i * (len(days) - 1) / (sample - 1))] for i in range(sample)]
    per_date, rows = [], 0
    for d in chosen:
        t = time.perf_counter()
        for sellers in ranges:
            query = prepare_duckdb(con, policy, spec, [d], [d], sellers)
            rows += con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]
        per_date.append(time.perf_counter() - t)
    return {"dates": len(chosen), "of_dates": len(days), "rows": rows, "per_date_s": per_date}


# ------------------------------------------------------------------ the table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--naive-dates", type=int, default=-1, help="dates the naive way runs (0: all 52)")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "EVENTS", "SAMPLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, events, sample = args.worker
        result = incremental(Path(events)) if method == "incremental" else naive(Path(events), int(sample))
        print(json.dumps(result))
        return

    console = Console(width=160)
    table = Table(title="52 weekly feature snapshots: one pass vs one aggregation per date (DuckDB, 2 cores)")
    for col in ("sellers", "method", "dates run", "wall s", "wall s for 52 dates", "peak memory", "seller-weeks",
                "speed-up", "target"):
        table.add_column(col, justify="left" if col in {"method", "target"} else "right")
    results = {}
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        sellers, sample = SCENARIOS[name]
        sample = sample if args.naive_dates < 0 else args.naive_dates
        console.print(f"[{name}] preparing {sellers:,} sellers x 52 weeks of events ...")
        events = _events(sellers)
        me = [sys.executable, __file__, "--worker"]
        wall_i, peak_i, out_i = run_measured(me + ["incremental", str(events), "0"])
        inc = json.loads(out_i.strip().splitlines()[-1])
        console.print(f"[{name}] one pass: {wall_i:.1f} s, {peak_i / 2**30:.2f} GiB")
        wall_n, peak_n, out_n = run_measured(me + ["naive", str(events), str(sample)])
        nai = json.loads(out_n.strip().splitlines()[-1])
        full_n = statistics.median(nai["per_date_s"]) * nai["of_dates"] if sample else wall_n
        console.print(f"[{name}] naive: {wall_n:.1f} s for {nai['dates']} dates, {peak_n / 2**30:.2f} GiB")
        ok = wall_i < TARGET_S and peak_i / 2**30 < TARGET_GB
        table.add_row(f"{sellers:,}", "one pass (rolling windows)", str(inc["dates"]), f"{wall_i:.1f}",
                      f"{wall_i:.1f}", f"{peak_i / 2**30:.2f} GiB", f"{inc['rows']:,}", "1.0x",
                      f"< {TARGET_S:.0f} s, < {TARGET_GB:.0f} GB: " + ("[green]met[/]" if ok else "[red]missed[/]")
                      if name == "large" else "")
        note = "" if not sample else f" (median per date x {nai['of_dates']})"
        table.add_row("", "naive (per date)", f"{nai['dates']} of {nai['of_dates']}", f"{wall_n:.1f}",
                      f"{full_n:.1f}{note}", f"{peak_n / 2**30:.2f} GiB", f"{nai['rows']:,}",
                      f"{full_n / wall_i:.1f}x", "")
        results[name] = {"sellers": sellers, "incremental": {"wall_s": wall_i, "peak_bytes": peak_i, **inc},
                         "naive": {"wall_s": wall_n, "peak_bytes": peak_n, "wall_s_52_dates": full_n, **nai},
                         "speedup": full_n / wall_i, "date": str(date.today())}
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "features.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
