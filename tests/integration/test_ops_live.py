"""Operations artefacts against a real worker: a Prometheus server scrapes it (and loads the alert rules
and runs the dashboard's queries), the example marketing consumer turns its tier changes into actions,
the support script reads its Redis record, and its output topics match docs/schemas.

One worker (`segmenter worker --clock event`, default exactly_once, with an instance id) runs for the whole
module with its own topics, app id, web port and Redis prefix, on the local stack (tests/conftest.py
`stack`); the last test restarts it. It gets:

  alice: 6 purchases of 200.00 on 2026-01-01..06  -> lifecycle new, value medium -> high -> vip
  bob:   purchases of 20.00 on 2025-06-01 and 2026-01-06 -> lifecycle new -> active (2025-07-01, time)
         -> at_risk (2025-08-30, time) -> churned (2025-11-28, time) -> active, value low
  one malformed message (dead letter)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "segmenter.json"
MARKETING = REPO / "examples" / "marketing_consumer.py"
SUPPORT = REPO / "examples" / "support_lookup.sh"

ALICE, BOB, BAD_KEY = "c-alice", "c-bob", "c-bad"
APPLIED = 8  # 6 + 2 purchases
EXPECTED_ACTIONS = {("vip_welcome", ALICE), ("winback_offer", BOB), ("winback_last_chance", BOB)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe, timeout: float, interval: float = 0.5, log: Path | None = None):
    """Call `probe` until it returns something truthy; fail with `what` (and a log tail) after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last failure
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{tail}", pytrace=False)


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def purchase(event_id: str, customer: str, ts: str, amount: str) -> dict:
    return {"event_id": event_id, "type": "purchase", "customer_id": customer, "ts": ts, "amount": amount}


def input_events() -> list[dict]:
    events = [purchase(f"a-{day}", ALICE, f"2026-01-0{day}T10:00:00Z", "200.00") for day in range(1, 7)]
    events.append(purchase("b-1", BOB, "2025-06-01T09:00:00Z", "20.00"))
    events.append(purchase("b-2", BOB, "2026-01-06T09:00:00Z", "20.00"))
    return events


@dataclass
class Live:
    broker: str
    redis_url: str
    prefix: str
    tmp: Path
    env: dict[str, str]
    web_port: int
    worker_log: Path
    tier_changes: list = field(default_factory=list)  # kafka ConsumerRecords, in offset order per partition
    worker: subprocess.Popen | None = None

    @property
    def instance_id(self) -> str:
        return self.env["SEGMENTER_INSTANCE_ID"]

    @property
    def app_id(self) -> str:
        return self.env["SEGMENTER_APP_ID"]

    def start_worker(self) -> None:
        with self.worker_log.open("ab") as log:
            command = [sys.executable, "-m", "streams.cli", "worker", "--clock", "event"]
            self.worker = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=log,
                                           stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            assert self.worker is not None
            if self.worker.poll() is not None:
                output = self.worker_log.read_text(errors="replace")
                pytest.fail(f"worker exited with {self.worker.returncode}:\n{output}", pytrace=False)
            return http_get(f"http://127.0.0.1:{self.web_port}/readyz", timeout=2)[0] == 200

        wait_for("the worker's /readyz to answer 200", ready, timeout=timeout, log=self.worker_log)

    def stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        self.worker.terminate()
        try:
            self.worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait(timeout=10)

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.web_port}/metrics")[1].decode()

    @property
    def redis_prefix(self) -> str:
        return self.env["SEGMENTER_REDIS_PREFIX"]

    def topic(self, name: str) -> str:
        return self.env[f"SEGMENTER_TOPIC_{name.upper()}"]


def consume_all(broker: str, topic: str, group: str, idle_s: float, expected: int | None = None) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=broker.split(","), group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level="read_committed", consumer_timeout_ms=int(idle_s * 1000),
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if expected is not None and len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


