"""Benchmark `seller-risk simulate` as a user runs it: wall time, peak memory of the whole process
tree (the parent and its worker processes, sampled every 50 ms), and orders per second.

    .venv/bin/python benchmarks/bench_simulate.py                    # both scenarios
    .venv/bin/python benchmarks/bench_simulate.py --scenario small --repeats 5

Reports the median over repeats and each scenario's target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from measure import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SCENARIOS = {  # name: (sellers, weeks, default repeats, target seconds, target peak GB)
    "small": (2_000, 52, 3, 30.0, None),
    "large": (100_000, 52, 1, 300.0, 6.0),
}


def run_once(sellers: int, weeks: int, out: Path) -> dict:
    """Run the simulator once in its own process; return wall seconds, peak bytes and rows."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + "-latent"), ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("seller-risk")), "simulate", "--sellers", str(sellers),
           "--weeks", str(weeks), "--seed", "7", "--out", str(out)]
    wall, peak, _ = run_measured(cmd)
    summary = json.loads((out / "_summary.json").read_text())
    return {"wall_s": wall, "peak_bytes": peak, "orders": summary["rows"]["orders"],
            "rows": sum(summary["rows"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=0, help="runs per scenario (0: the scenario's default)")
    args = parser.parse_args()
    console = Console(width=160)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    table = Table(title=f"seller-risk simulate ({psutil.cpu_count()} cores, medians)")
    for col in ("scenario", "sellers x weeks", "runs", "wall s", "peak memory", "orders", "orders/s",
                "rows/s", "target", "met"):
        table.add_column(col, justify="left" if col in {"scenario", "target"} else "right")
    results = {}
    for name in names:
        sellers, weeks, repeats, target_s, target_gb = SCENARIOS[name]
        runs = [run_once(sellers, weeks, OUT / f"simulate-{name}") for _ in range(args.repeats or repeats)]
        for i, r in enumerate(runs):
            console.print(f"{name} run {i + 1}: {r['wall_s']:.1f} s, {r['peak_bytes'] / 2**30:.2f} GiB")
        wall = statistics.median(r["wall_s"] for r in runs)
        peak = statistics.median(r["peak_bytes"] for r in runs) / 2**30
        orders, rows = runs[0]["orders"], runs[0]["rows"]
        met = wall < target_s and (target_gb is None or peak < target_gb)
        target = f"< {target_s:.0f} s" + (f", < {target_gb:.0f} GB" if target_gb else "")
        table.add_row(name, f"{sellers:,} x {weeks}", str(len(runs)), f"{wall:.1f}", f"{peak:.2f} GiB",
                      f"{orders:,}", f"{orders / wall:,.0f}", f"{rows / wall:,.0f}", target,
                      "[green]yes[/]" if met else "[red]no[/]")
        results[name] = {"runs": runs, "median_wall_s": wall, "median_peak_gib": peak}
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "simulate.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
