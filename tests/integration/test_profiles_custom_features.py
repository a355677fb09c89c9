"""Profiles, attributes and custom features (SPEC 10, 11) on the real broker and Redis, against the oracle.

A generated history with categories on purchases and refunds, interactions of several types (support tickets,
complaints, email clicks), profile events delivered out of event-time order per customer, duplicates and bad
messages of every dead-letter kind (profiles included) is replayed with a rules file that uses attributes and
five custom features, then the clock is advanced.  The independent oracle (tests/oracle) replays the same
messages day by day.

What is compared, and why (the worker interleaves the input topics as it likes):

* dead letters (count by reason, and the exact key/value pairs), the per-topic outcome metrics, tier counts
  and tier sets: independent of the interleaving;
* the tier-change sequence (and its ``features`` and ``attributes``) of every customer whose events all travel
  on ONE topic in event-time order (SPEC 6).  Profile-only customers are compared too whatever their order:
  with no purchases or interactions every feature is constant, and profiles never move the watermark, so
  their tiers depend only on the attributes after each profile event in delivery order;
* the Redis record of every customer (all fields but ``version`` and ``rules_version``): exactly for the
  customers above whose records are determined (single topic, in order, not profile-only); for the others
  the record's ``as_of`` must lie in the range the oracle allows for any interleaving
  (:meth:`Result.as_of_range`) and every other field must equal the oracle's record at that ``as_of``.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict

import pytest

from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    read_topic,
    redis_state,
    tier_changes,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import TRANSITION_KEYS, _clock_advance
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model
from tests.oracle.model import CustomFeature, attr_cmp, attr_in, feature_cmp

PARTITIONS = 3
START, DAYS = "2025-01-01", 480
CLOCK_TO = "2026-10-15T00:00:00Z"

RULES_YAML = r"""
version: 1
windows: {value_days: 365, engagement_days: 30}
features:
  clicks_30d:       {count: interactions, type: email_click, days: 30}
  tickets_90d:      {count: interactions, type: [support_ticket, complaint], days: 90}
  books_toys_90d:   {count: purchases, category: [books, toys], days: 90}
  electronics_365d: {sum: purchases, category: electronics, days: 365}
  categories_365d:  {distinct: categories, days: 365}
dimensions:
  lifecycle:
    - {tier: prospect, when: "lifetime_purchases == 0"}
    - {tier: churned,  when: "recency_days >= 180"}
    - {tier: at_risk,  when: "recency_days >= 90"}
    - {tier: new,      when: "tenure_days < 30"}
    - {tier: active,   when: "true"}
  region:
    - {tier: emea_electronics, when: 'attr.region in ["EU", "UK"] and electronics_365d >= 200'}
    - {tier: emea,             when: 'attr.region in ["EU", "UK"]'}
    - {tier: elsewhere,        when: 'attr.region not in ["EU", "UK"]'}
    - {tier: unknown,          when: "true"}
  service:
    - {tier: escalate, when: "tickets_90d > 2 and attr.newsletter == true"}
    - {tier: watch,    when: 'tickets_90d >= 1 or attr.industry == "public"'}
    - {tier: quiet,    when: 'attr.industry != "retail" and clicks_30d == 0 and attr.score >= 4.5'}
    - {tier: fine,     when: "true"}
  assortment:
    - {tier: broad,   when: "categories_365d >= 3"}
    - {tier: bookish, when: "books_toys_90d >= 2 and attr.birth_year <= 1980"}
    - {tier: young,   when: "attr.birth_year > 1990 or attr.birth_year == 1985"}
    - {tier: clicky,  when: "clicks_30d >= 1 and not (attr.region == \"US\")"}
    - {tier: narrow,  when: "true"}
