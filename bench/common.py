"""Shared plumbing of the benchmarks: names, topics, workers, metrics, machine facts, results and tables.

Every benchmark uses its own topic names, app ids and Redis prefix (all starting with `bench-`), so it never
touches what other people run on the same broker and Redis, and removes them again when it ends.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
WORK_DIR = REPO / "var" / "bench"  # worker data dirs and logs (var/ is git-ignored)
BROKER = os.environ.get("SEGMENTER_BROKER", "127.0.0.1:9092").removeprefix("kafka://")
REDIS_URL = os.environ.get("SEGMENTER_REDIS_URL", "redis://127.0.0.1:6379/0")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MICROS_PER_DAY = 86_400_000_000


# ---------------------------------------------------------------------------------------------- stats
def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | int | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or digits == 0:
        return f"{value:,.0f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def runs_cell(values: Iterable[float | None], digits: int = 0) -> str:
    """The individual runs, for the tables: `1,234 / 1,301 / 1,250`."""
    return " / ".join(fmt(v, digits) for v in values)


# ---------------------------------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "segmenter", "streams", "state"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "code_sha256": code_sha(),  # of segmenter/, streams/, state/ as run
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git_commit": commit,
        "git_dirty_code": dirty,  # uncommitted changes in segmenter/, streams/ or state/
        "loadavg_at_start": os.getloadavg(),
        "cpu_counters_at_start": cpu_counters(),
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def code_sha() -> str:
    """sha256 (12 hex digits) of segmenter/, streams/ and state/ as they are now."""
    import hashlib

    digest = hashlib.sha256()
    for package in ("segmenter", "streams", "state"):
        for path in sorted((REPO / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cpu_counters() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['nproc']} cores, {info['cpu_model']}, {info['mem_gib']} GiB; "
        f"Python {info['python']}; "
        f"commit {info['git_commit']}{' + uncommitted changes' if info.get('git_dirty_code') else ''} "
        f"(code sha {info.get('code_sha256', '?')}"
        + (
            f", **{info['code_sha256_at_end']} at the end: the code changed during the run**"
            if info.get("code_sha256_at_end") and info["code_sha256_at_end"] != info.get("code_sha256")
            else ""
        )
        + "); "
        f"load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in info['loadavg_at_start'])}"
        + (
            f", at end {'/'.join(f'{x:.1f}' for x in info['loadavg_at_end'])}"
            if info.get("loadavg_at_end")
            else ""
        )
        + (
            f"; whole machine busy {info['machine_cpu_busy_cores']:.2f} of {info['nproc']} cores on average "
            "(this benchmark included)"
            if info.get("machine_cpu_busy_cores") is not None
            else ""
        )
        + "; "
        f"{info['started_at']}"
    )


# ---------------------------------------------------------------------------------------------- results
def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if isinstance(data.get("machine"), dict):
        data["machine"]["loadavg_at_end"] = os.getloadavg()
        data["machine"]["code_sha256_at_end"] = code_sha()
        start = data["machine"].get("cpu_counters_at_start")
        if start:
            busy, total = cpu_counters()
            if total > start[1]:
                # whole machine, this benchmark included: how much else was running shows against its own use
                data["machine"]["machine_cpu_busy_cores"] = (
                    (busy - start[0]) / (total - start[1]) * (os.cpu_count() or 1)
                )
        data["machine"]["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    text = json.dumps(data, indent=2, default=str)
    path.write_text(text)
    (RESULTS_DIR / f"latest-{name}.json").write_text(text)
    return path


def run_benchmark(
    name: str,
    parse_args: Callable[[list[str] | None], Any],
    run: Callable[[Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """The `main` of every benchmark module: parse, run, keep the results, print the markdown tables."""
    result = run(parse_args(argv))
    path = write_results(name, result)
    print(render(result))
    log(f"results: {path}")
    return result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- names
def unique_prefix(kind: str) -> str:
    return f"bench-{kind}-{int(time.time())}-{random.randrange(16**4):04x}"


@dataclass
class BenchNames:
    """Topic names, app ids and Redis prefixes of one benchmark run; all start with `prefix`."""

    prefix: str

    @property
    def purchases(self) -> str:
        return f"{self.prefix}.purchases"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}.interactions"

    @property
    def tier_changes(self) -> str:
        return f"{self.prefix}.tier-changes"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control"

    @property
    def profiles(self) -> str:
        return f"{self.prefix}.profiles"

    def topics(self) -> list[str]:
        return [
            self.purchases,
            self.interactions,
            self.tier_changes,
            self.dead_letters,
            self.control,
            self.profiles,
        ]

    def inputs(self) -> list[str]:
        return [self.purchases, self.interactions]

    def app_id(self, run: str) -> str:
        return f"{self.prefix}-{run}"

    def redis_prefix(self, run: str) -> str:
        return f"{self.prefix}-{run}"

    def env(self, run: str) -> dict[str, str]:
        """Environment of a segmenter command for this run (a fresh app id and Redis prefix per run)."""
        return {
            "SEGMENTER_BROKER": BROKER,
            "SEGMENTER_REDIS_URL": REDIS_URL,
            "SEGMENTER_TOPIC_PURCHASES": self.purchases,
            "SEGMENTER_TOPIC_INTERACTIONS": self.interactions,
            "SEGMENTER_TOPIC_TIER_CHANGES": self.tier_changes,
            "SEGMENTER_TOPIC_DEAD_LETTERS": self.dead_letters,
            "SEGMENTER_TOPIC_CONTROL": self.control,
            "SEGMENTER_TOPIC_PROFILES": self.profiles,
            "SEGMENTER_APP_ID": self.app_id(run),
            "SEGMENTER_REDIS_PREFIX": self.redis_prefix(run),
        }


def create_topics(names: BenchNames, partitions: int) -> None:
    from streams.kafka_admin import create_topics as create

    create(BROKER, dict.fromkeys(names.topics(), partitions))


def cleanup_kafka(prefix: str) -> None:
    """Delete every topic and consumer group whose name starts with `prefix` (changelogs included)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=BROKER.split(","), request_timeout_ms=30_000)
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            try:
                admin.delete_topics(topics, timeout_ms=30_000)
            except Exception as exc:  # noqa: BLE001 - cleanup must go on
                log(f"cleanup: deleting topics failed: {exc}")
        try:
            if hasattr(admin, "list_groups"):  # kafka-python 3
                groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
                if groups:
                    admin.delete_groups(groups)
            else:
                groups = [g[0] for g in admin.list_consumer_groups() if g[0].startswith(prefix)]
                if groups:
                    admin.delete_consumer_groups(groups)
        except Exception as exc:  # noqa: BLE001
            log(f"cleanup: deleting consumer groups failed: {exc}")
    finally:
        admin.close()


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def cleanup_redis(prefix: str) -> int:
    client = redis_client()
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    client.close()
    return deleted


