"""A realistic synthetic customer event stream (the generator behind `segmenter simulate`).

Pure: no Kafka, no wall clock unless `live()` is given one. Deterministic for a given configuration.

Model (per customer, merged into one stream in global event-time order with a heap):

- personas: prospects (interactions only), one-time buyers (~40 %), occasional buyers (exponential
  inter-purchase gaps, mean 60..200 days), regulars (gamma gaps, shape 2..3, per-customer mean 7..120 days)
  and whales (frequent, large orders);
- order values are lognormal (heavy tailed) with a per-customer multiplier, in whole cents; a few orders are
  refunded (fully or partly) 1..30 days later, referencing the order;
- same-day bursts: a purchase is sometimes followed by 1..2 more on the same UTC day;
- churn hazard: after every purchase a customer may go quiet for good; its interactions then fade out;
- acquisition: a share of the customers exist at the start, the rest arrive over the period (and, in live
  mode, keep arriving at the same average rate);
- interactions (page_view, email_open, email_click, support_ticket, review) follow a per-customer rate that
  depends on the persona, drop after churn, and cluster around purchases (page views before one, reviews
  and support tickets after).

Valid events follow SPEC section 2 (`event_id` f"sim-{seed}-{n}", ts RFC 3339 UTC with `Z`, amount a decimal
string with 2 places, currency USD). Optional injections, drawn from their own random stream so that they
never change the valid events: duplicates (the same key and value sent again right away, so global order
holds) and bad messages, one defect each, labelled with the dead-letter reason they must get.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

import orjson

DAY = 86_400
_EPOCH = date(1970, 1, 1)

PURCHASES = "purchases"
INTERACTIONS = "interactions"
PROFILES = "profiles"
REGIONS = ("EU", "US", "APAC", "LATAM")
INDUSTRIES = ("retail", "wholesale", "manufacturing", "services", "public")

PERSONAS = ("prospect", "one_time", "occasional", "regular", "whale")
PERSONA_WEIGHTS = (0.12, 0.40, 0.25, 0.20, 0.03)
_PROSPECT, _ONE_TIME, _OCCASIONAL, _REGULAR, _WHALE = range(5)

DLQ_REASONS = ("malformed_json", "schema", "key_mismatch", "too_large", "currency")
KIND_EVENT = "event"
KIND_DUPLICATE = "duplicate"

CATEGORIES = ("apparel", "shoes", "electronics", "home", "beauty", "books", "toys", "grocery", "sports")
_INTERACTION_TYPES = ("page_view", "email_open", "email_click", "support_ticket", "review")
_INTERACTION_CUM_WEIGHTS = (0.58, 0.83, 0.93, 0.96)  # bisect index -> type
_CAMPAIGNS = tuple(f"cmp-{i:02d}" for i in range(1, 25))

# heap item codes
_ARRIVAL, _PURCHASE, _BURST, _INTERACT, _REFUND, _ONE_OFF, _PROFILE = range(7)


@dataclass(frozen=True)
class _Persona:
    gap_days: tuple[float, float]  # per-customer mean inter-purchase gap, log-uniform in this range
    gap_shape: tuple[float, float]  # gamma shape range (1 = exponential)
    churn: float  # probability of going quiet after each purchase
    value_median: float  # median order value in dollars
    value_sigma: float  # lognormal sigma of one order
    interactions_per_30d: float  # median interaction rate while active
    burst: float  # probability that a purchase starts a same-day burst


_PERSONA_PARAMS = {
    _PROSPECT: _Persona((0, 0), (1, 1), 1.0, 0, 0, 3.0, 0.0),
    _ONE_TIME: _Persona((0, 0), (1, 1), 1.0, 38.0, 0.8, 1.5, 0.0),
    _OCCASIONAL: _Persona((60, 200), (1.0, 1.0), 0.10, 45.0, 0.85, 2.5, 0.04),
    _REGULAR: _Persona((7, 120), (2.0, 3.0), 0.035, 55.0, 0.8, 7.0, 0.07),
    _WHALE: _Persona((3, 20), (2.0, 2.5), 0.02, 220.0, 0.95, 18.0, 0.15),
}


class Message(NamedTuple):
    """One message to produce: `topic` is "purchases" or "interactions" (the role, not the topic name)."""

    topic: str
    key: bytes | None
    value: bytes
    ts: int  # event time in epoch seconds (for a bad message: the stream position)
    kind: str  # "event", "duplicate", or the dead-letter reason a bad message must get


@dataclass(frozen=True)
class SimConfig:
    customers: int = 1000
    seed: int = 1
    start: date = date(2025, 1, 1)
    days: int = 400
    bad_ratio: float = 0.0
    duplicate_ratio: float = 0.0
    initial_share: float = 0.35  # customers already there at the start; the rest arrive over the period

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if not 0.0 <= self.bad_ratio <= 1.0 or not 0.0 <= self.duplicate_ratio <= 1.0:
            raise ValueError("bad_ratio and duplicate_ratio must be between 0 and 1")
        if not 0.0 <= self.initial_share <= 1.0:
            raise ValueError("initial_share must be between 0 and 1")

    @property
    def start_ts(self) -> int:
        return (self.start - _EPOCH).days * DAY

    @property
    def end_ts(self) -> int:
        return self.start_ts + self.days * DAY


class _Customer:
    __slots__ = (
        "cid",
        "key",
        "persona",
        "mean_gap",
        "shape",
        "value_mu",
        "value_sigma",
        "rate",
        "quiet_until",
        "churned",
    )

    def __init__(self, cid: str, persona: int) -> None:
        self.cid = cid
        self.key = cid.encode()
        self.persona = persona
        self.mean_gap = 0.0
        self.shape = 1.0
        self.value_mu = 0.0
        self.value_sigma = 0.0
        self.rate = 0.0  # interactions per second
        self.quiet_until = math.inf  # interactions stop after this time
        self.churned = False


def format_cents(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Simulation:
    """Generator state. `historic()` yields the period [start, start + days); `live(now)` continues it."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._rng = random.Random(f"segmenter-sim:{config.seed}")
        self._inject = random.Random(f"segmenter-sim-inject:{config.seed}")
        # Profiles draw from their own generator: the behaviour streams stay as they were without them.
        self._profiles = random.Random(f"segmenter-sim-profiles:{config.seed}")
        self._heap: list[tuple[int, int, int, _Customer | None, object]] = []
        self._seq = 0
        self._next_event = 0
        self._next_bad = 0
        self._customers_created = 0
        self._prefix = f"sim-{config.seed}-"
        self._day = -1
        self._day_prefix = ""
        self.persona_counts: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # kind -> messages
        self._initialised = False
        self._live = False
        n_initial = round(config.customers * config.initial_share)
        self._to_arrive = config.customers - n_initial
        self._n_initial = n_initial
        span = config.end_ts - config.start_ts
        self._live_arrival_mean = span / max(self._to_arrive, 1)

    # ---- public ----------------------------------------------------------------------------------------

    def historic(self) -> Iterator[Message]:
        """Messages with event time in [start, start + days), in non-decreasing time order."""
        self._init()
        end = self.config.end_ts
        heap = self._heap
        while heap and heap[0][0] < end:
            yield from self._step(None)

    def live(self, now: Callable[[], float]) -> Iterator[Message]:
        """Endless continuation: simulated time runs on; messages are stamped `now()` (never decreasing)."""
        self._init()
        if self._to_arrive == 0:  # all customers arrived: keep acquiring at the historic average rate
            self._to_arrive = -1
            self._schedule_arrival(self.config.end_ts)
        self._live = True
        last = 0
        while self._heap:
            stamp = int(now())
            if stamp < last:
                stamp = last
            last = stamp
            yield from self._step(stamp)

    # ---- internals -------------------------------------------------------------------------------------

    def _push(self, t: float, code: int, customer: _Customer | None, extra: object = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(t), self._seq, code, customer, extra))

    def _init(self) -> None:
        if self._initialised:
            return
        self._initialised = True
        start = self.config.start_ts
        for _ in range(self._n_initial):
            self._new_customer(start, existing=True)
        if self._to_arrive > 0:
            self._schedule_arrival(start)

    def _schedule_arrival(self, after: int) -> None:
        rng = self._rng
        end = self.config.end_ts
        if self._to_arrive > 0 and after < end:
            # next of the remaining sorted uniform arrival times in [after, end)
            t = after + (end - after) * (1.0 - rng.random() ** (1.0 / self._to_arrive))
        else:  # live: Poisson arrivals at the historic average rate
            t = max(after, end) + rng.expovariate(1.0 / self._live_arrival_mean)
        self._push(t, _ARRIVAL, None)

    def _new_customer(self, t: int, existing: bool) -> None:
        rng = self._rng
        index = self._customers_created
        self._customers_created += 1
        persona = rng.choices(range(5), PERSONA_WEIGHTS)[0]
        self.persona_counts[PERSONAS[persona]] += 1
        params = _PERSONA_PARAMS[persona]
        c = _Customer(f"c-{index}", persona)
        c.rate = params.interactions_per_30d * rng.lognormvariate(0.0, 0.6) / (30 * DAY)
        if persona == _PROSPECT:
            c.quiet_until = t + rng.expovariate(1.0 / (75 * DAY))
            c.churned = True
        else:
            lo, hi = params.gap_days
            if hi:
                c.mean_gap = math.exp(rng.uniform(math.log(lo), math.log(hi))) * DAY
            c.shape = rng.uniform(*params.gap_shape)
            c.value_mu = math.log(params.value_median) + rng.gauss(0.0, 0.45)
            c.value_sigma = params.value_sigma
            if persona == _ONE_TIME:
                first = t + (rng.uniform(0, 45 * DAY) if existing else rng.uniform(0, 4 * 3600))
            elif existing:  # mid-cycle at the start: the first purchase comes within one gap
                first = t + rng.uniform(0, c.mean_gap)
            else:
                first = t + rng.uniform(0, DAY)
            self._schedule_purchase(c, t, first)
        self._push(t + rng.expovariate(c.rate), _INTERACT, c)
        self._push(t + self._profiles.uniform(0, 3600), _PROFILE, c, "initial")
        if self._profiles.random() < 0.2:  # a CRM update later: a move, or a newsletter choice
            self._push(t + self._profiles.uniform(30 * DAY, 300 * DAY), _PROFILE, c, "update")

    def _schedule_purchase(self, c: _Customer, now: int, at: float) -> None:
        rng = self._rng
        if rng.random() < 0.6:  # browsing before buying
            for _ in range(rng.randint(1, 3)):
                self._push(max(now, at - rng.uniform(60, 3 * 3600)), _ONE_OFF, c, "page_view")
        self._push(at, _PURCHASE, c)

    def _ts_text(self, t: int) -> str:
        day, second = divmod(t, DAY)
        if day != self._day:
            self._day = day
            self._day_prefix = (_EPOCH + timedelta(days=day)).isoformat() + "T"
        hour, rest = divmod(second, 3600)
        minute, second = divmod(rest, 60)
        return f"{self._day_prefix}{hour:02d}:{minute:02d}:{second:02d}Z"

    def _step(self, stamp: int | None) -> Iterator[Message]:
        """Pop one heap item and yield what it produces (0..n messages)."""
        rng = self._rng
        t, _, code, c, extra = heapq.heappop(self._heap)
        if code == _ARRIVAL:
            self._new_customer(t, existing=False)
            if self._to_arrive > 0:
                self._to_arrive -= 1
                if self._to_arrive == 0 and self._live:
                    self._to_arrive = -1
            if self._to_arrive != 0:
                self._schedule_arrival(t)
            return
        assert c is not None
        ts = t if stamp is None else stamp
        if code == _INTERACT:
            if t > c.quiet_until:
                return  # gone quiet: the interaction process ends
            kind = _INTERACTION_TYPES[bisect_right(_INTERACTION_CUM_WEIGHTS, rng.random())]
            self._push(t + rng.expovariate(c.rate), _INTERACT, c)
            yield from self._emit_interaction(c, ts, kind)
            return
        if code == _PROFILE:
            yield from self._emit_profile(c, ts, extra == "initial")
            return
        if code == _ONE_OFF:
            if c.churned and t > c.quiet_until:
                return
            yield from self._emit_interaction(c, ts, extra)  # type: ignore[arg-type]
            return
        if code == _REFUND:
            refunded_order: str
            refund_cents: int
            refunded_order, refund_cents = extra  # type: ignore[misc]
            yield from self._emit_purchase(c, ts, "refund", refund_cents, refunded_order, None)
            return
        # purchase or burst purchase
        cents = max(50, round(rng.lognormvariate(c.value_mu, c.value_sigma) * 100))
        n = self._next_event
        order_id = f"o-{self.config.seed}-{n}"
        category = CATEGORIES[int(rng.random() * len(CATEGORIES))]
        if rng.random() < 0.04:  # refunded later, fully or partly
            refund = cents if rng.random() < 0.7 else max(1, round(cents * rng.uniform(0.1, 0.9)))
            self._push(t + rng.uniform(DAY, 30 * DAY), _REFUND, c, (order_id, refund))
        if rng.random() < 0.08:
            self._push(t + rng.uniform(3 * DAY, 21 * DAY), _ONE_OFF, c, "review")
        if rng.random() < 0.03:
            self._push(t + rng.uniform(0, 10 * DAY), _ONE_OFF, c, "support_ticket")
        if code == _PURCHASE:
            params = _PERSONA_PARAMS[c.persona]
            if rng.random() < params.burst:
                day_end = (t // DAY + 1) * DAY - 1
                for _ in range(rng.randint(1, 2)):
                    self._push(min(day_end, t + rng.uniform(120, 4 * 3600)), _BURST, c)
            if c.persona == _ONE_TIME or rng.random() < params.churn:
                c.churned = True
                c.rate *= 0.2
                c.quiet_until = t + rng.expovariate(1.0 / (45 * DAY))
            else:
                gap = rng.gammavariate(c.shape, c.mean_gap / c.shape)
                self._schedule_purchase(c, t, t + max(gap, 3600.0))
        yield from self._emit_purchase(c, ts, "purchase", cents, order_id, category)

    def _event_id(self) -> str:
        n = self._next_event
        self._next_event = n + 1
        return f"{self._prefix}{n}"

    def _emit_purchase(
        self, c: _Customer, ts: int, kind: str, cents: int, order_id: str, category: str | None
    ) -> Iterator[Message]:
        event = {
            "event_id": self._event_id(),
            "type": kind,
            "customer_id": c.cid,
            "ts": self._ts_text(ts),
            "amount": format_cents(cents),
            "currency": "USD",
            "order_id": order_id,
        }
        if category is not None:
            event["category"] = category
        yield from self._deliver(PURCHASES, c.key, orjson.dumps(event), ts, event)

    def _emit_interaction(self, c: _Customer, ts: int, kind: str) -> Iterator[Message]:
        rng = self._rng
        event: dict[str, Any] = {
            "event_id": self._event_id(),
            "type": kind,
            "customer_id": c.cid,
            "ts": self._ts_text(ts),
        }
        if kind == "page_view":
            event["properties"] = {"path": f"/p/{int(rng.random() * 5000)}"}
        elif kind in ("email_open", "email_click"):
            event["properties"] = {"campaign": _CAMPAIGNS[int(rng.random() * len(_CAMPAIGNS))]}
        elif kind == "review":
            event["properties"] = {"rating": rng.choice((1, 2, 3, 4, 4, 5, 5, 5))}
        yield from self._deliver(INTERACTIONS, c.key, orjson.dumps(event), ts, event)

    def _emit_profile(self, c: _Customer, ts: int, initial: bool) -> Iterator[Message]:
        """A region, an industry and a birth year at arrival (SPEC section 10); later a move or a newsletter
        choice, or the removal of the birth year."""
        rng = self._profiles
        attributes: dict[str, Any]
        if initial:
            attributes = {
                "region": REGIONS[int(rng.random() * len(REGIONS))],
                "industry": INDUSTRIES[int(rng.random() * len(INDUSTRIES))],
                "birth_year": rng.randint(1950, 2005),
            }
        else:
            choice = rng.random()
            if choice < 0.5:
                attributes = {"region": REGIONS[int(rng.random() * len(REGIONS))]}
            elif choice < 0.9:
                attributes = {"newsletter": rng.random() < 0.5}
            else:
                attributes = {"birth_year": None}
        event = {
            "event_id": self._event_id(),
            "customer_id": c.cid,
            "ts": self._ts_text(ts),
            "attributes": attributes,
        }
        yield from self._deliver(PROFILES, c.key, orjson.dumps(event), ts, event)

    def _deliver(
        self, topic: str, key: bytes, value: bytes, ts: int, event: dict[str, Any]
    ) -> Iterator[Message]:
        counts = self.counts
        counts[KIND_EVENT] += 1
        yield Message(topic, key, value, ts, KIND_EVENT)
        ratio = self.config.duplicate_ratio
        if ratio and self._inject.random() < ratio:
            counts[KIND_DUPLICATE] += 1
            yield Message(topic, key, value, ts, KIND_DUPLICATE)
        ratio = self.config.bad_ratio
        if ratio and self._inject.random() < ratio:
            bad = self._bad(event, ts)
            counts[bad.kind] += 1
            yield bad

    # ---- bad messages: exactly one defect each ---------------------------------------------------------

    def _bad(self, template: dict[str, Any], ts: int) -> Message:
        rng = self._inject
        reason = DLQ_REASONS[int(rng.random() * len(DLQ_REASONS))]
        n = self._next_bad
        self._next_bad = n + 1
        cid = template["customer_id"]
        key = cid.encode()
        text_ts = template["ts"]
        purchase = {
            "event_id": f"{self._prefix}x{n}",
            "type": "purchase",
            "customer_id": cid,
            "ts": text_ts,
            "amount": "19.99",
            "currency": "USD",
        }
        interaction = {
            "event_id": f"{self._prefix}x{n}",
            "type": "page_view",
            "customer_id": cid,
            "ts": text_ts,
        }
        topic = PURCHASES if rng.random() < 0.5 else INTERACTIONS
        doc = purchase if topic == PURCHASES else interaction
        if reason == "malformed_json":
            value = orjson.dumps(doc)[:-9]
        elif reason == "schema":
            variant = int(rng.random() * 4)
            if variant == 0:
                doc["event_id"] = ""
            elif variant == 1:
                doc["ts"] = text_ts[:-1]  # no offset
            elif topic == PURCHASES:
                doc["amount"] = "-5.00" if variant == 2 else "12.345"
            else:
                doc["type"] = "Page-View" if variant == 2 else "9lives"
            value = orjson.dumps(doc)
        elif reason == "key_mismatch":
            key = None if rng.random() < 0.3 else f"{cid}-other".encode()
            value = orjson.dumps(doc)
        elif reason == "too_large":
            doc["properties" if topic == INTERACTIONS else "note"] = (
                {"blob": "x" * 70_000} if topic == INTERACTIONS else "x" * 70_000
            )
            value = orjson.dumps(doc)
        else:  # currency
            topic = PURCHASES
            purchase["currency"] = "EUR"
            value = orjson.dumps(purchase)
        return Message(topic, key, value, ts, reason)


def generate(config: SimConfig) -> Iterator[Message]:
    """The historic stream of a configuration (convenience for tests and tools)."""
    return Simulation(config).historic()
