"""`segmenter ui` JSON endpoints on a real Redis filled by writing keys directly (SPEC sections 7, 14, 15).

Served by uvicorn in a thread on a free port, read with urllib: the numbers must equal what was written.
Uses database 9 of the Redis at SEGMENTER_REDIS_URL (default 127.0.0.1:6379), so that the UI's catalog scan
does not walk other tests' keys; skipped when no Redis answers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import uvicorn

from segmenter.rules import default_rules, default_rules_text
from streams.ui.app import Settings, create_app
from streams.ui.data import sizes_over_days

REDIS_URL = urlunsplit(urlsplit(os.environ.get("SEGMENTER_REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(path="/9"))


def test_sizes_over_days_unwinds_flows() -> None:
    # Now: a=5, b=3. Day 3: 2 moved a->b, 1 new customer in a. Day 2: nothing. Day 1: 4 first classified in a.
    flows = {"2026-01-03": {"a>b": 2, ">a": 1}, "2026-01-01": {">a": 4}}
    sizes = sizes_over_days({"a": 5, "b": 3}, flows, ["2026-01-01", "2026-01-02", "2026-01-03"])
    assert sizes == {
        "2026-01-01": {"a": 6, "b": 1},
        "2026-01-02": {"a": 6, "b": 1},
        "2026-01-03": {"a": 5, "b": 3},
    }
    # A range ending before the latest day still unwinds every later day.
    assert sizes_over_days({"a": 5, "b": 3}, flows, ["2026-01-02"]) == {"2026-01-02": {"a": 6, "b": 1}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL} (bash deploy/local/stack.sh start)")
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"uitest-{uuid.uuid4().hex[:8]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    if keys:
        client.delete(*keys)


def _fill(client: redis.Redis, prefix: str) -> None:
    rules = default_rules()
    client.set(f"{prefix}:rules:{rules.version}", default_rules_text())
    customers = {
        "c-1": {"lifecycle": "loyal", "value": "vip", "engagement": "engaged", "recency_days": "3",
                "frequency": "8", "monetary": "1200.00", "lifetime_purchases": "9", "tenure_days": "400",
                "attr.country": "FR"},
        "c-2": {"lifecycle": "at_risk", "value": "medium", "engagement": "passive", "recency_days": "100",
                "frequency": "2", "monetary": "80.00", "lifetime_purchases": "2", "tenure_days": "200"},
        "c-3": {"lifecycle": "prospect", "value": "none", "engagement": "passive", "lifetime_purchases": "0"},
    }
    for cid, fields in customers.items():
        record = {**fields, "as_of": "2026-03-01", "rules_version": rules.version, "version": "4"}
        client.hset(f"{prefix}:customer:{cid}", mapping=record)
        for dimension in ("lifecycle", "value", "engagement"):
            client.sadd(f"{prefix}:tier:{dimension}:{fields[dimension]}", cid)
            client.hincrby(f"{prefix}:tier-counts:{dimension}", fields[dimension], 1)
    client.hset(f"{prefix}:flows:lifecycle:2026-03-01", mapping={"active>at_risk": 1, ">prospect": 1})
    client.hset(f"{prefix}:flows:lifecycle:2026-02-28", mapping={"active>loyal": 1, ">active": 2})
    event = {"event_id": "e1", "customer_id": "c-2", "dimension": "lifecycle", "seq": 2, "from": "active",
             "to": "at_risk", "at": "2026-03-01T00:00:00Z", "reason": "time", "cause_event_id": None,
             "rules_version": rules.version, "actions": [], "features": {}, "when": "recency_days >= 90",
             "attributes": {}}
    client.lpush(f"{prefix}:history:c-2", json.dumps({**event, "seq": 1, "from": None, "to": "active",
                                                      "at": "2026-02-28T10:00:00Z", "reason": "purchase"}))
    client.lpush(f"{prefix}:history:c-2", json.dumps(event))


class Server:
    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        config = uvicorn.Config(create_app(settings, background=False), host="127.0.0.1", port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {},
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = response.read()
                kind = response.headers.get("content-type", "")
                return response.status, json.loads(body) if "json" in kind else body.decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve(client: redis.Redis, prefix: str) -> Iterator[Any]:
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        server = Server(Settings(redis_url=REDIS_URL, prefix=prefix, cache_seconds=0, **options))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_overview_equals_redis(client: redis.Redis, prefix: str, serve: Any) -> None:
    _fill(client, prefix)
    server = serve()
    status, body = server.get("/api/overview?days=3")
    assert status == 200, body
    assert body["days"] == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert body["latest_day"] == "2026-03-01"
    dims = {d["dimension"]: d for d in body["dimensions"]}
    assert list(dims) == ["lifecycle", "value", "engagement"]  # the rules' order
    for dimension, d in dims.items():
        counts = {t: int(n) for t, n in client.hgetall(f"{prefix}:tier-counts:{dimension}").items()}
        assert {t: n for t, n in d["counts"].items() if n} == counts
        assert d["total"] == 3
        assert d["tiers"] == [t.name for t in default_rules().dimension(dimension).tiers]
    lifecycle = dims["lifecycle"]
    # End of 03-01: now. End of 02-28: undo 03-01. End of 02-27: undo 02-28 as well.
    assert lifecycle["sizes"]["at_risk"] == [0, 0, 1]
    assert lifecycle["sizes"]["active"] == [0, 1, 0]  # 02-28: +1 from at_risk; 02-27: +1 from loyal, -2 new
    assert lifecycle["sizes"]["prospect"] == [0, 0, 1]
    assert lifecycle["sizes"]["loyal"] == [0, 1, 1]
    flows = {(f["from"], f["to"]): f["count"] for f in lifecycle["flows"]}
    assert flows == {("active", "at_risk"): 1, (None, "prospect"): 1, ("active", "loyal"): 1,
                     (None, "active"): 2}
    top = body["top_transitions"]
    assert {(m["from"], m["to"]): m["count"] for m in top} == {("active", "at_risk"): 1,
                                                                (None, "prospect"): 1}
    at_risk = next(m for m in top if m["to"] == "at_risk")
    assert at_risk["reasons"] == {"time": 1} and at_risk["reasons_sampled"] == 1


def test_rfm_and_customer(client: redis.Redis, prefix: str, serve: Any) -> None:
    _fill(client, prefix)
    server = serve()
    status, rfm = server.get("/api/rfm")
    assert status == 200
    assert rfm["sampled"] == 3 and rfm["customers"] == 3 and rfm["no_purchase"] == 1
    cells = {(rfm["recency_bins"][c["recency"]], rfm["frequency_bins"][c["frequency"]]): c
             for c in rfm["cells"]}
    assert cells[("0-7", "6-10")]["mean_monetary"] == 1200.0 and cells[("91-180", "2")]["customers"] == 1

    status, customer = server.get("/api/customer/c-2")
    assert status == 200
    assert customer["tiers"] == {"lifecycle": "at_risk", "value": "medium", "engagement": "passive"}
    assert customer["features"]["recency_days"] == "100" and customer["features"]["engagement"] is None
    assert customer["unavailable_features"] == ["engagement"]
    assert [h["seq"] for h in customer["history"]] == [2, 1]
    explained = {d["dimension"]: d for d in customer["explanations"]}
    assert explained["lifecycle"]["tier"] == "at_risk" and explained["lifecycle"]["unavailable"] == []
    assert [f["tier"] for f in explained["lifecycle"]["failed"]] == ["prospect", "churned"]
    assert explained["engagement"]["unavailable"] == ["engagement"]
    status, customer = server.get("/api/customer/c-1")
    assert customer["attributes"] == {"country": "FR"}
    assert server.get("/api/customer/nobody")[0] == 404
    for page in ("/", "/rfm", "/customer", "/customer?id=c-1"):
        status, text = server.get(page)
        assert status == 200, page
        links = re.findall(r'(?:src|href|action)="([^"]*)"', text)
        assert links and all(link.startswith(("/", "data:")) for link in links), links  # nothing external
    for asset in ("/static/echarts.min.js", "/static/app.js", "/static/style.css", "/static/ECHARTS-LICENSE"):
        assert server.get(asset)[0] == 200, asset


def test_read_only_and_auth(client: redis.Redis, prefix: str, serve: Any) -> None:
    _fill(client, prefix)
    open_server = serve()
    assert open_server.get("/api/overview", method="POST")[0] == 405
    assert open_server.get("/api/customer/c-1", method="DELETE")[0] == 405

    token = serve(token="t0k")
    assert token.get("/api/overview")[0] == 401
    assert token.get("/api/overview?token=wrong")[0] == 401
    assert token.get("/api/overview?token=t0k")[0] == 200
    assert token.get("/api/overview", {"Authorization": "Bearer t0k"})[0] == 200
    assert token.get("/api/overview", {"Cookie": "segmenter_ui_token=t0k"})[0] == 200
    assert token.get("/healthz")[0] == 200

    basic = serve(basic_auth="ann:pw")
    good = "Basic " + base64.b64encode(b"ann:pw").decode()
    bad = "Basic " + base64.b64encode(b"ann:nope").decode()
    assert basic.get("/")[0] == 401
    assert basic.get("/", {"Authorization": bad})[0] == 401
    assert basic.get("/", {"Authorization": good})[0] == 200
