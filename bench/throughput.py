"""Throughput: the segmenter worker end to end against raw Kafka consumers, on the same topics, in one run.

    python -m bench.throughput [--events 200000 --customers 20000 --partitions 4 --repeat 3 --profile 30]

One freshly simulated topic set (`segmenter simulate`), then per repetition, side by side:

- raw consumers reading and `orjson`-decoding every input event: aiokafka (the client Faust uses),
  kafka-python, and confluent-kafka when installed; the fastest is "the limit";
- the pure engine in-process (`Engine.handle_input` on the same messages, dict tables, no I/O);
- the worker: `segmenter worker --clock event` with a fresh app id and Redis prefix, timed from its first to
  its last processed event by polling `segmenter_events_total` on /metrics (start-up excluded, also
  reported), with its CPU time per event from /proc.

Medians over the repetitions; ratios are taken per repetition (same moment, same noise), then the median.
`--profile S` adds one more worker run with py-spy attached for S seconds while it processes and reports
the top functions by self and total time (needs `pip install py-spy`).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    cleanup_redis,
    collapsed_top,
    create_topics,
    end_offsets,
    export_code,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    py_spy_available,
    py_spy_record,
    run_benchmark,
    runs_cell,
    simulate,
    total_messages,
    unique_prefix,
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------- raw consumers
def raw_aiokafka(topics: list[str], total: int) -> dict[str, float]:
    async def consume() -> dict[str, float]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=BROKER.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t, p in sorted(end_offsets(topics))]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            n, cpu0, t0 = 0, _cpu(), time.perf_counter()
            loads = orjson.loads
            while n < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batches.values():
                    for record in records:
                        loads(record.value)
                    n += len(records)
            elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
        finally:
            await consumer.stop()
        return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}

    return asyncio.run(consume())


def raw_kafka_python(topics: list[str], total: int) -> dict[str, float]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=BROKER.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        n, cpu0, t0 = 0, _cpu(), time.perf_counter()
        loads = orjson.loads
        while n < total:
            for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                for record in records:
                    loads(record.value)
                n += len(records)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        consumer.close()
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


def confluent_available() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def raw_confluent(topics: list[str], total: int, group: str) -> dict[str, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        tps = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            for p in sorted(metadata.topics[t].partitions)
        ]
        consumer.assign(tps)
        n, cpu0, t0 = 0, _cpu(), time.perf_counter()
        loads = orjson.loads
        while n < total:
            for record in consumer.consume(num_messages=10_000, timeout=1.0):
                if record.error() is None:
                    loads(record.value())
                    n += 1
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        consumer.close()
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


# ---------------------------------------------------------------------------------------------- engine
def load_messages(topics: list[str], total: int) -> list[tuple[str, int, int, bytes, bytes]]:
    """Every input message (topic, partition, offset, key, value), in the order a consumer fetches them."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=BROKER.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    out: list[tuple[str, int, int, bytes, bytes]] = []
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while len(out) < total:
            for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                out.extend((r.topic, r.partition, r.offset, r.key, r.value) for r in records)
    finally:
        consumer.close()
    return out


def engine_in_process(
    messages: list[tuple[str, int, int, bytes, bytes]], purchases_topic: str
) -> dict[str, float]:
    """The pure engine on the same messages: decode, validate, apply, evaluate; dict tables, no I/O."""
    from segmenter.engine import Effects, Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules

    engine = Engine(default_rules(), {}, {})
    effects = Effects()
    handle = engine.handle_input
    cpu0, t0 = _cpu(), time.perf_counter()
    for topic, partition, offset, key, value in messages:
        kind = Kind.PURCHASES if topic == purchases_topic else Kind.INTERACTIONS
        handle(InputMessage(kind, topic, partition, offset, key, value, []), effects)
        effects.clear()
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    n = len(messages)
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


