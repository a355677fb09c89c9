"""`segmenter demo`: the main job in one command — topics, a worker, the simulator, the web UI and a live
terminal dashboard (streams/dashboard.py, redrawn in place).

Assumes Kafka and Redis answer (`make demo` starts the local stack first). Uses its own topic names,
app id and Redis prefix (all starting with `demo`), recreated on every run so runs never mix. The web UI is
`segmenter ui` on the demo's prefix; a build without that command runs the demo without it (the dashboard
says so).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import click

from streams.cli.options import broker_option, redis_option
from streams.topic_names import TopicNames

if TYPE_CHECKING:
    from streams.dashboard import DashboardState

DEMO_TOPICS = TopicNames(
    purchases="demo.purchases",
    interactions="demo.interactions",
    tier_changes="demo.tier-changes",
    dead_letters="demo.dead-letters",
    control="demo.segmenter-control",
    profiles="demo.profiles",
)
DEMO_APP_ID = "segmenter-demo"
DEMO_PREFIX = "segmenter-demo"
REFRESH_SECONDS = 0.5


@click.command()
@broker_option
@redis_option
@click.option("--customers", default=2000, show_default=True, help="Simulated customers.")
@click.option("--rate", default=2000, show_default=True, help="Simulated events per second.")
@click.option("--partitions", default=4, show_default=True)
@click.option("--web-port", default=6066, show_default=True, help="Worker /metrics port.")
@click.option("--ui-port", default=8080, show_default=True, help="Port of the web UI (0: do not start it).")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
def demo(
    broker: str,
    redis_url: str,
    customers: int,
    rate: int,
    partitions: int,
    web_port: int,
    ui_port: int,
    duration: float,
) -> None:
    """Run a worker on simulated customers and the web UI; show tiers and changes live (Ctrl-C stops)."""
    import redis
    from rich.console import Console
    from rich.live import Live

    from segmenter.rules import default_rules
    from streams.cli import COMMANDS
    from streams.dashboard import DashboardState, render

    _reset(broker, redis_url, partitions)
    env = {
        **os.environ,
        "SEGMENTER_BROKER": broker,
        "SEGMENTER_REDIS_URL": redis_url,
        "SEGMENTER_APP_ID": DEMO_APP_ID,
        "SEGMENTER_REDIS_PREFIX": DEMO_PREFIX,
        "SEGMENTER_WEB_PORT": str(web_port),
        "SEGMENTER_DATA_DIR": "var/demo-data",
        **{TopicNames.env_var(field): name for field, name in DEMO_TOPICS.items()},
    }
    os.makedirs("var", exist_ok=True)
    exe = [sys.executable, "-m", "streams.cli"]
    rules = default_rules()
    state = DashboardState(
        dimensions=[(d.name, [t.name for t in d.tiers]) for d in rules.dimensions],
        metrics_url=f"http://127.0.0.1:{web_port}/metrics",
    )
    processes: list[subprocess.Popen[bytes]] = []
    logs = [open(f"var/demo-{name}.log", "wb") for name in ("worker", "simulator", "ui")]  # noqa: SIM115
    worker_log, sim_log, ui_log = logs
    stop = threading.Event()
    try:
        worker = subprocess.Popen(
            [*exe, "worker", "--clock", "event"], env=env, stdout=worker_log, stderr=subprocess.STDOUT
        )
        processes.append(worker)
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
        processes.insert(0, simulator)
        ui: subprocess.Popen[bytes] | None = None
        if not ui_port:
            state.ui_note = "web UI not started (--ui-port 0)"
        elif "ui" not in COMMANDS:
            state.ui_note = "web UI not available: this build has no `segmenter ui` command"
        else:
            ui_args = ["ui", "--port", str(ui_port), "--redis", redis_url, "--redis-prefix", DEMO_PREFIX]
            ui = subprocess.Popen([*exe, *ui_args], env=env, stdout=ui_log, stderr=subprocess.STDOUT)
            processes.append(ui)
        threading.Thread(target=_follow_transitions, args=(broker, state, stop), daemon=True).start()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        started = time.monotonic()
        console = Console()
        with Live(render(state), console=console, auto_refresh=False, vertical_overflow="crop") as live:
            while not duration or time.monotonic() - started < duration:
                if worker.poll() is not None:
                    raise click.ClickException("the worker stopped; see var/demo-worker.log")
                if ui is not None:
                    _ui_status(state, ui, ui_port)
                state.elapsed = time.monotonic() - started
                state.refresh_counts(client, DEMO_PREFIX)
                live.update(render(state), refresh=True)
                time.sleep(REFRESH_SECONDS)
        if not console.is_terminal:
            console.line()  # a terminal gets it from Live; the frame printed once must end its line too
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
    click.echo("demo stopped. Logs: var/demo-worker.log, var/demo-simulator.log, var/demo-ui.log")


def _ui_status(state: DashboardState, ui: subprocess.Popen[bytes], port: int) -> None:
    """The link once the UI listens; a note while it starts or after it stopped."""
    if ui.poll() is not None:
        state.ui_url, state.ui_note = None, f"web UI stopped (exit {ui.returncode}); see var/demo-ui.log"
    elif state.ui_url is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                state.ui_url, state.ui_note = f"http://127.0.0.1:{port}/", ""
        except OSError:
            state.ui_note = f"web UI starting on port {port}…"


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


def _follow_transitions(broker: str, state: DashboardState, stop: threading.Event) -> None:
    import orjson
    from kafka import KafkaConsumer

    from streams.dashboard import Change
    from streams.kafka_security import kafka_python_security

    consumer = KafkaConsumer(
        DEMO_TOPICS.tier_changes,
        bootstrap_servers=broker.split(","),
        auto_offset_reset="earliest",  # the topic is new with each run: every tier change of this run
        isolation_level="read_committed",  # the worker writes tier changes in transactions: committed only
        consumer_timeout_ms=500,
        **kafka_python_security(),
    )
    while not stop.is_set():
        for record in consumer:
            state.add_change(Change.from_event(orjson.loads(record.value)))
            if stop.is_set():
                break
    consumer.close()
