"""Restart: time from worker start to /readyz 200 and to processing, with N customers in the changelog.

    python -m bench.restart [--customers 100000 --repeat 3]

One worker (memory store) ingests N synthetic customers (`--events-per-customer` each) and stops; its
changelog then holds N customers. Then, per repetition and side by side (same app id, so the same changelog
and committed offsets):

- `empty`: a fresh worker on empty topics (the fixed cost of starting a worker: imports, group join);
- `memory`: restart with `--store memory` (recovery replays the whole changelog);
- `rocksdb cold`: restart with `--store rocksdb` and an empty data dir (replays the changelog into RocksDB);
- `rocksdb warm`: restart with `--store rocksdb` on the data dir the cold start left (nothing to replay).

Right after spawning, one new event (a new customer) is produced; "to processing" is spawn -> that event
counted in `segmenter_events_total` (includes anything the worker does on its first event, e.g. rebuilding
timer indexes from the table).
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    create_topics,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    produce_bulk,
    render_synthetic,
    run_benchmark,
    runs_cell,
    synthetic_events,
    unique_prefix,
)

MODES = ("empty", "memory", "rocksdb cold", "rocksdb warm")


class Probe:
    """Produces one new-customer purchase per call (kafka-python, acks=all, flushed)."""

    def __init__(self) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=BROKER.split(","), acks="all", linger_ms=0)
        self.n = 0

    def send(self, topic: str) -> None:
        self.n += 1
        customer = f"probe-{self.n}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = (
            f'{{"event_id":"{customer}","type":"purchase","customer_id":"{customer}","ts":"{stamp}",'
            f'"amount":"12.00"}}'
        )
        self.producer.send(topic, value.encode(), key=customer.encode())
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)


def timed_start(
    names: BenchNames, run: str, data_dir: Any, store: str, probe: Probe, timeout: float
) -> dict[str, float]:
    worker = Worker(names, run, data_dir, store=store).start()
    try:
        probe.send(names.purchases)
        ready_s = worker.wait_ready(timeout=timeout, poll=0.05)
        rss_ready = worker.rss_bytes()
        worker.wait_events(1, timeout=timeout, poll=0.05)
        processing_s = time.monotonic() - worker.started_at
        cpu_s = worker.cpu_seconds()
    finally:
        stop_s = worker.stop()
    return {
        "ready_s": ready_s,
        "processing_s": processing_s,
        "cpu_s": cpu_s,
        "rss_ready_mib": rss_ready / 2**20,
        "stop_s": stop_s,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events-per-customer", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("rs"))
    empty = BenchNames(names.prefix + "-empty")
    base = WORK_DIR / names.prefix
    result: dict[str, Any] = {
        "benchmark": "restart",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
        "runs": {mode: [] for mode in MODES},
    }
    probe = Probe()
    try:
        create_topics(names, args.partitions)
        create_topics(empty, args.partitions)
        events = synthetic_events(
            args.customers, args.events_per_customer, int(time.time() * 1e6), seed=args.seed
        )
        total = produce_bulk(names, (render_synthetic(e) for e in events))
        del events
        log(f"ingesting {total:,} events ({args.customers:,} customers) with a memory-store worker")
        worker = Worker(names, "a", base / "memory").start()
        try:
            worker.wait_ready(timeout=args.timeout)
            progress = worker.wait_events(total, timeout=args.timeout)
            time.sleep(2.0)  # let the last offsets and changelog writes be committed
        finally:
            result["ingest_stop_s"] = worker.stop()
        result["ingest_rate"] = progress.rate
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}")
            runs = result["runs"]
            runs["empty"].append(
                timed_start(empty, f"e{rep}", base / f"empty-{rep}", "memory", probe, args.timeout)
            )
            runs["memory"].append(timed_start(names, "a", base / "memory", "memory", probe, args.timeout))
            shutil.rmtree(base / "rocksdb", ignore_errors=True)
            runs["rocksdb cold"].append(
                timed_start(names, "a", base / "rocksdb", "rocksdb", probe, args.timeout)
            )
            runs["rocksdb warm"].append(
                timed_start(names, "a", base / "rocksdb", "rocksdb", probe, args.timeout)
            )
            log(
                "  "
                + "; ".join(
                    f"{mode}: ready {runs[mode][-1]['ready_s']:.1f}s, "
                    f"processing {runs[mode][-1]['processing_s']:.1f}s"
                    for mode in MODES
                )
            )
    finally:
        probe.close()
        if not args.keep:
            cleanup(names)
            cleanup(empty)
            shutil.rmtree(base, ignore_errors=True)
    result["summary"] = {
        mode: {
            key: median(r[key] for r in result["runs"][mode])
            for key in ("ready_s", "processing_s", "cpu_s", "rss_ready_mib", "stop_s")
        }
        for mode in MODES
    }
    return result


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    s, runs = result["summary"], result["runs"]
    lines = [
        f"### Restart ({p['customers']:,} customers in the changelog, {p['partitions']} partitions, "
        f"{p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.restart --customers {p['customers']} --repeat {p['repeat']}`",
        "",
    ]
    rows = []
    for mode in MODES:
        m = s[mode]
        rows.append(
            [
                mode,
                fmt(m["ready_s"], 1),
                runs_cell((r["ready_s"] for r in runs[mode]), 1),
                fmt(m["processing_s"], 1),
                runs_cell((r["processing_s"] for r in runs[mode]), 1),
                fmt(m["cpu_s"], 1),
                fmt(m["rss_ready_mib"], 0),
            ]
        )
    lines.append(
        markdown_table(
            [
                "start",
                "spawn → /readyz 200 s",
                "runs",
                "spawn → first event processed s",
                "runs",
                "worker CPU s",
                "RSS at ready MiB",
            ],
            rows,
        )
    )
    mem, warm = s["memory"]["ready_s"], s["rocksdb warm"]["ready_s"]
    if mem and warm:
        lines += [
            "",
            f"memory / rocksdb-warm time to ready: {mem / warm:.2f}x (medians). "
            f"Ingest rate of the loading worker: {fmt(result.get('ingest_rate'))} events/s.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("restart", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