@pytest.fixture(scope="module")
def live(stack, tmp_path_factory) -> Iterator[Live]:
    prefix = f"ops{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("ops-live")
    env = {
        **os.environ,
        "SEGMENTER_BROKER": stack.broker,
        "SEGMENTER_REDIS_URL": stack.redis_url,
        "SEGMENTER_TOPIC_PURCHASES": f"{prefix}.purchases",
        "SEGMENTER_TOPIC_INTERACTIONS": f"{prefix}.interactions",
        "SEGMENTER_TOPIC_TIER_CHANGES": f"{prefix}.tier-changes",
        "SEGMENTER_TOPIC_DEAD_LETTERS": f"{prefix}.dead-letters",
        "SEGMENTER_TOPIC_CONTROL": f"{prefix}.control",
        "SEGMENTER_TOPIC_PROFILES": f"{prefix}.profiles",
        "SEGMENTER_APP_ID": f"{prefix}-app",
        "SEGMENTER_REDIS_PREFIX": f"{prefix}-seg",
        "SEGMENTER_DATA_DIR": str(tmp / "data"),
        "SEGMENTER_CLOCK": "event",
        "SEGMENTER_INSTANCE_ID": f"{prefix}-worker-0",  # as a StatefulSet pod name would be
    }
    web_port = free_port()
    env["SEGMENTER_WEB_PORT"] = str(web_port)
    worker_log = tmp / "worker.log"
    live = Live(stack.broker, stack.redis_url, prefix, tmp, env, web_port, worker_log)

    created = subprocess.run([sys.executable, "-m", "streams.cli", "topics", "create", "--partitions", "2"],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert created.returncode == 0, f"topics create failed:\n{created.stdout}\n{created.stderr}"

    live.start_worker()
    try:
        live.wait_ready()

        producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        try:
            for event in input_events():
                producer.send(live.topic("purchases"), key=event["customer_id"].encode(),
                              value=json.dumps(event).encode())
            producer.send(live.topic("purchases"), key=BAD_KEY.encode(), value=b"{not json")
            producer.flush(timeout=30)
        finally:
            producer.close()

        client = redis.Redis.from_url(stack.redis_url, decode_responses=True)

        def projected() -> bool:
            alice = client.hgetall(f"{live.redis_prefix}:customer:{ALICE}")
            bob = client.hgetall(f"{live.redis_prefix}:customer:{BOB}")
            return alice.get("value") == "vip" and bob.get("lifecycle") == "active"

        wait_for("both customers' final tiers in Redis", projected, timeout=120, log=worker_log)
        live.tier_changes = consume_all(stack.broker, live.topic("tier_changes"), f"{prefix}-reader",
                                        idle_s=5)
        yield live
    finally:
        live.stop_worker()
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(stack.redis_url)
            keys = list(client.scan_iter(match=f"{env['SEGMENTER_REDIS_PREFIX']}:*", count=1000))
            if keys:
                client.delete(*keys)
        with contextlib.suppress(Exception):
            admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, client_id=f"{prefix}-cleanup")
            try:
                ours = [topic for topic in admin.list_topics() if topic.startswith(prefix)]
                if ours:
                    admin.delete_topics(ours)
            finally:
                admin.close()