"""

CUSTOM = (
    CustomFeature("clicks_30d", "count_interactions", 30, ("email_click",)),
    CustomFeature("tickets_90d", "count_interactions", 90, ("support_ticket", "complaint")),
    CustomFeature("books_toys_90d", "count_purchases", 90, ("books", "toys")),
    CustomFeature("electronics_365d", "sum_purchases", 365, ("electronics",)),
    CustomFeature("categories_365d", "distinct_categories", 365),
)


def classify(f) -> dict[str, str]:
    """RULES_YAML in plain Python (SPEC 5, 10 semantics from tests/oracle/model.py)."""
    if feature_cmp(f, "lifetime_purchases", "==", 0):
        lifecycle = "prospect"
    elif feature_cmp(f, "recency_days", ">=", 180):
        lifecycle = "churned"
    elif feature_cmp(f, "recency_days", ">=", 90):
        lifecycle = "at_risk"
    elif feature_cmp(f, "tenure_days", "<", 30):
        lifecycle = "new"
    else:
        lifecycle = "active"

    emea = attr_in(f, "region", ["EU", "UK"])
    if emea and feature_cmp(f, "electronics_365d", ">=", 200):
        region = "emea_electronics"
    elif emea:
        region = "emea"
    elif attr_in(f, "region", ["EU", "UK"], negate=True):
        region = "elsewhere"
    else:
        region = "unknown"

    if feature_cmp(f, "tickets_90d", ">", 2) and attr_cmp(f, "newsletter", "==", True):
        service = "escalate"
    elif feature_cmp(f, "tickets_90d", ">=", 1) or attr_cmp(f, "industry", "==", "public"):
        service = "watch"
    elif (
        attr_cmp(f, "industry", "!=", "retail")
        and feature_cmp(f, "clicks_30d", "==", 0)
        and attr_cmp(f, "score", ">=", 4.5)
    ):
        service = "quiet"
    else:
        service = "fine"

    if feature_cmp(f, "categories_365d", ">=", 3):
        assortment = "broad"
    elif feature_cmp(f, "books_toys_90d", ">=", 2) and attr_cmp(f, "birth_year", "<=", 1980):
        assortment = "bookish"
    elif attr_cmp(f, "birth_year", ">", 1990) or attr_cmp(f, "birth_year", "==", 1985):
        assortment = "young"
    elif feature_cmp(f, "clicks_30d", ">=", 1) and not attr_cmp(f, "region", "==", "US"):
        assortment = "clicky"
    else:
        assortment = "narrow"
    return {"lifecycle": lifecycle, "region": region, "service": service, "assortment": assortment}


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


def _history(seed: int) -> list:
    """The generated history, where some customers keep only their purchases (3 in 10) or only their
    interactions (1 in 10), so that many sequences are determined (single topic) and include refunds with
    categories and window expiries of the custom features."""
    messages = eventgen.generate(
        seed=seed,
        n_customers=90,
        start=START,
        days=DAYS,
        bad_per_reason=1,
        categories=True,
        profiles=True,
        bad_profiles_per_reason=1,
    )
    out = []
    for message in messages:
        verdict = model.validate_message(*message)
        if not isinstance(verdict, model.Rejection) and not verdict.customer_id.startswith("crm-"):
            bucket = zlib.crc32(verdict.customer_id.encode()) % 10
            if (bucket < 3 and message[0] != "purchases") or (bucket == 3 and message[0] != "interactions"):
                continue
        out.append(message)
    return out


def _topics_in_order(messages) -> tuple[dict[str, set[str]], set[str]]:
    """(customer -> topic kinds of its valid events, customers whose events are in ts order on each topic)."""
    kinds: dict[str, set[str]] = defaultdict(set)
    last: dict[tuple[str, str], object] = {}
    out_of_order: set[str] = set()
    for kind, key, value in messages:
        verdict = model.validate_message(kind, key, value)
        if isinstance(verdict, model.Rejection):
            continue
        kinds[verdict.customer_id].add(kind)
        previous = last.get((verdict.customer_id, kind))
        if previous is not None and verdict.instant < previous:
            out_of_order.add(verdict.customer_id)
        last[(verdict.customer_id, kind)] = max(verdict.instant, previous or verdict.instant)
    return kinds, set(kinds) - out_of_order


@pytest.mark.parametrize("seed", [41, 5])
def test_profiles_and_custom_features_match_the_oracle(stack, names, tmp_path, seed: int) -> None:
    messages = _history(seed)
    expected = model.run_messages(
        messages,
        n_partitions=PARTITIONS,
        clock_advance_to=CLOCK_TO,
        classify=classify,
        custom_features=CUSTOM,
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    worker = WorkerProcess(
        stack.broker, stack.redis_url, names, tmp_path / "data", extra_args=["--rules", str(rules)]
    ).start()
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, CLOCK_TO)
        wait_until_quiet(lambda: (topic_size(stack.broker, names.tier_changes), worker.metrics().count("\n")))
        metrics = worker.metrics()
    finally:
        worker.stop()

    # The history exercises what it should.
    kinds, in_order = _topics_in_order(messages)
    profile_only = {c for c, seen in kinds.items() if seen == {"profiles"}}
    assert len(profile_only) >= 5 and len(set(kinds) - in_order) >= 10  # profiles out of order
    assert expected.outcomes[("profiles", "duplicate")] >= 1
    reasons = Counter(t["reason"] for t in expected.transitions)
    assert reasons["profile"] >= 20 and reasons["time"] >= 20, reasons
    tiers_seen = Counter((t["dimension"], t["to"]) for t in expected.transitions)
    for dim_tier in [
        ("region", "emea_electronics"),
        ("service", "escalate"),
        ("service", "quiet"),
        ("assortment", "broad"),
        ("assortment", "bookish"),
        ("assortment", "young"),
        ("assortment", "clicky"),
        ("region", "elsewhere"),
    ]:
        assert tiers_seen[dim_tier] >= 1, dim_tier

    problems: list[str] = []

    # Dead letters (SPEC 2, 10).
    dead = read_topic(stack.broker, names.dead_letters)
    headers = [dict(record.headers) for record in dead]
    got_reasons = Counter(h["x-dlq-reason"].decode() for h in headers)
    if got_reasons != expected.dead_letter_reasons:
        problems.append(
            f"dead-letter reasons: got {dict(got_reasons)}, want {dict(expected.dead_letter_reasons)}"
        )
    got_dead = Counter(
        (h["x-dlq-reason"].decode(), r.key or b"", r.value) for h, r in zip(headers, dead, strict=True)
    )
    want_dead = Counter((reason, k or b"", v) for reason, k, v in expected.dead_letters)
    for reason, key, value in sorted((got_dead - want_dead).elements()):
        problems.append(f"unexpected dead letter {reason}: key={key!r} value={value[:160]!r}")
    for reason, key, value in sorted((want_dead - got_dead).elements()):
        problems.append(f"missing dead letter {reason}: key={key!r} value={value[:160]!r}")
    profile_dead = [h for h in headers if h["x-dlq-source-topic"].decode() == names.profiles]
    want_profile_reasons = {"too_large", "malformed_json", "schema", "key_mismatch"}
    profile_reasons = {h["x-dlq-reason"].decode() for h in profile_dead}
    if profile_reasons != want_profile_reasons:
        problems.append(f"dead letters from the profiles topic: reasons {profile_reasons}")

    # Outcome metrics per topic.
    topic_kind = {
        names.purchases: "purchases",
        names.interactions: "interactions",
        names.profiles: "profiles",
    }
    counted = {
        (topic_kind[topic], outcome): int(float(value))
        for outcome, topic, value in re.findall(
            r'^segmenter_events_total\{outcome="(\w+)",topic="([^"]+)"\} (\S+)$', metrics, re.M
        )
        if topic in topic_kind
    }
    if counted != dict(expected.outcomes):
        problems.append(f"events_total: got {counted}, want {dict(expected.outcomes)}")

    # Tier-change events.
    changes = tier_changes(stack.broker, names)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for change in changes:
        by_customer[change["customer_id"]].append(change)
    want_by_customer: dict[str, list[tuple[dict, dict, dict]]] = defaultdict(list)
    for t, f, a in zip(
        expected.transitions, expected.transition_features, expected.transition_attributes, strict=True
    ):
        want_by_customer[t["customer_id"]].append((t, f, a))
    sequence_checked = {c for c in in_order if len(kinds[c]) == 1} | profile_only
    assert len(sequence_checked) >= 30
    key = lambda c: (c["dimension"], c["seq"])  # noqa: E731 - per-dimension order is what is defined
    for customer_id in sorted(sequence_checked):
        got = sorted(by_customer[customer_id], key=key)
        want = sorted(want_by_customer[customer_id], key=lambda w: key(w[0]))
        got_keys = [{k: c.get(k) for k in TRANSITION_KEYS} for c in got]
        want_keys = [w[0] for w in want]
        if got_keys != want_keys:
            problems.append(f"{customer_id}: transitions differ:\n  got  {got_keys}\n  want {want_keys}")
            continue
        for c, (_t, f, a) in zip(got, want, strict=True):
            got_features = {k: c.get("features", {}).get(k) for k in f}
            if got_features != f or c.get("attributes") != a:
                problems.append(
                    f"{c['event_id']}: features/attributes differ:\n  got  {c.get('features')} "
                    f"{c.get('attributes')}\n  want {f} {a}"
                )
                break

    # Redis: counts, sets, records.
    records, counts, members = redis_state(stack.redis_url, names.redis_prefix)
    if counts != expected.tier_counts:
        problems.append(f"tier counts: got {counts}, want {expected.tier_counts}")
    expected_members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for customer_id, view in expected.final.items():
        for dimension, tier in view.tiers.items():
            expected_members[(dimension, tier)].add(customer_id)
    got_members = {k: v for k, v in members.items() if v}
    if got_members != dict(expected_members):
        diff = {
            k: (sorted(got_members.get(k, set()) - v)[:5], sorted(v - got_members.get(k, set()))[:5])
            for k, v in {**{k: set() for k in got_members}, **expected_members}.items()
            if got_members.get(k, set()) != v
        }
        problems.append(f"tier sets differ (extra, missing): {diff}")
    if set(records) != set(expected.final):
        problems.append(
            f"record keys: extra {sorted(set(records) - set(expected.final))[:5]}, "
            f"missing {sorted(set(expected.final) - set(records))[:5]}"
        )
    exact = {c for c in in_order if len(kinds[c]) == 1} - profile_only
    assert len(exact) >= 10
    for customer_id in sorted(set(records) & set(expected.final)):
        record = dict(records[customer_id])
        if not record.pop("rules_version", None) or int(record.pop("version", 0)) < 1:
            problems.append(f"{customer_id}: record without rules_version/version: {records[customer_id]}")
        if customer_id in exact:
            want = expected.final[customer_id].redis_hash()
        else:
            lo, hi = expected.as_of_range(customer_id)
            as_of = model.day_from_str(record.get("as_of", "1970-01-01"))
            if not lo <= as_of <= hi:
                problems.append(
                    f"{customer_id}: as_of {record.get('as_of')} outside "
                    f"[{model.format_day(lo)}, {model.format_day(hi)}]"
                )
                continue
            want = expected.record_at(customer_id, as_of)
        if record != want:
            diff = {
                k: (record.get(k), want.get(k))
                for k in set(record) | set(want)
                if record.get(k) != want.get(k)
            }
            problems.append(f"{customer_id}: record differs (got, want): {diff}")

    assert not problems, f"{len(problems)} discrepancies:\n" + "\n".join(problems[:40])
