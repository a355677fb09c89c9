"""The worker's processing loop on confluent-kafka: consume a batch, let the engine decide, commit it.

One thread does everything that touches the state, in this order, batch after batch:

1. `consume()` up to `--batch-size` records or `--batch-window` seconds. Rebalance callbacks run inside
   it, between batches (`streams.partitions`): a partition is restored before any of its records is
   handled, and no batch is in flight when one is revoked.
2. `Engine.process` (pure): states, tier changes, dead letters, Redis records.
3. `Checkpoint.commit` (`streams.checkpoint`): one Kafka transaction, then Redis, then the stores. An
   aborted batch is rewound: the consumer seeks back, the engine forgets, the records are handled again.

Wall time enters only as recorded ticks (`--clock wall`: an `advance` record per owned partition of the
control topic every `tick_interval_seconds`), so a partition's outputs are a function of its records.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

from segmenter.engine import (
    DeadLetter,
    Engine,
    EngineConfig,
    InputMessage,
    PendingCheck,
    Record,
)
from segmenter.events import DeadLetterReason, Kind
from segmenter.rules import RuleSet
from state.codec import StoreClocks
from state.redis_projection import BatchProjection
from state.restore import ChangelogTopics
from state.stores import PartitionStore
from streams import control, kafka_clients, metrics
from streams.checkpoint import BatchAborted, Checkpoint
from streams.kafka_admin import create_topics
from streams.partitions import OwnedPartitions
from streams.settings import WorkerSettings
from streams.web import Health, serve

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0
CHANGELOG_CONFIGS = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


class Worker:
    def __init__(self, settings: WorkerSettings, rules: RuleSet, partitions: int) -> None:
        from confluent_kafka import Consumer, Producer

        self.settings = settings
        self.rules = rules
        self.partitions = partitions
        self.topics = settings.topics
        self.kinds = {
            self.topics.purchases: Kind.PURCHASES,
            self.topics.interactions: Kind.INTERACTIONS,
            self.topics.profiles: Kind.PROFILES,
        }
        self.changelogs = ChangelogTopics.of(settings.app_id)
        broker = ",".join(settings.bootstrap_servers)
        instance_id = settings.instance_id or kafka_clients.default_instance_id(settings.data_dir)
        self.consumer = Consumer(
            kafka_clients.consumer_config(broker, settings.app_id, settings.instance_id),
            logger=logging.getLogger("librdkafka.consumer"),
        )
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        producer_config = (
            kafka_clients.transactional_producer_config(broker, f"{settings.app_id}-{instance_id}")
            if self.exactly_once
            else kafka_clients.producer_config(broker)
        )
        self._producer_config = producer_config
        self.producer = Producer(producer_config, logger=logging.getLogger("librdkafka.producer"))
        self.ticks = (
            Producer(kafka_clients.producer_config(broker), logger=logging.getLogger("librdkafka.ticks"))
            if settings.clock == "wall"
            else None
        )
        self.projection = BatchProjection(
            settings.redis_url,
            settings.redis_prefix,
            settings.app_id,
            on_error=metrics.REDIS_ERRORS.inc,
            history=settings.history,
        )
        self.stores: dict[int, PartitionStore] = {}
        owned: OwnedPartitions
        self.engine = Engine(
            rules,
            {},
            StoreClocks(self.stores),
            EngineConfig(currency=settings.currency),
            autoflush=False,
            customers_of=lambda partition: owned.customers_of(partition),
        )
        owned = self.owned = OwnedPartitions(
            self.engine,
            self.stores,
            self.projection,
            self.changelogs,
            self.topics.inputs(),
            kafka_clients.common(broker),
            settings.store,
            settings.data_dir,
            settings.app_id,
        )
        self.checkpoint = Checkpoint(
            self.consumer,
            self.producer,
            self.topics,
            self.changelogs,
            self.projection,
            self.owned.store,
            self.exactly_once,
            self.owned.reproject_all,
        )
        self.health = Health(settings.stall_seconds)
        self._stopping = False
        self._pending_checks: list[int] = []
        self._next_tick = 0.0
        self._next_progress = 0.0

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        """Process until SIGTERM/SIGINT; raise on an error the worker cannot recover from."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        create_topics(
            ",".join(self.settings.bootstrap_servers),
            dict.fromkeys(self.changelogs.all(), self.partitions),
            configs=dict.fromkeys(self.changelogs.all(), CHANGELOG_CONFIGS),
        )
        server = serve(self.health, self.settings.web_host, self.settings.web_port)
        try:
            self.health.redis_ok = self.projection.ping()
            self._publish_rules()
            if self.exactly_once:
                self.producer.init_transactions(60)
            self.consumer.subscribe(
                [*self.topics.inputs(), self.topics.control],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            log.info(
                "segmenter worker started: %d partitions, rules %s, %s, %s store",
                self.partitions,
                self.rules.version[:12],
                self.settings.processing_guarantee,
                self.settings.store,
            )
            while not self._stopping:
                self._step()
        except BaseException as exc:
            self.health.loop_error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._shutdown(server)

    def _publish_rules(self) -> None:
        """The start-up rules' text in Redis by version, for `explain` and the UI (best effort)."""
        from pathlib import Path

        from segmenter.rules import default_rules_text

        path = self.settings.rules_path
        text = Path(path).read_text(encoding="utf-8") if path else default_rules_text()
        self.projection.publish_rules(self.rules.version, text)

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("signal %d: stopping after the batch in progress", signum)
        self._stopping = True

    def _shutdown(self, server: Any) -> None:
        try:
            self.consumer.close()  # leaves the group (runs the revocation callback)
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.warning("closing the consumer: %s", exc)
        if self.ticks is not None:
            self.ticks.flush(5)
        self.owned.close()
        self.projection.close()
        server.shutdown()

    # ------------------------------------------------------------------ the loop
    def _step(self) -> None:
        self.health.beat()
        messages = self._consume_batch()
        now = time.monotonic()
        if self.ticks is not None and now >= self._next_tick:
            self._tick()
            self._next_tick = now + self.settings.tick_interval_seconds
        if messages or self._pending_checks:
            self._process(messages)
        if now >= self._next_progress:
            self._observe_progress()
            self._next_progress = now + PROGRESS_EVERY_S

    def _consume_batch(self) -> list[Any]:
        """Up to `--batch-size` records within `--batch-window`, returned as soon as no more are waiting.

        librdkafka's batch consume waits out its whole timeout unless the batch fills, which would make every
        event of a light load wait the window: short polls instead, until the window ends or a poll comes
        back empty after records arrived (under a backlog the batch fills at once).
        """
        size, window = self.settings.batch_size, self.settings.batch_window_seconds
        deadline = time.monotonic() + window
        messages: list[Any] = []
        while len(messages) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = self.consumer.consume(num_messages=size - len(messages), timeout=min(left, 0.005))
            if not got and messages:
                break
            messages.extend(got)
        return messages

    def _process(self, messages: list[Any]) -> None:
        started = time.perf_counter()
        records: list[Record] = [PendingCheck(p) for p in self._pending_checks if p in self.stores]
        self._pending_checks = []
        offsets: dict[tuple[str, int], int] = {}
        firsts: dict[tuple[str, int], int] = {}
        bad_control: list[DeadLetter] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"Kafka consumer error: {error}")
                log.warning("Kafka consumer: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if partition not in self.stores:
                continue  # not restored (cannot happen: callbacks run inside consume)
            key = (topic, partition)
            firsts.setdefault(key, offset)
            offsets[key] = offset + 1
            kind = self.kinds.get(topic)
            if kind is not None:
                records.append(
                    InputMessage(
                        kind,
                        topic,
                        partition,
                        offset,
                        message.key(),
                        message.value(),
                        message.headers() or [],
                    )
                )
                continue
            try:
                records.append(control.decode(message.value(), partition))
            except control.ControlError as exc:
                bad_control.append(
                    DeadLetter(
                        DeadLetterReason.SCHEMA,
                        str(exc),
                        message.key(),
                        message.value(),
                        message.headers() or [],
                        topic,
                        partition,
                        offset,
                    )
                )
        if not records and not bad_control:
            return
        result = self.engine.process(records)
        if bad_control:
            result.dead_letters.extend(bad_control)
            result.outcomes[(self.topics.control, "dead_letter")] += len(bad_control)
        self.health.waiting_since = time.monotonic()  # a commit waits out Kafka and Redis outages
        try:
            self.checkpoint.commit(result, offsets)
        except BatchAborted as exc:
            metrics.TRANSACTIONS_ABORTED.inc()
            log.warning("batch aborted (%s); its %d record(s) are handled again", exc, len(messages))
            if self.exactly_once:
                self._renew_producer()
            if exc.uncertain and self._committed_through(offsets):
                # The broker committed it after all: its outputs are in Kafka. Restore the partitions from
                # their changelogs (Redis is re-projected past its marks) and go on after the batch.
                log.warning("the batch had committed after all: restoring its partitions from the changelogs")
                partitions = sorted({partition for _, partition in offsets})
                self.owned.lose(partitions)
                self.owned.assign(self.consumer, partitions)
                metrics.count_batch(result)
                return
            self._rewind(firsts)
            return
        finally:
            self.health.waiting_since = None
        metrics.count_batch(result)
        self._export_watermarks({partition for _, partition in offsets})
        if result.transitions:
            self._export_tier_counts()
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _renew_producer(self) -> None:
        """A fresh transactional producer after an abort: librdkafka may be left bumping its epoch after
        broker trouble; `init_transactions` with the same id fences the old one and ends its transaction."""
        from confluent_kafka import Producer

        old = self.producer
        try:
            old.purge()
            old.flush(0)
        except Exception as exc:  # noqa: BLE001 - it is being replaced
            log.info("purging the old producer: %s", exc)
        self.producer = Producer(self._producer_config, logger=logging.getLogger("librdkafka.producer"))
        self.producer.init_transactions(120)  # raises after 120 s: the worker exits (70) and is restarted
        self.checkpoint.producer = self.producer
        log.info("transactional producer renewed after an aborted batch")

    def _committed_through(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Whether the group's committed offsets (a stable read) are the batch's end offsets."""
        from confluent_kafka import TopicPartition

        wanted = [TopicPartition(topic, partition) for topic, partition in offsets]
        found = self.consumer.committed(wanted, timeout=60)
        return all(tp.offset == offsets[(tp.topic, tp.partition)] for tp in found)

    def _rewind(self, firsts: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import TopicPartition

        partitions = {partition for _, partition in firsts}
        keep = {
            (topic, p): self.engine.processed_offset(topic, p)
            for topic in self.topics.inputs()
            for p in partitions
        }
        keep.update({key: offset for key, offset in firsts.items() if key[0] in self.kinds})
        self.owned.rewind(partitions)
        self.engine.seed_offsets(keep)
        for (topic, partition), offset in firsts.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except Exception as exc:  # noqa: BLE001 - being revoked: the next owner starts from the commit
                log.info("cannot seek %s[%d] back to %d: %s", topic, partition, offset, exc)

    # ------------------------------------------------------------------ rebalance callbacks
    def _on_assign(self, consumer: Any, assignment: list[Any]) -> None:
        partitions = sorted({tp.partition for tp in assignment})
        self.health.restoring_since = time.monotonic()
        try:
            self.owned.assign(consumer, partitions)
        finally:
            self.health.restoring_since = None
        self.health.assigned_once = True
        self._warn_rules_in_effect(partitions)
        self.health.redis_ok = self.projection.ping()
        self._pending_checks = list(partitions)
        self._next_tick = 0.0  # record the wall clock on the new partitions at once
        self._export_partition_gauges()
        self.health.progress.restart_clocks(time.monotonic())

    def _warn_rules_in_effect(self, partitions: list[int]) -> None:
        """SPEC section 13: a partition's last `rules` record wins over `--rules`; say so when they differ."""
        differing = {
            version: [p for p in partitions if self.engine.clock_for(p).rules_version == version]
            for p in partitions
            if (version := self.engine.clock_for(p).rules_version) not in (None, self.rules.version)
        }
        for version, ps in differing.items():
            log.warning(
                "partition(s) %s follow the rules applied with `segmenter rules apply` (version %s), not "
                "--rules %s (version %s)",
                ",".join(map(str, ps)),
                version,
                self.rules.source,
                self.rules.version,
            )

    def _on_revoke(self, consumer: Any, assignment: list[Any]) -> None:
        self.owned.revoke({tp.partition for tp in assignment})
        self._export_partition_gauges()

    def _on_lost(self, consumer: Any, assignment: list[Any]) -> None:
        self.owned.lose({tp.partition for tp in assignment})
        self._export_partition_gauges()

    # ------------------------------------------------------------------ time and observability
    def _tick(self) -> None:
        """Record the wall clock (minus the grace period) on each owned partition of the control topic."""
        assert self.ticks is not None
        floor = int(time.time() * 1e6) - int(self.settings.wall_grace_seconds * 1e6)
        value = control.encode_advance(floor, source="wall")
        for partition in self.owned.owned:
            self.ticks.produce(self.topics.control, key=b"wall", value=value, partition=partition)
        self.ticks.poll(0)

    def _observe_progress(self) -> None:
        from confluent_kafka import TopicPartition

        self.health.redis_ok = self.health.redis_ok or self.projection.ping()
        owned = [TopicPartition(t, p) for t in self.topics.inputs() for p in self.owned.owned]
        if not owned:
            self.health.progress.observe(time.monotonic(), {}, {})
            return
        positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(owned)}
        ends: dict[tuple[str, int], int] = {}
        for tp in owned:
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                ends[(tp.topic, tp.partition)] = high
        processed = {key: max(positions.get(key, -1), self.engine.processed_offset(*key)) for key in ends}
        lag = self.health.progress.observe(time.monotonic(), processed, ends)
        metrics.CONSUMER_LAG.clear()
        for (topic, partition), n in lag.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(n)

    def _export_tier_counts(self) -> None:
        metrics.CUSTOMERS.clear()
        for (dimension, tier), count in self.owned.tier_counts().items():
            metrics.CUSTOMERS.labels(dimension, tier).set(count)

    def _export_watermarks(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            micros = self.engine.clock_for(partition).watermark_micros() if partition in self.stores else None
            if micros is not None:
                metrics.WATERMARK.labels(str(partition)).set(micros / 1e6)

    def _export_partition_gauges(self) -> None:
        """After a rebalance: the counts of the partitions owned now, the watermarks of the new ones."""
        self._export_tier_counts()
        metrics.WATERMARK.clear()
        self._export_watermarks(self.owned.owned)