def cleanup(names: BenchNames) -> None:
    log(f"cleanup: topics, groups and Redis keys under {names.prefix}")
    cleanup_kafka(names.prefix)
    cleanup_redis(names.prefix)


def end_offsets(topics: Sequence[str]) -> dict[tuple[str, int], int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=BROKER.split(","), request_timeout_ms=30_000)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return {(tp.topic, tp.partition): offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def total_messages(topics: Sequence[str]) -> int:
    return sum(end_offsets(topics).values())


# ---------------------------------------------------------------------------------------------- CLI
def segmenter_cli(
    args: Sequence[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess:
    """Run `python -m streams.cli ARGS` (the `segmenter` command) with the run's environment."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=check,
    )


def simulate(
    names: BenchNames, customers: int, seed: int, days: int, max_events: int | None, start: str | None = None
) -> str:
    args = ["simulate", "--customers", str(customers), "--seed", str(seed), "--days", str(days), "--quiet"]
    if max_events:
        args += ["--max-events", str(max_events)]
    if start:
        args += ["--start", start]
    done = segmenter_cli(args, names.env("sim"))
    return done.stdout


# ---------------------------------------------------------------------------------------------- producing
def rfc3339(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction:06d}Z" if fraction else "Z")


def synthetic_events(
    customers: int, per_customer: int, end_micros: int, seed: int = 7, days: float = 365, prefix: str = "c"
) -> list[tuple[int, int, int]]:
    """(ts micros, customer index, event number within the customer) in event-time order.

    Customer i has `per_customer` events at random times over the `days` before `end_micros`; its first
    event is a purchase, the others alternate interaction / purchase. Compact tuples: render with
    `render_synthetic` when producing or feeding the engine.
    """
    rng = random.Random(seed)
    span = max(1, int(days * MICROS_PER_DAY))
    events = []
    for customer in range(customers):
        times = sorted(end_micros - rng.randrange(span) for _ in range(per_customer))
        for n, ts in enumerate(times):
            events.append((ts, customer, n))
    events.sort()
    return events


def render_synthetic(event: tuple[int, int, int], prefix: str = "c") -> tuple[str, bytes, bytes]:
    """(role purchases|interactions, key, JSON value) of a synthetic event."""
    ts, customer, n = event
    customer_id = f"{prefix}{customer}"
    stamp = rfc3339(ts)
    if n % 2 == 0:
        cents = 500 + (customer * 7919 + n * 104729) % 40_000
        value = (
            f'{{"event_id":"{customer_id}-{n}","type":"purchase","customer_id":"{customer_id}",'
            f'"ts":"{stamp}","amount":"{cents // 100}.{cents % 100:02d}","currency":"USD"}}'
        )
        return "purchases", customer_id.encode(), value.encode()
    value = (
        f'{{"event_id":"{customer_id}-{n}","type":"page_view","customer_id":"{customer_id}","ts":"{stamp}"}}'
    )
    return "interactions", customer_id.encode(), value.encode()


def produce_bulk(names: BenchNames, messages: Iterable[tuple[str, bytes, bytes]]) -> int:
    """Produce (role, key, value) messages as fast as possible; partitioned by murmur2 of the key (like
    every Kafka client), so a customer's purchases and interactions share a partition number."""
    import asyncio

    topic_of = {"purchases": names.purchases, "interactions": names.interactions}
    return asyncio.run(_produce_bulk(((topic_of[r], k, v) for r, k, v in messages)))


async def _produce_bulk(messages: Iterable[tuple[str, bytes, bytes]]) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(
        bootstrap_servers=BROKER.split(","),
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    batches: dict[tuple[str, int], Any] = {}
    futures = []
    sent = 0
    try:
        for topic, key, value in messages:
            available = partitions.get(topic)
            if available is None:
                available = partitions[topic] = sorted(await producer.partitions_for(topic))
            tp = (topic, partitioner(key, available, available))
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batches.pop(tp), tp[0], partition=tp[1]))
                batch = batches[tp] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            sent += 1
        for tp, batch in batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
        await producer.flush()
        for future in futures:
            await future  # raise delivery failures
    finally:
        await producer.stop()
    return sent


# ---------------------------------------------------------------------------------------------- worker
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (and its reaped children), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14..17
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def proc_rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def proc_hwm_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            out.append((labels, float(match.group(3))))
    return out


def metric_sum(text: str, name: str, where: Callable[[dict[str, str]], bool] | None = None) -> float:
    return sum(value for labels, value in metric_samples(text, name) if where is None or where(labels))


@dataclass
class Worker:
    """A `segmenter worker --clock event` process with its own app id, Redis prefix, port and data dir."""

    names: BenchNames
    run: str  # app id / Redis prefix suffix
    data_dir: Path
    store: str = "memory"
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    started_at: float = 0.0  # time.monotonic() at spawn
    code_dir: Path | None = None  # run the worker from this copy of the code (see export_code); None: REPO
    python: Path | None = None  # the interpreter (compare_venv for another commit); None: this one
    log_path: Path | None = None

    def start(self) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.names.env(self.run), "SEGMENTER_WEB_PORT": str(self.port)}
        if self.code_dir is not None:
            env["PYTHONPATH"] = str(self.code_dir)
        self.log_path = self.data_dir.parent / f"worker-{self.run}-{self.port}.log"
        with open(self.log_path, "ab") as log_file:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                [
                    str(self.python or sys.executable),
                    "-m",
                    "streams.cli",
                    "worker",
                    "--clock",
                    "event",
                    "--data-dir",
                    str(self.data_dir),
                    "--store",
                    self.store,
                    *self.extra_args,
                ],
                env=env,
                cwd=self.code_dir or REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self._get("/readyz", 2.0)[0] == 200

    def metrics(self) -> str:
        status, text = self._get("/metrics")
        return text if status == 200 else ""

    def events_total(self) -> float | None:
        text = self.metrics()
        return metric_sum(text, "segmenter_events_total") if text else None

    def wait_ready(self, timeout: float = 300.0, poll: float = 0.1) -> float:
        """Seconds from spawn to the first /readyz 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(poll)
        raise TimeoutError(f"worker not ready after {timeout}s; log {self.log_path}")

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"worker exited ({self.process and self.process.returncode}); log {self.log_path}:\n"
                + self.log_tail()
            )

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_rss_bytes(self.pid)

    def wait_events(self, total: float, timeout: float = 900.0, poll: float = 0.2) -> Progress:
        """Poll /metrics until `segmenter_events_total` reaches `total`; timestamps of first/last progress."""
        progress = Progress(total=total)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            now = time.monotonic()
            count = self.events_total()
            if count is not None:
                progress.sample(now, count, self.cpu_seconds())
                if count >= total:
                    return progress
            time.sleep(poll)
        raise TimeoutError(f"worker processed {progress.last_count} of {total} events in {timeout}s")

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait; seconds it took to exit."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        return time.monotonic() - started

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Progress:
    """Samples of (monotonic time, processed events, worker CPU seconds) while a worker catches up.

    The window runs from the last sample with nothing processed yet (after /readyz, so start-up and restore
    are outside it) to the sample that saw the last event. The counter moves by whole batches (up to 10,000
    events): a window from the first non-zero sample would drop the first batch's time but count the batches
    after it unevenly. The error is at most one poll interval of extra time: the rate is slightly low."""

    total: float
    first_time: float | None = None  # first sample with count > 0
    first_count: float = 0.0
    first_cpu: float = 0.0
    last_time: float | None = None
    last_count: float = 0.0
    last_cpu: float = 0.0
    zero_time: float | None = None  # last sample with count == 0 (the window's start)
    zero_cpu: float = 0.0

    def sample(self, now: float, count: float, cpu: float) -> None:
        if count <= 0:
            self.zero_time, self.zero_cpu = now, cpu
            return
        if self.first_time is None:
            self.first_time, self.first_count, self.first_cpu = now, count, cpu
        self.last_time, self.last_count, self.last_cpu = now, count, cpu

    def _start(self) -> tuple[float | None, float, float]:
        if self.zero_time is not None:
            return self.zero_time, 0.0, self.zero_cpu
        return self.first_time, self.first_count, self.first_cpu

    @property
    def seconds(self) -> float | None:
        start, _, _ = self._start()
        if start is None or self.last_time is None or self.last_time <= start:
            return None
        return self.last_time - start

    @property
    def rate(self) -> float | None:
        """Events/s over the window (excludes start-up and restore)."""
        seconds = self.seconds
        _, count, _ = self._start()
        return (self.last_count - count) / seconds if seconds else None

    @property
    def cpu_per_event_us(self) -> float | None:
        _, count, cpu = self._start()
        events = self.last_count - count
        return (self.last_cpu - cpu) / events * 1e6 if events > 0 else None

    @property
    def cpu_utilisation(self) -> float | None:
        """Worker CPU seconds per wall second while processing (1.0 = one full core)."""
        seconds = self.seconds
        _, _, cpu = self._start()
        return (self.last_cpu - cpu) / seconds if seconds else None


def export_code(ref: str) -> tuple[Path, str]:
    """segmenter/, streams/, state/ and pyproject.toml of a git ref, exported to var/bench/code-<sha> (no
    checkout, no change to the work tree); a Worker with `code_dir` set to it runs that version of the code,
    with the Python of `compare_venv` when that commit's dependencies differ from ours."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = WORK_DIR / f"code-{sha}"
    if not (target / "pyproject.toml").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "archive",
                sha,
                "segmenter",
                "streams",
                "state",
                "pyproject.toml",
                "README.md",
            ],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, sha


