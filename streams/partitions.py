"""The partitions a worker owns: their stores, restored before processing, and the engine's view of them.

Assignment (inside the consumer's rebalance callback, so no record of the partition is processed before it
returns): read the group's committed input offsets (a KIP-447 stable read: it waits for a predecessor's
transaction that holds offsets to end), restore the stores from the changelogs, seed the engine's timers
and offsets, and re-project to Redis the customers a crash may have left unprojected.

Revocation: the worker's loop is synchronous, so no batch is in flight when the callback runs (a batch is
committed or aborted before the next `consume`). The stores are parked: a partition assigned back (the
common case with the eager `range` assignor, which revokes everything on every rebalance) resumes from its
checkpoint and reads only what others wrote meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from segmenter.engine import Engine
from state.codec import StoreClocks, StoreCustomers, decode_customer
from state.redis_projection import BatchProjection
from state.restore import ChangelogTopics, restore
from state.stores import MemoryStore, PartitionStore, open_store
from streams import metrics

log = logging.getLogger(__name__)
REPROJECT_CHUNK = 5000


class OwnedPartitions:
    def __init__(
        self,
        engine: Engine,
        stores: dict[int, PartitionStore],
        projection: BatchProjection,
        changelogs: ChangelogTopics,
        input_topics: tuple[str, ...],
        consumer_config: dict[str, Any],
        store_kind: str,
        data_dir: Path,
        app_id: str,
    ) -> None:
        self.engine = engine
        self.projection = projection
        self.changelogs = changelogs
        self.input_topics = input_topics
        self.consumer_config = consumer_config
        self.store_kind = store_kind
        self.data_dir = data_dir
        self.app_id = app_id
        self.stores = stores  # shared with the engine's views (`customers_of`, `clocks`)
        self._views: dict[int, StoreCustomers] = {}
        self._parked: dict[int, PartitionStore] = {}
        self.restoring = False

    def store(self, partition: int) -> PartitionStore:
        return self.stores[partition]

    def customers_of(self, partition: int) -> StoreCustomers:
        view = self._views.get(partition)
        if view is None or view.store is not self.stores.get(partition):
            store = self.stores.get(partition)
            view = StoreCustomers(store if store is not None else MemoryStore(partition))
            if store is not None:
                self._views[partition] = view
        return view

    def clocks(self) -> StoreClocks:
        return StoreClocks(self.stores)

    @property
    def owned(self) -> list[int]:
        return sorted(self.stores)

    # ------------------------------------------------------------------ rebalance
    def assign(self, consumer: Any, partitions: Iterable[int]) -> None:
        new = sorted(set(partitions) - set(self.stores))
        if not new:
            return
        self.restoring = True
        started = time.monotonic()
        try:
            committed = self._committed(consumer, new)
            stores = {p: self._parked.pop(p, None) or self._open(p) for p in new}
            projected = self.projection.projected(new)
            restored = restore(self.consumer_config, self.changelogs, stores, projected)
            self.stores.update(stores)
            for partition in new:
                self.engine.forget_partitions([partition])
                self.engine.seed_timers(partition, stores[partition].due())
            self.engine.seed_offsets(committed)
            for partition, result in restored.items():
                self._reproject(partition, result.to_project, result.customers_end)
            seconds = time.monotonic() - started
            records = sum(r.records for r in restored.values())
            metrics.RESTORE_SECONDS.observe(seconds)
            metrics.RESTORED_RECORDS.inc(records)
            log.info(
                "assigned partitions %s: %d changelog records restored, %d customers re-projected in %.2fs",
                new,
                records,
                sum(len(r.to_project) for r in restored.values()),
                seconds,
            )
        finally:
            self.restoring = False
        self._close_parked()

    def revoke(self, partitions: Iterable[int]) -> None:
        gone = sorted(set(partitions) & set(self.stores))
        for partition in gone:
            self._parked[partition] = self.stores.pop(partition)
        self.engine.forget_partitions(gone)
        if gone:
            log.info("revoked partitions %s", gone)

    def lose(self, partitions: Iterable[int]) -> None:
        """Partitions taken away without a clean revocation (session timeout): their stores are stale."""
        gone = sorted(set(partitions) & set(self.stores))
        for partition in gone:
            self.stores.pop(partition).close()
        self.engine.forget_partitions(gone)
        if gone:
            log.warning("lost partitions %s (session timed out); their stores are dropped", gone)

    def rewind(self, partitions: Iterable[int]) -> None:
        """An aborted batch: the engine forgets what it cached; the stores never saw the batch."""
        chosen = [p for p in partitions if p in self.stores]
        self.engine.forget_partitions(chosen)
        for partition in chosen:
            self.engine.seed_timers(partition, self.stores[partition].due())

    def close(self) -> None:
        for store in [*self.stores.values(), *self._parked.values()]:
            store.close()
        self.stores.clear()
        self._parked.clear()

    # ------------------------------------------------------------------ helpers
    def _open(self, partition: int) -> PartitionStore:
        return open_store(self.store_kind, self.data_dir, self.app_id, partition)

    def _close_parked(self) -> None:
        for store in self._parked.values():
            store.close()
        self._parked.clear()

    def _committed(self, consumer: Any, partitions: list[int]) -> dict[tuple[str, int], int]:
        from confluent_kafka import TopicPartition

        wanted = [TopicPartition(topic, p) for topic in self.input_topics for p in partitions]
        found = consumer.committed(wanted, timeout=60)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def _reproject(self, partition: int, customer_ids: set[str], end: int) -> None:
        """Write the restored states of these customers to Redis (version-guarded), then mark `end`."""
        store = self.stores[partition]
        ids = sorted(customer_ids)
        dimensions = self.engine.projection_dimensions(partition)
        for start in range(0, max(1, len(ids)), REPROJECT_CHUNK):
            records = {}
            emitted = {}
            for customer_id in ids[start : start + REPROJECT_CHUNK]:
                raw = store.get(customer_id)
                if raw is None:
                    continue
                state = decode_customer(raw)
                if state.as_of is not None:
                    records[customer_id] = self.engine.record_fields(state)
                    emitted[customer_id] = state.emitted
            last = start + REPROJECT_CHUNK >= len(ids)
            self.projection.write(records, dimensions, {partition: end} if last else {}, emitted=emitted)

    def reproject_all(self) -> None:
        """Redis lost its data while this worker ran: write every owned customer again (version-guarded)."""
        for partition, store in self.stores.items():
            ids = {customer_id for customer_id, _ in store.items()}
            self._reproject(partition, ids, store.checkpoint().get(self.changelogs.customers, 0))

    def tier_counts(self) -> dict[tuple[str, str], int]:
        """Customers per (dimension, tier) over the owned partitions, from their clocks."""
        totals: dict[tuple[str, str], int] = {}
        for partition in self.stores:
            clock = self.engine.clock_for(partition)
            for dimension, counts in clock.tier_counts.items():
                for tier, count in counts.items():
                    totals[(dimension, tier)] = totals.get((dimension, tier), 0) + count
        return totals
