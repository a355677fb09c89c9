"""Memory: worker RSS and state bytes per customer, at 100k customers (worker) and 1M (engine in-process).

    python -m bench.memory [--customers 100000 --events-per-customer 2 --inprocess-customers 1000000]

A. Worker (default 100k customers, `--repeat` runs): synthetic customers with `--events-per-customer`
   events each (first a purchase, then interactions and purchases alternating; random times over the last
   year) are produced once; per run, side by side: an idle worker on empty topics (baseline RSS), then a
   fresh worker that ingests everything. RSS delta / customers = (RSS after ingest - idle RSS) / customers.
   From the first run's changelog (`{app}-customers-changelog`): the msgpack bytes of each customer's latest
   `CustomerState`, which is what compaction keeps and what a restart replays.
B. Engine in-process (default 1M customers, same generator): `Engine.handle_input` on every event with
   dict tables; RSS delta / customer of this process, msgpack bytes per customer. This is the memory
   store's content without Kafka (msgpack bytes per customer in a dict, like the worker's `MemoryStore`).
   At the worker's measured rate 1M customers would take ~N x E / rate to ingest (printed), hence in-process.
C. Realistic history in-process: `segmenter.simulation` for `--sim-customers` customers over a year (every
   event), msgpack bytes per customer (mean / p50 / p99) and Python heap bytes per customer (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from datetime import date, timedelta
from typing import Any

from bench.common import (
    BROKER,
    MICROS_PER_DAY,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    cleanup_redis,
    create_topics,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    percentile,
    proc_rss_bytes,
    produce_bulk,
    render_synthetic,
    run_benchmark,
    runs_cell,
    synthetic_events,
    unique_prefix,
)
from state.codec import StoreCustomers, decode_customer
from state.stores import MemoryStore


class EncodedCustomers(StoreCustomers):
    """The worker's memory store (msgpack bytes per customer) as the engine's table; `raw` is its dict."""

    def __init__(self) -> None:
        super().__init__(MemoryStore(0))
        self.raw: dict[str, bytes] = self.store._customers  # the store's own dict

MIB = 2**20


def size_stats(sizes: list[int]) -> dict[str, float | None]:
    return {
        "count": len(sizes),
        "mean": sum(sizes) / len(sizes) if sizes else None,
        "p50": percentile(sizes, 50),
        "p99": percentile(sizes, 99),
        "max": max(sizes, default=None),
        "total_mib": sum(sizes) / MIB,
    }


def read_changelog_sizes(topic: str) -> dict[str, Any]:
    """Bytes of the latest value per key (what compaction keeps) and of all records, of a changelog topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=BROKER.split(","), group_id=None, enable_auto_commit=False)
    latest: dict[bytes, int] = {}
    records_total = bytes_total = 0
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if consumer.position(tp) < end[tp]}
        while remaining:
            for records in consumer.poll(timeout_ms=1000, max_records=20_000).values():
                for record in records:
                    if record.key is None:
                        continue
                    records_total += 1
                    size = len(record.value or b"")
                    bytes_total += size + len(record.key)
                    if record.value is None:
                        latest.pop(record.key, None)
                    else:
                        latest[record.key] = size
            remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
    stats = size_stats(list(latest.values()))
    stats["key_bytes_mean"] = sum(len(k) for k in latest) / len(latest) if latest else None
    stats["changelog_records"] = records_total
    stats["changelog_mib_all_records"] = bytes_total / MIB
    return stats


# ---------------------------------------------------------------------------------------------- A: worker
def worker_memory(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("mem"))
    empty = BenchNames(names.prefix + "-empty")
    out: dict[str, Any] = {"prefix": names.prefix, "runs": []}
    try:
        create_topics(names, args.partitions)
        create_topics(empty, args.partitions)
        end = int(time.time() * 1e6)
        events = synthetic_events(args.customers, args.events_per_customer, end, seed=args.seed)
        log(f"A: producing {len(events):,} events for {args.customers:,} customers")
        total = produce_bulk(names, (render_synthetic(e) for e in events))
        del events
        out["events"] = total
        for rep in range(args.repeat):
            run = f"r{rep}"
            idle = Worker(empty, run, WORK_DIR / names.prefix / f"idle-{run}" / "data").start()
            try:
                idle.wait_ready()
                time.sleep(args.settle)
                idle_rss = idle.rss_bytes()
            finally:
                idle.stop()
            log(f"A: run {rep + 1}/{args.repeat}: idle worker RSS {idle_rss / MIB:.0f} MiB; ingesting")
            worker = Worker(names, run, WORK_DIR / names.prefix / run / "data").start()
            try:
                worker.wait_ready()
                progress = worker.wait_events(total, timeout=args.timeout)
                time.sleep(args.settle)
                rss = worker.rss_bytes()
                with open(f"/proc/{worker.pid}/status") as status:
                    hwm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
            finally:
                worker.stop()
                cleanup_redis(names.redis_prefix(run))
            entry = {
                "idle_rss_mib": idle_rss / MIB,
                "rss_mib": rss / MIB,
                "peak_rss_mib": hwm / MIB,
                "rss_delta_bytes_per_customer": (rss - idle_rss) / args.customers,
                "ingest_rate": progress.rate,
            }
            log(
                f"A: run {rep + 1}: RSS {rss / MIB:.0f} MiB, "
                f"{entry['rss_delta_bytes_per_customer']:.0f} B/customer, {fmt(progress.rate)} events/s"
            )
            out["runs"].append(entry)
            if rep == 0:
                out["changelog"] = read_changelog_sizes(f"{names.app_id(run)}-customers-changelog")
    finally:
        if not args.keep:
            cleanup(names)
            cleanup(empty)
    return out


