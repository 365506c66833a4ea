"""Benchmark the analyst notebooks: each runs top to bottom in a fresh Jupyter kernel on the demo
marketplace (2,000 sellers, a year), its snapshots, the demo champion and four weeks of batch scores,
as `make notebooks` opens them. The tests only check that they run; this says how long they take.

    .venv/bin/python benchmarks/bench_notebooks.py

Inputs are the cached demo of benchmarks/bench_scoring.py (benchmarks/out/score-demo/, made once),
plus its last four weeks scored with `seller-risk score`. Target: each notebook under 120 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from bench_scoring import DEMO, demo_champion  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WEEKS, TARGET_S = 4, 120.0


def score_weeks() -> None:
    """The batch job's score table for the demo's last WEEKS weeks (skipped when already there)."""
    from features.platform import layout

    weeks = json.loads(layout.manifest_file(DEMO / "features").read_text())["as_of_dates"][-WEEKS:]
    cli = str(Path(sys.executable).with_name("seller-risk"))
    for week in weeks:
        if not layout.summary_file(DEMO / "scores", date.fromisoformat(week)).exists():
            subprocess.run([cli, "score", "--features", "features", "--models", "models", "--out", "scores",
                            "--as-of", week], check=True, cwd=DEMO, stdout=subprocess.DEVNULL)


def run(book: Path) -> float:
    """Seconds to execute the notebook in a fresh python3 kernel; fails on any cell's error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(book, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return time.perf_counter() - start


def main() -> None:
    demo_champion()
    score_weeks()
    os.environ.update({"SELLER_RISK_DATA": str(DEMO), "SELLER_RISK_MODELS": str(DEMO / "models"),
                       "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"})  # the kernels inherit these
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    table = Table(title=f"Analyst notebooks on the demo marketplace, {WEEKS} weeks of scores")
    for name, justify in (("notebook", "left"), ("seconds", "right"), (f"target < {TARGET_S:.0f} s", "left")):
        table.add_column(name, justify=justify)
    for book in sorted(NOTEBOOKS.glob("*.ipynb")):
        seconds = run(book)
        table.add_row(book.stem, f"{seconds:.1f}", "met" if seconds < TARGET_S else "MISSED")
    Console().print(table)


if __name__ == "__main__":
    main()
