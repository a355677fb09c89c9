"""Rules lifecycle on the real broker and Redis (SPEC sections 13, 14; issue "Rules that marketing can change
safely").

A generated history is replayed under rules A (the default). `rules preview B` must equal an independent
computation (the oracle's features at each customer's D_c, classified by B written as plain Python here);
`rules apply B` must then leave exactly those tiers in Redis, emit exactly the differing tiers as
`rules_changed` tier changes (with `when` and `at` = issued_at), drop the removed dimension from records,
counts and sets, add the new one, and keep history and flows exact. New events continue under B, and a
restarted worker re-emits nothing.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from fractions import Fraction

import orjson
import pytest
import redis
from click.testing import CliRunner

from segmenter.rules import default_rules
from streams.cli import cli
from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    redis_state,
    tier_changes,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import _clock_advance
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

PARTITIONS = 3
HISTORY = ["--history", "5"]
CLOCK_TO = "2026-03-01"
RULES_B = """\
version: 1
windows: {value_days: 365, engagement_days: 30}
dimensions:
  lifecycle:
    - {tier: prospect, when: "lifetime_purchases == 0"}
    - {tier: churned,  when: "recency_days >= 150"}
    - {tier: at_risk,  when: "recency_days >= 60"}
    - {tier: new,      when: "tenure_days < 30"}
    - {tier: active,   when: "true"}
  value:
    - {tier: none,     when: "lifetime_purchases == 0"}
    - {tier: vip,      when: "monetary >= 500"}
    - {tier: high,     when: "monetary >= 200"}
    - {tier: low,      when: "true"}
  spend:
    - {tier: big,      when: "lifetime_monetary >= 300"}
    - {tier: small,    when: "true"}
