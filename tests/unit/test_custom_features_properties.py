"""Custom windowed features (SPEC section 11) and attributes (SPEC 10) in the engine against a brute force.

The brute force keeps the event list and recomputes every custom feature from it on every day, classifies
with a plain-Python reading of the rules below, and emits a change whenever a tier differs: so it checks
the detail buckets, their pruning to `history_days`, and the candidate days of window expiries.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmenter.engine import Effects, Engine, InputMessage
from segmenter.events import Kind
from segmenter.rules import parse_rules
from segmenter.timeutil import day_iso, day_midnight_rfc3339

BASE_DAY = 20_000
RULES = parse_rules(
    """
version: 1
windows: {value_days: 365, engagement_days: 30}
features:
  clicks_20d:    {count: interactions, type: email_click, days: 20}
  tickets_45d:   {count: interactions, type: [support_ticket, complaint], days: 45}
  orders_30d:    {count: purchases, days: 30}
  toys_60d:      {sum: purchases, category: toys, days: 60}
  categories_90d: {distinct: categories, days: 90}
dimensions:
  service:
    - {tier: escalate, when: "tickets_45d > 2 and attr.region in [\\"EU\\", \\"UK\\"]"}
    - {tier: watch,    when: "tickets_45d >= 1"}
    - {tier: fine,     when: "true"}
  assortment:
    - {tier: broad,    when: "categories_90d >= 3"}
    - {tier: toys,     when: "toys_60d >= 50 and toys_60d != 100"}
    - {tier: busy,     when: "orders_30d == 2 or clicks_20d >= 2"}
    - {tier: narrow,   when: "true"}
"""
)
CATEGORIES = [None, "toys", "books", "shoes", "home"]
TYPES = ["email_click", "support_ticket", "complaint", "page_view"]


@dataclass(frozen=True)
class Ev:
    day: int
    second: int
    kind: str  # purchase | refund | interaction | profile
    cents: int
    label: str | None  # category, interaction type, or region

    @property
    def ts(self) -> str:
        h, m, s = self.second // 3600, self.second // 60 % 60, self.second % 60
        return f"{day_iso(self.day)}T{h:02d}:{m:02d}:{s:02d}Z"


def window(events: list[Ev], day: int, days: int) -> list[Ev]:
    return [e for e in events if day - days + 1 <= e.day <= day]


def brute_tiers(events: list[Ev], day: int) -> tuple[str, str]:
    seen = [e for e in events if e.day <= day]
    tickets = sum(1 for e in window(seen, day, 45) if e.kind == "interaction" and e.label in TYPES[1:3])
    clicks = sum(1 for e in window(seen, day, 20) if e.kind == "interaction" and e.label == "email_click")
    orders = sum(1 for e in window(seen, day, 30) if e.kind == "purchase")
    toys = sum((e.cents if e.kind == "purchase" else -e.cents) for e in window(seen, day, 60)
               if e.kind in ("purchase", "refund") and e.label == "toys")
    toys = max(0, toys)
    categories = len({e.label for e in window(seen, day, 90) if e.kind == "purchase" and e.label})
    profiles = [e for e in seen if e.kind == "profile"]
    region = max(profiles, key=lambda e: (e.day, e.second)).label if profiles else None
    if tickets > 2 and region in ("EU", "UK"):
        service = "escalate"
    elif tickets >= 1:
        service = "watch"
    else:
        service = "fine"
    if categories >= 3:
        assortment = "broad"
    elif toys >= 5000 and toys != 10000:
        assortment = "toys"
    elif orders == 2 or clicks >= 2:
        assortment = "busy"
    else:
        assortment = "narrow"
    return service, assortment


def brute_transitions(events: list[Ev], until: int) -> list[tuple]:
    out: list[tuple] = []
    tiers: tuple[str, str] | None = None
    seqs: dict[str, int] = {}

    def emit(new: tuple[str, str], at: str, reason: str) -> None:
        nonlocal tiers
        for index, name in enumerate(("service", "assortment")):
            old = None if tiers is None else tiers[index]
            if old != new[index]:
                seqs[name] = seqs.get(name, 0) + 1
                out.append((name, seqs[name], old, new[index], at, reason))
        tiers = new

    applied: list[Ev] = []
    first = events[0].day
    for day in range(first, until + 1):
        if day > first:
            new = brute_tiers(applied, day)
            if new != tiers:
                emit(new, day_midnight_rfc3339(day), "time")
        for event in (e for e in events if e.day == day):
            applied.append(event)
            emit(brute_tiers(applied, day), event.ts, event.kind)
    return out


def run_engine(events: list[Ev], until: int) -> list[tuple]:
    engine = Engine(RULES, {}, {})
    effects = Effects()
    for n, e in enumerate(events):
        body: dict[str, object] = {"event_id": f"e{n}", "customer_id": "c", "ts": e.ts}
        if e.kind == "profile":
            kind = Kind.PROFILES
            body["attributes"] = {"region": e.label}
        elif e.kind == "interaction":
            kind = Kind.INTERACTIONS
            body["type"] = e.label
        else:
            kind = Kind.PURCHASES
            body.update(type=e.kind, amount=f"{e.cents // 100}.{e.cents % 100:02d}")
            if e.label:
                body["category"] = e.label
        engine.handle_input(InputMessage(kind, kind.value, 0, n, b"c", orjson.dumps(body), []), effects)
    engine.handle_clock(0, until * 86_400_000_000, effects)
    reasons = {"profile": "profile"}
    return [
        (t.dimension, t.seq, t.from_tier, t.to_tier, t.at, reasons.get(t.reason, t.reason))
        for t in effects.transitions
    ]


def _event(kind: str, day: int, second: int, cents: int, pick: int) -> Ev:
    labels = {
        "purchase": CATEGORIES, "refund": CATEGORIES, "interaction": TYPES, "profile": ["EU", "US", "UK"]
    }
    options = labels[kind]
    return Ev(day, second, kind, cents, options[pick % len(options)])


events_strategy = st.lists(
    st.builds(
        _event,
        kind=st.sampled_from(["purchase", "purchase", "refund", "interaction", "interaction", "profile"]),
        day=st.integers(BASE_DAY, BASE_DAY + 150),
        second=st.integers(0, 86_399),
        cents=st.integers(1, 9_000),
        pick=st.integers(0, 20),
    ),
    min_size=1,
    max_size=30,
).map(lambda evs: sorted(evs, key=lambda e: (e.day, e.second)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, extra_days=st.integers(0, 200))
def test_custom_features_and_attributes_match_a_day_by_day_brute_force(
    events: list[Ev], extra_days: int
) -> None:
    # Purchases, interactions and profiles on one partition: with one customer, the profiles topic out of
    # the watermark and the other two in event-time order, D_c is the day of its newest event.
    # The brute force's `reason` for a profile is "profile"; for interactions "interaction".
    until = events[-1].day + extra_days
    assert run_engine(events, until) == brute_transitions(events, until)
