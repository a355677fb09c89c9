"""Redis: one script call per batch (`BATCH_SCRIPT`) against a pipeline of per-customer script calls.

    python -m bench.redis_batch [--customers 20000 --batch 10000 --rounds 5]

The records are real: the engine in-process turns `--customers` synthetic customers (two events each) into
their Redis records (`Engine.process(...).records`). Then, per round and alternating the order, the same
records (with versions raised, so every write is a real update: record replaced, sets and counts diffed)
are written by:

- `batch`: `state.redis_projection.BatchProjection.write` (what the worker does): one `BATCH_SCRIPT` call per
  2,000 records, in one pipeline per batch of `--batch` records, plus the projected-offsets mark;
- `per-customer (sync)`: a redis-py pipeline of one `PROJECT_SCRIPT` call per customer per batch (the same
  client library and connection handling as `batch`: isolates the script-per-customer cost);
- `per-customer (RedisProjection.write)`: the async per-customer writer (`redis rebuild` uses it).

Measured: records/s as seen by the client, and Redis server CPU (`INFO cpu`, user + sys) per record.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    REDIS_URL,
    cleanup_redis,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    redis_client,
    render_synthetic,
    run_benchmark,
    runs_cell,
    synthetic_events,
    unique_prefix,
)

METHODS = ("batch", "per-customer (sync)", "per-customer (RedisProjection.write)")


def make_records(customers: int, seed: int) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    from segmenter.engine import Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules

    rules = default_rules()
    engine = Engine(rules, {}, {})
    messages = []
    for offset, event in enumerate(synthetic_events(customers, 2, int(time.time() * 1e6), seed=seed)):
        role, key, value = render_synthetic(event)
        kind = Kind.PURCHASES if role == "purchases" else Kind.INTERACTIONS
        messages.append(InputMessage(kind, role, 0, offset, key, value, []))
    records: dict[str, dict[str, str]] = {}
    for start in range(0, len(messages), 10_000):
        records.update(engine.process(messages[start : start + 10_000]).records)
    return records, rules.dimension_names


def server_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def with_version(records: dict[str, dict[str, str]], version: int) -> list[tuple[str, dict[str, str]]]:
    return [(cid, {**fields, "version": str(version)}) for cid, fields in records.items()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis

    from state.redis_projection import PROJECT_SCRIPT, BatchProjection, RedisProjection, record_key

    base = unique_prefix("rb")
    result: dict[str, Any] = {"benchmark": "redis_batch", "params": vars(args), "machine": machine_info()}
    log(f"building the Redis records of {args.customers:,} customers with the engine")
    records, dimensions = make_records(args.customers, args.seed)
    result["records"] = len(records)
    client = redis_client()
    batch_writer = BatchProjection(REDIS_URL, f"{base}-batch", "bench")
    sync_client = redis.Redis.from_url(REDIS_URL)
    project = sync_client.register_script(PROJECT_SCRIPT)
    head = [str(len(dimensions)), *dimensions]

    def write_batch(items: list[tuple[str, dict[str, str]]]) -> None:
        for start in range(0, len(items), args.batch):
            chunk = dict(items[start : start + args.batch])
            batch_writer.write(chunk, dimensions, {0: start + len(chunk)})

    def write_sync(items: list[tuple[str, dict[str, str]]]) -> None:
        import orjson

        prefix = f"{base}-sync"
        for start in range(0, len(items), args.batch):
            pipe = sync_client.pipeline(transaction=False)
            for customer_id, fields in items[start : start + args.batch]:
                project(
                    keys=[record_key(prefix, customer_id)],
                    args=[prefix, customer_id, fields["version"], *head, orjson.dumps(fields)],
                    client=pipe,
                )
            pipe.execute()

    async def write_async_all(items: list[tuple[str, dict[str, str]]]) -> None:
        projection = RedisProjection(REDIS_URL, f"{base}-async")
        try:
            for start in range(0, len(items), args.batch):
                await projection.write(items[start : start + args.batch], dimensions)
        finally:
            await projection.client.aclose()

    def write_async(items: list[tuple[str, dict[str, str]]]) -> None:
        asyncio.run(write_async_all(items))

    writers: dict[str, Callable[[list[tuple[str, dict[str, str]]]], None]] = {
        "batch": write_batch,
        "per-customer (sync)": write_sync,
        "per-customer (RedisProjection.write)": write_async,
    }
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    try:
        for method in METHODS:  # first write: creates the keys (not measured)
            writers[method](with_version(records, 1))
        for round_ in range(args.rounds):
            order = list(METHODS) if round_ % 2 == 0 else list(reversed(METHODS))
            for method in order:
                items = with_version(records, round_ + 2)
                cpu0, t0 = server_cpu(client), time.perf_counter()
                writers[method](items)
                elapsed, cpu = time.perf_counter() - t0, server_cpu(client) - cpu0
                runs[method].append(
                    {"rate": len(items) / elapsed, "server_cpu_us_per_record": cpu / len(items) * 1e6}
                )
            log("  " + ", ".join(f"{m} {fmt(runs[m][-1]['rate'])}/s" for m in METHODS))
    finally:
        batch_writer.close()
        sync_client.close()
        client.close()
        for suffix in ("batch", "sync", "async"):
            cleanup_redis(f"{base}-{suffix}")
    result["runs"] = runs
    result["summary"] = {
        "medians": {
            m: {
                "rate": median(r["rate"] for r in runs[m]),
                "server_cpu_us_per_record": median(r["server_cpu_us_per_record"] for r in runs[m]),
            }
            for m in METHODS
        },
        "batch_to_sync": median(
            b["rate"] / s["rate"] for b, s in zip(runs["batch"], runs["per-customer (sync)"], strict=True)
        ),
        "batch_to_async": median(
            b["rate"] / s["rate"]
            for b, s in zip(runs["batch"], runs["per-customer (RedisProjection.write)"], strict=True)
        ),
    }
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_batch", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000, help="Records per round (default 20000).")
    parser.add_argument("--batch", type=int, default=10_000, help="Records per worker batch (default 10000).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=17)
    return parser.parse_args(argv)


def render(result: dict[str, Any]) -> str:
    p, s, runs = result["params"], result["summary"], result["runs"]
    rows = [
        [
            f"`{m}`" if m == "batch" else m,
            fmt(s["medians"][m]["rate"]),
            runs_cell(r["rate"] for r in runs[m]),
            fmt(s["medians"][m]["server_cpu_us_per_record"], 1),
        ]
        for m in METHODS
    ]
    return "\n".join(
        [
            f"### Redis projection: one script call per batch vs per-customer calls ({result['records']:,} "
            f"records per round, batches of {p['batch']:,}, {p['rounds']} rounds)",
            "",
            machine_line(result["machine"]),
            "",
            f"Command: `python -m bench.redis_batch --customers {p['customers']} --batch {p['batch']} "
            f"--rounds {p['rounds']}`",
            "",
            markdown_table(["writer", "records/s (median)", "runs", "Redis server CPU µs/record"], rows),
            "",
            markdown_table(
                ["ratio (median of per-round ratios)", "value"],
                [
                    ["**batch / per-customer pipeline (sync)**", f"{s['batch_to_sync']:.2f}"],
                    ["batch / RedisProjection.write (async)", f"{s['batch_to_async']:.2f}"],
                ],
            ),
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("redis_batch", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