# --- (a) a real Prometheus server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(live) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus server is needed (apt-get install prometheus)", pytrace=False)
    port = free_port()
    config = live.tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "segmenter",
                            "static_configs": [{"targets": [f"127.0.0.1:{live.web_port}"]}]}],
    }))
    log_path = live.tmp / "prometheus.log"
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={live.tmp / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Prometheus /-/ready", lambda: http_get(f"{url}/-/ready", timeout=2)[0] == 200, timeout=60,
                 log=log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def query(url: str, promql: str) -> list[dict]:
    status, body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", f"{promql}: {answer}"
    return answer["data"]["result"]


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_worker_metrics(live, prometheus):
    wait_for(f"segmenter_events_total applied = {APPLIED} in Prometheus",
             lambda: scalar(prometheus, 'sum(segmenter_events_total{outcome="applied"})') == APPLIED,
             timeout=60, log=live.worker_log)
    assert scalar(prometheus, 'up{job="segmenter"}') == 1
    by_topic = query(prometheus, 'sum by (topic) (segmenter_events_total{outcome="applied"})')
    got = [(series["metric"]["topic"], float(series["value"][1])) for series in by_topic]
    assert got == [(live.topic("purchases"), APPLIED)]
    wait_for("the dead letter in Prometheus",
             lambda: scalar(prometheus, 'sum(segmenter_dead_letters_total{reason="malformed_json"})') == 1,
             timeout=30)
    assert scalar(prometheus, 'sum(segmenter_events_total{outcome="dead_letter"})') == 1
    assert scalar(prometheus, 'sum(segmenter_customers{dimension="value",tier="vip"})') == 1
    assert scalar(prometheus, "sum(segmenter_ready)") == 1


def test_consumer_lag_is_exported_per_owned_input_partition_and_drains(live):
    """Every owned input partition has a lag series; once everything is processed and committed it is 0."""
    url = f"http://127.0.0.1:{live.web_port}/metrics"

    def lags() -> dict[tuple[str, str], float] | None:
        text = http_get(url)[1].decode()
        found = re.findall(
            r'^segmenter_consumer_lag_messages\{partition="(\d+)",topic="([^"]+)"\} (\S+)$', text, re.M
        )
        series = {(topic, partition): float(value) for partition, topic, value in found}
        return series if series and not any(series.values()) else None

    series = wait_for("consumer lag series, all 0", lags, timeout=60, log=live.worker_log)
    topics = {topic for topic, _ in series}
    assert topics == {live.topic("purchases"), live.topic("interactions"), live.topic("profiles")}
    assert http_get(f"http://127.0.0.1:{live.web_port}/healthz")[0] == 200


def test_prometheus_loads_and_evaluates_the_alert_rules(live, prometheus):
    def evaluated() -> list[dict] | None:
        groups = json.loads(http_get(f"{prometheus}/api/v1/rules")[1])["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule.get("health") == "ok" for rule in rules) else None

    rules = wait_for("all alert rules evaluated", evaluated, timeout=30)
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    expected = {rule["alert"] for group in groups for rule in group["rules"]}
    assert {rule["name"] for rule in rules if rule["type"] == "alerting"} == expected

    def active_alerts() -> set[str]:
        alerts = json.loads(http_get(f"{prometheus}/api/v1/alerts")[1])["data"]["alerts"]
        return {alert["labels"]["alertname"] for alert in alerts}

    # Pending until the first scrape of the worker; then the rule sees `up` and lets go.
    wait_for("SegmenterNoWorkerUp to clear once the worker is scraped",
             lambda: scalar(prometheus, 'up{job="segmenter"}') == 1
             and "SegmenterNoWorkerUp" not in active_alerts(), timeout=30)


def test_dashboard_queries_run(live, prometheus):
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            for name in variables:
                expr = expr.replace(f"${name}", ".*")
            query(prometheus, expr)  # asserts status success


# --- (b) the marketing consumer example -------------------------------------------------------------------


def run_marketing(live: Live, group: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MARKETING), "--broker", live.broker, "--topic", live.topic("tier_changes"),
         "--group", group, *extra],
        capture_output=True, text=True, timeout=180, check=False, cwd=REPO,
    )


def test_marketing_consumer_prints_actions_and_commits(live):
    assert live.tier_changes, "the worker published no tier change"
    group = f"{live.prefix}-marketing"
    first = run_marketing(live, group, "--max-messages", str(len(live.tier_changes)), "--timeout", "90")
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines() if line.strip()]
    assert {(line["action"], line["customer_id"]) for line in lines} == EXPECTED_ACTIONS
    assert len(lines) == len(EXPECTED_ACTIONS)
    for line in lines:
        assert line["event_id"].startswith(f"{line['customer_id']}:{line['dimension']}:")
    vip = next(line for line in lines if line["action"] == "vip_welcome")
    assert (vip["dimension"], vip["to"], vip["reason"]) == ("value", "vip", "purchase")
    # The same group again: everything was committed, nothing is handled twice.
    again = run_marketing(live, group, "--timeout", "8")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ""


# --- (c) the support lookup script -------------------------------------------------------------------------


