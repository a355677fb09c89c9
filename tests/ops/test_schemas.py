"""docs/schemas: the JSON Schemas are valid draft 2020-12, accept the SPEC's events and reject bad ones (in
agreement with the worker's own validation), and asyncapi.yaml is a valid AsyncAPI 3.0 document whose
references and names match the files and the code."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
import yaml

from tests.ops.helpers import REPO, VENDORED_SCHEMAS

SCHEMAS = REPO / "docs" / "schemas"
SPEC = REPO.parent / "shared" / "SPEC.md"
SCHEMA_FILES = [
    "purchase-event.schema.json",
    "interaction-event.schema.json",
    "tier-change-event.schema.json",
]

# SPEC section 6's example (used when shared/SPEC.md is not beside the repository).
SPEC_TIER_CHANGE = {
    "event_id": "c-42:lifecycle:3", "customer_id": "c-42", "dimension": "lifecycle", "seq": 3,
    "from": "active", "to": "at_risk", "at": "1997-06-01T00:00:00Z", "reason": "time",
    "cause_event_id": None, "rules_version": "<sha256 of the normalised rules>", "actions": [],
    "features": {"recency_days": 90, "frequency": 2, "monetary": "41.50", "engagement": 0, "tenure_days": 120,
                 "lifetime_purchases": 2, "lifetime_monetary": "41.50"},
}
SHA = "0123456789abcdef" * 4


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def validator(name: str, draft=jsonschema.Draft202012Validator):
    return draft(load_schema(name), format_checker=draft.FORMAT_CHECKER)


def spec_tier_change() -> dict:
    event = copy.deepcopy(SPEC_TIER_CHANGE)
    if SPEC.exists():
        block = re.search(r"Tier-change event \(JSON\):\n\n```json\n(.*?)```", SPEC.read_text(), re.S)
        assert block, "tier-change example not found in SPEC.md"
        event = json.loads(block.group(1))
    assert event["rules_version"].startswith("<")
    event["rules_version"] = SHA
    # v2 adds these two to every tier-change event (SPEC section 6, after the example).
    event.setdefault("when", "recency_days >= 90")
    event.setdefault("attributes", {})
    return event


def purchase(**changes: Any) -> dict:
    event = {"event_id": "p-1", "type": "purchase", "customer_id": "c-42", "ts": "2026-11-24T10:15:00Z",
             "amount": "19.99"}
    return without_none({**event, **changes})


def interaction(**changes: Any) -> dict:
    event = {"event_id": "i-1", "type": "email_open", "customer_id": "c-42",
             "ts": "2026-11-24T10:15:00+08:00"}
    return without_none({**event, **changes})


def without_none(event: dict) -> dict:
    """`field=None` in the builders above means: leave the field out."""
    return {key: value for key, value in event.items() if value is not None}


# (label, kind, event, valid?) -- kind is the input topic: purchases | interactions
INPUT_CASES = [
    ("purchase, decimal string", "purchases", purchase(), True),
    ("purchase, JSON number", "purchases", purchase(amount=41.5), True),
    ("purchase, integer amount", "purchases", purchase(amount=5), True),
    ("purchase, all optional fields", "purchases",
     purchase(currency="USD", order_id="o-7", category="books"), True),
    ("purchase, +08:00 offset and fraction", "purchases", purchase(ts="2026-11-24T18:15:00.123+08:00"), True),
    ("purchase, unknown extra field ignored", "purchases", purchase(coupon="X1"), True),
    ("purchase, trailing zeros", "purchases", purchase(amount="10.500"), True),
    ("refund", "purchases", purchase(type="refund", amount="5.00"), True),
    ("purchase, 128-char ids", "purchases", purchase(event_id="e" * 128, customer_id="c" * 128), True),
    ("missing event_id", "purchases", purchase(event_id=None), False),
    ("empty event_id", "purchases", purchase(event_id=""), False),
    ("129-char event_id", "purchases", purchase(event_id="e" * 129), False),
    ("empty customer_id", "purchases", purchase(customer_id=""), False),
    ("numeric customer_id", "purchases", purchase(customer_id=42), False),
    ("unknown type", "purchases", purchase(type="gift"), False),
    ("missing amount", "purchases", purchase(amount=None), False),
    ("zero amount", "purchases", purchase(amount=0), False),
    ("zero amount string", "purchases", purchase(amount="0.00"), False),
    ("negative amount", "purchases", purchase(amount=-5), False),
    ("negative amount string", "purchases", purchase(amount="-5.00"), False),
    ("three decimals string", "purchases", purchase(amount="1.234"), False),
    ("amount not a number", "purchases", purchase(amount="ten"), False),
    ("amount boolean", "purchases", purchase(amount=True), False),
    ("ts without offset", "purchases", purchase(ts="2026-11-24T10:15:00"), False),
    ("ts date only", "purchases", purchase(ts="2026-11-24"), False),
    ("ts missing", "purchases", purchase(ts=None), False),
    ("lower-case currency", "purchases", purchase(currency="usd"), False),
    ("order_id not a string", "purchases", purchase(order_id=7), False),
    ("interaction", "interactions", interaction(), True),
    ("interaction with properties", "interactions", interaction(properties={"campaign": "bf"}), True),
    ("interaction, 32-char type", "interactions", interaction(type="a" * 32), True),
    ("interaction, 33-char type", "interactions", interaction(type="a" * 33), False),
    ("interaction, upper-case type", "interactions", interaction(type="PageView"), False),
    ("interaction, type starts with digit", "interactions", interaction(type="1click"), False),
    ("interaction, properties not an object", "interactions", interaction(properties=[1]), False),
    ("interaction, missing ts", "interactions", interaction(ts=None), False),
]
SCHEMA_OF_KIND = {"purchases": "purchase-event.schema.json", "interactions": "interaction-event.schema.json"}


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)  # asyncapi.yaml announces them as draft-07 compatible


@pytest.mark.parametrize(("label", "kind", "event", "valid"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_input_event_schemas(label, kind, event, valid):
    for draft in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator):
        assert validator(SCHEMA_OF_KIND[kind], draft).is_valid(event) is valid, f"{label} ({draft.__name__})"


@pytest.mark.parametrize(("label", "kind", "event", "valid"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_input_schemas_agree_with_the_worker(label, kind, event, valid):
    """The worker's own validation (segmenter.events) accepts exactly what the schema accepts."""
    from segmenter.events import DeadLetterReason, InvalidEvent, Kind, decode_event

    key = str(event.get("customer_id", "")).encode()
    value = json.dumps(event).encode()
    if valid:
        decode_event(Kind(kind), key, value)
    else:
        with pytest.raises(InvalidEvent) as caught:
            decode_event(Kind(kind), key, value)
        assert caught.value.reason is DeadLetterReason.SCHEMA