# ---------------------------------------------------------------------------------------------- B: in-process
def deep_size(state: Any) -> int:
    """Python bytes of one CustomerState: the struct, its lists/dicts and the objects they hold."""
    seen: set[int] = set()

    def size(obj: Any) -> int:
        if (
            id(obj) in seen
            or obj is None
            or isinstance(obj, bool)
            or (isinstance(obj, int) and -5 <= obj <= 256)
        ):
            return 0
        seen.add(id(obj))
        total = sys.getsizeof(obj)
        if isinstance(obj, dict):
            total += sum(size(k) + size(v) for k, v in obj.items())
        elif isinstance(obj, list | tuple):
            total += sum(size(v) for v in obj)
        return total

    total = sys.getsizeof(state)
    for field in state.__struct_fields__:
        total += size(getattr(state, field))
    return total


def engine_memory(customers: int, per_customer: int, seed: int) -> dict[str, Any]:

    from segmenter.engine import Effects, Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules

    end = int(time.time() * 1e6) // MICROS_PER_DAY * MICROS_PER_DAY
    log(f"B: generating {customers * per_customer:,} events for {customers:,} customers")
    events = synthetic_events(customers, per_customer, end, seed=seed)
    gc.collect()
    rss0 = proc_rss_bytes()
    customers_table = EncodedCustomers()  # encoded customers, as the worker's memory store keeps them
    table = customers_table.raw
    engine = Engine(default_rules(), customers_table, {})
    effects = Effects()
    kinds = {"purchases": Kind.PURCHASES, "interactions": Kind.INTERACTIONS}
    log("B: feeding the engine")
    t0 = time.perf_counter()
    for offset, event in enumerate(events):
        role, key, value = render_synthetic(event)
        partition = event[1] % 4
        engine.handle_input(InputMessage(kinds[role], role, partition, offset, key, value, []), effects)
        effects.clear()
    elapsed = time.perf_counter() - t0
    gc.collect()
    rss1 = proc_rss_bytes()
    sizes = [len(raw) for raw in table.values()]
    sample = [decode_customer(raw) for raw in list(table.values())[:: max(1, len(table) // 2000)]]
    result = {
        "customers": len(table),
        "events": len(events),
        "seconds": elapsed,
        "rate": len(events) / elapsed,
        "rss_delta_mib": (rss1 - rss0) / MIB,
        "rss_delta_bytes_per_customer": (rss1 - rss0) / len(table),
        "python_bytes_per_customer_estimate": sum(deep_size(s) for s in sample) / len(sample),
        "msgpack": size_stats(sizes),
        "timer_entries": sum(len(engine.timers_for(p)) for p in range(4)),
    }
    del events, table, customers_table, engine
    gc.collect()
    return result


# ---------------------------------------------------------------------------------------------- C: realistic
def realistic_memory(customers: int, seed: int) -> dict[str, Any]:

    from segmenter.engine import Effects, Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules
    from segmenter.simulation import SimConfig, Simulation

    start = date.today() - timedelta(days=365)
    messages = list(Simulation(SimConfig(customers=customers, seed=seed, start=start, days=365)).historic())
    kinds = {"purchases": Kind.PURCHASES, "interactions": Kind.INTERACTIONS}
    customers_table = EncodedCustomers()  # encoded customers, as the worker's memory store keeps them
    table = customers_table.raw
    gc.collect()
    tracemalloc.start()
    engine = Engine(default_rules(), customers_table, {})
    effects = Effects()
    for offset, message in enumerate(messages):
        partition = hash(message.key) % 4
        engine.handle_input(
            InputMessage(
                kinds[message.topic], message.topic, partition, offset, message.key, message.value, []
            ),
            effects,
        )
        effects.clear()
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    sizes = [len(raw) for raw in table.values()]
    return {
        "customers": len(table),
        "events": len(messages),
        "events_per_customer": len(messages) / max(1, len(table)),
        "msgpack": size_stats(sizes),
        "python_heap_bytes_per_customer": heap / max(1, len(table)),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--customers", type=int, default=100_000, help="Customers ingested by the worker (A)."
    )
    parser.add_argument("--events-per-customer", type=int, default=2)
    parser.add_argument(
        "--inprocess-customers",
        type=int,
        default=1_000_000,
        help="Customers fed to the engine in-process (B); 0 skips.",
    )
    parser.add_argument(
        "--sim-customers",
        type=int,
        default=5_000,
        help="Customers of the realistic one-year history (C); 0 skips.",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="Seconds to wait before reading RSS.")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "memory", "params": vars(args), "machine": machine_info()}
    if args.customers:
        result["worker"] = worker_memory(args)
        runs = result["worker"]["runs"]
        result["worker"]["summary"] = {
            key: median(r[key] for r in runs)
            for key in (
                "idle_rss_mib",
                "rss_mib",
                "peak_rss_mib",
                "rss_delta_bytes_per_customer",
                "ingest_rate",
            )
        }
        rate = result["worker"]["summary"]["ingest_rate"]
        if rate and args.inprocess_customers:
            result["worker_inprocess_n_projection_s"] = (
                args.inprocess_customers * args.events_per_customer / rate
            )
    if args.inprocess_customers:
        result["engine"] = engine_memory(args.inprocess_customers, args.events_per_customer, args.seed)
    if args.sim_customers:
        log(f"C: realistic one-year history, {args.sim_customers:,} customers")
        result["realistic"] = realistic_memory(args.sim_customers, args.seed)
    return result


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    lines = [
        "### Memory",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.memory --customers {p['customers']} --events-per-customer "
        f"{p['events_per_customer']} --inprocess-customers {p['inprocess_customers']} --sim-customers "
        f"{p['sim_customers']} --repeat {p['repeat']}`",
        "",
    ]
    rows = []
    worker = result.get("worker")
    if worker:
        s, runs, cl = worker["summary"], worker["runs"], worker["changelog"]
        n = p["customers"]
        rows += [
            [
                f"worker, {n:,} customers × {p['events_per_customer']} events",
                "idle RSS (empty topics)",
                fmt(s["idle_rss_mib"], 0, " MiB"),
                runs_cell(r["idle_rss_mib"] for r in runs),
            ],
            ["", "RSS after ingest", fmt(s["rss_mib"], 0, " MiB"), runs_cell(r["rss_mib"] for r in runs)],
            [
                "",
                "peak RSS (VmHWM)",
                fmt(s["peak_rss_mib"], 0, " MiB"),
                runs_cell(r["peak_rss_mib"] for r in runs),
            ],
            [
                "",
                "**RSS delta per customer**",
                fmt(s["rss_delta_bytes_per_customer"], 0, " B"),
                runs_cell(r["rss_delta_bytes_per_customer"] for r in runs),
            ],
            [
                "",
                "changelog CustomerState msgpack mean / p50 / p99",
                f"{fmt(cl['mean'], 0)} / {fmt(cl['p50'])} / {fmt(cl['p99'])} B",
                "run 1",
            ],
            [
                "",
                "changelog records written (all, not compacted)",
                f"{cl['changelog_records']:,} ({cl['changelog_mib_all_records']:.1f} MiB)",
                "run 1",
            ],
        ]
    engine = result.get("engine")
    if engine:
        m = engine["msgpack"]
        rows += [
            [
                f"engine in-process, {engine['customers']:,} customers × {p['events_per_customer']} events",
                "**RSS delta per customer**",
                fmt(engine["rss_delta_bytes_per_customer"], 0, " B"),
                f"total {engine['rss_delta_mib']:,.0f} MiB",
            ],
            [
                "",
                "Python objects per customer (deep getsizeof, sample)",
                fmt(engine["python_bytes_per_customer_estimate"], 0, " B"),
                "",
            ],
            [
                "",
                "CustomerState msgpack mean / p50 / p99",
                f"{fmt(m['mean'])} / {fmt(m['p50'])} / {fmt(m['p99'])} B",
                "",
            ],
            [
                "",
                "ingest rate (engine only)",
                fmt(engine["rate"], 0, " events/s"),
                f"{engine['seconds']:.0f} s",
            ],
        ]
    realistic = result.get("realistic")
    if realistic:
        m = realistic["msgpack"]
        rows += [
            [
                f"realistic 1-year history in-process, {realistic['customers']:,} customers "
                f"({realistic['events_per_customer']:.0f} events/customer)",
                "CustomerState msgpack mean / p50 / p99",
                f"{fmt(m['mean'])} / {fmt(m['p50'])} / {fmt(m['p99'])} B",
                "",
            ],
            [
                "",
                "Python heap per customer (tracemalloc)",
                fmt(realistic["python_heap_bytes_per_customer"], 0, " B"),
                "",
            ],
        ]
    lines.append(markdown_table(["setup", "measure", "median", "runs / note"], rows))
    if result.get("worker_inprocess_n_projection_s"):
        n = p["inprocess_customers"]
        lines += [
            "",
            f"{n:,} customers through the worker would take "
            f"~{result['worker_inprocess_n_projection_s'] / 60:.0f} min at its measured ingest rate "
            f"(> 10 min is out of budget), so {n:,} is measured with the engine in-process.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("memory", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
