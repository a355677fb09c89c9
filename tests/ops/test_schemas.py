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
    "profile-event.schema.json",
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


PROFILE_DEFAULT = object()


def profile(attributes: Any = PROFILE_DEFAULT, **changes: Any) -> dict:
    """A profile event (SPEC section 10). Unlike the builders above, an attribute value None stays: null
    removes an attribute; `attributes=None` leaves the field out."""
    event = {"event_id": "pr-1", "customer_id": "c-42", "ts": "2026-11-24T10:15:00Z",
             "attributes": {"region": "EU"} if attributes is PROFILE_DEFAULT else attributes}
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
    # profiles (SPEC section 10)
    ("profile", "profiles", profile(), True),
    ("profile, the SPEC example's attributes", "profiles",
     profile({"region": "EU", "industry": "retail", "birth_year": 1985, "newsletter": True,
              "old_flag": None}),
     True),
    ("profile, only a removal", "profiles", profile({"region": None}), True),
    ("profile, 64 attributes", "profiles", profile({f"a{i}": i for i in range(64)}), True),
    ("profile, 32-char name", "profiles", profile({"a" * 32: 1}), True),
    ("profile, name with digits and underscores", "profiles", profile({"x_1_2": "y"}), True),
    ("profile, 1-char name", "profiles", profile({"x": "y"}), True),
    ("profile, 1-char string", "profiles", profile({"tier": "A"}), True),
    ("profile, 256-char string", "profiles", profile({"note": "n" * 256}), True),
    ("profile, 256 non-ASCII characters", "profiles", profile({"note": "\u00e9\U0001f600" * 128}), True),
    ("profile, negative and fractional numbers", "profiles", profile({"score": -0.25, "debt": -12}), True),
    ("profile, zero and false", "profiles", profile({"score": 0, "vip": False}), True),
    ("profile, integer beyond 2**53", "profiles", profile({"big": 2**60}), True),
    ("profile, largest double", "profiles", profile({"big": 1.7976931348623157e308}), True),
    ("profile, +08:00 offset and fraction", "profiles", profile(ts="2026-11-24T18:15:00.5+08:00"), True),
    ("profile, unknown extra fields ignored", "profiles", profile(type="crm_sync", source={"x": 1}), True),
    ("profile, 128-char ids", "profiles", profile(event_id="e" * 128, customer_id="c" * 128), True),
    ("profile, missing attributes", "profiles", profile(None), False),
    ("profile, attributes null", "profiles", {**profile(), "attributes": None}, False),
    ("profile, attributes an array", "profiles", profile([{"region": "EU"}]), False),
    ("profile, attributes a string", "profiles", profile("region=EU"), False),
    ("profile, no attributes", "profiles", profile({}), False),
    ("profile, 65 attributes", "profiles", profile({f"a{i}": i for i in range(65)}), False),
    ("profile, 33-char name", "profiles", profile({"a" * 33: 1}), False),
    ("profile, upper-case name", "profiles", profile({"Region": "EU"}), False),
    ("profile, name starts with a digit", "profiles", profile({"1st_order": "x"}), False),
    ("profile, name starts with underscore", "profiles", profile({"_region": "EU"}), False),
    ("profile, name with a hyphen", "profiles", profile({"birth-year": 1985}), False),
    ("profile, name with a dot", "profiles", profile({"attr.region": "EU"}), False),
    ("profile, empty name", "profiles", profile({"": "x"}), False),
    ("profile, one bad name among good ones", "profiles", profile({"region": "EU", "Industry": "x"}), False),
    ("profile, empty string", "profiles", profile({"region": ""}), False),
    ("profile, 257-char string", "profiles", profile({"note": "n" * 257}), False),
    ("profile, object value", "profiles", profile({"address": {"city": "Paris"}}), False),
    ("profile, array value", "profiles", profile({"tags": ["a", "b"]}), False),
    ("profile, integer beyond the double range", "profiles", profile({"big": 10**400}), False),
    ("profile, negative integer beyond the double range", "profiles", profile({"big": -(10**400)}), False),
    ("profile, missing event_id", "profiles", profile(event_id=None), False),
    ("profile, empty event_id", "profiles", profile(event_id=""), False),
    ("profile, 129-char event_id", "profiles", profile(event_id="e" * 129), False),
    ("profile, missing customer_id", "profiles", profile(customer_id=None), False),
    ("profile, numeric customer_id", "profiles", profile(customer_id=42), False),
    ("profile, missing ts", "profiles", profile(ts=None), False),
    ("profile, ts without offset", "profiles", profile(ts="2026-11-24T10:15:00"), False),
    ("profile, ts a number", "profiles", profile(ts=1764000000), False),
]
SCHEMA_OF_KIND = {"purchases": "purchase-event.schema.json", "interactions": "interaction-event.schema.json",
                  "profiles": "profile-event.schema.json"}


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


