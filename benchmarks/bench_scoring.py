"""Benchmark the weekly batch job: a million sellers (a real snapshot of the demo marketplace,
replicated) scored, explained and written with the demo champion, against the same matrix through
raw LightGBM `predict` and `pred_contrib` in one process on the same cores. Each method runs in its
own process (wall time, peak memory of the process tree), alternating, and the table gives medians.

    .venv/bin/python benchmarks/bench_scoring.py                    # 1,000,000 sellers, 3 rounds
    .venv/bin/python benchmarks/bench_scoring.py --sellers 200000 --rounds 1

Inputs are made once and cached under benchmarks/out/ (git-ignored): the demo marketplace, its
features and a champion trained and promoted with the real CLI, and the replicated snapshot.
Targets: the job reaches 85% of raw pred_contrib throughput, with peak memory under 4 GB; and
(issue 13) at most 1.5x the 111 s the job took before per-standard risk and reasons. The raw side
also times the job's own TreeSHAP (models/treeshap.py) on the same matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from measure import run_measured  # noqa: E402

from features.platform import layout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
DEMO = OUT / "score-demo"
TARGET_SHARE, TARGET_GB = 0.85, 4.0
FILE_ROWS = 250_000
RUNS = OUT / "bench_scoring_runs.jsonl"
BEFORE_PER_STANDARD = 111.3  # s: the job on 1M sellers before issue 13 (issue 6's closing note, 3 rounds)


def _cli(*args: str) -> None:
    cli = str(Path(sys.executable).with_name("seller-risk"))
    subprocess.run([cli, *args], check=True, cwd=DEMO, stdout=subprocess.DEVNULL)


def demo_champion() -> None:
    """The demo's marketplace, features and champion (as `make demo` makes them, with a short search)."""
    if (DEMO / "models" / "champion.ok").exists():
        return
    DEMO.mkdir(parents=True, exist_ok=True)
    if not (DEMO / "events" / "_manifest.json").exists():
        _cli("simulate", "--sellers", "2000", "--weeks", "52", "--seed", "7", "--out", "events", "--no-latent")
    if not layout.manifest_file(DEMO / "features").exists():
        _cli("features", "--events", "events", "--out", "features")
    _cli("train", "--features", "features", "--models", "models", "--trials", "5", "--budget", "60")
    _cli("promote", "--models", "models", "--force")  # a benchmark needs a champion, gate or not
    (DEMO / "models" / "champion.ok").write_text("")


