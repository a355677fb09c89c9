"""Latency: produce -> Redis record written, and produce -> tier-change event, at fixed offered rates.

    python -m bench.latency [--rates 5000,10000,20000 --duration 20 --repeat 3]

Per repetition a fresh worker (`--clock event`, fresh topics, app id and Redis prefix). A pool of customers is
created first (one event each, then drained), then for each offered rate the load generator sends events
with live timestamps (`ts` = now) at that rate for `--duration` seconds: 25 % purchases, 75 % interactions,
on pool customers; about `--samples-per-s` of them are instead the first event (a purchase) of a brand-new
customer, which always writes a Redis record and always emits a tier change. For those samples:

- produce -> Redis: Redis keyspace notifications (`notify-keyspace-events` gets `Kh` for the run and is
  restored after it) on the sampled customers' record keys;
- produce -> tier change: a consumer on the tier-changes topic, first event with the sample's key.

Both latencies are measured from just before the producer's `produce()` (confluent-kafka, acks=all, linger
1 ms) to the moment the listener sees it, on the same wall clock; they include the worker's batch window
(`--batch-window`, 0.1 s by default: under a steady load a batch is what arrived in it) and the commit of
its transaction, since Redis is written after the commit. The first `--warmup` seconds of each rate are not
counted. A rate is marked saturated when the worker ended the window more than one second of input behind
(then the latency grows with the window and is not a property of the rate).
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from typing import Any

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    cleanup_redis,
    collapsed_top,
    create_topics,
    fmt,
    log,
    loop_breakdown,
    machine_info,
    machine_line,
    markdown_table,
    median,
    percentile,
    produce_bulk,
    py_spy_record,
    redis_client,
    rfc3339,
    run_benchmark,
    runs_cell,
    unique_prefix,
)


class RedisListener(threading.Thread):
    """First keyspace notification time (time.time()) per sampled customer id."""

    def __init__(self, redis_prefix: str, sample_tag: str) -> None:
        super().__init__(daemon=True)
        client = redis_client()
        db = client.connection_pool.connection_kwargs.get("db", 0)
        self.pattern = f"__keyspace@{db}__:{redis_prefix}:customer:{sample_tag}*"
        self.cut = len(f"__keyspace@{db}__:{redis_prefix}:customer:")
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(self.pattern)
        self.seen: dict[str, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            message = self.pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            now = time.time()
            customer = message["channel"][self.cut :].decode()
            self.seen.setdefault(customer, now)
        self.pubsub.close()


class TierListener(threading.Thread):
    """First tier-change arrival time (time.time()) per sampled customer id."""

    def __init__(self, topic: str, sample_tag: str) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=BROKER.split(","),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolve "end" now, before anything is produced
        self.tag = sample_tag.encode()
        self.seen: dict[str, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            batches = self.consumer.poll(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                for record in records:
                    if record.key and record.key.startswith(self.tag):
                        self.seen.setdefault(record.key.decode(), now)
        self.consumer.close()


def set_keyspace_notifications() -> str:
    client = redis_client()
    original = client.config_get("notify-keyspace-events").get("notify-keyspace-events", "")
    flags = set(original)
    if "A" not in flags:
        flags.add("h")
    flags.add("K")
    client.config_set("notify-keyspace-events", "".join(sorted(flags)))
    client.close()
    return original


def restore_keyspace_notifications(original: str) -> None:
    client = redis_client()
    client.config_set("notify-keyspace-events", original)
    client.close()


def produce_at_rate(
    names: BenchNames,
    rate: float,
    seconds: float,
    pool: int,
    sample_every: int,
    sample_tag: str,
    rng: random.Random,
) -> tuple[int, dict[str, float], float]:
    """Send `rate` events/s for `seconds`; return (sent, {sample id: send time}, achieved rate).

    confluent-kafka (acks=all, linger 1 ms): a Python producer must keep up with 20k events/s on 2 cores."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": BROKER,
            "acks": "all",
            "linger.ms": 1,
            "partitioner": "murmur2_random",  # like the Java client: a customer's events share a partition
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    sent_at: dict[str, float] = {}
    failed = []

    def delivered(err: object, message: object) -> None:
        if err is not None:
            failed.append(err)

    i = 0
    t0 = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while i < due:
            now = time.time()
            stamp = rfc3339(int(now * 1e6))
            if i % sample_every == 0:
                customer = f"{sample_tag}{i}"
                topic = names.purchases
                value = (
                    f'{{"event_id":"{customer}-0","type":"purchase","customer_id":"{customer}",'
                    f'"ts":"{stamp}","amount":"25.00"}}'
                )
                sent_at[customer] = time.time()
            elif rng.random() < 0.25:
                customer = f"P{rng.randrange(pool)}"
                topic = names.purchases
                value = (
                    f'{{"event_id":"{sample_tag}e{i}","type":"purchase","customer_id":"{customer}",'
                    f'"ts":"{stamp}","amount":"{rng.randrange(1, 300)}.{rng.randrange(100):02d}"}}'
                )
            else:
                customer = f"P{rng.randrange(pool)}"
                topic = names.interactions
                value = (
                    f'{{"event_id":"{sample_tag}e{i}","type":"page_view","customer_id":"{customer}",'
                    f'"ts":"{stamp}"}}'
                )
            while True:
                try:
                    producer.produce(topic, value.encode(), key=customer.encode(), on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
            i += 1
        producer.poll(0)
        time.sleep(0.001)
    achieved = i / (time.perf_counter() - t0)
    if producer.flush(60) or failed:
        raise RuntimeError(f"load generator: {len(failed)} failed deliveries")
    return i, sent_at, achieved


def measure_run(names: BenchNames, run: str, args: argparse.Namespace) -> dict[str, Any]:
    worker = Worker(names, run, WORK_DIR / names.prefix / run / "data").start()
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"rates": []}
    try:
        out["ready_s"] = worker.wait_ready()
        # The customer pool: one purchase each, produced in bulk and drained before any measurement.
        now_us = int(time.time() * 1e6)
        pool_messages = (
            (
                "purchases",
                f"P{i}".encode(),
                (
                    f'{{"event_id":"{run}-pool-{i}","type":"purchase","customer_id":"P{i}",'
                    f'"ts":"{rfc3339(now_us)}","amount":"10.00"}}'
                ).encode(),
            )
            for i in range(args.pool)
        )
        produced = produce_bulk(names, pool_messages)
        worker.wait_events(produced, timeout=args.timeout)
        for rate in args.rates:
            if out["rates"] and out["rates"][-1]["saturated"] and not args.all_rates:
                # a lower rate already saturated the worker: a higher one only measures a longer queue
                out["rates"].append({"rate": rate, "skipped": True, "saturated": True})
                continue
            tag = f"S{run}r{rate}-"
            redis_listener = RedisListener(names.redis_prefix(run), tag)
            tier_listener = TierListener(names.tier_changes, tag)
            redis_listener.start()
            tier_listener.start()
            before = worker.events_total() or 0
            sample_every = max(1, round(rate / args.samples_per_s))
            log(f"  {run}: offering {rate:g} events/s for {args.duration:g}s")
            spy = profile_out = None
            if args.profile and run == "r0" and rate == (args.profile_rate or args.rates[0]):
                profile_out = WORK_DIR / names.prefix / "profile.raw"
                profile_out.parent.mkdir(parents=True, exist_ok=True)
                spy = py_spy_record(worker.pid, min(args.profile, args.duration), profile_out, idle=True)
            t_start = time.time()
            sent, sent_at, achieved = produce_at_rate(
                names, rate, args.duration, args.pool, sample_every, tag, rng
            )
            t_end = time.time()
            after = worker.events_total() or 0
            if spy is not None and profile_out is not None:
                spy.wait(timeout=args.profile + 30)
                out["profile"] = {
                    "rate": rate,
                    "loop": loop_breakdown(profile_out),
                    **collapsed_top(profile_out, 25, main_thread_only=True),
                }
            produced += sent
            backlog = produced - after
            try:  # bounded: a saturated worker may need minutes to drain; unseen samples count as missing
                worker.wait_events(produced, timeout=args.timeout if backlog <= rate else args.drain_timeout)
            except TimeoutError:
                log(f"  {run} @ {rate:g}/s: backlog not drained within {args.drain_timeout:g}s")
            time.sleep(1.0)
            for listener in (redis_listener, tier_listener):
                listener.stop_event.set()
            redis_listener.join(5)
            tier_listener.join(5)
            counted = {c: t for c, t in sent_at.items() if t >= t_start + args.warmup}
            redis_ms = [
                (redis_listener.seen[c] - t) * 1e3 for c, t in counted.items() if c in redis_listener.seen
            ]
            tier_ms = [
                (tier_listener.seen[c] - t) * 1e3 for c, t in counted.items() if c in tier_listener.seen
            ]
            entry = {
                "rate": rate,
                "achieved_offered": achieved,
                "processed_per_s": (after - before) / (t_end - t_start),
                "backlog_at_end": backlog,
                "saturated": backlog > rate,
                "samples": len(counted),
                "redis_missing": len(counted) - len(redis_ms),
                "tier_missing": len(counted) - len(tier_ms),
                "redis_p50_ms": percentile(redis_ms, 50),
                "redis_p99_ms": percentile(redis_ms, 99),
                "redis_max_ms": max(redis_ms, default=None),
                "tier_p50_ms": percentile(tier_ms, 50),
                "tier_p99_ms": percentile(tier_ms, 99),
                "tier_max_ms": max(tier_ms, default=None),
            }
            log(
                f"  {run} @ {rate:g}/s: redis p50 {fmt(entry['redis_p50_ms'], 1)} ms p99 "
                f"{fmt(entry['redis_p99_ms'], 1)} ms; tier p50 {fmt(entry['tier_p50_ms'], 1)} ms p99 "
                f"{fmt(entry['tier_p99_ms'], 1)} ms; backlog {backlog:,.0f}"
            )
            out["rates"].append(entry)
    finally:
        worker.stop()
        cleanup_redis(names.redis_prefix(run))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[5000, 10000, 20000],
        help="Comma-separated offered rates in events/s (default 5000,10000,20000).",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per rate (default 20).")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds not counted at each rate's start.")
    parser.add_argument("--pool", type=int, default=20_000, help="Existing customers the load is spread on.")
    parser.add_argument("--samples-per-s", type=float, default=100.0, help="New-customer samples per second.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy the worker (--idle) for SECONDS at --profile-rate in the first run (0: no profile).",
    )
    parser.add_argument(
        "--profile-rate", type=float, default=None, help="The offered rate to profile (default: the first)."
    )
    parser.add_argument(
        "--all-rates",
        action="store_true",
        help="Measure every rate even after a lower one saturated the worker (default: skip them).",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="Seconds to wait for a saturated worker's backlog before the next rate (default 30).",
    )
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("lat"))
    result: dict[str, Any] = {
        "benchmark": "latency",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
    }
    original = set_keyspace_notifications()
    try:
        result["runs"] = []
        for rep in range(args.repeat):
            # Fresh topics per repetition: a fresh worker reads its inputs from the beginning.
            run_names = BenchNames(f"{names.prefix}-{rep}")
            create_topics(run_names, args.partitions)
            log(f"repetition {rep + 1}/{args.repeat}")
            try:
                result["runs"].append(measure_run(run_names, f"r{rep}", args))
            finally:
                if not args.keep:
                    cleanup(run_names)
    finally:
        restore_keyspace_notifications(original)
    summary = []
    for index, rate in enumerate(args.rates):
        entries = [r["rates"][index] for r in result["runs"]]
        summary.append(
            {
                "rate": rate,
                **{
                    key: median(e.get(key) for e in entries)
                    for key in (
                        "achieved_offered",
                        "processed_per_s",
                        "backlog_at_end",
                        "redis_p50_ms",
                        "redis_p99_ms",
                        "tier_p50_ms",
                        "tier_p99_ms",
                        "samples",
                    )
                },
                "saturated_runs": sum(1 for e in entries if e["saturated"]),
                "missing": sum(e.get("redis_missing", 0) + e.get("tier_missing", 0) for e in entries),
                "skipped_runs": sum(1 for e in entries if e.get("skipped")),
            }
        )
    result["summary"] = summary
    return result


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    runs = result["runs"]
    lines = [
        f"### Latency (live timestamps, {p['duration']:g} s per rate, first {p['warmup']:g} s not counted, "
        f"~{p['samples_per_s']:g} new-customer samples/s, pool {p['pool']:,} customers, {p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.latency --rates {','.join(f'{r:g}' for r in p['rates'])} "
        f"--duration {p['duration']:g} --warmup {p['warmup']:g} --pool {p['pool']} --repeat {p['repeat']}"
        + (f" --profile {p['profile']:g}" if p.get("profile") else "")
        + "`",
        "",
    ]
    rows = []
    for index, s in enumerate(result["summary"]):
        per_run = [r["rates"][index] for r in runs]
        rows.append(
            [
                fmt(s["rate"]),
                fmt(s["processed_per_s"]),
                fmt(s["redis_p50_ms"], 1),
                fmt(s["redis_p99_ms"], 1),
                fmt(s["tier_p50_ms"], 1),
                fmt(s["tier_p99_ms"], 1),
                runs_cell((e.get("redis_p50_ms") for e in per_run), 0),
                runs_cell((e.get("redis_p99_ms") for e in per_run), 0),
                f"{s['saturated_runs']}/{len(runs)}"
                + (" **saturated**" if s["saturated_runs"] else "")
                + (
                    f" ({s['skipped_runs']} not offered: a lower rate saturated)"
                    if s.get("skipped_runs")
                    else ""
                ),
            ]
        )
    lines.append(
        markdown_table(
            [
                "offered events/s",
                "processed events/s",
                "produce→Redis p50 ms",
                "p99 ms",
                "produce→tier-change p50 ms",
                "p99 ms",
                "Redis p50 per run",
                "Redis p99 per run",
                "runs saturated",
            ],
            rows,
        )
    )
    profile = runs[0].get("profile") if runs else None
    if profile and profile.get("self"):
        from bench.throughput import render_profile

        lines += ["", f"Profile of the first run's worker at {fmt(profile['rate'])} events/s offered:", ""]
        lines.append(render_profile(profile).replace("processed the backlog", "took the live load"))
    lines += [
        "",
        "Medians over the runs. A run is saturated when the worker ended the window more than one second of "
        "input behind; its latencies grow with the window length.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("latency", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
