"""`segmenter export` against the real Redis of the local stack (SPEC section 15).

1. Records, tier sets, counts and the rules text written directly under a unique prefix (more customers than
   one SCAN chunk, attributes and null features varying per customer): the CSV, the JSON lines and one tier's
   members equal what Redis holds, read independently; every CSV row has every column.
2. After a real worker run on a generated history: the export equals the worker's records in Redis.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from segmenter.rules.loader import default_rules, default_rules_text
from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    redis_state,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import _clock_advance
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

CUSTOMERS = 2_500  # > export_cmd.CHUNK: several SCAN / SSCAN rounds


def _export(redis_url: str, prefix: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "export", "--out", str(out), "--redis", redis_url,
         "--redis-prefix", prefix, *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _csv_rows(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = {}
        for row in reader:
            assert len(row) == len(header)
            rows[row[0]] = {name: value for name, value in zip(header[1:], row[1:], strict=True) if value}
    assert len(rows) == sum(1 for _ in path.open(encoding="utf-8-sig", newline="")) - 1, "one row each"
    return header, rows


@pytest.fixture
def direct(stack, unique_name):
    prefix = f"{unique_name}-export"
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    rng = random.Random(7)
    version = default_rules().version
    pipe = client.pipeline(transaction=False)
    for i in range(CUSTOMERS):
        cid = f"c-{i}"
        record = {
            "lifecycle": rng.choice(["new", "active", "churned"]),
            "value": rng.choice(["low", "high"]),
            "engagement": "passive",
            "as_of": "2026-03-01",
            "lifetime_purchases": str(rng.randrange(1, 9)),
            "lifetime_monetary": f"{rng.randrange(100, 99_999) / 100:.2f}",
            "first_purchase_at": "2025-06-01T08:00:00Z",
            "last_purchase_at": "2026-02-11T19:30:05Z",
            "rules_version": version,
            "version": str(rng.randrange(1, 30)),
        }
        if rng.random() < 0.5:
            record["recency_days"] = str(rng.randrange(0, 300))  # a null feature is absent
        if i % 97 == 0:
            record["attr.note"] = f'line "{i}", ünïcode; ; ='
        if i % 13 == 0:
            record["attr.vip"] = "true"
        pipe.hset(f"{prefix}:customer:{cid}", mapping=record)
        for dimension in ("lifecycle", "value", "engagement"):
            pipe.sadd(f"{prefix}:tier:{dimension}:{record[dimension]}", cid)
            pipe.hincrby(f"{prefix}:tier-counts:{dimension}", record[dimension], 1)
    pipe.set(f"{prefix}:rules:{version}", default_rules_text())
    pipe.execute()
    yield prefix
    delete_prefix(stack.redis_url, prefix)


def test_export_equals_redis(stack, direct, tmp_path) -> None:
    records, _, members = redis_state(stack.redis_url, direct)
    assert len(records) == CUSTOMERS

    result = _export(stack.redis_url, direct, tmp_path / "all.csv", "--bom")
    assert result.returncode == 0, result.stderr
    assert f"exported {CUSTOMERS:,} customers" in result.stderr and "export: 100%" in result.stderr
    header, rows = _csv_rows(tmp_path / "all.csv")
    bom_header = b"\xef\xbb\xbfcustomer_id,lifecycle,value,engagement,"
    assert (tmp_path / "all.csv").read_bytes().startswith(bom_header)
    assert header[-4:] == ["attr.note", "attr.vip", "rules_version", "version"]
    assert rows == records

    result = _export(stack.redis_url, direct, tmp_path / "all.jsonl")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len(lines) == CUSTOMERS and {line.pop("customer_id"): line for line in lines} == records

    result = _export(stack.redis_url, direct, tmp_path / "churned.csv", "--dimension", "lifecycle", "--tier",
                     "churned")  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, rows = _csv_rows(tmp_path / "churned.csv")
    assert set(rows) == members[("lifecycle", "churned")] and 0 < len(rows) < CUSTOMERS

    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(tmp_path / "all.csv", encoding="utf-8-sig", dtype={"customer_id": str})
    assert frame.shape == (CUSTOMERS, len(header)) and frame["customer_id"].is_unique
    assert frame["lifetime_monetary"].dtype.kind == "f" and frame["version"].dtype.kind == "i"
    assert pandas.read_json(tmp_path / "all.jsonl", lines=True).shape[0] == CUSTOMERS


def test_export_errors(stack, direct, tmp_path) -> None:
    tier = ("--dimension", "lifecycle", "--tier", "gold")
    result = _export(stack.redis_url, direct, tmp_path / "x.csv", *tier)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: no customers in tier 'gold' of 'lifecycle' (tiers now: active, churned, new)"
    )
    assert not list(tmp_path.iterdir()), "no file left behind"


def test_export_after_worker_run(stack, unique_name, tmp_path) -> None:
    names = Names(unique_name)
    names.create_topics(stack.broker, 3)
    messages = eventgen.generate(seed=5, n_customers=150, start="2025-01-01", days=300, duplicates=0,
                                 bad_per_reason=0, edge_valid=False)  # fmt: skip
    messages = [m for m in messages if isinstance(model.validate_message(*m), model.Event)]
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data").start()
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, "2026-01-01")
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        worker.stop()
        records, counts, _ = redis_state(stack.redis_url, names.redis_prefix)
        assert len(records) == 150 and sum(counts["lifecycle"].values()) == 150
        result = _export(stack.redis_url, names.redis_prefix, tmp_path / "worker.csv")
        assert result.returncode == 0, result.stderr
        header, rows = _csv_rows(tmp_path / "worker.csv")
        assert rows == records
        assert header[:5] == ["customer_id", "lifecycle", "value", "engagement", "as_of"]
    finally:
        worker.stop()
        delete_prefix(stack.redis_url, names.redis_prefix)
