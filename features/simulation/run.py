"""Run a simulated marketplace end to end: sellers in fixed-size chunks (in parallel, each chunk
seeded by its own index so the output does not depend on how many processes ran), week by week
through orders and enforcement, written as Parquet parts into a temporary directory that
replaces the output only once everything is written."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.platform.atomic import replaced_whole
from features.policy.definition import Policy
from features.events.schema import (
    CANCELLED_BY,
    CONTACT_TOPICS,
    FULFILMENT_CHANNELS,
    MANIFEST_FILE,
    POLICY_ACTIONS,
    REFUND_REASONS,
    RETURN_REASONS,
    TABLES,
)
from features.simulation.behaviour import behaviour
from features.simulation.enforcement import Enforcement, Ledger, evaluate
from features.simulation.orders import CANCEL_REASONS, DAY, Week, simulate_week
from features.simulation.population import ARCHETYPES, TRAJECTORIES, Sellers, draw_sellers
from features.simulation.regime import DEFAULT_REGIME, Regime
from features.simulation.world import CARRIERS, CATEGORIES, LATENTS, REGIONS, World, build_world

CHUNK_SELLERS = 2500
"""Sellers per chunk; part of the output's identity (same seed and chunk size, same bytes)."""

SUMMARY_FILE = "_summary.json"
ID_DIGITS = 12
ACTIVE_DAYS = 30  # a seller is active at t with an order in the 30 days before t


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate."""

    n_sellers: int
    start: date
    weeks: int
    seed: int
    workers: int = field(default=0, compare=False)  # 0: one per core, at most 2 per chunk pair
    regime: Regime = DEFAULT_REGIME  # what kind of marketplace (features/simulation/regime.py)

    @property
    def n_days(self) -> int:
        return self.weeks * 7

    @property
    def cutoff(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time()) + timedelta(days=self.n_days)


@dataclass
class ChunkStats:
    """What one chunk contributes to the run summary (additive across chunks)."""

    rows: dict[str, int]
    counts: dict[str, int]
    per_metric_misses: dict[str, int]
    orders_per_seller: np.ndarray


@dataclass
class SimulationSummary:
    """The headline numbers of a simulated marketplace, against the realism targets."""

    config: dict
    policy_version: str
    rows: dict[str, int]
    rates: dict[str, float]
    counts: dict[str, int]
    per_metric_miss_share: dict[str, float]
    sellers: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)


REALISM_TARGETS = {
    "late_delivery_rate": (0.05, 0.10),
    "seller_cancellation_rate": (0.01, 0.02),
    "negative_rating_share": (0.07, 0.13),
    "breach_within_horizon_share": (0.05, 0.15),
}
"""Ranges public marketplace data shows; the summary reports each rate against its range."""


# ---------------------------------------------------------------- one chunk, in a worker process


def _chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 1, chunk]))


def _regime_rng(seed: int, chunk: int) -> np.random.Generator:
    """The chunk's stream for what only some regimes draw (fast growers): a stream of its own, so that the
    default regime's draws, and so its bytes, are the same whether or not these exist."""
    return np.random.default_rng(np.random.SeedSequence([seed, 2, chunk]))


