"""History and flows (SPEC section 14) recomputed from the tier-changes topic: what `redis rebuild` writes
and `redis check` compares. The topic is the record of every tier change, in emission order per customer."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from segmenter.customer import CustomerState
from segmenter.timeutil import day_iso, day_of_micros, parse_rfc3339_micros
from state.redis_projection import flow_field, flows_key, history_key


@dataclass
class HistoryAndFlows:
    keep: int
    history: dict[str, deque[bytes]] = field(default_factory=dict)  # customer -> last `keep`, oldest first
    flows: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # key suffix
    latest_seq: dict[tuple[str, str], int] = field(default_factory=dict)  # (customer, dimension) -> seq

    def add(self, body: bytes) -> None:
        event = orjson.loads(body)
        customer_id = event["customer_id"]
        self.latest_seq[(customer_id, event["dimension"])] = event["seq"]
        if self.keep > 0:
            kept = self.history.get(customer_id)
            if kept is None:
                kept = self.history[customer_id] = deque(maxlen=self.keep)
            kept.append(body)
        day = day_iso(day_of_micros(parse_rfc3339_micros(event["at"])))
        self.flows[f"{event['dimension']}:{day}"][flow_field(event["from"], event["to"])] += 1

    def add_unread(self, states: Iterable[CustomerState]) -> None:
        """Tier changes the states hold but the topic read did not (a batch committed after the topic was
        read and before the tables were): read the topic first, then the tables, then this."""
        for state in states:
            for change in state.emitted:
                body = change.body
                seq = orjson.loads(body)["seq"]
                if seq > self.latest_seq.get((state.customer_id, change.dimension), 0):
                    self.add(body)

    @classmethod
    def of(cls, bodies: Iterable[bytes], keep: int) -> HistoryAndFlows:
        result = cls(keep)
        for body in bodies:
            result.add(body)
        return result

    def redis_history(self, prefix: str) -> dict[str, list[bytes]]:
        """Redis key -> list as LRANGE returns it (newest first)."""
        return {history_key(prefix, cid): list(reversed(kept)) for cid, kept in self.history.items()}

    def redis_flows(self, prefix: str) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for suffix, counts in self.flows.items():
            dimension, day = suffix.rsplit(":", 1)
            result[flows_key(prefix, dimension, day)] = dict(counts)
        return result
