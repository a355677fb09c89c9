"""Worker settings: one immutable object built by the CLI from options and environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streams.topic_names import TopicNames


@dataclass(frozen=True)
class WorkerSettings:
    broker: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    redis_prefix: str = "segmenter"
    rules_path: str | None = None  # None: the built-in default rules
    clock: str = "wall"  # wall | event
    wall_grace_seconds: float = 300.0
    tick_interval_seconds: float = 30.0
    data_dir: Path = Path("var/segmenter-data")
    store: str = "memory"  # memory | rocksdb
    app_id: str = "segmenter"
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    currency: str = "USD"
    processing_guarantee: str = "exactly_once"  # or at_least_once (streams/checkpoint.py: consequences)
    instance_id: str | None = None  # stable worker identity: static group membership, transactional.id
    topics: TopicNames = field(default_factory=TopicNames)
    log_level: str = "info"
    batch_size: int = 10_000  # records per batch at most: one transaction, one Redis call each
    batch_window_seconds: float = 0.1  # the longest `consume` waits for a batch to fill
    history: int = 100  # tier changes kept per customer in Redis (`{prefix}:history:{id}`; 0: none)
    stall_seconds: float = 300.0  # /healthz fails when a lagging partition's position stands still this long

    @property
    def bootstrap_servers(self) -> list[str]:
        return self.broker.split(",")
