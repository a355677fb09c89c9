"""Machinery of the fault-injection replay: paced producer, worker slots, metric scraping, output checks.

The checks compare the pipeline's outputs with the independent oracle (tests/oracle) in the same way as
tests/integration/test_pipeline.py: order-independent facts for every customer (final tiers, Redis counts
and sets, lifetime totals, dead letters), exact transition sequences for customers whose events travel on
one input topic only, and gap-free `seq` per customer and dimension for everyone.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.integration.pipeline_helpers import read_topic, redis_state
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import model

REPO = Path(__file__).resolve().parents[2]
TRANSITION_KEYS = (
    "event_id",
    "customer_id",
    "dimension",
    "seq",
    "from",
    "to",
    "at",
    "reason",
    "cause_event_id",
)
METRIC_LINE = re.compile(r"^(segmenter_[a-z_]+_total)(?:\{([^}]*)\})? (\S+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass
class ReplayConfig:
    """Sizes of one fault run; every field has an environment variable (see docs/RELIABILITY.md)."""

    customers: int = field(default_factory=lambda: env_int("FAULTS_CUSTOMERS", 1200))
    days: int = field(default_factory=lambda: env_int("FAULTS_DAYS", 730))
    start: str = "2024-01-01"
    partitions: int = field(default_factory=lambda: env_int("FAULTS_PARTITIONS", 6))
    seed: int = field(default_factory=lambda: env_int("FAULTS_SEED", random.randrange(1, 10**6)))
    produce_seconds: float = field(default_factory=lambda: env_float("FAULTS_PRODUCE_SECONDS", 60))
    kills: int = field(default_factory=lambda: env_int("FAULTS_KILLS", 6))
    redis_down_seconds: float = field(default_factory=lambda: env_float("FAULTS_REDIS_DOWN_SECONDS", 8))
    kafka_down_seconds: float = field(default_factory=lambda: env_float("FAULTS_KAFKA_DOWN_SECONDS", 3))
    bad_per_reason: int = field(default_factory=lambda: env_int("FAULTS_BAD_PER_REASON", 30))
    converge_seconds: float = field(default_factory=lambda: env_float("FAULTS_CONVERGE_SECONDS", 120))

    @property
    def clock_to(self) -> str:
        end = date.fromisoformat(self.start) + timedelta(days=self.days + 1)
        return f"{end.isoformat()}T00:00:00Z"


# ------------------------------------------------------------------------------------------------ Kafka
def create_topics(broker: str, names: Names, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.split(","))
    try:
        admin.create_topics(
            [
                NewTopic(name, partitions, 1)
                for name in (
                    names.purchases,
                    names.interactions,
                    names.tier_changes,
                    names.dead_letters,
                    names.control,
                )
            ]
        )
    finally:
        admin.close()


def end_offsets(broker: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=broker.split(","), request_timeout_ms=30_000)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return dict(consumer.end_offsets(tps))
    finally:
        consumer.close()


def committed_offsets(broker: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=broker.split(","), request_timeout_ms=30_000)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()


def lag(broker: str, group: str, topics: Sequence[str]) -> int:
    """Messages of `topics` not yet committed by the group (transaction markers included)."""
    ends = end_offsets(broker, topics)
    done = committed_offsets(broker, group)
    return sum(max(0, end - max(0, done.get(tp, 0))) for tp, end in ends.items())


class PacedProducer(threading.Thread):
    """Produces the messages in order, spread evenly over `seconds`; survives a broker restart."""

    def __init__(self, broker: str, names: Names, messages: Sequence[model.Message], seconds: float) -> None:
        super().__init__(daemon=True, name="paced-producer")
        self.broker = broker
        self.topic_of = {"purchases": names.purchases, "interactions": names.interactions}
        self.messages = messages
        self.seconds = seconds
        self.sent = 0
        self.errors: list[str] = []
        self.done = threading.Event()
        self.elapsed = 0.0

    @property
    def progress(self) -> float:
        return self.sent / max(1, len(self.messages))

    def run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.broker.split(","),
            acks="all",
            enable_idempotence=True,  # a retry after the broker restart must not duplicate or reorder
            linger_ms=20,
            max_request_size=2 * 1024 * 1024,
            delivery_timeout_ms=600_000,
            request_timeout_ms=30_000,
            max_block_ms=300_000,
        )
        started = time.monotonic()
        total = len(self.messages)
        try:
            for index, (kind, key, value) in enumerate(self.messages):
                if index % 200 == 0:
                    due = started + self.seconds * index / total
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                future = producer.send(self.topic_of[kind], key=key, value=value)
                future.add_errback(lambda exc: self.errors.append(repr(exc)))
                self.sent = index + 1
            producer.flush(timeout=600)
        except Exception as exc:  # recorded, the test fails on it
            self.errors.append(repr(exc))
        finally:
            producer.close(timeout=30)
            self.elapsed = time.monotonic() - started
            self.done.set()


# ------------------------------------------------------------------------------------------------ workers
def stack_dump(pid: int) -> str:
    """The Python stacks of a worker (py-spy, if installed: FAULTS_PY_SPY or on PATH), for the evidence of a
    stall; empty when py-spy is not available."""
    import shutil

    tool = os.environ.get("FAULTS_PY_SPY") or shutil.which("py-spy")
    if not tool:
        return ""
    try:
        result = subprocess.run(
            [tool, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy failed: {exc!r}"
    return result.stdout + result.stderr


def parse_metrics(text: str) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    out: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for name, labels, value in METRIC_LINE.findall(text):
        out[(name, tuple(sorted(LABEL.findall(labels or ""))))] += float(value)
    return out


LIVENESS_STALL_SECONDS = 30  # the workers' --stall-seconds (production default: 300)
UNRECOVERABLE_EXIT_CODE = 70  # `segmenter worker` exits 70 on an error it cannot recover from
LIVENESS_FAILURES = 3  # consecutive failed /healthz polls (1 s apart) before a restart


@dataclass
class Slot:
    """One worker identity (data dir, web port); its process is killed and restarted: incarnations."""

    name: str
    worker: WorkerProcess
    incarnation: int = 0
    expected_down: bool = True  # True while not running or while we are stopping/killing it
    needs_restart: bool = False  # refused to start while Redis was down: start again once it is back
    liveness_failures: int = 0
    last_health: str = ""  # the text of the last failing /healthz answer
    starts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.incarnation += 1
        self.starts.append(time.monotonic())
        self.worker.start(wait_ready=0)
        self.expected_down = False

    def alive(self) -> bool:
        return self.worker.process is not None and self.worker.process.poll() is None


class Fleet:
    """Worker slots plus a poller that scrapes each live incarnation's metrics and notices deaths."""

    def __init__(
        self, broker: str, redis_url: str, names: Names, root: Path, guarantee: str, store: str = "memory"
    ) -> None:
        self.broker, self.redis_url, self.names, self.root = broker, redis_url, names, root
        self.guarantee, self.store = guarantee, store
        self.slots: dict[str, Slot] = {}
        self.snapshots: dict[tuple[str, int], Counter] = {}
        self.unexpected_exits: list[str] = []
        # Workers restarted because /healthz reported a stalled partition (what a liveness probe does).
        self.liveness_restarts: list[str] = []
        # Wall-clock times (time.time()) of the moments a worker could leave a batch half done: kill -9 and
        # liveness restarts (SIGKILL after 30 s). at_least_once duplicates must follow one of them.
        self.interruptions: list[float] = []
        # Exits at start-up because Kafka or Redis did not answer (by design: one line, exit 1); restarted
        # once the server is back.
        self.refused_starts: list[str] = []
        self.down_windows: dict[
            str, tuple[float, float]
        ] = {}  # "kafka"/"redis" -> (stopped at, back + grace)
        self.events: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="metrics-poller")
        self.t0 = time.monotonic()
        self.live_log: Path | None = None

    def note(self, text: str) -> None:
        stamp = round(time.monotonic() - self.t0, 1)
        self.events.append((stamp, text))
        if self.live_log is not None:
            with open(self.live_log, "a") as log:
                log.write(f"{time.strftime('%H:%M:%S')} +{stamp:7.1f}s {text}\n")

    def slot(self, name: str) -> Slot:
        if name not in self.slots:
            worker = WorkerProcess(
                self.broker,
                self.redis_url,
                self.names,
                self.root / name / "data",
                # Each slot keeps its data dir across kills: a RocksDB store restarts warm after a crash.
                extra_args=[
                    "--processing-guarantee",
                    self.guarantee,
                    "--store",
                    self.store,
                    "--stall-seconds",
                    str(LIVENESS_STALL_SECONDS),
                ],
            )
            self.slots[name] = Slot(name, worker)
        return self.slots[name]

    def start(self, name: str) -> None:
        with self._lock:
            self.slot(name).start()
        self.note(f"start {name}#{self.slots[name].incarnation}")
        if not self._poller.is_alive():
            self._poller.start()

    def kill(self, name: str) -> None:
        slot = self.slots[name]
        with self._lock:
            slot.expected_down = True
            self._scrape(slot)
            self.interruptions.append(time.time())
            slot.worker.stop(kill=True)
        self.note(f"kill -9 {name}#{slot.incarnation}")

    def stop(self, name: str) -> None:
        slot = self.slots[name]
        with self._lock:
            slot.expected_down = True
            self._scrape(slot)
        started = time.monotonic()
        slot.worker.stop(kill=False)  # SIGTERM, SIGKILL after 30 s
        code = slot.worker.process.returncode if slot.worker.process else None
        if code == -9:
            self.interruptions.append(time.time())
        how = "needed SIGKILL after 30 s" if code == -9 else f"exit {code}"
        self.note(f"stop {name}#{slot.incarnation}: {how} in {time.monotonic() - started:.1f}s")

    def _scrape(self, slot: Slot) -> None:
        if not slot.alive():
            return
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{slot.worker.port}/metrics", timeout=2
            ) as response:
                text = response.read().decode()
        except OSError:
            return
        self.snapshots[(slot.name, slot.incarnation)] = parse_metrics(text)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for slot in self.slots.values():
                    if slot.alive() and not slot.expected_down and self._failing_liveness(slot):
                        label = f"{slot.name}#{slot.incarnation}"
                        self.liveness_restarts.append(f"{label}: {slot.last_health}")
                        if slot.worker.process is not None:
                            dump = stack_dump(slot.worker.process.pid)
                            if dump:
                                path = self.root / f"stack-{slot.name}-{slot.incarnation}.txt"
                                path.write_text(dump)
                                self.note(f"stacks of {label}: {path}")
                        self.note(f"liveness probe failed on {label}: restart ({slot.last_health})")
                        slot.expected_down = True
                        self.interruptions.append(time.time())
                        slot.worker.stop(kill=False)
                        slot.start()
                        self.note(f"start {slot.name}#{slot.incarnation}")
                    if slot.alive():
                        self._scrape(slot)
                    elif not slot.expected_down:
                        slot.expected_down = True
                        code = slot.worker.process.returncode if slot.worker.process else None
                        label = f"{slot.name}#{slot.incarnation} exit {code}"
                        if code == UNRECOVERABLE_EXIT_CODE:
                            label += " (unrecoverable error)"
                        if self._refused_start(slot):
                            slot.needs_restart = True
                            self.refused_starts.append(label)
                            self.note(f"{label}: refused to start while a server was down (restarted later)")
                        else:
                            # Exit 70 (an unrecoverable error) or anything else is a failure of the run;
                            # the worker is restarted, as an orchestrator would, so the run goes on.
                            tail = " | ".join(slot.worker.log_tail(8).splitlines())[-1500:]
                            self.unexpected_exits.append(f"{label}: {tail}")
                            self.note(f"UNEXPECTED EXIT {label} (restarted)")
                            self.interruptions.append(time.time())
                            slot.start()
                            self.note(f"start {slot.name}#{slot.incarnation}")
            self._stop.wait(1.0)

    def _failing_liveness(self, slot: Slot) -> bool:
        """Like a Kubernetes liveness probe: /healthz not 200 several polls in a row (connection errors do
        not count: a starting worker does not serve yet)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{slot.worker.port}/healthz", timeout=2):
                slot.liveness_failures = 0
        except urllib.error.HTTPError as exc:
            slot.liveness_failures += 1
            slot.last_health = exc.read().decode(errors="replace").strip()[:300]
        except OSError:
            pass
        if slot.liveness_failures >= LIVENESS_FAILURES:
            slot.liveness_failures = 0
            return True
        return False

    def server_down(self, server: str) -> None:
        self.down_windows[server] = (time.monotonic(), float("inf"))
        if server == "kafka":  # a batch whose sends fail is aborted; without transactions it is half written
            self.interruptions.append(time.time())

    def server_back(self, server: str, grace: float = 15.0) -> None:
        self.down_windows[server] = (self.down_windows[server][0], time.monotonic() + grace)
        if server == "kafka":
            self.interruptions.append(time.time())

    def _refused_start(self, slot: Slot) -> bool:
        tail = slot.worker.log_tail(5)
        now = time.monotonic()
        for server, text in (("redis", "cannot reach Redis"), ("kafka", "cannot reach the Kafka broker")):
            window = self.down_windows.get(server)
            if window is not None and window[0] <= now <= window[1] and text in tail:
                return True
        return False

    def quiet_until(self) -> float:
        """When the last outage's grace period ends (refused starts may be reported until then)."""
        return max((end for _, end in self.down_windows.values()), default=0.0)

    def restart_refused(self) -> None:
        for name, slot in self.slots.items():
            if slot.needs_restart and not slot.alive():
                slot.needs_restart = False
                self.start(name)

    def close(self) -> None:
        self._stop.set()
        if self._poller.is_alive():  # it may be restarting a worker: let it finish, then stop everyone
            self._poller.join(timeout=120)
        with self._lock:
            for slot in self.slots.values():
                slot.expected_down = True
                slot.worker.stop(kill=False)

    def totals(self) -> Counter:
        """Counters summed over every incarnation's last scrape (a killed one loses < 1 s of counts)."""
        total: Counter = Counter()
        for snapshot in self.snapshots.values():
            total.update(snapshot)
        return total