def compare_venv(code_dir: Path, sha: str) -> Path:
    """The Python that runs an exported commit: var/bench/venv-<sha>, created on first use with
    `python -m venv` and `pip install <code_dir>` (non-editable: the commit's own pyproject.toml pins its
    dependencies, e.g. faust-streaming for the Faust worker of 1f7ba79). Kept for later runs; delete the
    directory to rebuild it. Returns the venv's python."""
    venv = WORK_DIR / f"venv-{sha}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and python.exists():
        return python
    log(f"creating {venv} for the worker of {sha} (pip install {code_dir}; takes a minute or two)")
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", "--clear", str(venv)], check=True)
    pip_log = WORK_DIR / f"venv-{sha}-pip.log"
    with open(pip_log, "wb") as out:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", str(code_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"pip install of {code_dir} into {venv} failed; see {pip_log}")
    marker.write_text(f"{code_dir}\n")
    return python


# ---------------------------------------------------------------------------------------------- profiling
def py_spy_available() -> bool:
    return _py_spy() is not None


def _py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    from shutil import which

    return which("py-spy")


def py_spy_record(
    pid: int, seconds: float, out_raw: Path, rate: int = 100, idle: bool = False
) -> subprocess.Popen:
    """Start `py-spy record` on a pid in collapsed-stack (raw) format; wait on the returned process.
    `idle`: keep samples of threads waiting (in librdkafka, on a socket), so shares are of wall time."""
    exe = _py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--full-filenames",
            *(["--idle"] if idle else []),
            "--output",
            str(out_raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _samples(path: Path, main_thread_only: bool) -> Iterator[tuple[list[tuple[str, str]], int]]:
    """(frames root first, count) of a py-spy raw file; `main_thread_only`: the worker loop's samples."""
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short_frame(frame) for frame in stack.split(";")]
        if not frames:
            continue
        if main_thread_only and not any(name.startswith("Worker.run ") for name, _ in frames):
            continue
        yield frames, int(count_text)