def simulate_chunk(config: SimulationConfig, policy: Policy, chunk: int, out: Path, latent: Path | None) -> ChunkStats:
    """Simulate sellers of one chunk through every week and write their parts of every table."""
    world = build_world(config.seed, config.start, config.n_days, config.regime)
    rng = _chunk_rng(config.seed, chunk)
    first = chunk * CHUNK_SELLERS
    n = min(CHUNK_SELLERS, config.n_sellers - first)
    sellers = draw_sellers(rng, first, n, config.n_days, config.regime, _regime_rng(config.seed, chunk))
    ledger = Ledger(n, config.n_days)
    enforcement = Enforcement(n)
    cutoff = config.n_days * DAY
    weeks: list[Week] = []
    misses = np.zeros((len(policy.metrics), n, config.weeks), bool)
    latent_parts = []
    for w in range(config.weeks):
        days = np.arange(w * 7, w * 7 + 7)
        fix = np.minimum(enforcement.fix_start, sellers.self_fix_day)
        b = behaviour(sellers, world, days, fix, enforcement.volume_factor(), config.regime.overload_effect)
        if latent is not None:
            latent_parts.append(_latent_week(sellers, b, enforcement, config.start, w))
        weeks.append(simulate_week(rng, sellers, b, days, cutoff, ledger))
        evaluation = evaluate(policy, ledger, (w + 1) * 7)
        misses[:, :, w] = evaluation.misses
        if w + 1 < config.weeks:  # the last evaluation's actions would fall after the extract's cut-off
            enforcement.step(rng, policy, sellers, evaluation, (w + 1) * 7)

    tables = _tables(config, sellers, weeks, enforcement, policy, chunk)
    for name, table in tables.items():
        _write_part(out / name, chunk, table)
    if latent is not None:
        _write_part(latent / "seller_weeks", chunk, pa.concat_tables(latent_parts))
        _write_part(latent / "sellers", chunk, _latent_sellers(sellers))
    return _chunk_stats(config, policy, sellers, ledger, misses, tables)


def _epoch_us(d: date) -> int:
    return (d - date(1970, 1, 1)).days * 86_400_000_000


def _ts(config: SimulationConfig, seconds: np.ndarray, nullable: bool = True) -> pa.Array:
    """Seconds since the start as timestamps; in event columns a negative value means 'not yet'."""
    mask = seconds < 0 if nullable else None
    return pa.array(_epoch_us(config.start) + seconds * 1_000_000, type=pa.timestamp("us"), mask=mask)


def _labels(codes: np.ndarray, labels: tuple[str, ...]) -> pa.Array:
    idx = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pc.take(pa.array(labels, pa.string()), idx)


def _ids(prefix: str, numbers: np.ndarray, digits: int = ID_DIGITS) -> pa.Array:
    text = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), digits, "0")
    return pc.binary_join_element_wise(prefix, text, "")


