"""Benchmark the HTTP scoring service against the same work done in-process, on the same cores.

For each BentoML setting (workers x threads per worker), `seller-risk serve` starts the demo
champion on a loopback port, and a load tool in a second process (benchmarks/load.py) keeps 1, 8
and 32 requests in flight for a fixed time: one seller per request (`/score_seller`), 5 reasons.
The in-process rows run the same calls (snapshot look-up, TreeSHAP, reasons, JSON) in one and in
as many processes as the service has workers, without HTTP.

    .venv/bin/python benchmarks/bench_service.py                         # 10 s per level
    .venv/bin/python benchmarks/bench_service.py --duration 5 --settings 2x1

Targets: p99 under 25 ms at concurrency 1; HTTP requests/s at concurrency 32 at least 70% of
in-process requests/s. Inputs (the demo marketplace and champion) are made once under
benchmarks/out/ by bench_scoring.py's `demo_champion`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from bench_scoring import DEMO, demo_champion  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LEVELS = (1, 8, 32)
TARGET_P99_MS, TARGET_SHARE = 25.0, 0.70


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ids(path: Path) -> Path:
    import pandas as pd

    ids = pd.read_parquet(DEMO / "features" / "latest.parquet", columns=["seller_id"])["seller_id"]
    path.write_text("\n".join(ids.astype(str)) + "\n")
    return path


def serve(workers: int, threads: int, telemetry: bool, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "SELLER_RISK_THREADS": str(threads), "SELLER_RISK_TELEMETRY": "1" if telemetry else "0"}
    env.pop("SELLER_RISK_API_KEY", None)
    proc = subprocess.Popen([str(BIN / "seller-risk"), "serve", "--features", str(DEMO / "features"),
                             "--models", str(DEMO / "models"), "--port", str(port), "--workers", str(workers)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    import urllib.request

    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the service was not ready within 180 s")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def load(url: str, ids: Path, concurrency: int, duration: float) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "load.py"), "--url", url, "--ids", str(ids),
                          "--concurrency", str(concurrency), "--duration", str(duration)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ in-process: the same calls, no HTTP


def in_process_worker(ids_file: Path, duration: float) -> None:
    """One process scoring one seller per call for `duration` seconds; prints a JSON line."""
    from serving.scoring import Scorer, Snapshot

    scorer = Scorer.load("models:/seller-risk@champion", DEMO / "models", threads=1)
    snapshot = Snapshot.load(DEMO / "features", scorer)
    ids = ids_file.read_text().split()
    lat: list[float] = []
    start = time.perf_counter()
    warm, stop_at, i = start + 1.0, start + 1.0 + duration, 0
    while (now := time.perf_counter()) < stop_at:
        json.dumps(scorer.records(scorer.score_ids(snapshot, [ids[i % len(ids)]], top=5))[0], default=str)
        if now >= warm:
            lat.append(time.perf_counter() - now)
        i += 1
    a = np.array(lat) * 1000
    print(json.dumps({"requests": len(a), "rps": len(a) / duration, "p50_ms": float(np.percentile(a, 50)),
                      "p99_ms": float(np.percentile(a, 99))}))


def in_process(ids: Path, processes: int, duration: float) -> dict:
    procs = [subprocess.Popen([sys.executable, __file__, "--in-process-worker", str(ids), "--duration", str(duration)],
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"concurrency": processes, "rps": sum(r["rps"] for r in results), "errors": 0,
            "p50_ms": float(np.median([r["p50_ms"] for r in results])),
            "p99_ms": float(max(r["p99_ms"] for r in results)), "requests": sum(r["requests"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="Seconds measured per level.")
    ap.add_argument("--settings", nargs="*", default=["2x1", "2x1+telemetry", "1x1"],
                    help="BentoML settings to try, as WORKERSxTHREADS, +telemetry for metrics and tracing on.")
    ap.add_argument("--in-process-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_process_worker:
        in_process_worker(args.in_process_worker, args.duration)
        return
    console = Console(width=140)
    demo_champion()
    work = DEMO / "service-bench"
    work.mkdir(exist_ok=True)
    ids = _ids(work / "ids.txt")
    load_avg = os.getloadavg()[0]
    rows: list[tuple[str, dict]] = []
    for setting in args.settings:
        shape, _, extra = setting.partition("+")
        workers, threads = (int(x) for x in shape.split("x"))
        telemetry = extra == "telemetry"
        port = _free_port()
        proc = serve(workers, threads, telemetry, port, work / f"serve-{setting}.log")
        try:
            for c in LEVELS:
                console.print(f"HTTP {setting}: concurrency {c} for {args.duration:.0f} s")
                rows.append((f"HTTP, {workers} worker(s) x {threads} thread(s){', telemetry' if telemetry else ''}",
                             load(f"http://127.0.0.1:{port}/score_seller", ids, c, args.duration)))
        finally:
            stop(proc)
    cores = os.cpu_count() or 2
    for n in sorted({1, cores}):
        console.print(f"in-process: {n} process(es) for {args.duration:.0f} s")
        rows.append((f"in-process, {n} process(es)", in_process(ids, n, args.duration)))

    best_local = max(r["rps"] for name, r in rows if name.startswith("in-process"))
    table = Table(title=f"One seller per request, 5 reasons; {args.duration:.0f} s per row; "
                        f"load average at start {load_avg:.2f} on {cores} cores")
    for col in ("how", "in flight", "requests/s", "p50 ms", "p99 ms", "errors", "share of in-process"):
        table.add_column(col, justify="right" if col != "how" else "left")
    for name, r in rows:
        table.add_row(name, str(r["concurrency"]), f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      str(r["errors"]), f"{r['rps'] / best_local:.0%}")
    console.print(table)
    http = [r for name, r in rows if name.startswith("HTTP")]
    c1 = min(r["p99_ms"] for r in http if r["concurrency"] == 1)
    c32 = max(r["rps"] for r in http if r["concurrency"] == 32)
    console.print(f"p99 at concurrency 1: {c1:.2f} ms (target < {TARGET_P99_MS:.0f} ms: "
                  f"{'met' if c1 < TARGET_P99_MS else 'missed'}); best HTTP at 32 in flight: {c32:,.0f}/s = "
                  f"{c32 / best_local:.0%} of in-process {best_local:,.0f}/s (target >= {TARGET_SHARE:.0%}: "
                  f"{'met' if c32 / best_local >= TARGET_SHARE else 'missed'})")


if __name__ == "__main__":
    main()
