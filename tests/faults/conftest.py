"""Fixtures of the fault-injection suite (marker `faults`; `pytest -m faults tests/faults`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import PrivateStack

FAULTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if FAULTS_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def private_stack() -> Iterator[PrivateStack]:
    """Our own Kafka + Redis (other ports, own state dir): the only servers this suite restarts."""
    stack = PrivateStack()
    stack.start()
    if os.environ.get("FAULTS_KEEP_TOPICS") != "1":
        stack.delete_leftover_topics()
    try:
        yield stack
    finally:
        if stack.started_here and os.environ.get("FAULTS_KEEP_STACK") != "1":
            stack.stop()


@pytest.fixture(scope="session")
def report_dir() -> Path:
    path = Path(os.environ.get("FAULTS_REPORT_DIR") or "/tmp/segmenter-faults")
    path.mkdir(parents=True, exist_ok=True)
    return path