def _stack(weeks: list[Week], table: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One table's columns over all weeks, with each row's order number within the chunk."""
    parts = [getattr(w, table) for w in weeks]
    offsets = np.cumsum([0] + [len(w.orders["order"]) for w in weeks])
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.concatenate([np.where(p["order"] >= 0, p["order"] + off, -1) for p, off in zip(parts, offsets)])
    return cols, order


@dataclass(frozen=True)
class _Columns:
    """How a chunk's simulated numbers become event columns: its sellers' ids, order and row ids
    unique across chunks (offset by the chunk's `base`), timestamps, and tables in the event schema."""

    config: SimulationConfig
    seller_ids: pa.Array
    base: int

    def sellers_of(self, local: np.ndarray) -> pa.Array:
        return pc.take(self.seller_ids, pa.array(local))

    def order_ids(self, order: np.ndarray) -> pa.Array:
        ids = _ids("O", self.base + np.maximum(order, 0))
        return pc.if_else(pa.array(order >= 0), ids, pa.nulls(len(order), pa.string()))

    def row_ids(self, prefix: str, n: int) -> pa.Array:
        return _ids(prefix, self.base + np.arange(n))

    def ts(self, seconds: np.ndarray) -> pa.Array:
        return _ts(self.config, seconds)

    @staticmethod
    def make(name: str, columns: dict[str, pa.Array]) -> pa.Table:
        schema = TABLES[name].arrow_schema()
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _tables(config: SimulationConfig, s: Sellers, weeks: list[Week], enf: Enforcement, policy: Policy,
            chunk: int) -> dict[str, pa.Table]:
    """The chunk's event tables, in the canonical schema."""
    c = _Columns(config, _ids("S", s.ids, 7), chunk * 10**9)
    return {
        "sellers": _sellers_table(c, s),
        "orders": _orders_table(c, weeks),
        "returns": _returns_table(c, weeks),
        "refunds": _refunds_table(c, weeks),
        "feedback": _feedback_table(c, weeks),
        "contacts": _contacts_table(c, weeks),
        "policy_actions": _actions_table(config, enf, policy, c.sellers_of, c.base, c.make),
    }


def _sellers_table(c: _Columns, s: Sellers) -> pa.Table:
    return c.make("sellers", {
        "seller_id": c.seller_ids,
        "onboarded_at": _ts(c.config, s.onboard_day * DAY + 9 * 3600, nullable=False),
        "category": _labels(s.category, CATEGORIES),
        "region": _labels(s.region, REGIONS),
    })


def _orders_table(c: _Columns, weeks: list[Week]) -> pa.Table:
    o, o_num = _stack(weeks, "orders")
    return c.make("orders", {
        "order_id": c.order_ids(o_num),
        "seller_id": c.sellers_of(o["seller"]),
        "ordered_at": c.ts(o["ordered_at"]),
        "fulfilment_channel": _labels(o["channel"], FULFILMENT_CHANNELS),
        "order_value": pa.array(o["order_value"], pa.float64()),
        "item_count": pa.array(o["item_count"], pa.int64()),
        "promised_ship_by": c.ts(o["promised_ship_by"]),
        "promised_delivery_by": c.ts(o["promised_delivery_by"]),
        "shipped_at": c.ts(o["shipped_at"]),
        "carrier_handover_at": c.ts(o["carrier_handover_at"]),
        "carrier": _labels(o["carrier"], CARRIERS),
        "tracking_valid": pa.array(o["tracking_valid"] == 1, pa.bool_(), mask=o["tracking_valid"] < 0),
        "delivered_at": c.ts(o["delivered_at"]),
        "cancelled_at": c.ts(o["cancelled_at"]),
        "cancelled_by": _labels(o["cancelled_by"], CANCELLED_BY),
        "cancel_reason": _labels(o["cancel_reason"], CANCEL_REASONS),
    })


def _returns_table(c: _Columns, weeks: list[Week]) -> pa.Table:
    r, r_num = _stack(weeks, "returns")
    return c.make("returns", {
        "return_id": c.row_ids("R", len(r_num)),
        "order_id": c.order_ids(r_num), "seller_id": c.sellers_of(r["seller"]),
        "requested_at": c.ts(r["requested_at"]), "reason": _labels(r["reason"], RETURN_REASONS),
        "seller_responsible": pa.array(r["seller_responsible"], pa.bool_()),
    })


def _refunds_table(c: _Columns, weeks: list[Week]) -> pa.Table:
    f, f_num = _stack(weeks, "refunds")
    return c.make("refunds", {
        "refund_id": c.row_ids("RF", len(f_num)),
        "order_id": c.order_ids(f_num), "seller_id": c.sellers_of(f["seller"]),
        "refunded_at": c.ts(f["refunded_at"]), "amount": pa.array(f["amount"], pa.float64()),
        "reason": _labels(f["reason"], REFUND_REASONS),
        "seller_responsible": pa.array(f["seller_responsible"], pa.bool_()),
    })


def _feedback_table(c: _Columns, weeks: list[Week]) -> pa.Table:
    fb, fb_num = _stack(weeks, "feedback")
    return c.make("feedback", {
        "feedback_id": c.row_ids("F", len(fb_num)),
        "order_id": c.order_ids(fb_num), "seller_id": c.sellers_of(fb["seller"]),
        "submitted_at": c.ts(fb["submitted_at"]), "rating": pa.array(fb["rating"], pa.int64()),
    })


def _contacts_table(c: _Columns, weeks: list[Week]) -> pa.Table:
    t, t_num = _stack(weeks, "contacts")
    return c.make("contacts", {
        "contact_id": c.row_ids("C", len(t_num)),
        "seller_id": c.sellers_of(t["seller"]), "order_id": c.order_ids(t_num),
        "opened_at": c.ts(t["opened_at"]), "topic": _labels(t["topic"], CONTACT_TOPICS),
        "first_response_at": c.ts(t["first_response_at"]),
    })


def _actions_table(config: SimulationConfig, enf: Enforcement, policy: Policy, sellers_of: Callable,
                   base: int, make: Callable) -> pa.Table:
    from features.simulation.enforcement import ACTION_DELAY_SECONDS

    metric_names = tuple(policy.metrics)
    if enf.actions:
        who = np.concatenate([a[0] for a in enf.actions])
        day = np.concatenate([np.full(a[0].size, a[1]) for a in enf.actions])
        code = np.concatenate([np.full(a[0].size, a[2]) for a in enf.actions])
        metric = np.concatenate([a[3] for a in enf.actions])
        value = np.concatenate([a[4] for a in enf.actions])
        threshold = np.concatenate([a[5] for a in enf.actions])
    else:
        who = day = code = metric = np.zeros(0, np.int64)
        value = threshold = np.zeros(0)
    order = np.lexsort((who, day))
    who, day, code, metric, value, threshold = (x[order] for x in (who, day, code, metric, value, threshold))
    return make("policy_actions", {
        "action_id": _ids("A", base + np.arange(who.size)),
        "seller_id": sellers_of(who),
        "issued_at": _ts(config, day * DAY + ACTION_DELAY_SECONDS),
        "action": _labels(code, POLICY_ACTIONS),
        "metric": _labels(metric, metric_names),
        "metric_value": pa.array(value, pa.float64(), mask=np.isnan(value)),
        "threshold": pa.array(threshold, pa.float64(), mask=np.isnan(threshold)),
        "policy_version": pa.array(np.full(who.size, policy.version), pa.string()),
    })


def _latent_week(s: Sellers, b, enf: Enforcement, start: date, week: int) -> pa.Table:
    cols = {
        "seller_id": _ids("S", s.ids, 7),
        "week_start": pa.array(np.full(len(s), np.datetime64(start) + np.timedelta64(week * 7, "D"))),
        "archetype": _labels(s.archetype, ARCHETYPES),
        "trajectory": _labels(s.trajectory, TRAJECTORIES),
        "standing": _labels(enf.status.astype(np.int64), ("good", "warned", "suppressed", "suspended")),
        "expected_orders_per_day": pa.array(b.expected_orders.mean(axis=1).astype(np.float32)),
    }
    for i, name in enumerate(LATENTS):
        cols[f"p_{name}"] = pa.array(b.propensity[i].mean(axis=1).astype(np.float32))
    return pa.table(cols)


def _latent_sellers(s: Sellers) -> pa.Table:
    return pa.table({
        "seller_id": _ids("S", s.ids, 7),
        "archetype": _labels(s.archetype, ARCHETYPES),
        "trajectory": _labels(s.trajectory, TRAJECTORIES),
        "onset_day": pa.array(np.where(s.trajectory > 0, s.onset, -1)),
        "size_orders_per_day": pa.array(s.size),
        "self_fix_day": pa.array(np.where(np.isfinite(s.self_fix_day), s.self_fix_day, -1).astype(np.int64)),
    })


def _write_part(folder: Path, chunk: int, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{chunk:05d}.parquet", compression="zstd")


def _chunk_stats(config: SimulationConfig, policy: Policy, s: Sellers, ledger: Ledger, misses: np.ndarray,
                 tables: dict[str, pa.Table]) -> ChunkStats:
    """Order-level rates and the label base rate, from the marketplace's own ledger."""
    seller_ch = ("seller",)
    total = lambda m, ch=seller_ch: int(ledger.window(m, ch, config.n_days, config.n_days).sum())  # noqa: E731
    fb = tables["feedback"]
    breach = misses.any(axis=0)  # (n, weeks): evaluation at the end of week w
    horizon_weeks = policy.horizon_days // policy.evaluation_every_days
    orders_daily = ledger.counts["orders"].sum(axis=0)
    active_weeks, followed, early, early_followed = 0, 0, 0, 0
    per_metric = np.zeros(len(policy.metrics), np.int64)
    for w in range(config.weeks - horizon_weeks):
        end = (w + 1) * 7
        active = (s.onboard_day < end) & (orders_daily[:, max(end - ACTIVE_DAYS, 0):end].sum(axis=1) > 0)
        future = breach[:, w + 1: w + 1 + horizon_weeks].any(axis=1)
        active_weeks += int(active.sum())
        followed += int((active & future).sum())
        early += int((active & ~breach[:, w]).sum())
        early_followed += int((active & ~breach[:, w] & future).sum())
        per_metric += (misses[:, :, w + 1: w + 1 + horizon_weeks].any(axis=2) & active).sum(axis=1)
    actions = tables["policy_actions"].column("action").to_pylist()
    counts = {
        "orders": total("orders", ("seller", "marketplace")),
        "marketplace_fulfilled_orders": total("orders", ("marketplace",)),
        "seller_fulfilled_orders": total("orders"),
        "seller_fulfilled_delivered": total("delivered_orders"),
        "seller_fulfilled_on_time": total("on_time_deliveries"),
        "seller_fulfilled_cancelled_by_seller": total("seller_cancelled_orders"),
        "ratings": fb.num_rows,
        "negative_ratings": int(pc.sum(pc.less_equal(fb.column("rating"), 2)).as_py() or 0),
        "gmv_cents": int(round(pc.sum(tables["orders"].column("order_value")).as_py() * 100)),
        "active_seller_weeks": active_weeks,
        "active_seller_weeks_followed_by_breach": followed,
        "early_warning_seller_weeks": early,
        "early_warning_seller_weeks_followed_by_breach": early_followed,
        "sellers_joining_during_period": int((s.onboard_day >= 0).sum()),
        **{f"actions_{a}": actions.count(a) for a in POLICY_ACTIONS},
        **{f"archetype_{a}": int((s.archetype == i).sum()) for i, a in enumerate(ARCHETYPES)},
        **{f"trajectory_{t}": int((s.trajectory == i).sum()) for i, t in enumerate(TRAJECTORIES) if i},
    }
    return ChunkStats(
        rows={k: v.num_rows for k, v in tables.items()},
        counts=counts,
        per_metric_misses=dict(zip(policy.metrics, per_metric.tolist())),
        orders_per_seller=ledger.counts["orders"].sum(axis=(0, 2)),
    )


# ---------------------------------------------------------------- the whole run, in the parent


def _summarise(config: SimulationConfig, policy: Policy, world: World, stats: list[ChunkStats]) -> SimulationSummary:
    add = lambda key: {k: sum(getattr(st, key)[k] for st in stats) for k in getattr(stats[0], key)}  # noqa: E731
    rows, counts, per_metric = add("rows"), add("counts"), add("per_metric_misses")
    counts["disruptions"] = len(world.disruptions)
    ratio = lambda a, b: round(a / b, 5) if b else float("nan")  # noqa: E731
    sizes = np.sort(np.concatenate([st.orders_per_seller for st in stats]))[::-1]
    top = max(len(sizes) // 100, 1)
    rates = {
        "late_delivery_rate": ratio(counts["seller_fulfilled_delivered"] - counts["seller_fulfilled_on_time"],
                                    counts["seller_fulfilled_delivered"]),
        "seller_cancellation_rate": ratio(counts["seller_fulfilled_cancelled_by_seller"],
                                          counts["seller_fulfilled_orders"]),
        "negative_rating_share": ratio(counts["negative_ratings"], counts["ratings"]),
        "breach_within_horizon_share": ratio(counts["active_seller_weeks_followed_by_breach"],
                                             counts["active_seller_weeks"]),
        "early_warning_breach_share": ratio(counts["early_warning_seller_weeks_followed_by_breach"],
                                            counts["early_warning_seller_weeks"]),
        "early_warning_share_of_active": ratio(counts["early_warning_seller_weeks"], counts["active_seller_weeks"]),
        "marketplace_fulfilled_share": ratio(counts["marketplace_fulfilled_orders"], counts["orders"]),
        "rated_share": ratio(counts["ratings"], counts["orders"]),
    }
    sellers = {
        "orders_per_seller_median": float(np.median(sizes)),
        "orders_per_seller_p90": float(np.percentile(sizes, 90)),
        "orders_per_seller_max": int(sizes[0]),
        "top_1pct_sellers_share_of_orders": ratio(int(sizes[:top].sum()), int(sizes.sum())),
    }
    return SimulationSummary(
        config={"sellers": config.n_sellers, "start": config.start.isoformat(), "weeks": config.weeks,
                "seed": config.seed, "chunk_sellers": CHUNK_SELLERS, **_regime_entry(config.regime)},
        policy_version=policy.version,
        rows=rows,
        rates=rates,
        counts=counts,
        per_metric_miss_share={k: ratio(v, counts["active_seller_weeks"]) for k, v in per_metric.items()},
        sellers=sellers,
    )


def _regime_entry(regime: Regime) -> dict:
    """The regime's knobs set away from today's marketplace, for the manifest and the summary; nothing for
    today's marketplace, whose files stay as they always were."""
    changed = regime.changed()
    return {"regime": changed} if changed else {}


def _run_chunks(config: SimulationConfig, policy: Policy, out: Path, latent: Path | None) -> Iterator[tuple[int, ChunkStats]]:
    n_chunks = -(-config.n_sellers // CHUNK_SELLERS)
    workers = config.workers or min(os.cpu_count() or 1, n_chunks)
    jobs = [(config, policy, c, out, latent) for c in range(n_chunks)]
    if workers <= 1:
        for job in jobs:
            yield min(CHUNK_SELLERS, config.n_sellers - job[2] * CHUNK_SELLERS), simulate_chunk(*job)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for c, stats in enumerate(pool.imap(_simulate_job, jobs)):
            yield min(CHUNK_SELLERS, config.n_sellers - c * CHUNK_SELLERS), stats


def _simulate_job(job: tuple) -> ChunkStats:
    return simulate_chunk(*job)


def simulate_marketplace(
    config: SimulationConfig,
    policy: Policy,
    out: Path | str,
    write_latent: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate the marketplace and write its event tables (and, optionally, the sellers' hidden
    state to `<out>-latent`, a folder no pipeline reads). Returns the run summary."""
    out = Path(out)
    latent_out = out.with_name(out.name + "-latent")
    with replaced_whole(out, MANIFEST_FILE) as tmp:
        with replaced_whole(latent_out, "seller_weeks") if write_latent else nullcontext() as tmp_latent:
            stats, done = [], 0
            for size, chunk_stats in _run_chunks(config, policy, tmp, tmp_latent):
                stats.append(chunk_stats)
                done += size
                if progress:
                    progress(done, config.n_sellers)
            summary = _summarise(config, policy, build_world(config.seed, config.start, config.n_days, config.regime),
                                 stats)
            manifest = {
                "cutoff": config.cutoff.isoformat(),
                "start": config.start.isoformat(),
                "generator": "seller-risk simulate",
                "policy_version": policy.version,
                "sellers": config.n_sellers,
                "weeks": config.weeks,
                "seed": config.seed,
                **_regime_entry(config.regime),
            }
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
            (tmp / SUMMARY_FILE).write_text(summary.to_json() + "\n")
    return summary
