"""The Faust application: one agent over the inputs and the control topic, two changelog-backed tables.

The agent handles one message at a time inside its event context, so every table write goes to the
changelog partition of the message's partition (Faust takes it from the current event).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import Counter
from functools import partial
from typing import Any

import faust
from aiohttp.web import Response
from faust.streams import _current_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from segmenter.engine import DeadLetter, Effects, Engine, EngineConfig, InputMessage
from segmenter.events import DeadLetterReason, Kind
from segmenter.rules import RuleSet
from state.redis_projection import RedisProjection
from streams import codecs, control, metrics
from streams.committed import ANSWER_SECONDS, CommittedOffsets
from streams.continuity import SourceContinuity
from streams.delivery import DeliveryTracker, Partition
from streams.encoded_table import EncodedCustomers, encode_customer
from streams.kafka_security import KafkaSecurity
from streams.lean_monitor import LeanMonitor
from streams.missed_records import MissedRecords
from streams.preflight import DEAD_LETTER_MAX_BYTES
from streams.progress import PartitionProgress
from streams.settings import WorkerSettings
from streams.sink import EffectSink
from streams.tables import AckedTable

log = logging.getLogger(__name__)
REVOKE_WAIT_SECONDS = 40.0  # a batch that cannot finish this long into a rebalance ends the process
CATCH_UP_AFTER_SECONDS = 20.0  # a partition with lag and no delivery this long is read directly
KAFKA_ACK_TIMEOUT_SECONDS = 120.0  # Kafka acknowledgements of one batch step (longer than a broker restart)


def build_app(settings: WorkerSettings, rules: RuleSet, partitions: int) -> faust.App:
    codecs.register()
    topics = settings.topics
    store = "memory://" if settings.store == "memory" else "rocksdb://"
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=KafkaSecurity.from_env().faust_credentials(),
        store=store,
        datadir=str(settings.data_dir),
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        processing_guarantee=settings.processing_guarantee,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=DEAD_LETTER_MAX_BYTES,
        producer_acks=-1,
        table_standby_replicas=0,
        stream_wait_empty=False,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, 4 * settings.batch_size),
        broker_max_poll_records=max(500, settings.batch_size),
        consumer_max_fetch_size=4 * 1024 * 1024,
        Table=AckedTable,
        monitor=LeanMonitor(),
    )
    # Customers are stored encoded (the changelog's msgpack bytes): ~8x less memory than decoded objects.
    customers = _table(app, "customers", "raw", partitions)
    clocks = _table(app, "clocks", codecs.CLOCK_CODEC, partitions)
    engine = Engine(
        rules, EncodedCustomers(customers), clocks, EngineConfig(currency=settings.currency), autoflush=False
    )
    projection = RedisProjection(settings.redis_url, settings.redis_prefix, on_error=metrics.REDIS_ERRORS.inc)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(topics.purchases, topics.interactions, topics.control, **raw)
    tier_topic = app.topic(topics.tier_changes, **raw)
    dlq_topic = app.topic(topics.dead_letters, **raw)
    control_topic = app.topic(topics.control, **raw)
    sink = EffectSink(engine, projection, tier_topic, dlq_topic)
    kinds = {topics.purchases: Kind.PURCHASES, topics.interactions: Kind.INTERACTIONS}
    wall_grace_micros = int(settings.wall_grace_seconds * 1e6)
    wall_mode = settings.clock == "wall"
    batched_changelog = settings.processing_guarantee == "at_least_once"

    committed = CommittedOffsets(settings, (topics.purchases, topics.interactions))
    continuity = SourceContinuity(DeliveryTracker(), MissedRecords(settings), committed)

    def handle(message: Any, effects: Effects, wall_floor: int | None) -> None:
        """One record, from Faust or read directly (`MissedRecords`): both have Kafka's record attributes."""
        kind = kinds.get(message.topic)
        if kind is None:
            _handle_control(engine, message, effects)
            return
        engine.handle_input(
            InputMessage(
                kind,
                message.topic,
                message.partition,
                message.offset,
                message.key,
                message.value,
                list(message.headers or []),
            ),
            effects,
            wall_floor,
        )

    async def _caught_up(message: Any) -> list[Any]:
        try:
            command = control.decode(message.value)
        except control.ControlError:
            return []  # dead-lettered by `handle`
        if command.kind != "catch-up" or not command.until:
            return []
        return await continuity.caught_up(message.partition, command.until)

    @app.agent(source)
    async def segment(stream: faust.StreamT) -> None:
        effects = Effects()
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_seconds):
            started = time.perf_counter()
            busy.started_at = time.monotonic()
            busy.idle.clear()
            wall_floor = int(time.time() * 1e6) - wall_grace_micros if wall_mode else None
            last_event_of: dict[int, Any] = {}
            touched: set[tuple[str, int]] = set()
            generation = app.consumer_generation_id
            stale = 0
            for event in events:
                message = event.message
                if message.generation_id != generation:
                    # Buffered by `take_events` before a rebalance and handed over after it, possibly while
                    # the tables recover: never handled (its partition is read again from the committed
                    # offset, and `streams.continuity` fills any hole).
                    stale += 1
                    continue
                last_event_of[message.partition] = event
                # A RocksDB store reads a key from the database of the current event's partition; after
                # `take_events` that is the batch's last event, so every read would look in one partition.
                _current_event.set(weakref.ref(event))
                key = (message.topic, message.partition)
                touched.add(key)
                if not continuity.continues(key, message.offset):
                    for record in await continuity.missed_before(key, message.offset):
                        handle(record, effects, wall_floor)
                if message.topic == topics.control:
                    for record in await _caught_up(message):
                        touched.add((record.topic, record.partition))
                        handle(record, effects, wall_floor)
                handle(message, effects, wall_floor)
                continuity.delivered(key, message.offset)
            if stale:
                log.info("%d record(s) fetched before the last rebalance skipped; they are read again", stale)
            batch = asyncio.ensure_future(
                _complete_batch(engine, sink, customers, clocks, last_event_of, effects, batched_changelog)
            )
            try:
                await asyncio.shield(batch)
            except asyncio.CancelledError:
                # The worker is stopping. `take_events` acknowledges this batch's events when it is closed,
                # and a commit may follow: finish the batch first, or leave without committing anything.
                await _finish_or_exit(batch)
                raise
            except Exception:
                # Acknowledging this batch would commit past effects that may not exist: stop the process
                # so the records are redelivered (harmless: replays are recognised by their offsets).
                log.critical("a batch's effects could not be made durable; exiting", exc_info=True)
                logging.shutdown()
                os._exit(70)
            continuity.batch_durable(touched)
            if time.monotonic() - busy.started_at > CATCH_UP_AFTER_SECONDS / 2:
                quiet.restart_clocks(time.monotonic())  # held by an outage: nothing could be delivered
            busy.started_at = None
            busy.idle.set()
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            for partition in last_event_of:
                _export_watermark(engine, partition)

    if wall_mode:

        @app.timer(interval=settings.tick_interval_seconds)
        async def wall_tick() -> None:
            floor = int(time.time() * 1e6) - wall_grace_micros
            for tp in app.assignor.assigned_actives():
                if tp.topic == topics.control:
                    await control_topic.send(
                        key=b"wall",
                        value=control.encode_advance(floor, source="wall"),
                        partition=tp.partition,
                    )

    progress = PartitionProgress(settings.stall_seconds)
    quiet = PartitionProgress(CATCH_UP_AFTER_SECONDS)  # positions delivered, for catch-up requests
    busy = _Busy()

    @app.timer(interval=10.0)
    async def watch_progress() -> None:
        """Consumer lag per owned input partition, and the stall detector behind /healthz."""
        if _recovering(app):
            progress.restart_clocks(time.monotonic())  # nothing is processed meanwhile, by design
            quiet.restart_clocks(time.monotonic())
            if busy.recovering_since is None:
                busy.recovering_since = time.monotonic()
            return
        busy.recovering_since = None
        owned = [tp for tp in app.assignor.assigned_actives() if tp.topic in source.topics]
        try:
            # End offsets are a request to the broker, retried for as long as it is away.
            highwaters = await asyncio.wait_for(app.consumer.highwaters(*owned), timeout=ANSWER_SECONDS)
        except Exception as exc:  # noqa: BLE001 - Kafka away: judged below as an outage
            log.warning("cannot read the end offsets (%r); retrying", exc)
            highwaters = None
        source_ends = {(tp.topic, tp.partition): n for tp, n in (highwaters or {}).items()}
        ends = {key: n for key, n in source_ends.items() if key[0] in kinds}
        offsets = await committed.of(list(source_ends)) if source_ends else {}
        if highwaters is None or offsets is None:
            # Kafka does not answer: an outage, not a stall (a restart could not even start meanwhile).
            progress.restart_clocks(time.monotonic())
            quiet.restart_clocks(time.monotonic())
            return
        metrics.CONSUMER_LAG.clear()
        for (topic, partition), end in ends.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(
                max(0, end - offsets.get((topic, partition), 0))
            )
        # A stall is input that does not reach the agent: judge by the position processed, not the commits
        # (Faust can lag behind on commits for a while after a rebalance; a restart would only replay).
        processed = {key: max(offsets.get(key, 0), engine.processed_offset(*key)) for key in ends}
        progress.observe(time.monotonic(), processed, ends)
        # Inputs and control records Faust dropped at the tail of a quiet partition (`streams.continuity`).
        delivered = {key: continuity.position(key) or offsets.get(key, 0) for key in source_ends}
        quiet.observe(time.monotonic(), delivered, source_ends)
        await _request_catch_up(quiet.stalled(time.monotonic(), busy.started_at), source_ends)

    async def _request_catch_up(stalled: dict[Partition, float], ends: dict[Partition, int]) -> None:
        """Partitions with lag whose delivery stood still: their owner reads them itself (`_caught_up`)."""
        by_partition: dict[int, dict[str, int]] = {}
        for topic, partition in stalled:
            by_partition.setdefault(partition, {})[topic] = ends[(topic, partition)]
        for partition, until in by_partition.items():
            request = _sent(control_topic, b"catch-up", control.encode_catch_up(until), partition)
            try:
                await asyncio.wait_for(request, CATCH_UP_AFTER_SECONDS)
            except Exception as exc:  # noqa: BLE001 - Kafka away: the next round asks again
                log.warning("catch-up request for partition %d not sent (%r); retrying later", partition, exc)
        if stalled:
            quiet.restart_clocks(time.monotonic())

    @app.timer(interval=2.0)
    async def recheck_pending() -> None:
        """Work that needs an event to run in on a quiet partition: a takeover after a crash, or a waiting
        `clock advance` whose inputs were processed by another worker or before a restart (their offsets
        are learnt from the group's committed offsets)."""
        for tp in app.assignor.assigned_actives():
            if tp.topic != topics.control:
                continue
            if engine.has_pending(tp.partition):
                engine.seed_offsets(await committed.of_partition(tp.partition))
            if engine.has_pending(tp.partition) or engine.needs_takeover(tp.partition):
                recheck = control.encode_recheck()
                await control_topic.send(key=b"recheck", value=recheck, partition=tp.partition)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        """Let the batch in flight finish before the partitions go: its writes must not land after the next
        owner started (a zombie's older state or clock could overwrite the new owner's in the changelog)."""
        try:
            await asyncio.wait_for(busy.idle.wait(), timeout=REVOKE_WAIT_SECONDS)
        except TimeoutError:
            log.critical(
                "the batch in flight did not finish within %ss of a rebalance; exiting", REVOKE_WAIT_SECONDS
            )
            logging.shutdown()
            os._exit(70)
        engine.forget_partitions()
        continuity.reset()

    @app.on_rebalance_complete.connect
    async def on_rebalanced(app: faust.App, **kwargs: Any) -> None:
        continuity.take_commits(app.consumer, set(source.topics))
        engine.forget_partitions()
        continuity.reset()
        progress.restart_clocks(time.monotonic())
        quiet.restart_clocks(time.monotonic())
        committed = app.consumer._committed_offset  # noqa: SLF001 - the group's committed input offsets
        engine.seed_offsets(
            {(tp.topic, tp.partition): n for tp, n in committed.items() if tp.topic in kinds and n}
        )
        _recount_customers(engine)

    @app.on_before_shutdown.connect
    async def close_kafka_readers(app: faust.App, **kwargs: Any) -> None:
        await continuity.close()
        await committed.close()

    redis_reached = asyncio.Event()

    @app.task
    async def readiness() -> None:
        await app.tables.recovery.completed.wait()
        await projection.ping()
        redis_reached.set()
        log.info("segmenter worker ready: %d partitions, rules %s", partitions, rules.version[:12])

    def is_ready() -> bool:
        ready = redis_reached.is_set() and app.tables.recovery.completed.is_set() and not app.rebalancing
        metrics.READY.set(1 if ready else 0)
        return ready

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Response:
        is_ready()
        return Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Response:
        now = time.monotonic()
        if busy.recovering_since is not None and now - busy.recovering_since > 4 * settings.stall_seconds:
            # Faust can also stay "rebalancing"/"recovering" for good, holding every partition paused.
            held = now - busy.recovering_since
            return Response(text=f"stalled: rebalancing or recovering tables for {held:.0f}s\n", status=503)
        stalled = {} if _recovering(app) else progress.stalled(now, busy.started_at)
        if stalled:
            shown = ", ".join(
                f"{topic}[{partition}] for {s:.0f}s" for (topic, partition), s in stalled.items()
            )
            return Response(text=f"stalled: input not progressing with lag: {shown}\n", status=503)
        return Response(text="ok\n")

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Response:
        ready = is_ready()
        return Response(text="ready\n" if ready else "not ready\n", status=200 if ready else 503)

    app.segmenter_engine = engine  # type: ignore[attr-defined]
    app.segmenter_projection = projection  # type: ignore[attr-defined]
    return app


