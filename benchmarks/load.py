"""A small HTTP load tool, run as its own process: keeps `--concurrency` requests in flight against
one endpoint for `--duration` seconds (keep-alive connections, one seller per request, sellers
taken in turn), then prints one JSON line: requests, errors, requests/s, p50/p90/p99 latency (ms).

    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:3000/score_seller --ids ids.txt --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from itertools import count
from pathlib import Path

import aiohttp
import numpy as np


async def run(url: str, bodies: list[bytes], concurrency: int, duration: float, warmup: float) -> dict:
    latencies: list[float] = []
    errors = 0
    turn = count()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        start = time.perf_counter()
        measure_from, stop = start + warmup, start + warmup + duration

        async def client() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop:
                body = bodies[next(turn) % len(bodies)]
                async with session.post(url, data=body) as r:
                    await r.read()
                    ok = r.status == 200
                done = time.perf_counter()
                if now >= measure_from:
                    latencies.append(done - now)
                    errors += not ok

        await asyncio.gather(*(client() for _ in range(concurrency)))
    lat = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(lat), "errors": errors, "rps": len(lat) / duration,
            "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
            "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--ids", type=Path, required=True, help="File of seller ids, one per line.")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0, help="Seconds measured.")
    ap.add_argument("--warmup", type=float, default=2.0, help="Seconds before measuring.")
    ap.add_argument("--reasons", type=int, default=5)
    args = ap.parse_args()
    ids = args.ids.read_text().split()
    bodies = [json.dumps({"seller_id": s, "reasons": args.reasons}).encode() for s in ids]
    print(json.dumps(asyncio.run(run(args.url, bodies, args.concurrency, args.duration, args.warmup))))


if __name__ == "__main__":
    main()
