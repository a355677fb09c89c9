"""`segmenter demo`: the main job in one command — topics, a worker, the simulator, and a live view.

Assumes Kafka and Redis answer (`make demo` starts the local stack first). Uses its own topic names,
app id and Redis prefix (all starting with `demo`), recreated on every run so runs never mix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque

import click

from streams.cli.options import broker_option, redis_option
from streams.topic_names import TopicNames

DEMO_TOPICS = TopicNames(
    purchases="demo.purchases",
    interactions="demo.interactions",
    tier_changes="demo.tier-changes",
    dead_letters="demo.dead-letters",
    control="demo.segmenter-control",
)
DEMO_APP_ID = "segmenter-demo"
DEMO_PREFIX = "segmenter-demo"


@click.command()
@broker_option
@redis_option
@click.option("--customers", default=2000, show_default=True, help="Simulated customers.")
@click.option("--rate", default=2000, show_default=True, help="Simulated events per second.")
@click.option("--partitions", default=4, show_default=True)
@click.option("--web-port", default=6066, show_default=True, help="Worker /metrics port.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
def demo(
    broker: str, redis_url: str, customers: int, rate: int, partitions: int, web_port: int, duration: float
) -> None:
    """Run a worker on simulated customers and show tier counts and transitions live (Ctrl-C stops)."""
    import redis

    _reset(broker, redis_url, partitions)
    env = {
        **os.environ,
        "SEGMENTER_BROKER": broker,
        "SEGMENTER_REDIS_URL": redis_url,
        "SEGMENTER_APP_ID": DEMO_APP_ID,
        "SEGMENTER_REDIS_PREFIX": DEMO_PREFIX,
        "SEGMENTER_WEB_PORT": str(web_port),
        "SEGMENTER_DATA_DIR": "var/demo-data",
        "SEGMENTER_TOPIC_PURCHASES": DEMO_TOPICS.purchases,
        "SEGMENTER_TOPIC_INTERACTIONS": DEMO_TOPICS.interactions,
        "SEGMENTER_TOPIC_TIER_CHANGES": DEMO_TOPICS.tier_changes,
        "SEGMENTER_TOPIC_DEAD_LETTERS": DEMO_TOPICS.dead_letters,
        "SEGMENTER_TOPIC_CONTROL": DEMO_TOPICS.control,
    }
    os.makedirs("var", exist_ok=True)
    exe = [sys.executable, "-m", "streams.cli"]
    with open("var/demo-worker.log", "wb") as worker_log, open("var/demo-simulator.log", "wb") as sim_log:
        worker = subprocess.Popen(
            [*exe, "worker", "--clock", "event"], env=env, stdout=worker_log, stderr=subprocess.STDOUT
        )
        simulator = subprocess.Popen(
            [
                *exe,
                "simulate",
                "--customers",
                str(customers),
                "--rate",
                str(rate),
                "--follow",
                "--quiet",
                "--bad-ratio",
                "0.001",
                "--duplicate-ratio",
                "0.002",
            ],
            env=env,
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        recent: deque[str] = deque(maxlen=12)
        stop = threading.Event()
        threading.Thread(target=_follow_transitions, args=(broker, recent, stop), daemon=True).start()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        started = time.monotonic()
        try:
            while not duration or time.monotonic() - started < duration:
                if worker.poll() is not None:
                    raise click.ClickException("the worker stopped; see var/demo-worker.log")
                _render(client, recent, time.monotonic() - started, web_port)
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for process in (simulator, worker):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            for process in (simulator, worker):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
    click.echo("demo stopped. Logs: var/demo-worker.log, var/demo-simulator.log")


def _reset(broker: str, redis_url: str, partitions: int) -> None:
    """Fresh demo topics and Redis keys, so every run starts from nothing."""
    import redis
    from kafka import KafkaAdminClient

    from streams.cli.topics_cmd import topic_configs
    from streams.kafka_admin import create_topics
    from streams.kafka_security import kafka_python_security

    admin = KafkaAdminClient(
        bootstrap_servers=broker.split(","), request_timeout_ms=15_000, **kafka_python_security()
    )
    try:
        existing = set(admin.list_topics())
        stale = [t for t in existing if t.startswith("demo.") or t.startswith(DEMO_APP_ID)]
        if stale:
            admin.delete_topics(stale)
            time.sleep(2)
    finally:
        admin.close()
    create_topics(
        broker, {name: partitions for name in DEMO_TOPICS.all()}, configs=topic_configs(DEMO_TOPICS)
    )
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{DEMO_PREFIX}:*", count=1000):
        client.delete(key)


def _follow_transitions(broker: str, recent: deque[str], stop: threading.Event) -> None:
    import orjson
    from kafka import KafkaConsumer

    from streams.kafka_security import kafka_python_security

    consumer = KafkaConsumer(
        DEMO_TOPICS.tier_changes,
        bootstrap_servers=broker.split(","),
        auto_offset_reset="latest",
        isolation_level="read_committed",  # the worker writes tier changes in transactions: committed only
        consumer_timeout_ms=500,
        **kafka_python_security(),
    )
    while not stop.is_set():
        for record in consumer:
            change = orjson.loads(record.value)
            recent.append(
                f"{change['at'][:19]:19}  {change['customer_id']:>12}  {change['dimension']:<10} "
                f"{str(change['from']):>14} -> {change['to']:<14} ({change['reason']})"
            )
            if stop.is_set():
                break
    consumer.close()


def _render(client, recent: deque[str], elapsed: float, web_port: int) -> None:  # type: ignore[no-untyped-def]
    lines = [
        f"segmenter demo — {elapsed:5.0f}s — metrics: http://127.0.0.1:{web_port}/metrics — Ctrl-C stops",
        "",
    ]
    for dimension in ("lifecycle", "value", "engagement"):
        counts = client.hgetall(f"{DEMO_PREFIX}:tier-counts:{dimension}")
        shown = "  ".join(
            f"{tier}={count}" for tier, count in sorted(counts.items(), key=lambda kv: -int(kv[1]))
        )
        lines.append(f"{dimension:<11} {shown or '(waiting for events)'}")
    lines += ["", "recent transitions:"]
    lines += list(recent) or ["  (none yet)"]
    click.echo("\x1b[2J\x1b[H" + "\n".join(lines))