def test_number_amount_decimal_places_is_documented_not_enforced():
    """JSON Schema cannot check 2 decimal places of a binary float portably; the schema says so."""
    schema = load_schema("purchase-event.schema.json")
    assert "2 decimal places" in schema["description"]
    assert validator("purchase-event.schema.json").is_valid(purchase(amount=1.005))


def test_spec_tier_change_example_validates():
    event = spec_tier_change()
    for draft in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator):
        errors = [e.message for e in validator("tier-change-event.schema.json", draft).iter_errors(event)]
        assert errors == []


def tier_change(**changes: Any) -> dict:
    event = spec_tier_change()
    for key, value in changes.items():
        if key.startswith("f_"):
            event["features"][key[2:]] = value
        else:
            event[key] = value
    return event


TIER_CHANGE_CASES = [
    ("first classification", tier_change(**{"from": None, "seq": 1, "event_id": "c-42:lifecycle:1"}), True),
    ("event-driven",
     tier_change(reason="purchase", cause_event_id="p-9", at="2026-11-24T18:15:00+08:00"), True),
    ("refund", tier_change(reason="refund", cause_event_id="r-1"), True),
    ("interaction", tier_change(reason="interaction", cause_event_id="i-1"), True),
    ("with actions", tier_change(to="at_risk", actions=["winback_offer"]), True),
    ("all features", tier_change(f_days_since_last_interaction=3, f_avg_order_value="20.75"), True),
    ("null features", tier_change(f_recency_days=None, f_tenure_days=None, f_days_since_last_interaction=None,
                                  f_avg_order_value=None), True),
    ("negative lifetime_monetary", tier_change(f_lifetime_monetary="-12.30"), True),
    ("customer id with colon", tier_change(customer_id="a:b", event_id="a:b:lifecycle:3"), True),
    ("seq 0", tier_change(seq=0), False),
    ("seq as string", tier_change(seq="3"), False),
    ("unknown reason", tier_change(reason="manual"), False),
    ("time with a cause", tier_change(cause_event_id="p-1"), False),
    ("purchase without cause", tier_change(reason="purchase", cause_event_id=None), False),
    ("short rules_version", tier_change(rules_version="abc"), False),
    ("upper-case rules_version", tier_change(rules_version=SHA.upper()), False),
    ("at without offset", tier_change(at="1997-06-01T00:00:00"), False),
    ("actions not strings", tier_change(actions=[1]), False),
    ("to missing", {k: v for k, v in tier_change().items() if k != "to"}, False),
    ("extra field", tier_change(priority=1), False),
    ("monetary one decimal", tier_change(f_monetary="41.5"), False),
    ("monetary as number", tier_change(f_monetary=41.5), False),
    ("negative monetary", tier_change(f_monetary="-1.00"), False),
    ("avg_order_value three decimals", tier_change(f_avg_order_value="1.005"), False),
    ("negative frequency", tier_change(f_frequency=-1), False),
    ("recency as float", tier_change(f_recency_days=1.5), False),
    ("custom feature", tier_change(f_tickets_90d=3, f_predicted_clv="12.50", f_p_alive=0.5), True),
    ("feature of a bad type", tier_change(f_clv={"x": 1}), False),
    ("rules_changed", tier_change(reason="rules_changed", at="2026-11-24T10:15:00.123456Z"), True),
    ("rules_changed with a cause", tier_change(reason="rules_changed", cause_event_id="p-1"), False),
    ("profile", tier_change(reason="profile", cause_event_id="pr-1"), True),
    ("attributes", tier_change(attributes={"region": "EU", "birth_year": 1985, "vip": True}), True),
    ("attribute with a bad name", tier_change(attributes={"Region": "EU"}), False),
    ("attribute null", tier_change(attributes={"region": None}), False),
    ("when missing", {k: v for k, v in tier_change().items() if k != "when"}, False),
    ("attributes missing", {k: v for k, v in tier_change().items() if k != "attributes"}, False),
    ("missing lifetime_purchases",
     {**tier_change(), "features": {k: v for k, v in tier_change()["features"].items()
                                    if k != "lifetime_purchases"}}, False),
    ("bad event_id", tier_change(event_id="c-42"), False),
]