def collapsed_top(path: Path, top: int = 20, main_thread_only: bool = False) -> dict[str, Any]:
    """From py-spy's raw (collapsed-stack) output: the top functions by self time, the project's functions
    (segmenter/, streams/, state/) by inclusive time, and self time grouped by package."""
    self_counts: dict[str, int] = {}
    total_counts: dict[str, int] = {}
    package_counts: dict[str, int] = {}
    samples = 0
    for frames, count in _samples(path, main_thread_only):
        samples += count
        self_counts[frames[-1][0]] = self_counts.get(frames[-1][0], 0) + count
        package_counts[frames[-1][1]] = package_counts.get(frames[-1][1], 0) + count
        for name in {
            name
            for name, package in frames
            if package in ("segmenter", "streams", "state")
            and "streams/cli/" not in name
            and "topic_names.py" not in name
        }:
            total_counts[name] = total_counts.get(name, 0) + count
    if not samples:
        return {"samples": 0, "self": [], "project_total": [], "packages": []}

    def ranked(counts: dict[str, int], n: int) -> list[tuple[str, float]]:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
        return [(name, count / samples) for name, count in ordered]

    return {
        "samples": samples,
        "self": ranked(self_counts, top),
        "project_total": ranked(total_counts, top),
        "packages": ranked(package_counts, 15),
    }