# ---------------------------------------------------------------------------------------------- worker
def run_worker(
    names: BenchNames,
    run: str,
    total: int,
    timeout: float,
    profile_seconds: float = 0.0,
    profile_out: Path | None = None,
    code_dir: Path | None = None,
) -> dict[str, Any]:
    worker = Worker(names, run, WORK_DIR / names.prefix / run / "data", code_dir=code_dir).start()
    spy = None
    try:
        ready_s = worker.wait_ready()
        if profile_seconds and profile_out is not None:
            spy = py_spy_record(worker.pid, profile_seconds, profile_out)
        progress = worker.wait_events(total, timeout=timeout)
        done_s = time.monotonic() - worker.started_at
        rss = worker.rss_bytes()
        cpu_total = worker.cpu_seconds()
        text = worker.metrics()
    finally:
        if spy is not None:
            try:
                spy.wait(timeout=profile_seconds + 30)
            except Exception:  # noqa: BLE001
                spy.kill()
        worker.stop()
    from bench.common import metric_sum

    return {
        "rate": progress.rate,
        "cpu_us_per_event": progress.cpu_per_event_us,
        "cpu_cores_busy": progress.cpu_utilisation,
        "ready_s": ready_s,
        "start_to_all_consumed_s": done_s,
        "first_to_last_s": (progress.last_time or 0) - (progress.first_time or 0),
        "rate_from_start": total / done_s,
        "cpu_total_s": cpu_total,
        "rss_mib": rss / 2**20,
        "events": progress.last_count,
        "transitions": metric_sum(text, "segmenter_tier_transitions_total"),
    }


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="Events to simulate (default 200000).")
    parser.add_argument("--customers", type=int, default=20_000, help="Simulated customers (default 20000).")
    parser.add_argument("--days", type=int, default=365, help="Simulated history in days (default 365).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="Max seconds for one worker run.")
    parser.add_argument(
        "--profile",
        type=float,
        default=30.0 if py_spy_available() else 0.0,
        metavar="SECONDS",
        help="Extra worker run (not timed) with py-spy attached for SECONDS; default 30 when py-spy is "
        "installed, 0 skips.",
    )
    parser.add_argument("--no-confluent", action="store_true", help="Skip confluent-kafka even if installed.")
    parser.add_argument(
        "--compare",
        metavar="GIT_REF",
        help="Also run the worker of this commit (segmenter/, streams/, state/ exported with git archive) in "
        "every repetition, alternating the order, and report current/REF measured side by side.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep topics and Redis keys (debugging).")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("tp"))
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
    }
    try:
        create_topics(names, args.partitions)
        log(f"simulating {args.events} events ({args.customers} customers) into {names.prefix}.*")
        result["simulate_output"] = simulate(names, args.customers, args.seed, args.days, args.events)
        topics = names.inputs()
        total = total_messages(topics)
        result["events"] = total
        use_confluent = confluent_available() and not args.no_confluent
        messages = load_messages(topics, total)
        runs: dict[str, list[dict[str, Any]]] = {
            "aiokafka": [],
            "kafka-python": [],
            "engine": [],
            "worker": [],
        }
        if use_confluent:
            runs["confluent-kafka"] = []
        compare_key = compare_dir = None
        if args.compare:
            compare_dir, sha = export_code(args.compare)
            compare_key = f"worker@{sha}"
            runs[compare_key] = []
            result["compare"] = {"ref": args.compare, "sha": sha, "key": compare_key}
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}: raw consumers")
            runs["aiokafka"].append(raw_aiokafka(topics, total))
            runs["kafka-python"].append(raw_kafka_python(topics, total))
            if use_confluent:
                runs["confluent-kafka"].append(raw_confluent(topics, total, f"{names.prefix}-raw"))
            log(f"repetition {rep + 1}/{args.repeat}: engine in-process")
            runs["engine"].append(engine_in_process(messages, names.purchases))
            order = ["worker", compare_key] if rep % 2 == 0 else [compare_key, "worker"]
            for key in order:
                if key is None:
                    continue
                log(f"repetition {rep + 1}/{args.repeat}: {key}")
                run_id = f"r{rep}" if key == "worker" else f"r{rep}-ref"
                code = None if key == "worker" else compare_dir
                runs[key].append(run_worker(names, run_id, total, args.timeout, code_dir=code))
                cleanup_redis(names.redis_prefix(run_id))
            log("  " + ", ".join(f"{k} {fmt(v[-1]['rate'])}/s" for k, v in runs.items()))
        del messages
        result["runs"] = runs
        raw_clients = [k for k in ("aiokafka", "kafka-python", "confluent-kafka") if k in runs]
        limits = [max(runs[k][i]["rate"] for k in raw_clients) for i in range(args.repeat)]
        limit_client = max(raw_clients, key=lambda k: median(r["rate"] for r in runs[k]) or 0)
        result["summary"] = {
            "medians": {
                k: {
                    "rate": median(r["rate"] for r in v),
                    "cpu_us_per_event": median(r["cpu_us_per_event"] for r in v),
                }
                for k, v in runs.items()
            },
            "limit_client": limit_client,
            "limit_rate": median(limits),
            "worker_to_limit": median(w["rate"] / lim for w, lim in zip(runs["worker"], limits, strict=True)),
            "worker_to_aiokafka": median(
                w["rate"] / a["rate"] for w, a in zip(runs["worker"], runs["aiokafka"], strict=True)
            ),
            "worker_to_engine": median(
                w["rate"] / e["rate"] for w, e in zip(runs["worker"], runs["engine"], strict=True)
            ),
            "worker_to_compare": median(
                w["rate"] / c["rate"] for w, c in zip(runs["worker"], runs[compare_key], strict=True)
            )
            if compare_key
            else None,
            "worker_ready_s": median(w["ready_s"] for w in runs["worker"]),
            "worker_start_to_all_consumed_s": median(w["start_to_all_consumed_s"] for w in runs["worker"]),
            "worker_rss_mib": median(w["rss_mib"] for w in runs["worker"]),
            "worker_cpu_cores_busy": median(w["cpu_cores_busy"] for w in runs["worker"]),
        }
        if args.profile:
            if not py_spy_available():
                result["profile"] = {"error": "py-spy not installed (pip install py-spy)"}
            else:
                out = WORK_DIR / names.prefix / "profile.raw"
                out.parent.mkdir(parents=True, exist_ok=True)
                log(f"profiling a worker run with py-spy for {args.profile:g}s")
                worker_run = run_worker(names, "prof", total, args.timeout, args.profile, out)
                cleanup_redis(names.redis_prefix("prof"))
                result["profile"] = {"worker": worker_run, "raw_file": str(out), **collapsed_top(out, 25)}
    finally:
        if not args.keep:
            cleanup(names)
    return result


