"""Restart: time from worker start to serving, with N customers in the changelog, per store.

    python -m bench.restart [--customers 1000000 --repeat 3]

The changelog of one app id is filled with N customers first:

- `--load changelog` (default): the benchmark writes it directly, as the worker would have: states made by
  the engine in-process for 2,000 template customers (`--events-per-customer` synthetic events each),
  cloned to N customer ids (msgpack, with the `due` header), produced to `{app}-customers-changelog` on
  the partition Kafka's murmur2 gives the id (confluent-kafka, `murmur2_random`), and Redis' `projected`
  mark set to the changelog's end (what the worker's commits leave behind: nothing to re-project);
- `--load worker`: a memory-store worker ingests N synthetic new customers (slow at 1M: the new-customer
  ingest rate of bench/throughput.py).

Then, per repetition and side by side (same app id, so the same changelog):

- `empty`: a fresh worker on empty topics (the fixed cost of a start: imports, group join, assignment);
- `memory`: restart with `--store memory` (the restore replays the whole changelog);
- `rocksdb cold`: `--store rocksdb` with an empty data dir (replays the changelog into RocksDB);
- `rocksdb warm`: `--store rocksdb` on the data dir the cold start left (reads past its checkpoint only).

Right after spawning, one new event (a new customer) is produced; "to serving" is spawn -> that event
counted in `segmenter_events_total`. The restore's own time and record count come from the worker's log
(`assigned partitions [...]: N changelog records restored ... in S s`): customers restored per second.
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from typing import Any

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    collapsed_top,
    create_topics,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    produce_bulk,
    py_spy_record,
    redis_client,
    render_synthetic,
    run_benchmark,
    runs_cell,
    synthetic_events,
    unique_prefix,
)

MODES = ("empty", "memory", "rocksdb cold", "rocksdb warm")
RESTORED = re.compile(
    r"assigned partitions \[[\d, ]*\]: (\d+) changelog records restored, "
    r"(\d+) customers re-projected in ([\d.]+)s"
)
TEMPLATES = 2000


class Probe:
    """Produces one new-customer purchase per call (confluent-kafka, acks=all, flushed)."""

    def __init__(self) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": BROKER, "linger.ms": 0, "acks": "all"})
        self.n = 0

    def send(self, topic: str) -> None:
        self.n += 1
        customer = f"probe-{self.n}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = (
            f'{{"event_id":"{customer}","type":"purchase","customer_id":"{customer}","ts":"{stamp}",'
            f'"amount":"12.00"}}'
        )
        self.producer.produce(topic, value.encode(), key=customer.encode())
        self.producer.flush(30)

    def close(self) -> None:
        self.producer.flush(10)


def restore_stats(worker: Worker) -> dict[str, float]:
    """Changelog records restored, customers re-projected, and the restore's seconds, from the worker log."""
    records = reprojected = seconds = 0.0
    text = worker.log_path.read_text(errors="replace") if worker.log_path and worker.log_path.exists() else ""
    for match in RESTORED.finditer(text):
        records += int(match.group(1))
        reprojected += int(match.group(2))
        seconds += float(match.group(3))
    return {"restored_records": records, "reprojected": reprojected, "restore_s": seconds}


def timed_start(
    names: BenchNames,
    run: str,
    data_dir: Any,
    store: str,
    probe: Probe,
    timeout: float,
    profile: tuple[float, Any] | None = None,
) -> dict[str, Any]:
    worker = Worker(names, run, data_dir, store=store).start()
    spy = None
    try:
        if profile is not None:
            time.sleep(0.3)  # past the interpreter's start: py-spy needs the process image loaded
            spy = py_spy_record(worker.pid, profile[0], profile[1], idle=True)
        probe.send(names.purchases)
        ready_s = worker.wait_ready(timeout=timeout, poll=0.05)
        rss_ready = worker.rss_bytes()
        worker.wait_events(1, timeout=timeout, poll=0.05)
        serving_s = time.monotonic() - worker.started_at
        cpu_s = worker.cpu_seconds()
        if spy is not None:
            spy.wait(timeout=profile[0] + 30)
            spy = None
    finally:
        if spy is not None:
            spy.kill()
        stop_s = worker.stop()
    stats = restore_stats(worker)
    return {
        "ready_s": ready_s,
        "serving_s": serving_s,
        "cpu_s": cpu_s,
        "rss_ready_mib": rss_ready / 2**20,
        "stop_s": stop_s,
        **stats,
        "restore_rate": stats["restored_records"] / stats["restore_s"] if stats["restore_s"] else None,
    }


