"""State stores: one per owned partition, holding the encoded customers, the partition clock and the timer
seeds (each customer's next due day), plus the changelog position they reflect.

Two kinds, chosen by `--store`:

- `MemoryStore`: plain dicts of msgpack bytes (a decoded customer costs ~6x the memory). Lost with the
  process, so it is always restored from the start of the changelog.
- `RocksDBStore`: a rocksdict database per partition under the data dir. Values, due days and the
  changelog checkpoint are written in one atomic write batch, so after a restart only the changelog records
  past the checkpoint are read again.

A store is written only with the states of a committed batch (`write`), or by the restore.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

CLOCK_KEY = b"m:clock"
CHECKPOINT_KEY = b"m:checkpoint"
_CUSTOMER = b"c"
_DUE = b"d"


@dataclass
class StoreWrite:
    """What one committed batch (or restore chunk) changes in a partition's store."""

    customers: dict[str, bytes] = field(default_factory=dict)  # customer id -> encoded CustomerState
    due: dict[str, int | None] = field(default_factory=dict)  # customer id -> next due day (None: none)
    clock: bytes | None = None  # encoded PartitionClock, when it changed
    checkpoint: dict[str, int] = field(default_factory=dict)  # changelog topic -> next offset reflected


class PartitionStore(Protocol):
    partition: int

    def get(self, customer_id: str) -> bytes | None: ...

    def items(self) -> Iterator[tuple[str, bytes]]: ...

    def __len__(self) -> int: ...

    def clock(self) -> bytes | None: ...

    def due(self) -> Iterator[tuple[str, int]]: ...

    def checkpoint(self) -> dict[str, int]: ...

    def write(self, change: StoreWrite) -> None: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Dicts of bytes; `checkpoint` is only what was restored or written by this process."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self._customers: dict[str, bytes] = {}
        self._due: dict[str, int] = {}
        self._clock: bytes | None = None
        self._checkpoint: dict[str, int] = {}

    def get(self, customer_id: str) -> bytes | None:
        return self._customers.get(customer_id)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(self._customers.items())

    def __len__(self) -> int:
        return len(self._customers)

    def clock(self) -> bytes | None:
        return self._clock

    def due(self) -> Iterator[tuple[str, int]]:
        return iter(self._due.items())

    def checkpoint(self) -> dict[str, int]:
        return dict(self._checkpoint)

    def write(self, change: StoreWrite) -> None:
        self._customers.update(change.customers)
        for customer_id, day in change.due.items():
            if day is None:
                self._due.pop(customer_id, None)
            else:
                self._due[customer_id] = day
        if change.clock is not None:
            self._clock = change.clock
        self._checkpoint.update(change.checkpoint)

    def clear(self) -> None:
        self._customers.clear()
        self._due.clear()
        self._clock = None
        self._checkpoint.clear()

    def close(self) -> None:
        self.clear()


class RocksDBStore:
    """One rocksdict database per partition; keys `c<id>` (state), `d<id>` (due day), `m:*` (meta)."""

    def __init__(self, path: Path, partition: int) -> None:
        from rocksdict import Options, Rdict

        self.partition = partition
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._db = Rdict(str(path), options=options)

    def get(self, customer_id: str) -> bytes | None:
        value: bytes | None = self._db.get(_CUSTOMER + customer_id.encode())
        return value

    def items(self) -> Iterator[tuple[str, bytes]]:
        return ((key[1:].decode(), value) for key, value in self._prefixed(_CUSTOMER))

    def __len__(self) -> int:
        return sum(1 for _ in self._prefixed(_CUSTOMER))

    def clock(self) -> bytes | None:
        value: bytes | None = self._db.get(CLOCK_KEY)
        return value

    def due(self) -> Iterator[tuple[str, int]]:
        return ((key[1:].decode(), int(value)) for key, value in self._prefixed(_DUE))

    def checkpoint(self) -> dict[str, int]:
        raw = self._db.get(CHECKPOINT_KEY)
        return {} if raw is None else dict(orjson.loads(raw))

    def write(self, change: StoreWrite) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for customer_id, value in change.customers.items():
            batch.put(_CUSTOMER + customer_id.encode(), value)
        for customer_id, day in change.due.items():
            key = _DUE + customer_id.encode()
            if day is None:
                batch.delete(key)
            else:
                batch.put(key, str(day).encode())
        if change.clock is not None:
            batch.put(CLOCK_KEY, change.clock)
        if change.checkpoint:
            batch.put(CHECKPOINT_KEY, orjson.dumps({**self.checkpoint(), **change.checkpoint}))
        self._db.write(batch)

    def clear(self) -> None:
        """Empty the database (its changelog was recreated, or the checkpoint is unusable)."""
        from rocksdict import Options, Rdict

        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._db = Rdict(str(self.path), options=options)

    def close(self) -> None:
        self._db.close()

    def _prefixed(self, prefix: bytes) -> Iterable[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=prefix):
            if not key.startswith(prefix):
                return
            yield key, value


def open_store(kind: str, data_dir: Path, app_id: str, partition: int) -> PartitionStore:
    """The store of one partition: `memory`, or `rocksdb` under `data_dir/app_id/partition-N`."""
    if kind == "rocksdb":
        return RocksDBStore(data_dir / app_id / f"partition-{partition}", partition)
    return MemoryStore(partition)
