"""`segmenter produce FILE...`: JSON lines or CSV of events into the input topics (SPEC sections 2 and 9).

JSON lines are sent verbatim (the line's bytes, without its line terminator), so bad input can be tested end
to end; CSV rows are converted to JSON events with a column mapping. Routing: `type` purchase/refund goes to
the purchases topic, an event with `attributes` and no `type` to the profiles topic, anything else to the
interactions topic; the key is the `customer_id` (UTF-8).

Also home of the asynchronous producing loop `pump()` that `segmenter simulate` shares: aiokafka with its
record-batch API (about 10x the throughput of kafka-python's per-message `send()` here), acks=all, idempotent,
linger 20 ms, 256 KiB batches, 2 MiB requests, in-order per partition, a tqdm progress bar, optional rate
limiting, and a clean stop on Ctrl-C (flush, summary, exit 130).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import queue
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from streams.cli.options import broker_option
from streams.topic_names import TopicNames, topic_options

PURCHASES = "purchases"
INTERACTIONS = "interactions"
PROFILES = "profiles"
PURCHASE_TYPES = frozenset({"purchase", "refund"})
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_RECORD_BYTES = MAX_REQUEST_BYTES - 1024  # key + value; the rest is record and batch overhead
BATCH_BYTES = 256 * 1024
LINGER_S = 0.02

# CSV: known SPEC fields, in the order they are written into the JSON event
CSV_FIELDS = ("event_id", "type", "customer_id", "ts", "amount", "currency", "order_id", "category")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_BARE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

T = TypeVar("T")


# ---- parsing (pure) ---------------------------------------------------------------------------------------


@dataclass
class SourceStats:
    """What the readers saw besides the messages they yielded."""

    not_json: int = 0  # JSONL lines that are not a JSON object (sent unkeyed)
    skipped: int = 0  # blank lines, CSV rows that could not be converted, messages over the size limit
    skip_reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # a few skipped/unkeyed lines, for the summary

    def skip(self, reason: str, where: str, detail: str | None = None) -> None:
        self.skipped += 1
        self.skip_reasons[reason] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {detail or reason}")


class RowError(ValueError):
    """A CSV row that cannot become an event: `reason` is the summary category, str() the detail."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason


def route_event(event: dict[str, Any]) -> str:
    """The input role of an event: purchases for type purchase/refund, profiles for an event with
    `attributes` (SPEC section 10), interactions otherwise."""
    if "attributes" in event and "type" not in event:
        return PROFILES
    return PURCHASES if event.get("type") in PURCHASE_TYPES else INTERACTIONS


def _key_of(event: dict[str, Any]) -> bytes | None:
    customer_id = event.get("customer_id")
    if isinstance(customer_id, str):
        return customer_id.encode("utf-8")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        return str(customer_id).encode("utf-8")
    return None


def route_jsonl_line(line: bytes, topic_override: str | None = None) -> tuple[str, bytes | None, bytes, bool]:
    """(role, key, value, is_json_object) of one JSON line; the value is the line's bytes, verbatim.

    `line` must not include its line terminator. A line that is not a JSON object goes to the purchases
    role (or `topic_override`), without a key.
    """
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        return topic_override or PURCHASES, None, line, False
    return topic_override or route_event(document), _key_of(document), line, True