def replicated(sellers: int) -> tuple[Path, date]:
    """A features folder whose latest week (and the week before, for the risers) holds `sellers`
    rows: the demo's real snapshot rows repeated, seller ids made unique."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = json.loads(layout.manifest_file(DEMO / "features").read_text())
    latest = date.fromisoformat(manifest["as_of_dates"][-1])
    folder = OUT / f"score-features-{sellers}"
    if layout.manifest_file(folder).exists():
        return folder, latest
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for day in (latest - timedelta(days=7), latest):
        src = pq.read_table(layout.snapshot_partition(DEMO / "features", day))
        dest = layout.snapshot_partition(tmp, day)
        dest.mkdir(parents=True)
        copies, written, part = -(-sellers // src.num_rows), 0, []
        for k in range(copies):
            take = min(src.num_rows, sellers - written)
            t = src.slice(0, take)
            ids = pc.binary_join_element_wise(t.column("seller_id"), pa.scalar(f"{k:04d}"), "-")
            part.append(t.set_column(0, "seller_id", ids))
            written += take
            if sum(p.num_rows for p in part) >= FILE_ROWS or written == sellers:
                pq.write_table(pa.concat_tables(part), dest / f"part-{len(list(dest.iterdir())):03d}.parquet")
                part = []
    shutil.copy(layout.spec_file(DEMO / "features"), layout.spec_file(tmp))
    layout.manifest_file(tmp).write_text(json.dumps({**manifest, "as_of_dates": [str(latest - timedelta(days=7)), str(latest)],
                                                     "rows": 2 * sellers, "events": "replicated for the benchmark"}))
    tmp.rename(folder)
    return folder, latest


# ------------------------------------------------------------------ the methods, each in a worker


def job(features: Path, as_of: date) -> dict:
    from serving.batch.job import BatchConfig, run_batch

    out = OUT / "score-out"
    cfg = BatchConfig(out, features_dir=features, as_of=as_of, models_dir=DEMO / "models")
    t = time.perf_counter()
    result = run_batch(cfg)
    return {"seconds": time.perf_counter() - t, "sellers": result.summary["sellers_scored"], **result.timings}


def raw(features: Path, as_of: date) -> dict:
    """The floor: the same matrix through LightGBM alone (all cores), scores then contributions."""
    import pyarrow.parquet as pq

    from serving.scoring import Scorer

    scorer = Scorer.load(models_dir=DEMO / "models")
    frame = pq.read_table(layout.snapshot_partition(features, as_of),
                          columns=["seller_id", *scorer.spec.names]).to_pandas()
    t = time.perf_counter()
    X = scorer.model.matrix(frame)
    matrix_s = time.perf_counter() - t
    del frame
    t = time.perf_counter()
    scorer.model.booster.predict(X, raw_score=True)
    predict_s = time.perf_counter() - t
    t = time.perf_counter()
    scorer.model.booster.predict(X, pred_contrib=True)
    contrib_s = time.perf_counter() - t
    t = time.perf_counter()
    tables = scorer.model.shap_tables
    tables_s = time.perf_counter() - t
    t = time.perf_counter()
    tables.contributions(X)
    treeshap_s = time.perf_counter() - t
    return {"sellers": len(X), "matrix_s": matrix_s, "predict_s": predict_s, "pred_contrib_s": contrib_s,
            "treeshap_s": treeshap_s, "tables_s": tables_s}


# ------------------------------------------------------------------ the table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sellers", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--report", action="store_true", help="print the table from the runs kept so far")
    ap.add_argument("--worker", choices=["job", "raw"], help=argparse.SUPPRESS)
    ap.add_argument("--features", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--as-of", type=date.fromisoformat, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        result = {"job": lambda: job(args.features, args.as_of),
                  "raw": lambda: raw(args.features, args.as_of)}[args.worker]()
        print(json.dumps(result))
        return

    if args.report:
        rows = [json.loads(line) for line in RUNS.read_text().splitlines()]
        rows = [r for r in rows if r["sellers"] == args.sellers]
        runs = {m: [(r["wall"], r["peak"], r["result"]) for r in rows if r["method"] == m] for m in ("raw", "job")}
        _table(runs, args.sellers, [r["load"] for r in rows])
        return
    demo_champion()
    features, as_of = replicated(args.sellers)
    methods = ("raw", "job")
    runs: dict[str, list[tuple[float, int, dict]]] = {m: [] for m in methods}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for m in methods:
            cmd = [sys.executable, __file__, "--worker", m, "--features", str(features), "--as-of", str(as_of)]
            wall, peak, out = run_measured(cmd)
            runs[m].append((wall, peak, json.loads(out.strip().splitlines()[-1])))
            with RUNS.open("a") as fh:  # every run kept, so a long benchmark cut short still reports
                fh.write(json.dumps({"sellers": args.sellers, "method": m, "wall": wall, "peak": peak,
                                     "load": os.getloadavg()[0], "result": runs[m][-1][2]}) + "\n")
            load.append(os.getloadavg()[0])
            print(f"round {r + 1} {m}: {wall:.1f} s wall, {peak / 2**30:.2f} GB peak", flush=True)
    _table(runs, args.sellers, load)


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _table(runs: dict, sellers: int, load: list[float]) -> None:
    contrib = _med([d["pred_contrib_s"] for _, _, d in runs["raw"]])
    predict = _med([d["predict_s"] for _, _, d in runs["raw"]])
    matrix = _med([d["matrix_s"] for _, _, d in runs["raw"]])
    table = Table(title=f"Weekly batch scoring: {sellers:,} sellers, medians of {len(runs['raw'])} and {len(runs['job'])} runs "
                        f"({os.cpu_count()} cores; 1-min load {min(load):.1f} to {max(load):.1f})")
    for name, justify in (("method", "left"), ("seconds", "right"), ("sellers/s", "right"),
                          ("share of raw pred_contrib throughput", "right"), ("process wall s", "right"),
                          ("peak memory", "right")):
        table.add_column(name, justify=justify)
    raw_wall = _med([w for w, _, _ in runs["raw"]])
    raw_peak = max(p for _, p, _ in runs["raw"])
    table.add_row("raw LightGBM predict (scores only)", f"{predict:.1f}", f"{sellers / predict:,.0f}", "", "", "")
    table.add_row("raw LightGBM pred_contrib (SHAP)", f"{contrib:.1f}", f"{sellers / contrib:,.0f}", "100%",
                  f"{raw_wall:.1f}", f"{raw_peak / 2**30:.2f} GB")
    table.add_row("  (model matrix from the frame)", f"{matrix:.1f}", "", "", "", "")
    ours = [d["treeshap_s"] for _, _, d in runs["raw"] if "treeshap_s" in d]
    if ours:
        table.add_row("our TreeSHAP, the job's (models/treeshap.py)", f"{_med(ours):.1f}", f"{sellers / _med(ours):,.0f}",
                      f"{contrib / _med(ours):.0%}", "", "")
        table.add_row("  (its tables, built once per model)",
                      f"{_med([d['tables_s'] for _, _, d in runs['raw']]):.1f}", "", "", "", "")
    for m, label in (("job", "batch job: read, score, explain, write, summarise"),):
        secs = _med([d["seconds"] for _, _, d in runs[m]])
        score = _med([d["score_write_s"] for _, _, d in runs[m]])
        wall = _med([w for w, _, _ in runs[m]])
        peak = max(p for _, p, _ in runs[m])
        share = contrib / secs
        ok = "ok" if share >= TARGET_SHARE else "below target"
        table.add_row(label, f"{secs:.1f}", f"{sellers / secs:,.0f}", f"{share:.0%} ({ok})", f"{wall:.1f}",
                      f"{peak / 2**30:.2f} GB ({'ok' if peak < TARGET_GB * 2**30 else 'over'})")
        table.add_row("  of which score, explain, write", f"{score:.1f}", "", "", "", "")
        ranks = [d["rank_s"] for _, _, d in runs[m] if "rank_s" in d]
        if ranks:
            table.add_row("  of which the weekly lists (a first pass: scores, standings)", f"{_med(ranks):.1f}",
                          "", "", "", "")
        table.add_row("  of which model, snapshot checks, reference, last week", f"{_med([d['prepare_s'] for _, _, d in runs[m]]):.1f}", "", "", "", "")
    Console(width=160).print(table)
    print(f"targets: >= {TARGET_SHARE:.0%} of raw pred_contrib throughput (job seconds from model load to "
          f"summary, against pred_contrib alone), peak memory < {TARGET_GB:.0f} GB; issue 13: the job at most "
          f"1.5x the {BEFORE_PER_STANDARD:.0f} s it took before per-standard risk and reasons: "
          f"{_med([d['seconds'] for _, _, d in runs['job']]) / BEFORE_PER_STANDARD:.2f}x")


if __name__ == "__main__":
    main()
