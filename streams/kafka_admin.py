"""Small helpers on kafka-python's KafkaAdminClient: partition counts and idempotent topic creation.

Every failure a user can cause or meet (broker down, bad replication factor, a topic that exists with
another partition count) ends as a `click.ClickException` with one clear line; the timeouts are short
(10 s by default) so an unreachable broker is reported in seconds, not minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

DEFAULT_TIMEOUT_S = 10.0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36

# kafka-python logs connection failures at ERROR; the CLI reports them itself, once.
logging.getLogger("kafka").addHandler(logging.NullHandler())


class BrokerUnavailable(click.ClickException):
    """The bootstrap servers did not answer in time."""


class PartitionCountMismatch(click.ClickException):
    """Existing topics have another partition count than requested. `statuses` covers every topic."""

    def __init__(self, mismatches: Mapping[str, tuple[int, int]], statuses: Mapping[str, str]) -> None:
        shown = "; ".join(
            f"{name} has {actual} partition(s), {wanted} requested"
            for name, (actual, wanted) in mismatches.items()
        )
        super().__init__(
            f"existing topic(s) with a different partition count: {shown}. Kafka cannot shrink a topic: "
            "delete and recreate it, or use other topic names"
        )
        self.mismatches = dict(mismatches)
        self.statuses = dict(statuses)


def _unreachable(broker: str, timeout_s: float, exc: BaseException) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"cannot reach the Kafka broker at {broker} within {timeout_s:g}s ({type(exc).__name__}); "
        "is it running? (local stack: deploy/local/stack.sh start)"
    )


@contextmanager
def admin_client(broker: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[KafkaAdminClient]:
    """A connected KafkaAdminClient, closed on exit; Kafka errors become one-line ClickExceptions."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    from streams.kafka_security import kafka_python_security

    timeout_ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=broker.split(","),
            client_id="segmenter-admin",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            reconnect_backoff_max_ms=1000,
            **kafka_python_security(),
        )
    except (KafkaTimeoutError, KafkaConnectionError, OSError) as exc:
        raise _unreachable(broker, timeout_s, exc) from None
    try:
        yield admin
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        raise _unreachable(broker, timeout_s, exc) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka admin request to {broker} failed: {exc}") from None
    finally:
        with suppress(Exception):  # closing must not hide the real outcome
            admin.close()


def _counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    from kafka.errors import for_code

    counts: dict[str, int | None] = dict.fromkeys(names)
    if not names:
        return counts
    for topic in admin.describe_topics(list(dict.fromkeys(names))):
        name, error = topic.get("name"), topic.get("error_code", 0)
        if name not in counts:
            continue
        if error == UNKNOWN_TOPIC_OR_PARTITION:
            counts[name] = None
        elif error:
            raise click.ClickException(f"cannot describe topic {name}: {for_code(error).__name__}")
        else:
            counts[name] = len(topic.get("partitions") or [])
    return counts


def partition_counts(
    broker: str, names: Iterable[str], timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, int | None]:
    """Partition count of each named topic; None for a topic that does not exist."""
    names = list(names)
    with admin_client(broker, timeout_s) as admin:
        return _counts(admin, names)


def create_topics(
    broker: str,
    names_with_partitions: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, str]:
    """Create the topics that do not exist yet; return name -> "created" | "existed".

    Idempotent: existing topics (also ones created concurrently) are fine. An existing topic whose partition
    count differs from the requested one raises PartitionCountMismatch after the missing topics were created.
    `configs` maps a topic name to its topic-level configs (used for new topics only).
    """
    from kafka.errors import KafkaTimeoutError, for_code

    configs = configs or {}
    names = list(names_with_partitions)
    for name, partitions in names_with_partitions.items():
        if partitions < 1:
            raise click.ClickException(f"topic {name}: the partition count must be >= 1, not {partitions}")
    statuses: dict[str, str] = {}
    with admin_client(broker, timeout_s) as admin:
        before = _counts(admin, names)
        missing = [name for name in names if before[name] is None]
        statuses.update({name: "existed" for name in names if before[name] is not None})
        if missing:
            request = {
                name: {
                    "num_partitions": names_with_partitions[name],
                    "replication_factor": replication_factor,
                    "configs": {key: str(value) for key, value in configs.get(name, {}).items()},
                }
                for name in missing
            }
            result = admin.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
            for topic in result.get("topics", []):
                name, error = topic.get("name"), topic.get("error_code", 0)
                if error == 0:
                    statuses[name] = "created"
                elif error == TOPIC_ALREADY_EXISTS:
                    statuses[name] = "existed"
                else:
                    detail = topic.get("error_message") or for_code(error).__name__
                    raise click.ClickException(f"cannot create topic {name}: {detail}")
            created = [name for name in missing if statuses.get(name) == "created"]
            if created:
                try:
                    admin.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
                except KafkaTimeoutError as exc:
                    raise click.ClickException(f"topics created but not ready in time: {exc}") from None
        after = _counts(admin, names)
    mismatches = {
        name: (actual, names_with_partitions[name])
        for name, actual in after.items()
        if actual is not None and actual != names_with_partitions[name]
    }
    if mismatches:
        raise PartitionCountMismatch(mismatches, statuses)
    return {name: statuses.get(name, "existed") for name in names}