def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    runs = result["runs"]
    p = result["params"]
    lines = [
        f"### Throughput ({result['events']:,} simulated events, {p['customers']:,} customers, "
        f"{p['partitions']} partitions, {p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.throughput --events {p['events']} --customers {p['customers']} "
        f"--partitions {p['partitions']} --repeat {p['repeat']}"
        + (f" --compare {p['compare']}" if p.get("compare") else "")
        + "`",
        "",
    ]
    rows = []
    labels = {
        "aiokafka": "raw aiokafka consumer + orjson.loads",
        "kafka-python": "raw kafka-python consumer + orjson.loads",
        "confluent-kafka": "raw confluent-kafka consumer + orjson.loads",
        "engine": "engine in-process (no Kafka/Redis)",
        "worker": "**segmenter worker, end to end**",
    }
    compare = result.get("compare")
    if compare:
        labels[compare["key"]] = f"segmenter worker of `{compare['ref']}` ({compare['sha']}), end to end"
    keys = ["aiokafka", "kafka-python", "confluent-kafka", "engine", "worker"] + (
        [compare["key"]] if compare else []
    )
    for key in keys:
        if key not in runs:
            continue
        m = s["medians"][key]
        rows.append(
            [
                labels[key] + (" (the limit)" if key == s["limit_client"] else ""),
                fmt(m["rate"]),
                runs_cell(r["rate"] for r in runs[key]),
                fmt(m["cpu_us_per_event"], 1),
            ]
        )
    lines.append(markdown_table(["consumer", "events/s (median)", "runs", "CPU µs/event"], rows))
    lines += [
        "",
        markdown_table(
            ["ratio (median of per-run ratios)", "value"],
            [
                [f"worker / limit ({s['limit_client']})", f"{s['worker_to_limit']:.3f}"],
                ["worker / raw aiokafka", f"{s['worker_to_aiokafka']:.3f}"],
                ["worker / engine in-process", f"{s['worker_to_engine']:.3f}"],
            ]
            + (
                [[f"**worker / worker of `{compare['ref']}`**", f"{s['worker_to_compare']:.3f}"]]
                if compare
                else []
            ),
        ),
        "",
        markdown_table(
            ["worker detail (median)", "value"],
            [
                ["spawn → /readyz 200", fmt(s["worker_ready_s"], 1, " s")],
                ["spawn → all events consumed", fmt(s["worker_start_to_all_consumed_s"], 1, " s")],
                ["CPU while processing (cores busy)", fmt(s["worker_cpu_cores_busy"], 2)],
                ["RSS at the end", fmt(s["worker_rss_mib"], 0, " MiB")],
            ],
        ),
    ]
    profile = result.get("profile")
    if profile and profile.get("self"):
        lines += ["", render_profile(profile)]
    return "\n".join(lines)


def render_profile(profile: dict[str, Any]) -> str:
    """Three tables of a py-spy profile: functions by self time, project functions by total time, packages."""
    pct = "{:.1f}".format
    parts = [
        f"Worker profile: py-spy, {profile['samples']:,} samples of all threads while the worker processed "
        "the backlog; % of samples.",
        "",
        markdown_table(
            ["#", "function (self time)", "self %"],
            [[i + 1, f"`{name}`", pct(share * 100)] for i, (name, share) in enumerate(profile["self"][:20])],
        ),
        "",
        markdown_table(
            ["project function (inclusive time)", "total %"],
            [[f"`{name}`", pct(share * 100)] for name, share in profile["project_total"][:15]],
        ),
        "",
        markdown_table(
            ["package (self time)", "self %"],
            [[name, pct(share * 100)] for name, share in profile["packages"][:12]],
        ),
    ]
    if profile.get("tasks"):
        parts += [
            "",
            markdown_table(
                ["event-loop task or thread (inclusive)", "%"],
                [[f"`{name}`", pct(share * 100)] for name, share in profile["tasks"][:10]],
            ),
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("throughput", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