# Profile values whose JSON text cannot come from json.dumps: number literals beyond (or at the edge of) the
# range of a double. (label, JSON text of the attribute value, valid?)
RAW_PROFILE_NUMBERS = [
    ("exponent beyond the double range", "1e309", False),
    ("negative exponent beyond the double range", "-2.5e400", False),
    ("largest double, written out", "1.7976931348623157e308", True),
    ("underflows to zero", "1e-400", True),
    ("negative zero", "-0.0", True),
    ("exponent integer", "1E3", True),
]


@pytest.mark.parametrize(("label", "number", "valid"), RAW_PROFILE_NUMBERS,
                         ids=[c[0] for c in RAW_PROFILE_NUMBERS])
def test_profile_number_range_agrees_with_the_worker(label, number, valid):
    """SPEC 10: a number must be within the range of a double. Python's json module reads 1e309 as inf, which
    the schema's maximum rejects; the worker reads the literal exactly and rejects it with reason schema (SPEC
    also allows malformed_json, "where the JSON decoder itself refuses it")."""
    from segmenter.events import DeadLetterReason, InvalidEvent, Kind, decode_event

    text = ('{"event_id": "pr-1", "customer_id": "c-42", "ts": "2026-11-24T10:15:00Z", '
            f'"attributes": {{"n": {number}}}}}')
    event = json.loads(text)
    for draft in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator):
        check = validator("profile-event.schema.json", draft)
        assert check.is_valid(event) is valid, f"{label} ({draft.__name__})"
    if valid:
        decoded = decode_event(Kind.PROFILES, b"c-42", text.encode())
        assert decoded.attributes == {"n": float(number)}
    else:
        with pytest.raises(InvalidEvent) as caught:
            decode_event(Kind.PROFILES, b"c-42", text.encode())
        assert caught.value.reason in (DeadLetterReason.SCHEMA, DeadLetterReason.MALFORMED_JSON)


def spec_profile() -> dict:
    """SPEC section 10's example profile event."""
    spec = SPEC if SPEC.exists() else REPO / "docs" / "SPEC.md"
    block = re.search(r"## 10\. Profiles and attributes.*?```json\n(.*?)```", spec.read_text(), re.S)
    assert block, "profile example not found in SPEC.md"
    return json.loads(block.group(1))


def test_spec_profile_example_validates_and_decodes():
    from segmenter.events import Kind, decode_event

    event = spec_profile()
    for draft in (jsonschema.Draft202012Validator, jsonschema.Draft7Validator):
        errors = [e.message for e in validator("profile-event.schema.json", draft).iter_errors(event)]
        assert errors == []
    decoded = decode_event(Kind.PROFILES, event["customer_id"].encode(), json.dumps(event).encode())
    assert decoded.attributes == event["attributes"]
    assert decoded.reason == "profile"


@pytest.mark.parametrize(("kind", "event"), [
    ("profiles", profile({"region\n": "EU"})),
    ("interactions", interaction(type="email_open\n")),
], ids=["attribute name", "interaction type"])
def test_names_with_a_trailing_newline_are_rejected(kind, event):
    """Python's `$` also matches before a trailing newline (ECMA-262's, the dialect of JSON Schema patterns,
    does not): the worker must match names to the end of the string."""
    from segmenter.events import InvalidEvent, Kind, decode_event

    with pytest.raises(InvalidEvent):
        decode_event(Kind(kind), b"c-42", json.dumps(event).encode())


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


def test_asyncapi_profiles_channel(asyncapi):
    channel = asyncapi["channels"]["profiles"]
    assert channel["address"] == "customer.profiles"
    (message,) = channel["messages"].values()
    profile_message = resolve_pointer(asyncapi, message["$ref"].lstrip("#"))
    assert profile_message["payload"]["schema"]["$ref"] == "./profile-event.schema.json"
    assert profile_message["bindings"]["kafka"]["key"]["type"] == "string"
    assert "customer_id" in profile_message["bindings"]["kafka"]["key"]["description"]
    (operation,) = [op for op in asyncapi["operations"].values()
                    if op["channel"]["$ref"] == "#/channels/profiles"]
    assert operation["action"] == "receive"
    assert [example["payload"] for example in profile_message["examples"]] == [spec_profile()]


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