def load_changelog(
    names: BenchNames, run: str, customers: int, per_customer: int, partitions: int, seed: int
) -> int:
    """Write N customers' states to the app's customers changelog directly; returns records written."""
    import msgspec
    from confluent_kafka import Producer

    from segmenter.customer import CustomerState
    from segmenter.engine import Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules
    from state.redis_projection import projected_key
    from state.restore import DUE_HEADER, ChangelogTopics
    from streams.kafka_admin import create_topics as create
    from streams.worker import CHANGELOG_CONFIGS

    changelogs = ChangelogTopics.of(names.app_id(run))
    create(
        BROKER,
        dict.fromkeys(changelogs.all(), partitions),
        configs=dict.fromkeys(changelogs.all(), CHANGELOG_CONFIGS),
    )
    made: dict[str, CustomerState] = {}
    engine = Engine(default_rules(), made, {})
    messages = []
    for offset, event in enumerate(
        synthetic_events(TEMPLATES, per_customer, int(time.time() * 1e6), seed=seed)
    ):
        role, key, value = render_synthetic(event)
        kind = Kind.PURCHASES if role == "purchases" else Kind.INTERACTIONS
        messages.append(InputMessage(kind, role, 0, offset, key, value, []))
    made.update(engine.process(messages).customers)
    templates = list(made.values())
    decoder = msgspec.msgpack.Decoder(CustomerState)
    encoder = msgspec.msgpack.Encoder()
    raw_templates = [encoder.encode(t) for t in templates]
    producer = Producer(
        {
            "bootstrap.servers": BROKER,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
        }
    )
    metadata = producer.list_topics(changelogs.customers, timeout=10)
    assert len(metadata.topics[changelogs.customers].partitions) == partitions
    last: dict[int, int] = {}

    def delivered(err: Any, message: Any) -> None:
        if err is not None:
            raise RuntimeError(f"changelog load: {err}")
        last[message.partition()] = max(last.get(message.partition(), -1), message.offset())

    from kafka.partitioner.default import murmur2

    log(f"writing {customers:,} customer states to {changelogs.customers}")
    for i in range(customers):
        state = decoder.decode(raw_templates[i % len(raw_templates)])
        state.customer_id = f"c{i}"
        key = state.customer_id.encode()
        # the worker writes a state on its input partition: murmur2 of the key, as every producer does
        state.partition = (murmur2(key) & 0x7FFFFFFF) % partitions
        headers = None if state.next_due is None else [(DUE_HEADER, str(state.next_due).encode())]
        value = encoder.encode(state)
        while True:
            try:
                producer.produce(
                    changelogs.customers,
                    key=key,
                    value=value,
                    partition=state.partition,
                    headers=headers,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("changelog load: records not delivered")
    client = redis_client()
    try:  # what the worker's commits leave: Redis shows every state up to the changelog's end
        client.hset(
            projected_key(names.redis_prefix(run)),
            mapping={f"{names.app_id(run)}:{p}": offset + 1 for p, offset in last.items()},
        )
    finally:
        client.close()
    return customers


def load_by_worker(names: BenchNames, run: str, args: argparse.Namespace, data_dir: Any) -> dict[str, Any]:
    events = synthetic_events(
        args.customers, args.events_per_customer, int(time.time() * 1e6), seed=args.seed
    )
    total = produce_bulk(names, (render_synthetic(e) for e in events))
    del events
    log(f"ingesting {total:,} events ({args.customers:,} customers) with a memory-store worker")
    worker = Worker(names, run, data_dir).start()
    try:
        worker.wait_ready(timeout=args.timeout)
        progress = worker.wait_events(total, timeout=args.timeout)
    finally:
        stop_s = worker.stop()
    return {"ingest_rate": progress.rate, "ingest_stop_s": stop_s}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events-per-customer", type=int, default=2)
    parser.add_argument("--load", choices=["changelog", "worker"], default="changelog")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy (--idle) the first memory-store start for SECONDS from its spawn (0: none).",
    )
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("rs"))
    empty = BenchNames(names.prefix + "-empty")  # cleaned up with `names` (same prefix)
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
        started = time.monotonic()
        if args.load == "changelog":
            load_changelog(names, "a", args.customers, args.events_per_customer, args.partitions, args.seed)
        else:
            result.update(load_by_worker(names, "a", args, base / "loader"))
        result["load_s"] = time.monotonic() - started
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}")
            runs = result["runs"]
            runs["empty"].append(
                timed_start(empty, f"e{rep}", base / f"empty-{rep}", "memory", probe, args.timeout)
            )
            spy = None
            if args.profile and rep == 0:
                result["profile_raw"] = str(base / "profile-memory.raw")
                spy = (args.profile, base / "profile-memory.raw")
            runs["memory"].append(
                timed_start(names, "a", base / "memory", "memory", probe, args.timeout, profile=spy)
            )
            if spy is not None:
                result["profile"] = {
                    "on": "its start with the memory store (restore)",
                    **collapsed_top(spy[1], 25, main_thread_only=True),
                }
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
                    f"{mode}: serving {runs[mode][-1]['serving_s']:.1f}s "
                    f"(restore {runs[mode][-1]['restore_s']:.1f}s, "
                    f"{runs[mode][-1]['restored_records']:,.0f} rec)"
                    for mode in MODES
                )
            )
    finally:
        probe.close()
        if not args.keep:
            cleanup(names)
            for data_dir in base.glob("*"):  # the data dirs; the worker logs stay in var/bench/<prefix>/
                if data_dir.is_dir():
                    shutil.rmtree(data_dir, ignore_errors=True)
    keys = (
        "ready_s",
        "serving_s",
        "cpu_s",
        "rss_ready_mib",
        "stop_s",
        "restore_s",
        "restored_records",
        "restore_rate",
    )
    result["summary"] = {
        mode: {key: median(r[key] for r in result["runs"][mode]) for key in keys} for mode in MODES
    }
    empty_serving = [r["serving_s"] for r in result["runs"]["empty"]]
    result["summary"]["warm_minus_empty_s"] = median(
        w["serving_s"] - e for w, e in zip(result["runs"]["rocksdb warm"], empty_serving, strict=True)
    )
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
        f"Command: `python -m bench.restart --customers {p['customers']} --load {p.get('load', 'worker')} "
        f"--repeat {p['repeat']}" + (f" --profile {p['profile']:g}" if p.get("profile") else "") + "`",
        "",
    ]
    rows = []
    for mode in MODES:
        m = s[mode]
        rows.append(
            [
                mode,
                fmt(m["serving_s"], 1),
                runs_cell((r["serving_s"] for r in runs[mode]), 1),
                fmt(m["ready_s"], 1),
                fmt(m["restore_s"], 2),
                fmt(m["restored_records"]),
                fmt(m["restore_rate"]),
                fmt(m["cpu_s"], 1),
                fmt(m["rss_ready_mib"], 0),
            ]
        )
    lines.append(
        markdown_table(
            [
                "start",
                "spawn → first event processed s",
                "runs",
                "spawn → /readyz s",
                "restore s (log)",
                "records restored",
                "restored records/s",
                "worker CPU s",
                "RSS at ready MiB",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"RocksDB warm minus empty (the part that grows with the table), median of per-run differences: "
        f"{fmt(s.get('warm_minus_empty_s'), 1)} s. Loading the changelog ({p.get('load', 'worker')}) took "
        f"{fmt(result.get('load_s'), 0)} s"
        + (
            f"; worker ingest rate {fmt(result['ingest_rate'])} events/s."
            if result.get("ingest_rate")
            else "."
        ),
    ]
    profile = result.get("profile")
    if profile and profile.get("self"):
        pct = "{:.1f}".format
        lines += [
            "",
            f"Profile of the first memory-store start: py-spy `--idle`, {profile['samples']:,} samples "
            "of the main thread from spawn; % of its wall time.",
            "",
            markdown_table(
                ["#", "function (self time)", "self %"],
                [[k + 1, f"`{n}`", pct(v * 100)] for k, (n, v) in enumerate(profile["self"][:10])],
            ),
            "",
            markdown_table(
                ["project function (inclusive time)", "total %"],
                [[f"`{n}`", pct(v * 100)] for n, v in profile["project_total"][:12]],
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("restart", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