def _recovering(app: faust.App) -> bool:
    """Rebalancing or reading changelogs: nothing is processed meanwhile, by design (not a stall)."""
    return bool(app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set())


class _Busy:
    """When the batch in progress started (None between batches), and an event set between batches."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.recovering_since: float | None = None  # since when the worker rebalances or recovers, if it does
        self.idle = asyncio.Event()
        self.idle.set()


def _table(app: faust.App, name: str, codec: str, partitions: int) -> Any:
    """A table with raw UTF-8 keys and msgpack values (Faust derives serializers from types; we set ours).

    The store and changelog topic are created lazily, so setting the serializers here takes effect.
    """
    table = app.Table(name, key_type=str, partitions=partitions)
    table.key_serializer = "raw"
    table.value_serializer = codec
    # Table registration already built the store and the changelog topic with JSON; recovery decodes
    # through the changelog topic, writes through the store: both must use ours.
    for holder in (table.data, table.changelog_topic):
        holder.key_serializer = "raw"
        holder.value_serializer = codec
    return table


async def _complete_batch(
    engine: Engine,
    sink: EffectSink,
    customers: AckedTable,
    clocks: AckedTable,
    last_event_of: dict[int, Any],
    effects: Effects,
    batched_changelog: bool,
) -> None:
    """Make a batch's effects happen in the order that keeps them exact across crashes.

    Each Kafka step acknowledged before the next: the unconfirmed-batch markers, then the customers' states
    (with their outbox) and the clocks; then Redis; then the tier changes and dead letters; then the cleared
    markers. A crash anywhere leaves either nothing durable (the records are replayed) or a batch the next
    owner finishes (`Engine.markers_for`).
    """
    changed_customers, changed_clocks = engine.take_dirty()
    markers = engine.markers_for(changed_customers)
    enter = partial(_enter_partition, last_event_of)

    def put(table: AckedTable, writes: Any, wait: bool = True) -> Any:
        return table.put(writes, enter, batched=batched_changelog, wait=wait)

    def marker_writes(records: dict[str, Any]) -> Any:
        return ((key, marker, marker.partition) for key, marker in records.items())

    # The markers first: if they land and the states do not, the next owner re-sends the customers' previous
    # outboxes (exact duplicates) and the replay decides anew; the other way round would leave durable states
    # whose tier changes nobody sends.
    await _in_time(put(clocks, marker_writes(markers)))
    await _in_time(
        put(customers, ((k, encode_customer(v), v.partition) for k, v in changed_customers.items()))
    )
    await _in_time(put(clocks, ((str(p), clock, p) for p, clock in changed_clocks.items())))
    await sink.project(effects)
    await _acknowledged(sink.send(changed_customers.values(), effects))
    # The same path as the markers, so Kafka keeps them in order; no wait: a lost one only re-sends.
    await put(clocks, marker_writes(engine.confirm(markers)), wait=False)
    # Sent and confirmed: only the changelog's copy of an outbox can still matter (to a successor that finds
    # the batch unconfirmed). The local store drops it: tier-change JSON is most of a fresh customer's bytes.
    for customer_id, state in changed_customers.items():
        if state.outbox:
            state.outbox = []
            enter(state.partition)
            customers.data[customer_id] = encode_customer(state)
    sink.count(effects)
    effects.clear()


async def _finish_or_exit(batch: asyncio.Future) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(batch), timeout=REVOKE_WAIT_SECONDS)
        batch.result()
    except BaseException:  # noqa: BLE001 - cancelled again, failed or too slow: no acknowledgement may follow
        log.critical("stopping in the middle of a batch that did not complete; exiting", exc_info=True)
        logging.shutdown()
        os._exit(70)


def _enter_partition(last_event_of: dict[int, Any], partition: int) -> None:
    _current_event.set(weakref.ref(last_event_of[partition]))


async def _sent(topic: Any, key: bytes, value: bytes, partition: int) -> None:
    """Send one record and wait for Kafka's acknowledgement."""
    await (await topic.send(key=key, value=value, partition=partition))