def parse_mappings(items: Iterable[str]) -> dict[str, str]:
    """`--map TARGET=SOURCE` options -> {target field: source column}."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise click.BadParameter(
                f"{item!r} is not FIELD=COLUMN (e.g. event_id=order_no)", param_hint="--map"
            )
        if not _FIELD_NAME.match(target):
            raise click.BadParameter(f"{target!r} is not a valid event field name", param_hint="--map")
        if target in mapping:
            raise click.BadParameter(f"field {target!r} is mapped twice", param_hint="--map")
        mapping[target] = source
    return mapping


@lru_cache(maxsize=8192)  # dates repeat a lot in real files; strptime is slow
def convert_ts(text: str, ts_format: str) -> str:
    """Parse `text` with a strptime format; RFC 3339 in UTC (naive times are taken as UTC).

    A date-only format gives midnight: `20250103` with `%Y%m%d` -> `2025-01-03T00:00:00Z`.
    """
    moment = datetime.strptime(text, ts_format)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}Z"
    )


def row_event_id(file_name: str, row_number: int) -> str:
    """Deterministic event_id of a CSV row: same file name and row number, same id."""
    digest = hashlib.sha1(f"{file_name}\0{row_number}".encode(), usedforsecurity=False).hexdigest()
    return f"row-{digest[:32]}"


@dataclass(frozen=True)
class CsvSpec:
    mapping: dict[str, str] = field(default_factory=dict)  # target field -> source column
    ts_format: str | None = None
    default_type: str | None = None
    event_id_from_row: bool = False


class CsvConverter:
    """Turns the rows of one CSV file (header first) into JSON events, or raises a one-line ClickException."""

    def __init__(self, header: list[str], spec: CsvSpec, file_name: str) -> None:
        self.spec = spec
        self.file_name = file_name
        header = [column.strip() for column in header]
        positions = {column: index for index, column in enumerate(header) if column}
        for target, source in spec.mapping.items():
            if source not in positions:
                raise click.ClickException(
                    f"{file_name}: column {source!r} (--map {target}={source}) is not in the header "
                    f"({', '.join(header) or 'empty'})"
                )
        # target field -> column index: known fields by their own name, then explicit mappings
        self.columns: dict[str, int] = {name: positions[name] for name in CSV_FIELDS if name in positions}
        for target, source in spec.mapping.items():
            self.columns[target] = positions[source]
        order = [name for name in CSV_FIELDS if name in self.columns]
        order += [name for name in self.columns if name not in CSV_FIELDS]
        self.order = [(name, self.columns[name]) for name in order]
        missing = [name for name in ("customer_id", "ts") if name not in self.columns]
        if "event_id" not in self.columns and not spec.event_id_from_row:
            missing.append("event_id")
        if "type" not in self.columns and not spec.default_type:
            missing.append("type")
        if missing:
            hints = []
            for name in missing:
                hint = f"--map {name}=COLUMN"
                if name == "event_id":
                    hint += " or --event-id-from-row"
                elif name == "type":
                    hint += " or --default-type TYPE"
                hints.append(f"{name} ({hint})")
            raise click.ClickException(f"{file_name}: no column for {'; '.join(hints)}")
        if (
            "amount" not in self.columns
            and "type" not in self.columns
            and spec.default_type in PURCHASE_TYPES
        ):
            raise click.ClickException(
                f"{file_name}: no amount column for {spec.default_type} events (--map amount=COLUMN)"
            )

    def convert(self, row: list[str], row_number: int) -> dict[str, Any]:
        """The event of one data row (row_number counts data rows from 1); RowError if it cannot be built."""
        event: dict[str, Any] = {}
        width = len(row)
        for name, index in self.order:
            value = row[index].strip() if index < width else ""
            if value:
                event[name] = value
        spec = self.spec
        if "event_id" not in event and spec.event_id_from_row:
            event["event_id"] = row_event_id(self.file_name, row_number)
            event = {"event_id": event.pop("event_id"), **event}
        if "type" not in event and spec.default_type:
            event["type"] = spec.default_type
        if "customer_id" not in event:
            raise RowError("empty customer_id")
        if "ts" not in event:
            raise RowError("empty ts")
        if spec.ts_format:
            try:
                event["ts"] = convert_ts(event["ts"], spec.ts_format)
            except ValueError:
                raise RowError(
                    "ts does not match --ts-format", f"ts {event['ts']!r} does not match {spec.ts_format!r}"
                ) from None
        elif _BARE_DATE.match(event["ts"]):
            event["ts"] = f"{event['ts']}T00:00:00Z"
        # keep the SPEC field order whatever the mapping order was
        return {name: event[name] for name in (*CSV_FIELDS, *event) if name in event}


def csv_messages(
    rows: Iterable[list[str]],
    spec: CsvSpec,
    file_name: str,
    stats: SourceStats,
    topic_override: str | None = None,
) -> Iterator[tuple[str, bytes | None, bytes]]:
    """(role, key, value) of every convertible data row of one CSV file; the others are counted as skipped."""
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        raise click.ClickException(f"{file_name}: empty file, expected a CSV header row")
    converter = CsvConverter(header, spec, file_name)
    for row_number, row in enumerate(iterator, start=1):
        if not any(cell.strip() for cell in row):
            stats.skip("blank row", f"{file_name} row {row_number}")
            continue
        try:
            event = converter.convert(row, row_number)
        except RowError as exc:
            stats.skip(exc.reason, f"{file_name} row {row_number}", str(exc))
            continue
        yield topic_override or route_event(event), event["customer_id"].encode("utf-8"), orjson.dumps(event)


def jsonl_messages(
    lines: Iterable[bytes | None], file_name: str, stats: SourceStats, topic_override: str | None = None
) -> Iterator[tuple[str, bytes | None, bytes] | None]:
    """(role, key, value) of every non-blank line; None passes through (idle reader: `_stdin_lines`)."""
    for line_number, raw in enumerate(lines, start=1):
        if raw is None:
            yield None
            continue
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            stats.skip("blank line", f"{file_name} line {line_number}")
            continue
        role, key, value, ok = route_jsonl_line(line, topic_override)
        if not ok:
            stats.not_json += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{file_name} line {line_number}: not a JSON object, sent unkeyed")
        yield role, key, value


def count_lines(path: str) -> int | None:
    """Line count of a regular file (a last line without newline counts); None when not cheaply known."""
    if path == "-" or not os.path.isfile(path):
        return None
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def _stdin_lines() -> Iterator[bytes | None]:
    """Lines of stdin read by a thread; None while nothing arrived for 50 ms, so a slow pipe
    (`tail -f x.jsonl | segmenter produce -`) still gets its messages sent and Ctrl-C still works."""
    lines: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)

    def reader() -> None:
        try:
            for line in sys.stdin.buffer:
                lines.put(line)
        finally:
            lines.put(b"")  # end marker: a real line always has at least its newline

    threading.Thread(target=reader, name="stdin-reader", daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            yield None
            continue
        if line == b"":
            return
        yield line


# ---- producing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetRate:
    """Marker an item source may yield: limit the rate (events/s) from here on; 0 = unlimited."""

    rate: float


Item = tuple[str, bytes | None, bytes]  # (topic name, key, value)
_END = object()


@dataclass
class PumpResult:
    per_topic: Counter[str] = field(default_factory=Counter)
    too_large: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.per_topic.values())

    @property
    def rate(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0


def _producer_error(broker: str, exc: BaseException) -> click.ClickException:
    return click.ClickException(f"producing to {broker} failed: {type(exc).__name__}: {exc}")


async def pump(
    broker: str,
    items: Iterable[Item | SetRate | None],
    *,
    stop: asyncio.Event,
    rate: float = 0.0,
    max_events: int | None = None,
    progress: Any = None,
    client_id: str = "segmenter-produce",
) -> PumpResult:
    """Send every item in order; None items mean "nothing yet" (the loop idles briefly).

    Messages are partitioned like every Kafka client does it (murmur2 of the key, random without a key)
    and appended to one open record batch per partition, shipped when full, after LINGER_S, before a
    rate-limit pause, when idle and at the end (aiokafka's batch API: ~3x the throughput of one `send()`
    per message). Per partition the order is the order of `items`. Stops early when `stop` is set or
    `max_events` were sent; always flushes what was sent. Delivery failures and an unreachable broker
    raise a one-line ClickException.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError
    from aiokafka.partitioner import DefaultPartitioner

    from streams.kafka_security import aiokafka_security

    producer = AIOKafkaProducer(
        bootstrap_servers=broker.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=int(LINGER_S * 1000),
        max_batch_size=BATCH_BYTES,
        max_request_size=MAX_REQUEST_BYTES,
        request_timeout_ms=30_000,
        **aiokafka_security(),
    )
    try:
        await asyncio.wait_for(producer.start(), timeout=15)
    except (TimeoutError, KafkaError, OSError) as exc:
        with suppress(Exception):
            await producer.stop()
        raise click.ClickException(
            f"cannot connect a producer to the Kafka broker at {broker} ({type(exc).__name__}); "
            "is it running?"
        ) from None

    result = PumpResult()
    failure: list[BaseException] = []
    per_topic = result.per_topic
    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    open_batches: dict[tuple[str, int], Any] = {}

    def delivered(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None and not failure:
            failure.append(future.exception())  # type: ignore[arg-type]
            stop.set()

    async def ship(topic_partition: tuple[str, int]) -> None:
        batch = open_batches.pop(topic_partition)
        batch.close()
        future = await producer.send_batch(batch, topic_partition[0], partition=topic_partition[1])
        future.add_done_callback(delivered)

    async def ship_all() -> float:
        for topic_partition in list(open_batches):
            await ship(topic_partition)
        return time.monotonic()

    started = last_ship = time.monotonic()
    sent = shown = 0
    if max_events is not None and max_events <= 0:
        items = ()
    window_start, window_sent = started, 0  # rate limiting restarts when the rate changes
    try:
        iterator = iter(items)
        while not stop.is_set():  # checked before pulling, so nothing is generated and then dropped
            item = next(iterator, _END)
            if item is _END:
                break
            if item is None:
                last_ship = await ship_all()
                await asyncio.sleep(0.02)
                continue
            if isinstance(item, SetRate):
                rate = item.rate
                window_start, window_sent = time.monotonic(), 0
                continue
            topic, key, value = item  # type: ignore[misc]
            if len(value) + (len(key) if key else 0) > MAX_RECORD_BYTES:
                result.too_large += 1
                continue
            available = partitions.get(topic)
            if available is None:
                available = partitions[topic] = sorted(await producer.partitions_for(topic))
            topic_partition = (topic, partitioner(key, available, available))
            batch = open_batches.get(topic_partition)
            if batch is None:
                batch = open_batches[topic_partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: ship, start the next
                await ship(topic_partition)
                batch = open_batches[topic_partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            per_topic[topic] += 1
            sent += 1
            window_sent += 1
            if rate > 0:
                now = time.monotonic()
                ahead = window_start + window_sent / rate - now
                if ahead > 0.002:
                    if ahead >= LINGER_S or now - last_ship >= LINGER_S:
                        last_ship = await ship_all()
                    await asyncio.sleep(ahead)
            elif not sent & 255:
                now = time.monotonic()
                if now - last_ship >= LINGER_S:
                    last_ship = await ship_all()
                await asyncio.sleep(0)  # let the sender task and signal handlers run
            if progress is not None and sent - shown >= 512:
                progress.update(sent - shown)
                shown = sent
            if max_events is not None and sent >= max_events:
                break
        await ship_all()
        try:
            await asyncio.wait_for(producer.flush(), timeout=90)
        except TimeoutError:
            raise click.ClickException(f"timed out flushing messages to {broker}") from None
    except KafkaError as exc:
        raise _producer_error(broker, exc) from None
    finally:
        if progress is not None and sent > shown:
            progress.update(sent - shown)
        with suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=30)
        result.elapsed = time.monotonic() - started
    if failure:
        raise _producer_error(broker, failure[0])
    return result


def run_interruptible(main: Callable[[asyncio.Event], Awaitable[T]]) -> tuple[T, bool]:
    """Run `main(stop)` in an event loop; SIGINT/SIGTERM set `stop` once (a second Ctrl-C aborts).

    Returns main's result and whether a signal asked to stop.
    """
    interrupted = False

    async def runner() -> T:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []

        def on_signal() -> None:
            nonlocal interrupted
            interrupted = True
            stop.set()
            for sig in installed:
                loop.remove_signal_handler(sig)
            installed.clear()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            return await main(stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(runner()), interrupted


def make_progress(total: int | None, quiet: bool, desc: str) -> Any:
    """A tqdm bar on stderr, or None when quiet or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        width = 0
    # a terminal reporting 0x0 (some ptys) would make tqdm print nothing
    size: dict[str, Any] = {"dynamic_ncols": True} if width > 0 else {"ncols": 100, "nrows": 40}
    return tqdm(total=total, desc=desc, unit="ev", unit_scale=True, mininterval=0.25, smoothing=0.1, **size)


def check_input_topics(broker: str, names: Iterable[str]) -> None:
    """One clear line when the broker is down or a target topic does not exist (auto-creation is off)."""
    from streams.kafka_admin import partition_counts

    counts = partition_counts(broker, list(names))
    missing = [name for name, count in counts.items() if count is None]
    if missing:
        raise click.ClickException(
            f"topic(s) {', '.join(missing)} do not exist on {broker}; run "
            "`segmenter topics create --partitions N` (with the same topic options)"
        )


def summary_lines(result: PumpResult, extra: Iterable[str] = ()) -> list[str]:
    width = max([len(topic) for topic in result.per_topic] + [8])
    lines = [f"  {topic:<{width}}  {count:>10,}" for topic, count in sorted(result.per_topic.items())]
    if not lines:
        lines = ["  (nothing)"]
    head = "stopped by signal after" if result.interrupted else "produced"
    lines.insert(
        0, f"{head} {result.total:,} message(s) in {result.elapsed:.2f} s ({result.rate:,.0f} events/s):"
    )
    lines.extend(extra)
    return lines


# ---- command ----------------------------------------------------------------------------------------------


def _resolve_format(path: str, forced: str | None) -> str:
    if forced:
        return forced
    suffix = Path(path).suffix.lower()
    if path == "-" or suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise click.ClickException(f"{path}: cannot tell the format from the extension; use --format jsonl|csv")


@click.command()
@broker_option
@topic_options
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="Input format. Default: from the extension (.jsonl/.ndjson: JSON lines, .csv: CSV; "
    "- (stdin): JSON lines).",
)
@click.option(
    "--topic",
    "topic_choice",
    type=click.Choice([PURCHASES, INTERACTIONS, PROFILES]),
    default=None,
    help="Send everything to this input topic instead of routing by `type`.",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="CSV: take event field FIELD from column COLUMN (repeatable). Columns named like a "
    "field (event_id, type, customer_id, ts, amount, currency, order_id, category) "
    "are used as is; other columns are ignored.",
)
@click.option(
    "--ts-format",
    default=None,
    metavar="STRPTIME",
    help="CSV: strptime format of the ts column (e.g. %Y%m%d); converted to RFC 3339 UTC "
    "(date only: midnight, ...T00:00:00Z). Without it ts is kept as is, except that a "
    "bare YYYY-MM-DD gets T00:00:00Z.",
)
@click.option(
    "--default-type",
    default=None,
    metavar="TYPE",
    help="CSV: event type for rows without one (e.g. purchase).",
)
@click.option(
    "--event-id-from-row",
    is_flag=True,
    help="CSV: event_id = hash of file name and row number where the file has none (deterministic).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Limit to this many events/s (0: as fast as possible).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def produce(
    ctx: click.Context,
    broker: str,
    topics: TopicNames,
    files: tuple[str, ...],
    file_format: str | None,
    topic_choice: str | None,
    mappings: tuple[str, ...],
    ts_format: str | None,
    default_type: str | None,
    event_id_from_row: bool,
    rate: float,
    quiet: bool,
) -> None:
    """Produce events from JSON-lines or CSV FILEs (- for stdin) into the input topics, keyed by customer_id.

    JSON lines are sent verbatim, so invalid events reach the worker and its dead-letter topic; a line that
    is not a JSON object goes unkeyed to the purchases topic (or --topic).
    """
    spec = CsvSpec(parse_mappings(mappings), ts_format, default_type, event_id_from_row)
    formats = [_resolve_format(path, file_format) for path in files]
    if files.count("-") > 1:
        raise click.UsageError("stdin (-) can be given only once")
    if ts_format:
        try:
            convert_ts(datetime(2001, 2, 3, 4, 5, 6).strftime(ts_format), ts_format)
        except ValueError:
            raise click.BadParameter(
                f"{ts_format!r} is not a usable strptime format", param_hint="--ts-format"
            ) from None
    for path, fmt in zip(files, formats, strict=True):  # bad mappings fail before anything is sent
        if fmt == "csv" and path != "-":
            _check_csv_header(path, spec)
    names = {PURCHASES: topics.purchases, INTERACTIONS: topics.interactions, PROFILES: topics.profiles}
    # The profiles topic is checked only when chosen: deployments from before it may not have it yet.
    targets = [names[topic_choice]] if topic_choice else [topics.purchases, topics.interactions]
    check_input_topics(broker, targets)

    counts = [count_lines(path) for path in files]
    total: int | None = 0
    for count, fmt in zip(counts, formats, strict=True):
        if count is None or total is None:
            total = None
        else:
            total += count - (1 if fmt == "csv" and count else 0)
    stats = SourceStats()

    def items() -> Iterator[Item | None]:
        for path, fmt in zip(files, formats, strict=True):
            name = "stdin" if path == "-" else Path(path).name
            if fmt == "jsonl":
                if path == "-":
                    source: Iterator[Any] = jsonl_messages(_stdin_lines(), name, stats, topic_choice)
                    yield from (None if m is None else (names[m[0]], m[1], m[2]) for m in source)
                    continue
                with open(path, "rb") as handle:
                    for message in jsonl_messages(handle, name, stats, topic_choice):
                        yield None if message is None else (names[message[0]], message[1], message[2])
            else:
                with _open_text(path) as handle:
                    try:
                        rows = csv.reader(handle)
                        for role, key, value in csv_messages(rows, spec, name, stats, topic_choice):
                            yield names[role], key, value
                    except (csv.Error, UnicodeDecodeError) as exc:
                        raise click.ClickException(f"{name}: not readable as UTF-8 CSV: {exc}") from None

    progress = make_progress(total, quiet, "produce")
    try:
        result, interrupted = run_interruptible(
            lambda stop: pump(broker, items(), stop=stop, rate=rate, progress=progress)
        )
    finally:
        if progress is not None:
            progress.close()
    result.interrupted = interrupted
    skipped = stats.skipped + result.too_large
    extra = [f"  skipped {skipped:,}" + (f" ({_reasons(stats, result)})" if skipped else "")]
    if stats.not_json:
        extra.append(f"  warning: {stats.not_json:,} line(s) were not JSON objects; sent without a key")
    extra += [f"  e.g. {example}" for example in stats.examples[:3]]
    click.echo("\n".join(summary_lines(result, extra)))
    if interrupted:
        ctx.exit(130)


def _check_csv_header(path: str, spec: CsvSpec) -> None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{Path(path).name}: not readable as UTF-8 CSV: {exc}") from None
    if header is None:
        raise click.ClickException(f"{Path(path).name}: empty file, expected a CSV header row")
    CsvConverter(header, spec, Path(path).name)


def _open_text(path: str) -> io.TextIOWrapper:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - the caller closes it


def _reasons(stats: SourceStats, result: PumpResult) -> str:
    reasons = Counter(stats.skip_reasons)
    if result.too_large:
        reasons[f"larger than {MAX_RECORD_BYTES} bytes"] += result.too_large
    return ", ".join(f"{count:,} {reason}" for reason, count in reasons.most_common())