# The steps of the worker loop (streams/worker.py, streams/checkpoint.py), innermost match wins. A sample
# whose innermost project frame is `Worker._step` itself is inside `consumer.consume` (librdkafka).
LOOP_STEPS = (
    ("Worker._step", "consume (librdkafka: fetch, wait for records)"),
    ("Worker._process", "build input records (Worker._process itself)"),
    ("Engine.process", "engine (Engine.process)"),
    ("Checkpoint.commit", "transaction: begin, send offsets (Checkpoint.commit itself)"),
    ("Checkpoint._produce", "changelog encode + produce (Checkpoint._produce)"),
    ("Checkpoint._flush", "wait for acks (Checkpoint._flush)"),
    ("Checkpoint._commit_transaction", "commit transaction"),
    ("BatchProjection.write", "Redis script call (BatchProjection.write)"),
    ("Checkpoint._write_stores", "store writes (Checkpoint._write_stores)"),
    ("count_batch", "metrics"),
    ("Worker._export_watermarks", "metrics"),
    ("Worker._export_tier_counts", "metrics"),
    ("Worker._observe_progress", "progress / lag (Worker._observe_progress)"),
    ("Health.beat", "other loop work"),
)


def loop_breakdown(path: Path) -> dict[str, Any]:
    """Wall time of the worker's main thread by loop step (needs a `--idle` profile)."""
    labels = dict(LOOP_STEPS)
    counts: dict[str, int] = {}
    samples = 0
    for frames, count in _samples(path, main_thread_only=True):
        samples += count
        label = "outside the loop (start-up, rebalance callbacks, shutdown)"
        for name, _ in reversed(frames):
            function = name.split(" (", 1)[0]
            if function in labels:
                label = labels[function]
                break
            if function in ("Worker._on_assign", "Worker._on_revoke", "Worker._on_lost"):
                label = "rebalance callbacks (restore)"
                break
        counts[label] = counts.get(label, 0) + count
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    return {"samples": samples, "steps": [(name, n / samples) for name, n in ordered] if samples else []}


def _short_frame(frame: str) -> tuple[str, str]:
    """`func (path/to/pkg/module.py:123)` -> (`func (pkg/module.py)`, `pkg`); lines dropped, so a function is
    one row. The package is the first folder under site-packages, the project's top package, or `stdlib`."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip(), "other"
    function, path = match.groups()
    parts = Path(path).parts
    if "site-packages" in parts:
        tail = parts[parts.index("site-packages") + 1 :]
        package = tail[0].removesuffix(".py") if tail else "other"
        return f"{function} ({'/'.join(tail)})", package
    for anchor in ("segmenter", "streams", "state", "bench"):
        if anchor in parts:
            tail = parts[parts.index(anchor) :]
            return f"{function} ({'/'.join(tail)})", anchor
    package = "stdlib:" + (
        parts[-2]
        if len(parts) > 1 and parts[-2] in ("asyncio", "json", "concurrent")
        else parts[-1].removesuffix(".py")
    )
    return f"{function} ({'/'.join(parts[-2:])})", package


def run_with_cleanup(
    names: BenchNames, body: Callable[[], dict[str, Any]], keep: bool = False
) -> dict[str, Any]:
    try:
        return body()
    finally:
        if not keep:
            cleanup(names)


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