async def _acknowledged(futures: list[Any]) -> None:
    if futures:
        await _in_time(asyncio.gather(*futures))


async def _in_time(awaitable: Any) -> Any:
    """Kafka acknowledgements of a batch, bounded: a producer that never answers (seen once: a send that
    never resolved after a rebalance) must end the process, not hold the agent, its partitions and their
    commits for ever. Longer than a broker restart."""
    return await asyncio.wait_for(awaitable, timeout=KAFKA_ACK_TIMEOUT_SECONDS)


def _handle_control(engine: Engine, message: Any, effects: Effects) -> None:
    try:
        command = control.decode(message.value)
    except control.ControlError as exc:
        effects.dead_letters.append(
            DeadLetter(
                DeadLetterReason.SCHEMA,
                str(exc),
                message.key,
                message.value,
                list(message.headers or []),
                message.topic,
                message.partition,
                message.offset,
            )
        )
        effects.outcomes[(message.topic, "dead_letter")] += 1
        return
    if command.kind == "recheck":
        engine.apply_ready_pending(message.partition, effects)
    elif command.kind == "catch-up":
        pass  # its records were read and handled before it (`_caught_up`)
    else:
        engine.handle_clock(message.partition, command.to_micros, effects, command.after)


def _export_watermark(engine: Engine, partition: int) -> None:
    micros = engine.clock_for(partition).watermark_micros()
    if micros is not None:
        metrics.WATERMARK.labels(str(partition)).set(micros / 1e6)


def _recount_customers(engine: Engine) -> None:
    """Reset the per-tier gauge from the table after the owned partitions changed."""
    counts: Counter[tuple[str, str]] = Counter()
    for state in engine.customers.values():
        for dimension, tier in state.tiers.items():
            counts[(dimension, tier)] += 1
    metrics.CUSTOMERS.clear()
    for (dimension, tier), count in counts.items():
        metrics.CUSTOMERS.labels(dimension, tier).set(count)
