"""Shared pytest fixtures.

* ``stack``: the real local Kafka broker and Redis server. Reads ``SEGMENTER_BROKER`` /
  ``SEGMENTER_REDIS_URL`` (defaults ``127.0.0.1:9092`` and ``redis://127.0.0.1:6379/0``). When they do not
  answer, runs ``deploy/local/stack.sh start`` (so ``pytest tests/integration`` works on its own) and stops
  the stack again at the end of the session, unless ``SEGMENTER_KEEP_STACK=1``. ``make test`` starts the stack
  itself, so there the fixture only checks it.
* ``unique_name``: a short unique prefix for topic names, app ids and Redis key prefixes, so tests never clash
  (with each other, with earlier runs on the same broker, or with other people's work).
* Every test under ``tests/integration/`` gets the ``integration`` marker.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
STACK_SH = REPO / "deploy" / "local" / "stack.sh"
INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
DEFAULT_BROKER = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Stack:
    broker: str  # host:port[,host:port...], no scheme: what kafka-python and aiokafka take
    redis_url: str

    @property
    def bootstrap_servers(self) -> list[str]:
        return self.broker.split(",")


def _normalise_broker(value: str) -> str:
    servers = []
    for part in value.split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part)
    return ",".join(servers)


def _kafka_answers(broker: str, timeout_s: float = 5.0) -> bool:
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=broker.split(","),
            client_id="conftest-check",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _local_port(host_port: str, default: int) -> int | None:
    """Port of a loopback address, None when the address is not local (the stack cannot help then)."""
    parts = urlsplit(host_port if "://" in host_port else f"x://{host_port}")
    if parts.hostname not in LOCAL_HOSTS:
        return None
    return parts.port or default


def _run_stack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(STACK_SH), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    broker = _normalise_broker(os.environ.get("SEGMENTER_BROKER") or DEFAULT_BROKER)
    redis_url = os.environ.get("SEGMENTER_REDIS_URL") or DEFAULT_REDIS_URL
    found = Stack(broker=broker, redis_url=redis_url)
    if _kafka_answers(broker) and _redis_answers(redis_url):
        yield found
        return

    kafka_port = _local_port(found.bootstrap_servers[0], 9092)
    redis_port = _local_port(redis_url, 6379)
    if kafka_port is None or redis_port is None:
        pytest.fail(
            f"Kafka {broker} or Redis {redis_url} does not answer and is not on this machine "
            f"(deploy/local/stack.sh only starts servers on 127.0.0.1)",
            pytrace=False,
        )
    env = {**os.environ, "KAFKA_PORT": str(kafka_port), "REDIS_PORT": str(redis_port)}
    if kafka_port != 9092:  # keep clear of a default stack's controller on 9093
        env.setdefault("KAFKA_CONTROLLER_PORT", str(kafka_port + 1))
    started = _run_stack("start", env=env)
    if started.returncode != 0:
        pytest.fail(
            f"deploy/local/stack.sh start failed (exit {started.returncode}):\n"
            f"{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    if not (_kafka_answers(broker, 10.0) and _redis_answers(redis_url)):
        pytest.fail(f"stack.sh start succeeded but {broker} / {redis_url} still do not answer", pytrace=False)
    try:
        yield found
    finally:
        if os.environ.get("SEGMENTER_KEEP_STACK") != "1":
            _run_stack("stop", env=env)


@pytest.fixture
def unique_name() -> str:
    """Short unique prefix, e.g. ``t1a2b3c4d``: use it in topic names, app ids and Redis key prefixes."""
    return f"t{uuid.uuid4().hex[:8]}"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas through deprecated importlib.resources calls (~200 warnings)
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if INTEGRATION_DIR in path.parents:
            item.add_marker(pytest.mark.integration)