@pytest.mark.parametrize(("label", "event", "valid"), TIER_CHANGE_CASES,
                         ids=[c[0] for c in TIER_CHANGE_CASES])
def test_tier_change_schema(label, event, valid):
    for draft in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator):
        assert validator("tier-change-event.schema.json", draft).is_valid(event) is valid, label


# --- AsyncAPI ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict:
    return yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())


def refs(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(refs(item))
    return found


def resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/"):
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_asyncapi_matches_the_official_3_0_schema(asyncapi):
    schema = json.loads((VENDORED_SCHEMAS / "asyncapi-3.0.0.json").read_text())
    assert asyncapi["asyncapi"] == "3.0.0"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(asyncapi)]
    assert errors == []
    broken = copy.deepcopy(asyncapi)
    broken["operations"]["sendTierChanges"]["action"] = "publish"  # AsyncAPI 2 wording
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_asyncapi_references_resolve(asyncapi):
    files = set()
    for ref in refs(asyncapi):
        target, _, pointer = ref.partition("#")
        if target:
            path = (SCHEMAS / target).resolve()
            assert path.is_file(), f"{ref}: no such file"
            files.add(path.name)
            if pointer:
                resolve_pointer(json.loads(path.read_text()), pointer)
        else:
            resolve_pointer(asyncapi, pointer)
    assert files == set(SCHEMA_FILES)


def test_asyncapi_topics_are_the_default_names(asyncapi):
    from streams.topic_names import TopicNames

    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    assert addresses == set(TopicNames().all())
    for channel in asyncapi["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]


def test_asyncapi_headers_match_the_spec(asyncapi):
    from segmenter.events import DeadLetterReason

    schemas = asyncapi["components"]["schemas"]
    ce = schemas["CloudEventsHeaders"]
    assert set(ce["required"]) == {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                                   "content-type"}
    assert ce["properties"]["ce_specversion"]["const"] == "1.0"
    assert ce["properties"]["ce_source"]["const"] == "segmenter"
    assert ce["properties"]["ce_type"]["const"] == "segmenter.tier.changed"
    assert ce["properties"]["content-type"]["const"] == "application/json"
    dlq = schemas["DeadLetterHeaders"]
    assert set(dlq["required"]) == {"x-dlq-reason", "x-dlq-detail", "x-dlq-source-topic",
                                    "x-dlq-source-partition", "x-dlq-source-offset"}
    assert set(dlq["properties"]["x-dlq-reason"]["enum"]) == {reason.value for reason in DeadLetterReason}


def test_asyncapi_examples_validate(asyncapi):
    for name, message in asyncapi["components"]["messages"].items():
        payload = message["payload"]
        if "schema" not in payload:
            continue
        schema_file = Path(payload["schema"]["$ref"]).name
        headers_schema = resolve_pointer(asyncapi, message["headers"]["$ref"].lstrip("#")) \
            if "headers" in message else None
        for example in message.get("examples", []):
            errors = list(validator(schema_file).iter_errors(example["payload"]))
            assert errors == [], f"{name} example {example.get('name')}: {errors[0].message}"
            if headers_schema and "headers" in example:
                jsonschema.Draft7Validator(headers_schema).validate(example["headers"])
                assert example["headers"]["ce_id"] == example["payload"]["event_id"]
                assert example["headers"]["ce_time"] == example["payload"]["at"]
                assert example["headers"]["ce_subject"] == example["payload"]["customer_id"]