"""


def classify_b(f: model.Features) -> dict[str, str]:
    """RULES_B as plain Python (independent of the rules engine)."""
    if f.lifetime_purchases == 0:
        lifecycle = "prospect"
    elif f.recency_days is not None and f.recency_days >= 150:
        lifecycle = "churned"
    elif f.recency_days is not None and f.recency_days >= 60:
        lifecycle = "at_risk"
    elif f.tenure_days is not None and f.tenure_days < 30:
        lifecycle = "new"
    else:
        lifecycle = "active"
    if f.lifetime_purchases == 0:
        value = "none"
    elif f.monetary_cents >= 50_000:
        value = "vip"
    elif f.monetary_cents >= 20_000:
        value = "high"
    else:
        value = "low"
    spend = "big" if Fraction(f.lifetime_monetary_cents, 100) >= 300 else "small"
    return {"lifecycle": lifecycle, "value": value, "spend": spend}


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


def _cli(stack, names, *args: str):
    env = {**names.env(), "SEGMENTER_BROKER": stack.broker, "SEGMENTER_REDIS_URL": stack.redis_url}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _events_by_customer(messages) -> dict[str, list[model.Event]]:
    events: dict[str, list[model.Event]] = defaultdict(list)
    for kind, key, value in messages:
        event = model.validate_message(kind, key, value)
        assert isinstance(event, model.Event)  # the history is clean: every message is applied
        events[event.customer_id].append(event)
    return events


def test_preview_apply_continue_restart(stack, names, tmp_path) -> None:
    messages = eventgen.generate(
        seed=41, n_customers=120, start="2025-01-01", days=420, duplicates=0, bad_per_reason=0,
        edge_valid=False,
    )
    messages = [m for m in messages if isinstance(model.validate_message(*m), model.Event)]
    rules_b = tmp_path / "rules-b.yaml"
    rules_b.write_text(RULES_B)
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data", HISTORY).start()
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, CLOCK_TO)
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        before_apply = tier_changes(stack.broker, names)

        # The independent computation: A's final tiers from the oracle, B at each D_c from its features.
        oracle = model.run_messages(
            messages, n_partitions=PARTITIONS, clock_advance_to=f"{CLOCK_TO}T00:00:00Z"
        )
        events = _events_by_customer(messages)
        expected_b, features_at_dc = {}, {}
        for cid, view in oracle.final.items():
            features = model.compute_features(events[cid], model.day_from_str(view.eval_day))
            features_at_dc[cid] = features
            expected_b[cid] = classify_b(features)
        matrix: dict[str, Counter] = defaultdict(Counter)
        for cid, view in oracle.final.items():
            for dimension in ("lifecycle", "value", "engagement", "spend"):
                old = view.tiers.get(dimension)
                new = expected_b[cid].get(dimension)
                matrix[dimension][(old, new)] += 1

        # `explain` agrees with every record under the default rules, for every tier that occurs.
        records_a, _, _ = redis_state(stack.redis_url, names.redis_prefix)
        seen_tiers = set()
        for cid, record in sorted(records_a.items()):
            if all((d, record[d]) in seen_tiers for d in ("lifecycle", "value", "engagement")):
                continue  # one customer per tier is enough (each explain reads a changelog partition)
            explained = json.loads(_cli(stack, names, "explain", "--json", cid))
            for d in explained["dimensions"]:
                assert d["tier"] == record[d["dimension"]], (cid, d)
                seen_tiers.add((d["dimension"], d["tier"]))
                assert len(d["failed"]) == [t.name for t in default_rules().dimension(d["dimension"]).tiers
                                            ].index(d["tier"])
        assert len(seen_tiers) >= 10

        preview = json.loads(_cli(stack, names, "rules", "preview", "--json", str(rules_b)))
        assert preview["customers"] == len(oracle.final)
        got_matrix = {
            d["dimension"]: Counter({(m["from"], m["to"]): m["customers"] for m in d["moves"]})
            for d in preview["dimensions"]
        }
        assert got_matrix == dict(matrix)
        for d in preview["dimensions"]:
            assert d["before"] == dict(Counter(v.tiers[d["dimension"]] for v in oracle.final.values()
                                               if d["dimension"] in v.tiers))
            for move in d["moves"]:
                for cid in move["examples"]:
                    dimension = d["dimension"]
                    move_of = (oracle.final[cid].tiers.get(dimension), expected_b[cid].get(dimension))
                    assert move_of == (move["from"], move["to"])
        assert _cli(stack, names, "rules", "preview", str(rules_b)).count("->") >= 1  # the text form runs

        output = _cli(stack, names, "rules", "apply", str(rules_b))
        issued_at = output.split(" at ", 1)[1].split(" to ", 1)[0]
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))

        # The rules_changed tier changes are exactly the differing tiers.
        after_apply = tier_changes(stack.broker, names)
        assert after_apply[: len(before_apply)] == before_apply or len(after_apply) > len(before_apply)
        new_changes = [c for c in after_apply if c["reason"] == "rules_changed"]
        assert len(after_apply) == len(before_apply) + len(new_changes)
        wanted = {
            (cid, dim): (oracle.final[cid].tiers.get(dim), tier)
            for cid in oracle.final
            for dim, tier in expected_b[cid].items()
            if oracle.final[cid].tiers.get(dim) != tier
        }
        got = {(c["customer_id"], c["dimension"]): (c["from"], c["to"]) for c in new_changes}
        assert got == wanted
        assert len(got) == len(new_changes)
        # seq continues the worker's own sequence (its order across two topics is its delivery order).
        prior = Counter((c["customer_id"], c["dimension"]) for c in before_apply)
        for change in new_changes:
            assert change["seq"] == prior[(change["customer_id"], change["dimension"])] + 1
            assert change["at"] == issued_at and change["cause_event_id"] is None
            assert change["when"]  # the normalised condition of the tier entered
        assert {c["when"] for c in new_changes if c["to"] == "at_risk"} == {"recency_days >= 60"}

        # Redis: records, counts and sets equal B at D_c; `engagement` left cleanly.
        records, counts, members = redis_state(stack.redis_url, names.redis_prefix)
        assert set(records) == set(oracle.final)
        for cid, record in records.items():
            view = oracle.final[cid]
            want = {**features_at_dc[cid].as_redis(), **expected_b[cid], "as_of": view.eval_day}
            if view.first_purchase_at:
                want["first_purchase_at"] = view.first_purchase_at
                want["last_purchase_at"] = view.last_purchase_at
            got_record = {k: v for k, v in record.items() if k not in ("version", "rules_version")}
            assert got_record == want, cid
        assert "engagement" not in counts
        assert not [key for key in members if key[0] == "engagement"]
        for dimension in ("lifecycle", "value", "spend"):
            assert counts[dimension] == dict(Counter(t[dimension] for t in expected_b.values()))
            for tier in counts[dimension]:
                in_tier = {c for c, t in expected_b.items() if t[dimension] == tier}
                assert members[(dimension, tier)] == in_tier

        # History (capped at 5) and flows equal the tier-change topic.
        client = redis.Redis.from_url(stack.redis_url)
        by_customer = defaultdict(list)
        for change in after_apply:
            by_customer[change["customer_id"]].append(change)
        for cid, changes in by_customer.items():
            kept = [orjson.loads(x) for x in client.lrange(f"{names.redis_prefix}:history:{cid}", 0, -1)]
            assert kept == list(reversed(changes))[:5], cid
        flows = Counter()
        for change in after_apply:
            day = model.format_day(model.day_of(model.parse_ts(change["at"])))
            flows[(change["dimension"], day, f"{change['from'] or ''}>{change['to']}")] += 1
        got_flows = Counter()
        for key in client.scan_iter(match=f"{names.redis_prefix}:flows:*"):
            _, _, dimension, day = key.decode().split(":")
            for field, n in client.hgetall(key).items():
                got_flows[(dimension, day, field.decode())] += int(n)
        assert got_flows == flows
        _cli(stack, names, "redis", "check", "--history", "5")

        # New events continue under B: a new customer is classified by B (spend is a dimension now).
        produce(stack.broker, names, [(
            "purchases", b"c-after",
            orjson.dumps({"event_id": "after-1", "type": "purchase", "customer_id": "c-after",
                          "ts": "2026-03-02T10:00:00Z", "amount": "350.00"}),
        )])
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        latest = [c for c in tier_changes(stack.broker, names) if c["customer_id"] == "c-after"]
        assert {c["dimension"]: c["to"] for c in latest} == {
            "lifecycle": "new", "value": "high", "spend": "big"
        }
        total = topic_size(stack.broker, names.tier_changes)
    finally:
        worker.stop()

    # A restarted worker follows the recorded rules (it was started without them) and re-emits nothing.
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data", HISTORY).start()
    try:
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes), quiet_seconds=6)
        assert topic_size(stack.broker, names.tier_changes) == total
    finally:
        worker.stop()
    assert "follow the rules applied with `segmenter rules apply`" in worker.log_tail(200)
    history = json.loads(_cli(stack, names, "history", "--json", "c-after"))
    assert [h["dimension"] for h in history][::-1][:3] == [c["dimension"] for c in latest]
    explained = json.loads(_cli(stack, names, "explain", "--json", "c-after"))
    assert {d["dimension"]: d["tier"] for d in explained["dimensions"]} == {
        "lifecycle": "new", "value": "high", "spend": "big"
    }
    at = json.loads(_cli(stack, names, "history", "--json", "--at", "2026-03-02T12:00:00Z", "c-after"))
    assert at["tiers"] == {"lifecycle": "new", "value": "high", "spend": "big"} and at["complete"]
