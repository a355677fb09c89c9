"""Run real `segmenter worker` processes in integration tests, each with its own topics, app id and prefix."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Names:
    """Unique names for one test: topics, app id, Redis prefix."""

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

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def redis_prefix(self) -> str:
        return f"{self.prefix}-seg"

    def env(self) -> dict[str, str]:
        return {
            "SEGMENTER_TOPIC_PURCHASES": self.purchases,
            "SEGMENTER_TOPIC_INTERACTIONS": self.interactions,
            "SEGMENTER_TOPIC_TIER_CHANGES": self.tier_changes,
            "SEGMENTER_TOPIC_DEAD_LETTERS": self.dead_letters,
            "SEGMENTER_TOPIC_CONTROL": self.control,
            "SEGMENTER_TOPIC_PROFILES": self.profiles,
            "SEGMENTER_APP_ID": self.app_id,
            "SEGMENTER_REDIS_PREFIX": self.redis_prefix,
        }

    def create_topics(self, broker: str, partitions: int) -> None:
        admin = KafkaAdminClient(bootstrap_servers=broker.split(","))
        try:
            admin.create_topics(
                [
                    NewTopic(name, partitions, 1)
                    for name in (
                        self.purchases, self.interactions, self.profiles, self.tier_changes, self.dead_letters
                    )
                ]
            )
        finally:
            admin.close()


@dataclass
class WorkerProcess:
    broker: str
    redis_url: str
    names: Names
    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self, wait_ready: float = 90.0) -> WorkerProcess:
        env = {
            **os.environ,
            **self.names.env(),
            "SEGMENTER_BROKER": self.broker,
            "SEGMENTER_REDIS_URL": self.redis_url,
            "SEGMENTER_WEB_PORT": str(self.port),
            "SEGMENTER_DATA_DIR": str(self.data_dir),
            **self.extra_env,
        }
        self.log_path = self.data_dir.parent / f"worker-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--clock", "event", *self.extra_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_ready(wait_ready)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
