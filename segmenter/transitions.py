"""Tier-change events (SPEC section 6): JSON body and CloudEvents 1.0 binary-mode Kafka headers."""

from __future__ import annotations

import msgspec
import orjson


class TierChange(msgspec.Struct, frozen=True):
    customer_id: str
    dimension: str
    seq: int
    from_tier: str | None
    to_tier: str
    at: str
    reason: str  # purchase | refund | interaction | profile | time | rules_changed
    cause_event_id: str | None
    rules_version: str
    actions: tuple[str, ...]
    features: dict[str, object]
    when: str = "true"  # the normalised condition of the tier entered (SPEC section 6, v2)
    attributes: dict[str, object] = msgspec.field(default_factory=dict)

    @property
    def event_id(self) -> str:
        return f"{self.customer_id}:{self.dimension}:{self.seq}"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "customer_id": self.customer_id,
                "dimension": self.dimension,
                "seq": self.seq,
                "from": self.from_tier,
                "to": self.to_tier,
                "at": self.at,
                "reason": self.reason,
                "cause_event_id": self.cause_event_id,
                "rules_version": self.rules_version,
                "actions": list(self.actions),
                "features": self.features,
                "when": self.when,
                "attributes": self.attributes,
            }
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return cloudevents_headers(self.event_id, self.at, self.customer_id)


def cloudevents_headers(event_id: str, at: str, customer_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"segmenter"),
        ("ce_type", b"segmenter.tier.changed"),
        ("ce_time", at.encode()),
        ("ce_subject", customer_id.encode()),
        ("content-type", b"application/json"),
    ]


def headers_of_body(body: bytes) -> list[tuple[str, bytes]]:
    """The headers of a tier change from its stored JSON body (re-sends must be byte-identical)."""
    fields = orjson.loads(body)
    return cloudevents_headers(fields["event_id"], fields["at"], fields["customer_id"])
