"""A private Kafka + Redis for fault injection, on other ports than the shared development stack.

Faults that need a broker or Redis restart must never touch the shared servers (127.0.0.1:9092 / :6379):
this module runs `deploy/local/stack.sh` with its own ports and state directory and only ever signals the
pids that stack.sh recorded in *that* state directory, after checking their command lines.

Environment: FAULTS_KAFKA_PORT (19092), FAULTS_KAFKA_CONTROLLER_PORT (19093), FAULTS_REDIS_PORT (16379),
FAULTS_STACK_STATE (/tmp/faults-stack), FAULTS_KEEP_STACK=1 (leave the private stack running afterwards).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import STACK_SH, _kafka_answers, _redis_answers

SHARED_PORTS = {9092, 9093, 6379}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class PrivateStack:
    kafka_port: int = field(default_factory=lambda: _env_int("FAULTS_KAFKA_PORT", 19092))
    controller_port: int = field(default_factory=lambda: _env_int("FAULTS_KAFKA_CONTROLLER_PORT", 19093))
    redis_port: int = field(default_factory=lambda: _env_int("FAULTS_REDIS_PORT", 16379))
    state: Path = field(
        default_factory=lambda: Path(os.environ.get("FAULTS_STACK_STATE") or "/tmp/faults-stack")
    )
    started_here: bool = False
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        clash = {self.kafka_port, self.controller_port, self.redis_port} & SHARED_PORTS
        if clash:
            raise ValueError(f"the fault stack must not use the shared ports {sorted(clash)}")

    @property
    def broker(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "REDIS_PORT": str(self.redis_port),
            "SEGMENTER_STATE": str(self.state),
            # A broker with many partitions on a loaded 2-core machine took 70 s to listen again.
            "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT") or "240",
        }

    def _stack(self, *args: str) -> None:
        result = subprocess.run(
            ["bash", str(STACK_SH), *args],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.log.append(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"stack.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def kafka_up(self) -> bool:
        return _kafka_answers(self.broker, 5.0)

    def redis_up(self) -> bool:
        return _redis_answers(self.redis_url)

    def start(self) -> None:
        was_up = self.kafka_up() and self.redis_up()
        self._stack("start")
        self.started_here = not was_up

    def stop(self) -> None:
        self._stack("stop")

    def delete_leftover_topics(self) -> int:
        """Delete the topics earlier sessions left on *our* broker (it restarts slower with every one)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=[self.broker], request_timeout_ms=60_000)
        try:
            names = [t for t in admin.list_topics() if not t.startswith("__")]
            for start in range(0, len(names), 50):
                admin.delete_topics(names[start : start + 50], timeout_ms=60_000)
            return len(names)
        finally:
            admin.close()

    # -- pids recorded by stack.sh in our state directory, checked before any signal -------------------
    def _pid(self, pidfile: Path, must_contain: str) -> int:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if must_contain not in cmdline:
            raise RuntimeError(f"pid {pid} from {pidfile} is not ours: {cmdline[:200]}")
        return pid

    def kafka_pid(self) -> int:
        return self._pid(self.state / "kafka" / "kafka.pid", str(self.state / "kafka" / "server.properties"))

    def redis_pid(self) -> int:
        return self._pid(self.state / "redis" / "redis.pid", f":{self.redis_port}")

    @staticmethod
    def _terminate(pid: int, timeout: float = 60.0) -> None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)

    def restart_kafka(self, down_seconds: float = 3.0) -> float:
        """Stop our broker (SIGTERM, clean shutdown), wait, start it again; seconds it was unavailable."""
        started = time.monotonic()
        self._terminate(self.kafka_pid())
        time.sleep(down_seconds)
        self._stack("start")  # Redis is up, so this starts Kafka only
        return time.monotonic() - started

    def stop_redis(self) -> None:
        """Stop our Redis. It runs without persistence (stack.sh: save "", no AOF): its data is lost."""
        self._terminate(self.redis_pid())

    def start_redis(self) -> None:
        self._stack("start")  # Kafka is up, so this starts Redis only

    def flushall(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushall()
        finally:
            client.close()
