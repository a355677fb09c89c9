"""Throughput: the worker end to end against a raw consumer and an I/O floor, on the same topics, in one run.

    python -m bench.throughput [--events 200000 --customers 20000 --partitions 4 --repeat 3 --profile 20]
    python -m bench.throughput --compare 1f7ba79      # + the worker of another commit, side by side

Two topic sets are made once: a simulated backlog (`segmenter simulate`: a realistic mix of returning
customers) and `--new-customers` brand-new customers with one purchase each (every event creates a customer:
a Redis record and tier changes each). Then per repetition, side by side on those topics:

- `raw`: a confluent-kafka consumer reading every input event and `orjson.loads`-ing it (the client the
  worker uses; what a consumer alone can do);
- `floor` (the I/O floor): a pipeline with no engine that consumes (confluent-kafka, the worker's fetch
  settings), decodes, produces one 200-byte changelog record per event (confluent produce, the worker's
  producer settings, same partition) and writes one Redis hash per event (redis-py pipeline of 1000 HSETs of
  4 fields); no transactions. What any engine on this stack pays for one record out and one hash per event;
- `engine`: `Engine.process` in-process on the same messages in batches of 10,000 (dict tables, no I/O);
- `worker`: `segmenter worker --clock event` (exactly_once, memory store) with a fresh app id and Redis
  prefix, timed from its first to its last processed event by polling `segmenter_events_total` on /metrics
  (start-up excluded, also reported), with its CPU time per event from /proc;
- `--compare REF`: the worker of that commit, run with its own venv (`bench.common.compare_venv`: its
  pyproject's dependencies, e.g. Faust for 1f7ba79), alternating which worker goes first;
- `--scaling`: two worker processes with one app id on the backlog; their combined rate against `worker`.

Medians over the repetitions; ratios are taken per repetition (same minute, same noise), then the median.
`--profile S` adds one more worker run on the backlog with py-spy attached for S seconds (`--idle`: time
the loop waits for Kafka or Redis shows as such) and reports the loop's wall time by step, plus the top
functions (needs `pip install py-spy`).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    BROKER,
    WORK_DIR,
    BenchNames,
    Progress,
    Worker,
    cleanup,
    cleanup_redis,
    collapsed_top,
    compare_venv,
    create_topics,
    export_code,
    fmt,
    log,
    loop_breakdown,
    machine_info,
    machine_line,
    markdown_table,
    median,
    metric_sum,
    produce_bulk,
    py_spy_available,
    py_spy_record,
    render_synthetic,
    run_benchmark,
    runs_cell,
    simulate,
    synthetic_events,
    total_messages,
    unique_prefix,
)

FLOOR_VALUE = b"v" * 200  # the I/O floor's changelog record (a simulated customer's state is 250-450 B)
FLOOR_PIPELINE = 1000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _consumer(group: str) -> Any:
    from confluent_kafka import Consumer

    from streams.kafka_clients import consumer_config

    config = consumer_config(BROKER, group, None)
    config["isolation.level"] = "read_uncommitted"  # the inputs are not transactional: no difference
    return Consumer(config)


def _assign_from_start(consumer: Any, topics: list[str]) -> None:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    metadata = consumer.list_topics(timeout=10)
    consumer.assign(
        [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            for p in sorted(metadata.topics[t].partitions)
        ]
    )


# ---------------------------------------------------------------------------------------------- raw, floor
def raw_confluent(topics: list[str], total: int, group: str, timeout: float) -> dict[str, float]:
    consumer = _consumer(group)
    try:
        _assign_from_start(consumer, topics)
        n, cpu0, t0 = 0, _cpu(), time.perf_counter()
        loads = orjson.loads
        deadline = time.monotonic() + timeout
        while n < total and time.monotonic() < deadline:
            for record in consumer.consume(num_messages=10_000, timeout=1.0):
                if record.error() is None:
                    loads(record.value())
                    n += 1
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        consumer.close()
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


def io_floor(
    topics: list[str], total: int, group: str, out_topic: str, redis_prefix: str, timeout: float
) -> dict[str, float]:
    """Consume + decode, one changelog record per event (confluent produce), one Redis HSET per event."""
    from confluent_kafka import Producer

    from bench.common import redis_client
    from streams.kafka_clients import producer_config

    consumer = _consumer(group)
    producer = Producer(producer_config(BROKER))
    client = redis_client()
    try:
        _assign_from_start(consumer, topics)
        n, cpu0, t0 = 0, _cpu(), time.perf_counter()
        loads = orjson.loads
        produce = producer.produce
        pipe = client.pipeline(transaction=False)
        pending = 0
        deadline = time.monotonic() + timeout
        while n < total and time.monotonic() < deadline:
            for record in consumer.consume(num_messages=10_000, timeout=1.0):
                if record.error() is not None:
                    continue
                key = record.key()
                event = loads(record.value())
                while True:
                    try:
                        produce(out_topic, key=key, value=FLOOR_VALUE, partition=record.partition())
                        break
                    except BufferError:
                        producer.poll(0.05)
                pipe.hset(
                    f"{redis_prefix}:customer:{key.decode()}",
                    mapping={
                        "version": n,
                        "value_tier": "bronze",
                        "engagement": "active",
                        "as_of": event["ts"],
                    },
                )
                pending += 1
                if pending >= FLOOR_PIPELINE:
                    pipe.execute()
                    pending = 0
                n += 1
            producer.poll(0)
        if pending:
            pipe.execute()
        remaining = producer.flush(60)
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
        if remaining:
            raise RuntimeError(f"I/O floor: {remaining} changelog records not delivered")
    finally:
        consumer.close()
        client.close()
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


# ---------------------------------------------------------------------------------------------- engine
def load_messages(topics: list[str], total: int, group: str) -> list[tuple[str, int, int, bytes, bytes]]:
    """Every input message (topic, partition, offset, key, value), in the order the consumer fetches them."""
    consumer = _consumer(group)
    out: list[tuple[str, int, int, bytes, bytes]] = []
    try:
        _assign_from_start(consumer, topics)
        deadline = time.monotonic() + 300
        while len(out) < total and time.monotonic() < deadline:
            for r in consumer.consume(num_messages=10_000, timeout=1.0):
                if r.error() is None:
                    out.append((r.topic(), r.partition(), r.offset(), r.key(), r.value()))
    finally:
        consumer.close()
    return out


def engine_in_process(
    messages: list[tuple[str, int, int, bytes, bytes]], purchases_topic: str, batch: int = 10_000
) -> dict[str, float]:
    """`Engine.process` on the same messages in batches: decode, validate, apply, evaluate, Redis records;
    states kept decoded in a dict, nothing encoded, no I/O."""
    from segmenter.engine import Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules

    customers: dict[str, Any] = {}
    clocks: dict[str, Any] = {}
    engine = Engine(default_rules(), customers, clocks, autoflush=False)
    records = [
        InputMessage(
            Kind.PURCHASES if topic == purchases_topic else Kind.INTERACTIONS,
            topic,
            partition,
            offset,
            key,
            value,
            [],
        )
        for topic, partition, offset, key, value in messages
    ]
    cpu0, t0 = _cpu(), time.perf_counter()
    for start in range(0, len(records), batch):
        result = engine.process(records[start : start + batch])
        customers.update(result.customers)
        for partition, clock in result.clocks.items():
            clocks[str(partition)] = clock
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    n = len(records)
    return {"events": n, "seconds": elapsed, "rate": n / elapsed, "cpu_us_per_event": cpu / n * 1e6}


# ---------------------------------------------------------------------------------------------- workers
def run_worker(
    names: BenchNames,
    run: str,
    total: int,
    timeout: float,
    profile_seconds: float = 0.0,
    profile_out: Path | None = None,
    code_dir: Path | None = None,
    python: Path | None = None,
) -> dict[str, Any]:
    worker = Worker(
        names, run, WORK_DIR / names.prefix / run / "data", code_dir=code_dir, python=python
    ).start()
    spy = None
    try:
        ready_s = worker.wait_ready()
        if profile_seconds and profile_out is not None:
            spy = py_spy_record(worker.pid, profile_seconds, profile_out, idle=True)
        progress = worker.wait_events(total, timeout=timeout, poll=0.1)
        done_s = time.monotonic() - worker.started_at
        rss = worker.rss_bytes()
        cpu_total = worker.cpu_seconds()
        text = worker.metrics()
        if spy is not None:  # keep the worker alive until py-spy is done (it stops sampling when it exits)
            try:
                spy.wait(timeout=profile_seconds + 30)
            except Exception:  # noqa: BLE001
                spy.kill()
            spy = None
    finally:
        if spy is not None:
            spy.kill()
        worker.stop()
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


def run_workers(names: BenchNames, run: str, total: int, timeout: float, count: int) -> dict[str, Any]:
    """`count` workers of one app id started together on the backlog; their combined rate, first progress of
    any of them to the last event (the initial group join is inside the window, the spawn is not)."""
    base = WORK_DIR / names.prefix / run
    workers = [Worker(names, run, base / f"data-{i}").start() for i in range(count)]
    progress = Progress(total=total)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = []
            for worker in workers:
                worker.check_alive()
                counts.append(worker.events_total())
            if all(c is not None for c in counts):
                total_count = sum(counts)
                progress.sample(time.monotonic(), total_count, sum(w.cpu_seconds() for w in workers))
                if total_count >= total:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{count} workers processed {progress.last_count} of {total} in {timeout}s")
        shares = [w.events_total() or 0 for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    return {
        "rate": progress.rate,
        "cpu_us_per_event": progress.cpu_per_event_us,
        "cpu_cores_busy": progress.cpu_utilisation,
        "events_per_worker": shares,
    }


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="Events to simulate (default 200000).")
    parser.add_argument("--customers", type=int, default=20_000, help="Simulated customers (default 20000).")
    parser.add_argument("--days", type=int, default=365, help="Simulated history in days (default 365).")
    parser.add_argument(
        "--new-customers",
        type=int,
        default=100_000,
        help="Brand-new customers, one purchase each, for the ingest measurement (default 100000; 0 skips).",
    )
    parser.add_argument(
        "--new-days",
        type=float,
        default=1.0,
        help="The new customers' events are spread over this many days before now (default 1: ingest, not "
        "a year of time-driven evaluations as the watermark crosses days).",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="Max seconds for one worker run.")
    parser.add_argument(
        "--profile",
        type=float,
        default=20.0 if py_spy_available() else 0.0,
        metavar="SECONDS",
        help="Extra worker run (not timed) with py-spy attached for SECONDS; default 20 when py-spy is "
        "installed, 0 skips.",
    )
    parser.add_argument(
        "--profile-on",
        choices=["backlog", "new"],
        default="backlog",
        help="Profile the worker on the simulated backlog (default) or on the new customers.",
    )
    parser.add_argument(
        "--compare",
        metavar="GIT_REF",
        help="Also run the worker of this commit (git archive into var/bench/code-<sha>, its dependencies in "
        "var/bench/venv-<sha>, made on first use) on the backlog in every repetition, alternating the order, "
        "and report worker / worker of REF.",
    )
    parser.add_argument(
        "--scaling", action="store_true", help="Also run 2 workers of one app id per repetition."
    )
    parser.add_argument("--keep", action="store_true", help="Keep topics and Redis keys (debugging).")
    return parser.parse_args(argv)


def _ratio(runs: dict[str, list[dict[str, Any]]], a: str, b: str) -> float | None:
    if a not in runs or b not in runs or not runs[a] or not runs[b]:
        return None
    return median(
        x["rate"] / y["rate"] for x, y in zip(runs[a], runs[b], strict=True) if x["rate"] and y["rate"]
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("tp"))
    fresh = BenchNames(names.prefix + "-new")  # cleaned up with `names` (same prefix)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
    }
    compare_key = compare_dir = compare_python = None
    if args.compare:
        compare_dir, sha = export_code(args.compare)
        compare_python = compare_venv(compare_dir, sha)
        compare_key = f"worker@{sha}"
        result["compare"] = {
            "ref": args.compare,
            "sha": sha,
            "key": compare_key,
            "python": str(compare_python),
        }
    try:
        create_topics(names, args.partitions)
        floor_topic = f"{names.prefix}.floor-changelog"
        from streams.kafka_admin import create_topics as create

        create(BROKER, {floor_topic: args.partitions})
        log(f"simulating {args.events} events ({args.customers} customers) into {names.prefix}.*")
        result["simulate_output"] = simulate(names, args.customers, args.seed, args.days, args.events)
        topics = names.inputs()
        total = total_messages(topics)
        result["events"] = total
        new_total = 0
        if args.new_customers:
            create_topics(fresh, args.partitions)
            events = synthetic_events(
                args.new_customers, 1, int(time.time() * 1e6), seed=args.seed, days=args.new_days
            )
            new_total = produce_bulk(fresh, (render_synthetic(e, prefix="n") for e in events))
            del events
            result["new_events"] = new_total
        messages = load_messages(topics, total, f"{names.prefix}-load")
        runs: dict[str, list[dict[str, Any]]] = {"raw": [], "floor": [], "engine": [], "worker": []}
        if compare_key:
            runs[compare_key] = []
        if args.scaling:
            runs["workers x2"] = []
        if new_total:
            runs.update({"new raw": [], "new floor": [], "new worker": []})
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}: raw consumer, I/O floor, engine")
            runs["raw"].append(raw_confluent(topics, total, f"{names.prefix}-raw", args.timeout))
            runs["floor"].append(
                io_floor(
                    topics, total, f"{names.prefix}-floor", floor_topic, f"{names.prefix}-floor", args.timeout
                )
            )
            cleanup_redis(f"{names.prefix}-floor")
            runs["engine"].append(engine_in_process(messages, names.purchases))
            order = ["worker", compare_key] if rep % 2 == 0 else [compare_key, "worker"]
            for key in order:
                if key is None:
                    continue
                log(f"repetition {rep + 1}/{args.repeat}: {key}")
                run_id = f"r{rep}" if key == "worker" else f"r{rep}-ref"
                if key == "worker":
                    runs[key].append(run_worker(names, run_id, total, args.timeout))
                else:
                    runs[key].append(
                        run_worker(
                            names, run_id, total, args.timeout, code_dir=compare_dir, python=compare_python
                        )
                    )
                cleanup_redis(names.redis_prefix(run_id))
            if args.scaling:
                log(f"repetition {rep + 1}/{args.repeat}: 2 workers")
                runs["workers x2"].append(run_workers(names, f"r{rep}-x2", total, args.timeout, 2))
                cleanup_redis(names.redis_prefix(f"r{rep}-x2"))
            if new_total:
                log(f"repetition {rep + 1}/{args.repeat}: {new_total:,} new customers")
                inputs = fresh.inputs()
                runs["new raw"].append(raw_confluent(inputs, new_total, f"{fresh.prefix}-raw", args.timeout))
                runs["new floor"].append(
                    io_floor(
                        inputs,
                        new_total,
                        f"{fresh.prefix}-floor",
                        floor_topic,
                        f"{fresh.prefix}-floor",
                        args.timeout,
                    )
                )
                cleanup_redis(f"{fresh.prefix}-floor")
                runs["new worker"].append(run_worker(fresh, f"r{rep}", new_total, args.timeout))
                cleanup_redis(fresh.redis_prefix(f"r{rep}"))
            log("  " + ", ".join(f"{k} {fmt(v[-1]['rate'])}/s" for k, v in runs.items() if v))
        del messages
        result["runs"] = runs
        result["summary"] = {
            "medians": {
                k: {
                    "rate": median(r["rate"] for r in v),
                    "cpu_us_per_event": median(r["cpu_us_per_event"] for r in v),
                }
                for k, v in runs.items()
            },
            "worker_to_raw": _ratio(runs, "worker", "raw"),
            "worker_to_floor": _ratio(runs, "worker", "floor"),
            "worker_to_engine": _ratio(runs, "worker", "engine"),
            "floor_to_raw": _ratio(runs, "floor", "raw"),
            "worker_to_compare": _ratio(runs, "worker", compare_key) if compare_key else None,
            "x2_to_worker": _ratio(runs, "workers x2", "worker"),
            "new_worker_to_floor": _ratio(runs, "new worker", "new floor"),
            "new_worker_to_worker": _ratio(runs, "new worker", "worker"),
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
                on_new = args.profile_on == "new" and new_total
                log(
                    f"profiling a worker run ({'new' if on_new else 'backlog'}) for {args.profile:g}s"
                )
                profiled, count = (fresh, new_total) if on_new else (names, total)
                worker_run = run_worker(profiled, "prof", count, args.timeout, args.profile, out)
                cleanup_redis(profiled.redis_prefix("prof"))
                result["profile"] = {
                    "on": "new customers" if on_new else "the backlog",
                    "worker": worker_run,
                    "raw_file": str(out),
                    "loop": loop_breakdown(out),
                    **collapsed_top(out, 25, main_thread_only=True),
                }
    finally:
        if not args.keep:
            cleanup(names)
    return result


LABELS = {
    "raw": "raw confluent-kafka consumer + orjson.loads",
    "floor": "I/O floor: consume + 1 changelog record + 1 Redis HSET per event",
    "engine": "engine in-process (`Engine.process`, no Kafka/Redis)",
    "worker": "**segmenter worker, end to end**",
    "workers x2": "2 segmenter workers, one app id (combined)",
    "new raw": "new customers: raw consumer",
    "new floor": "new customers: I/O floor",
    "new worker": "**new customers: segmenter worker**",
}


def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    runs = result["runs"]
    p = result["params"]
    compare = result.get("compare")
    command = (
        f"python -m bench.throughput --events {p['events']} --customers {p['customers']} "
        f"--new-customers {p['new_customers']} --new-days {p.get('new_days', 365):g} "
        f"--partitions {p['partitions']} --repeat {p['repeat']}"
        + (f" --compare {p['compare']}" if p.get("compare") else "")
        + (" --scaling" if p.get("scaling") else "")
        + (f" --profile {p['profile']:g}" if p.get("profile") else " --profile 0")
        + (" --profile-on new" if p.get("profile_on") == "new" else "")
    )
    lines = [
        f"### Throughput ({result['events']:,} simulated events, {p['customers']:,} customers"
        + (f"; {result['new_events']:,} new customers" if result.get("new_events") else "")
        + f"; {p['partitions']} partitions, {p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `{command}`",
        "",
    ]
    labels = dict(LABELS)
    if compare:
        labels[compare["key"]] = f"segmenter worker of `{compare['ref']}` ({compare['sha'][:7]}), end to end"
    rows = []
    for key in (
        ["raw", "floor", "engine", "worker"]
        + ([compare["key"]] if compare else [])
        + [
            "workers x2",
            "new raw",
            "new floor",
            "new worker",
        ]
    ):
        if key not in runs or not runs[key]:
            continue
        m = s["medians"][key]
        rows.append(
            [
                labels[key],
                fmt(m["rate"]),
                runs_cell(r["rate"] for r in runs[key]),
                fmt(m["cpu_us_per_event"], 1),
            ]
        )
    lines.append(markdown_table(["run", "events/s (median)", "runs", "CPU µs/event"], rows))

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    ratio_rows = [
        ["worker / raw consumer", ratio(s["worker_to_raw"])],
        ["**worker / I/O floor**", ratio(s["worker_to_floor"])],
        ["worker / engine in-process", ratio(s["worker_to_engine"])],
        ["I/O floor / raw consumer", ratio(s["floor_to_raw"])],
    ]
    if compare:
        ratio_rows.append([f"**worker / worker of `{compare['ref']}`**", ratio(s["worker_to_compare"])])
    if s.get("x2_to_worker") is not None:
        ratio_rows.append(["**2 workers / 1 worker**", ratio(s["x2_to_worker"])])
    if s.get("new_worker_to_floor") is not None:
        ratio_rows += [
            ["**new customers: worker / I/O floor**", ratio(s["new_worker_to_floor"])],
            ["new customers / simulated backlog (worker)", ratio(s["new_worker_to_worker"])],
        ]
    lines += ["", markdown_table(["ratio (median of per-run ratios)", "value"], ratio_rows)]
    lines += [
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
    """A py-spy profile: the loop's wall time by step, top functions by self time, project functions."""
    pct = "{:.1f}".format
    parts = [
        f"Worker profile: py-spy `--idle`, {profile['samples']:,} samples of the main thread while the "
        f"worker processed {profile.get('on', 'the backlog')}; % of its wall time.",
    ]
    loop = profile.get("loop")
    if loop and loop.get("steps"):
        parts += [
            "",
            markdown_table(
                ["loop step (inclusive)", "% of wall time"],
                [[name, pct(share * 100)] for name, share in loop["steps"]],
            ),
        ]
    parts += [
        "",
        markdown_table(
            ["#", "function (self time)", "self %"],
            [[i + 1, f"`{name}`", pct(share * 100)] for i, (name, share) in enumerate(profile["self"][:15])],
        ),
        "",
        markdown_table(
            ["project function (inclusive time)", "total %"],
            [[f"`{name}`", pct(share * 100)] for name, share in profile["project_total"][:15]],
        ),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("throughput", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