def run_support(live: Live, customer: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGMENTER_REDIS_URL": live.redis_url, "SEGMENTER_REDIS_PREFIX": live.redis_prefix}
    return subprocess.run(["bash", str(SUPPORT), customer], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_support_lookup_prints_tiers_and_counts(live):
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is needed (apt-get install redis-tools)", pytrace=False)
    result = run_support(live, BOB)
    assert result.returncode == 0, result.stderr
    fields = dict(re.findall(r"^  (\S+) +(.*)$", result.stdout.split("tier counts")[0], re.M))
    assert result.stdout.startswith(f"customer {BOB} ({live.redis_prefix}:customer:{BOB})")
    assert (fields["lifecycle"], fields["value"], fields["engagement"]) == ("active", "low", "passive")
    assert fields["lifetime_purchases"] == "2" and fields["lifetime_monetary"] == "40.00"
    counts_text = result.stdout.split("tier counts", 1)[1]
    counts = {}
    for dimension, pairs in re.findall(r"^  (\S+) +(.*)$", counts_text, re.M):
        counts[dimension] = {k: int(v) for k, v in (p.split("=") for p in pairs.split()) if int(v) > 0}
    assert counts["lifecycle"] == {"active": 1, "new": 1}
    assert counts["value"] == {"low": 1, "vip": 1}
    assert counts["engagement"] == {"passive": 2}

    alice = run_support(live, ALICE)
    assert alice.returncode == 0 and re.search(r"^  value +vip$", alice.stdout, re.M)
    missing = run_support(live, "c-nobody")
    assert missing.returncode == 1 and "no customer c-nobody" in missing.stderr


# --- output topics against docs/schemas --------------------------------------------------------------------


def test_tier_changes_match_schema_and_cloudevents_headers(live):
    schema = json.loads((SCHEMAS / "tier-change-event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    asyncapi = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    headers_schema = asyncapi["components"]["schemas"]["CloudEventsHeaders"]
    per_key: dict[tuple[str, str], list[dict]] = {}
    for record in live.tier_changes:
        event = json.loads(record.value)
        errors = [e.message for e in validator.iter_errors(event)]
        assert errors == [], f"{event}: {errors}"
        headers = {key: value.decode() for key, value in record.headers}
        jsonschema.Draft7Validator(headers_schema).validate(headers)
        assert headers["ce_id"] == event["event_id"] and headers["ce_time"] == event["at"]
        assert headers["ce_subject"] == event["customer_id"] == record.key.decode()
        per_key.setdefault((event["customer_id"], event["dimension"]), []).append(event)
    for (customer, dimension), events in per_key.items():
        events.sort(key=lambda e: e["seq"])
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), (customer, dimension)
        assert all(e["event_id"] == f"{customer}:{dimension}:{e['seq']}" for e in events)
    bob = [(e["from"], e["to"], e["reason"], e["at"]) for e in per_key[(BOB, "lifecycle")]]
    assert bob == [
        (None, "new", "purchase", "2025-06-01T09:00:00Z"),
        ("new", "active", "time", "2025-07-01T00:00:00Z"),  # tenure 30 days
        ("active", "at_risk", "time", "2025-08-30T00:00:00Z"),  # recency 90 days
        ("at_risk", "churned", "time", "2025-11-28T00:00:00Z"),  # recency 180 days
        ("churned", "active", "purchase", "2026-01-06T09:00:00Z"),
    ]
    alice_value = [e["to"] for e in per_key[(ALICE, "value")]]
    assert alice_value == ["medium", "high", "vip"]


def test_dead_letter_headers(live):
    (record,) = consume_all(live.broker, live.topic("dead_letters"), f"{live.prefix}-dlq", idle_s=10,
                            expected=1)
    assert record.key == BAD_KEY.encode() and record.value == b"{not json"
    headers = {key: value.decode() for key, value in record.headers}
    asyncapi = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    jsonschema.Draft7Validator(asyncapi["components"]["schemas"]["DeadLetterHeaders"]).validate(headers)
    assert headers["x-dlq-reason"] == "malformed_json"
    assert headers["x-dlq-source-topic"] == live.topic("purchases")


# --- the confluent-kafka runtime: transactions, static membership, restore ---------------------------------

REMOVED_METRICS = ("segmenter_tier_changes_resent", "segmenter_missed_records_recovered")


def metric_value(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def committed_records(broker: str, topic: str, isolation: str) -> tuple[list, int]:
    """Every record of `topic` seen with `isolation`, and the sum of its partitions' end offsets."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.split(","), enable_auto_commit=False,
                             isolation_level=isolation, consumer_timeout_ms=3000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records, sum(end.values())
    finally:
        consumer.close()


def test_tier_changes_are_written_in_transactions(live):
    """exactly_once by default: every batch is a transaction, whose commit markers take offsets; a clean run
    aborts nothing, so a read_uncommitted reader sees exactly what read_committed readers see."""
    committed, end = committed_records(live.broker, live.topic("tier_changes"), "read_committed")
    uncommitted, _ = committed_records(live.broker, live.topic("tier_changes"), "read_uncommitted")
    assert len(committed) == len(live.tier_changes) > 0
    assert end > len(committed), "no transaction markers: the tier changes were not written transactionally"
    assert [(r.partition, r.offset) for r in uncommitted] == [(r.partition, r.offset) for r in committed]
    assert metric_value(live.metrics(), "segmenter_transactions_aborted_total") == 0


def test_new_metrics_exported_and_removed_ones_gone(live):
    text = live.metrics()
    assert metric_value(text, "segmenter_restore_seconds_count") >= 1  # the start-up assignment
    assert metric_value(text, "segmenter_restored_records_total") is not None
    for name in REMOVED_METRICS:
        assert name not in text


def describe_group(broker: str, group: str):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker})
    return admin.describe_consumer_groups([group])[group].result(timeout=30)


def test_worker_is_a_static_member_of_its_group(live):
    description = describe_group(live.broker, live.app_id)
    assert [member.group_instance_id for member in description.members] == [live.instance_id]
    (member,) = description.members
    assigned = {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
    inputs = ("purchases", "interactions", "profiles", "control")
    assert assigned == {(live.topic(t), p) for t in inputs for p in (0, 1)}


def redis_snapshot(client: redis.Redis, prefix: str) -> dict[str, object]:
    """The SPEC section 7 keys under `prefix` (records, counts, sets) with their content. History and flows
    are left out: after Redis lost them, `redis rebuild` restores them from the tier-changes topic."""
    snapshot: dict[str, object] = {}
    for key in client.scan_iter(match=f"{prefix}:*"):
        if not key.startswith((f"{prefix}:customer:", f"{prefix}:tier-counts:", f"{prefix}:tier:")):
            continue
        kind = client.type(key)
        snapshot[key] = client.hgetall(key) if kind == "hash" else client.smembers(key)
    return snapshot


def test_restart_with_redis_lost_meanwhile_restores_and_reprojects(live):
    """Stop the worker, lose its Redis data (projected offsets included), start it again with the same
    instance id: it restores both partitions from the changelogs, re-projects every customer, and publishes
    no tier change twice."""
    before, _ = committed_records(live.broker, live.topic("tier_changes"), "read_committed")
    client = redis.Redis.from_url(live.redis_url, decode_responses=True)
    expected = redis_snapshot(client, live.redis_prefix)
    assert client.hlen(f"{live.redis_prefix}:projected") == 2, "one projected offset per partition"
    assert {f"{live.redis_prefix}:customer:{ALICE}", f"{live.redis_prefix}:customer:{BOB}"} <= expected.keys()

    live.stop_worker()
    assert live.worker is not None and live.worker.returncode == 0, live.worker_log.read_text()[-3000:]
    # Static membership: a stopped worker does not leave the group; its partitions wait for its return
    # (or the 10 s session timeout).
    members = describe_group(live.broker, live.app_id).members
    assert [member.group_instance_id for member in members] == [live.instance_id]
    lost = list(client.scan_iter(match=f"{live.redis_prefix}:*"))
    client.delete(*lost)  # Redis lost its data while no worker ran, the projected offsets too

    live.start_worker()
    live.wait_ready()

    wait_for("Redis re-projected from the changelogs",
             lambda: redis_snapshot(client, live.redis_prefix) == expected, timeout=60, log=live.worker_log)
    assert client.hlen(f"{live.redis_prefix}:projected") == 2
    text = live.metrics()
    assert metric_value(text, "segmenter_restore_seconds_count") >= 1
    assert metric_value(text, "segmenter_restored_records_total") > 0
    assert re.search(r"assigned partitions \[0, 1\]: \d+ changelog records restored, [1-9]\d* customers "
                     r"re-projected", live.worker_log.read_text())
    time.sleep(3)  # a worker that re-published would have done so at once
    after, _ = committed_records(live.broker, live.topic("tier_changes"), "read_committed")
    assert [(r.partition, r.offset, r.value) for r in after if r.value is not None] == [
        (r.partition, r.offset, r.value) for r in before
    ]
