"""Custom feature values and flip days (segmenter/derived.py) against a brute force over the detail buckets.

`Derived.values` reuses a customer's cached values while they hold, and `Derived.first_flip` skips or
shortens walks from the current values; both must give exactly what recomputing every day from the buckets
gives, whatever the order of events, evaluations and pruning.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.customer import DEFAULT_DEDUPE_HORIZON_MICROS, CustomerState, apply_event, prune_details
from segmenter.derived import Derived
from segmenter.events import Kind, decode_event
from segmenter.rules import parse_rules
from segmenter.rules.model import (
    COUNT_INTERACTIONS,
    DISTINCT_CATEGORIES,
    OPERATOR_FUNCTIONS,
    SUM_PURCHASES,
    CustomFeature,
)
from segmenter.timeutil import day_iso

BASE = 20_000
RULES = parse_rules(
    """
version: 1
features:
  clicks_10d:  {count: interactions, type: email_click, days: 10}
  tickets_25d: {count: interactions, type: [support_ticket, complaint], days: 25}
  any_40d:     {count: interactions, days: 40}
  orders_20d:  {count: purchases, days: 20}
  toys_30d:    {sum: purchases, category: toys, days: 30}
  spend_60d:   {sum: purchases, days: 60}
  kinds_50d:   {distinct: categories, days: 50}
dimensions:
  a:
    - {tier: x, when: "clicks_10d >= 2 or tickets_25d == 1 or any_40d != 3"}
    - {tier: y, when: "orders_20d == 0 and toys_30d >= 20"}
    - {tier: z, when: "spend_60d < 35 or spend_60d == 50 or kinds_50d >= 2"}
    - {tier: w, when: "true"}
""",
    "derived-test",
)
CATEGORIES = ["toys", "books", "home", None]
TYPES = ["email_click", "support_ticket", "complaint", "page_view"]
FEATURES = RULES.custom_features
CHECKS = [
    (c.feature, OPERATOR_FUNCTIONS[c.op], c.threshold) for c in RULES.comparisons if c.feature.endswith("d")
]

event_kinds = st.sampled_from(["purchase", "refund", "interaction"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), event_kinds, st.integers(0, 120), st.integers(0, 3), st.integers(1, 40)),
        st.tuples(st.just("values"), st.integers(0, 200)),
        st.tuples(st.just("flip"), st.integers(0, 80), st.sampled_from([None, 3, 15, 60])),
        st.tuples(st.just("prune"), st.integers(0, 120)),
    ),
    min_size=1,
    max_size=40,
)


def event(state: CustomerState, n: int, kind: str, day: int, label: int, units: int) -> None:
    body: dict[str, object] = {
        "event_id": f"e{n}",
        "customer_id": "c",
        "ts": f"{day_iso(BASE + day)}T12:00:00Z",
    }
    if kind == "interaction":
        body["type"] = TYPES[label]
        topic = Kind.INTERACTIONS
    else:
        body.update(type=kind, amount=f"{units}.00")
        if kind == "purchase":
            body["currency"] = "USD"
        if CATEGORIES[label] is not None:
            body["category"] = CATEGORIES[label]
        topic = Kind.PURCHASES
    decoded = decode_event(topic, b"c", orjson.dumps(body))
    apply_event(state, decoded, DEFAULT_DEDUPE_HORIZON_MICROS, n, details=True)


def brute_value(feature: CustomFeature, state: CustomerState, day: int) -> int:
    """SPEC 11 read literally over the buckets of the window `[day - days + 1, day]`."""

    def inside(bucket_day: int) -> bool:
        return day - feature.days < bucket_day <= day

    if feature.kind == COUNT_INTERACTIONS:
        rows = zip(state.t_days, state.t_names, state.t_count, strict=True)
        return sum(n for d, name, n in rows if inside(d) and (feature.types is None or name in feature.types))
    rows = list(zip(state.c_days, state.c_names, state.c_count, state.c_cents, state.c_refunds, strict=True))
    if feature.kind == DISTINCT_CATEGORIES:
        return len({name for d, name, n, _, _ in rows if inside(d) and name and n > 0})
    chosen = [r for r in rows if inside(r[0]) and (feature.categories is None or r[1] in feature.categories)]
    if feature.kind == SUM_PURCHASES:
        return max(0, sum(cents - refunds for _, _, _, cents, refunds in chosen))
    return sum(n for _, _, n, _, _ in chosen)


def brute_values(state: CustomerState, day: int) -> dict[str, int]:
    return {feature.name: brute_value(feature, state, day) for feature in FEATURES}


def brute_flip(state: CustomerState, after: int, stop: int | None) -> int | None:
    def truths(day: int) -> tuple[bool, ...]:
        values = brute_values(state, day)
        return tuple(compare(values[name], threshold) for name, compare, threshold in CHECKS)

    now = truths(after)
    for day in range(after + 1, after + 400):
        if stop is not None and day >= stop:
            return None
        if truths(day) != now:
            return day
    return None


@settings(max_examples=400, deadline=None)
@given(steps)
def test_cached_values_and_flips_equal_recomputing_from_the_buckets(plan: list[tuple]) -> None:
    derived = Derived(RULES)
    state = CustomerState(customer_id="c", partition=0)
    latest = BASE  # the latest bucket day: flips are asked for days at or after it (a customer's D_c)
    for n, step in enumerate(plan):
        if step[0] == "event":
            _, kind, day, label, units = step
            event(state, n, kind, day, label, units)
            latest = max(latest, BASE + day)
        elif step[0] == "values":
            day = BASE + step[1]
            assert derived.values(state, day) == brute_values(state, day)
        elif step[0] == "flip":
            after = latest + step[1]
            stop = None if step[2] is None else after + step[2]
            assert derived.first_flip(state, after, stop) == brute_flip(state, after, stop)
        else:
            prune_details(state, BASE + step[1] - 60)