def cli(
    args: list[str], names: Names, broker: str, redis_url: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    env = {**os.environ, **names.env(), "SEGMENTER_BROKER": broker, "SEGMENTER_REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def code_version() -> str:
    """The product's commit (and whether the work tree differs from it): the suite runs on moving code."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    dirty = git("status", "--porcelain", "--", "segmenter", "streams", "state")
    if not dirty:
        return git("rev-parse", "--short", "HEAD")
    diff = hashlib.sha256(git("diff", "HEAD", "--", "segmenter", "streams", "state").encode()).hexdigest()
    return f"{git('rev-parse', '--short', 'HEAD')} + uncommitted changes (diff sha256 {diff[:10]})"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> float:
    started = time.monotonic()
    last_error = ""
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception as exc:  # a broker restart or a worker restart in progress: try again
            last_error = f" (last error: {exc!r})"
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------------ oracle
def start_oracle(
    messages: Sequence[model.Message], partitions: int, clock_to: str
) -> tuple[ProcessPoolExecutor, list[Future]]:
    """The oracle (slow, literal) per partition in two forked processes, while the replay goes on."""
    pool = ProcessPoolExecutor(2, mp_context=get_context("fork"))
    by_partition = model.split_by_partition(messages, partitions)
    futures = [
        pool.submit(model.run_partition, by_partition[p], clock_to, partition=p) for p in sorted(by_partition)
    ]
    return pool, futures


def stop_oracle(pool: ProcessPoolExecutor) -> None:
    """Do not wait for an oracle a failed run no longer needs: end its processes."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def oracle_result(futures: Sequence[Future], timeout: float) -> model.Result:
    """Merge the partitions' results like `model.run_partitions`."""
    deadline = time.monotonic() + timeout
    result = model.Result()
    for future in futures:
        part = future.result(timeout=max(1.0, deadline - time.monotonic()))
        clash = set(result.final) & set(part.final)
        assert not clash, f"customers applied on more than one partition: {sorted(clash)[:5]}"
        result.transitions += part.transitions
        result.transition_features += part.transition_features
        result.outcomes += part.outcomes
        result.dead_letter_reasons += part.dead_letter_reasons
        result.dead_letters += part.dead_letters
        result.dead_letter_sources += part.dead_letter_sources
        result.message_outcomes += part.message_outcomes
        result.final.update(part.final)
        result.watermarks.update(part.watermarks)
    result.tier_counts = model._tier_counts(result.final)
    return result


# ------------------------------------------------------------------------------------------------ checks
def single_topic_customers(messages: Sequence[model.Message]) -> set[str]:
    kinds: dict[str, set[str]] = defaultdict(set)
    for kind, _key, value in messages:
        verdict = model.validate_message(kind, _key, value)
        if isinstance(verdict, model.Event):
            kinds[verdict.customer_id].add(kind)
    return {cid for cid, seen in kinds.items() if len(seen) == 1}


@dataclass
class Findings:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def problem(self, kind: str, text: str) -> None:
        if len(self.problems[kind]) < 20:
            self.problems[kind].append(text)
        self.figures[f"problems.{kind}"] = self.figures.get(f"problems.{kind}", 0) + 1


def check_transitions(
    records: list,
    expected: model.Result,
    single: set[str],
    findings: Findings,
    interruptions: Sequence[float] | None = None,
) -> None:
    """Every (customer, dimension, seq) once, seq 1..n gap-free, from/to chained, oracle equality.

    `interruptions` None (exactly_once): any repeated (customer, dimension, seq) is a problem, byte-identical
    or not. A list of wall-clock times (at_least_once): a repeat is allowed only when its first copy was
    written in the batch a kill -9 (or a broker outage) cut, i.e. in the DUPLICATE_WINDOW_S before one of
    them; any other repeat is a problem (`unexplained_duplicate`).
    """
    first: dict[tuple[str, str, int], tuple[bytes, tuple, int]] = {}
    streams: dict[tuple[str, str], list[dict]] = defaultdict(list)
    exact_duplicates = conflicting = explained = 0
    for record in records:
        change = orjson.loads(record.value)
        key = (change["customer_id"], change["dimension"], change["seq"])
        ident = (record.value, tuple(record.headers or ()))
        if key in first:
            identical = first[key][:2] == ident
            exact_duplicates += identical
            conflicting += not identical
            what = "byte-identical" if identical else f"{first[key][0][:160]!r} vs {record.value[:160]!r}"
            stamps = f"written at {first[key][2] / 1000:.1f} and {record.timestamp / 1000:.1f}"
            if interruptions is None:
                findings.problem("duplicate", f"{key} {what}, {stamps}")
            elif _after_interruption(first[key][2] / 1000, interruptions):
                explained += 1
            else:
                findings.problem("unexplained_duplicate", f"{key} {what}, {stamps}")
            continue
        first[key] = (*ident, record.timestamp)
        streams[key[:2]].append(change)
        if record.key != change["customer_id"].encode():
            findings.problem("tier_change_key", f"{key}: key {record.key!r}")
        if change["event_id"] != f"{key[0]}:{key[1]}:{key[2]}":
            findings.problem("tier_change_event_id", f"{key}: {change['event_id']}")
    findings.figures["transitions_read"] = len(records)
    findings.figures["transitions_unique"] = len(first)
    findings.figures["transitions_exact_duplicates"] = exact_duplicates
    findings.figures["transitions_conflicting_duplicates"] = conflicting
    findings.figures["transitions_duplicates_after_interruptions"] = explained
    findings.figures["streams"] = len(streams)
    for (customer_id, dimension), stream in streams.items():
        seqs = [c["seq"] for c in stream]
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
            findings.problem("seq_gap", f"{customer_id}/{dimension}: seqs {seqs[:20]} missing {missing[:10]}")
            continue
        if seqs != sorted(seqs):
            findings.problem("seq_order", f"{customer_id}/{dimension}: {seqs[:20]}")
        ordered = sorted(stream, key=lambda c: c["seq"])
        if [c["from"] for c in ordered] != [None] + [c["to"] for c in ordered[:-1]]:
            findings.problem("from_to_chain", f"{customer_id}/{dimension}")
    # final tiers from the transitions = the oracle's final tiers
    for customer_id, view in expected.final.items():
        for dimension, tier in view.tiers.items():
            stream = streams.get((customer_id, dimension))
            last = max(stream, key=lambda c: c["seq"])["to"] if stream else None
            if last != tier:
                findings.problem(
                    "final_tier_in_topic", f"{customer_id}/{dimension}: topic {last} oracle {tier}"
                )
    extra = {cid for cid, _ in streams} - set(expected.final)
    for customer_id in sorted(extra)[:20]:
        findings.problem("unknown_customer_in_topic", customer_id)
    # exact sequences where they are defined (customers on one input topic)
    compared = 0
    for customer_id in single:
        for dimension in model.DEFAULT_DIMENSIONS:
            got = [{k: c[k] for k in TRANSITION_KEYS} for c in streams.get((customer_id, dimension), [])]
            got.sort(key=lambda c: c["seq"])
            want = [
                {k: t[k] for k in TRANSITION_KEYS} for t in expected.transitions_of(customer_id, dimension)
            ]
            compared += len(want)
            if got != want:
                findings.problem(
                    "single_topic_sequence", f"{customer_id}/{dimension}: {len(got)} vs {len(want)}"
                )
    findings.figures["transitions_compared_exactly"] = compared
    findings.figures["single_topic_customers"] = len(single)


DUPLICATE_WINDOW_S = 60.0  # a batch cut by a kill was written at most this long before it (generous)


def _after_interruption(written_at: float, interruptions: Sequence[float]) -> bool:
    return any(at - DUPLICATE_WINDOW_S <= written_at <= at + 2.0 for at in interruptions)


def check_redis(
    redis_url: str, prefix: str, expected: model.Result, single: set[str], findings: Findings
) -> None:
    records, counts, members = redis_state(redis_url, prefix)
    findings.figures["redis_records"] = len(records)
    if set(records) != set(expected.final):
        missing, extra = set(expected.final) - set(records), set(records) - set(expected.final)
        findings.problem(
            "redis_customers", f"{len(missing)} missing {sorted(missing)[:5]}, {len(extra)} extra"
        )
    for customer_id, view in expected.final.items():
        record = records.get(customer_id)
        if record is None:
            continue
        if {d: record.get(d) for d in view.tiers} != view.tiers:
            findings.problem("redis_tiers", f"{customer_id}: {record} vs {view.tiers}")
        for name in ("lifetime_purchases", "lifetime_monetary"):
            if record.get(name) != view.features.get(name):
                findings.problem(
                    "redis_lifetime", f"{customer_id}.{name}: {record.get(name)} vs {view.features.get(name)}"
                )
        for name in ("first_purchase_at", "last_purchase_at"):
            if record.get(name) != getattr(view, name):
                findings.problem(
                    "redis_purchase_at", f"{customer_id}.{name}: {record.get(name)} vs {getattr(view, name)}"
                )
        if customer_id in single:
            full = dict(record)
            full.pop("rules_version", None)
            full.pop("version", None)
            if full != view.redis_hash():
                findings.problem("redis_single_topic_record", f"{customer_id}: {full} vs {view.redis_hash()}")
    if counts != expected.tier_counts:
        findings.problem("redis_counts", f"{counts} vs {expected.tier_counts}")
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for customer_id, view in expected.final.items():
        for dimension, tier in view.tiers.items():
            wanted[(dimension, tier)].add(customer_id)
    got = {k: v for k, v in members.items() if v}
    if got != dict(wanted):
        for key in set(got) | set(wanted):
            if got.get(key, set()) != wanted.get(key, set()):
                findings.problem(
                    "redis_sets", f"{key}: {len(got.get(key, ()))} vs {len(wanted.get(key, ()))}"
                )


def check_dead_letters(records: list, expected: model.Result, inputs: set[str], findings: Findings) -> None:
    by_source: dict[tuple[str, str, str], tuple] = {}
    duplicates = 0
    for record in records:
        headers = dict(record.headers or ())
        source = tuple(
            headers.get(h, b"").decode()
            for h in ("x-dlq-source-topic", "x-dlq-source-partition", "x-dlq-source-offset")
        )
        ident = (record.key, record.value, headers.get("x-dlq-reason", b"").decode())
        if source[0] not in inputs:
            findings.problem("dlq_source", f"{source}")
        if source in by_source:
            duplicates += 1
            if by_source[source] != ident:
                findings.problem("dlq_conflicting_duplicate", f"{source}")
            continue
        by_source[source] = ident
    findings.figures["dead_letters_read"] = len(records)
    findings.figures["dead_letters_unique"] = len(by_source)
    findings.figures["dead_letters_duplicates"] = duplicates
    got = Counter((reason, key or b"", value) for key, value, reason in by_source.values())
    want = Counter((reason, key or b"", value) for reason, key, value in expected.dead_letters)
    if got != want:
        findings.problem(
            "dlq_content", f"{sum((got - want).values())} unexpected, {sum((want - got).values())} missing"
        )


def applied_events(messages: Sequence[model.Message]) -> dict[str, list[model.Event]]:
    """Valid events once per (customer, event_id): eventgen re-sends duplicates within the horizon only."""
    seen: set[tuple[str, str]] = set()
    out: dict[str, list[model.Event]] = defaultdict(list)
    for kind, key, value in messages:
        verdict = model.validate_message(kind, key, value)
        if isinstance(verdict, model.Event) and (verdict.customer_id, verdict.event_id) not in seen:
            seen.add((verdict.customer_id, verdict.event_id))
            out[verdict.customer_id].append(verdict)
    return out


def check_tables(broker: str, app_id: str, events: dict[str, list[model.Event]], findings: Findings) -> None:
    """Table state (changelog) against the applied events: nothing lost, nothing applied twice.

    Lifetime totals cover all time; the day buckets the table keeps (purchases within 365 days and
    interactions within 30 days of the customer's `as_of`) are compared bucket by bucket, so a lost or
    doubly applied interaction in that range shows too.
    """
    from state.changelog import read_customers

    customers = read_customers(broker, app_id)
    findings.figures["table_customers"] = len(customers)
    if set(customers) != set(events):
        findings.problem(
            "table_customers",
            f"{len(set(events) - set(customers))} missing, {len(set(customers) - set(events))} extra",
        )
    buckets_checked = 0
    for customer_id, state in customers.items():
        evs = events.get(customer_id, [])
        purchases = [e for e in evs if e.role == "purchase"]
        refunds = [e for e in evs if e.role == "refund"]
        interactions = [e for e in evs if e.role == "interaction"]
        if state.lifetime_purchases != len(purchases) or state.lifetime_cents != sum(
            e.cents for e in purchases
        ) - sum(e.cents for e in refunds):
            findings.problem(
                "table_lifetime",
                f"{customer_id}: {state.lifetime_purchases}/{state.lifetime_cents} vs "
                f"{len(purchases)}/{sum(e.cents for e in purchases) - sum(e.cents for e in refunds)}",
            )
        if state.as_of is None:
            continue
        p_cut, i_cut = state.as_of - 365 + 1, state.as_of - 30 + 1
        want_p: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for e in purchases + refunds:
            if e.day >= p_cut:
                slot = want_p[e.day]
                if e.role == "purchase":
                    slot[0] += 1
                    slot[1] += e.cents
                else:
                    slot[2] += e.cents
        got_p = {
            d: [n, c, r]
            for d, n, c, r in zip(state.p_days, state.p_count, state.p_cents, state.r_cents, strict=True)
            if d >= p_cut
        }
        want_i = Counter(e.day for e in interactions if e.day >= i_cut)
        got_i = {d: n for d, n in zip(state.i_days, state.i_count, strict=True) if d >= i_cut}
        buckets_checked += len(want_p) + len(want_i)
        if got_p != dict(want_p):
            findings.problem("table_purchase_buckets", f"{customer_id}: {got_p} vs {dict(want_p)}")
        if got_i != dict(want_i):
            findings.problem("table_interaction_buckets", f"{customer_id}: {got_i} vs {dict(want_i)}")
        last_interaction = max((e.day for e in interactions), default=None)
        if state.last_interaction_day != last_interaction:
            findings.problem(
                "table_last_interaction", f"{customer_id}: {state.last_interaction_day} vs {last_interaction}"
            )
    findings.figures["table_buckets_checked"] = buckets_checked


def metric_sums(totals: Counter, names: Names) -> dict[str, float]:
    kind = {names.purchases: "purchases", names.interactions: "interactions"}
    out: dict[str, float] = defaultdict(float)
    for (metric, labels), value in totals.items():
        labels_d = dict(labels)
        if metric == "segmenter_events_total":
            out[
                f"events.{kind.get(labels_d.get('topic'), labels_d.get('topic'))}.{labels_d.get('outcome')}"
            ] += value
        elif metric == "segmenter_dead_letters_total":
            out[f"dead_letters.{labels_d.get('reason')}"] += value
        elif metric == "segmenter_tier_transitions_total":
            out["transitions"] += value
        elif metric == "segmenter_redis_errors_total":
            out["redis_errors"] += value
        elif metric == "segmenter_transactions_aborted_total":
            out["transactions_aborted"] += value
        elif metric == "segmenter_restored_records_total":
            out["restored_records"] += value
    return dict(out)


def read_all(broker: str, topic: str) -> list:
    return read_topic(broker, topic, read_committed=True)
