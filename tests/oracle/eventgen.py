"""Seeded generator of realistic input messages for the segmenter, with duplicates and bad messages.

``generate(seed, ...)`` returns ``[(topic_kind, key, value_bytes), ...]`` in global event-time order (by the
instant each message is "sent"), deterministic for a seed.  It contains:

* customers of several personas: regular buyers, whales (frequent, large orders -> loyal / vip), churners
  (a quiet gap of 100-250 days, sometimes coming back), bursty buyers (same-day bursts of 3-8 orders),
  one-timers, interaction-only browsers, heavy interactors (>= 20 interactions in 30 days), and a few
  customers whose first event is a refund (negative lifetime_monetary);
* heavy-tailed amounts with cents, written in every accepted form (decimal string, JSON number with 2, 1 or 0
  decimals); refunds (partial or full) a few days after some purchases;
* timestamps mostly in ``Z`` but some with +08:00 / +05:30 / -05:00 / -08:00 offsets (local date != UTC date)
  and some with fractional seconds; a few non-ASCII customer ids;
* injected duplicates: the same bytes re-sent 1 minute .. 6 days after the original (within the horizon);
* bad messages of every dead-letter reason (``bad_per_reason`` or more of each, several variants per reason),
  interleaved at random times; keys are real customer ids where possible;
* optionally (``edge_valid``) valid-but-unusual messages: value of exactly 65536 bytes, event_id of 128 chars,
  amount ``1e2``, ``currency`` present, unknown extra fields;
* optionally (``late_events``) some valid events delivered 1-40 days late.

* optionally (``categories``) a ``category`` on most purchases and on most refunds (usually the refunded
  purchase's own category, sometimes another one or none), for the custom features of SPEC 11;
* optionally (``profiles``) profile events (SPEC 10) for ~60% of the customers plus some profile-only ("CRM
  only") customers: 1..5 events each with region / industry / birth_year (int, a float like ``1985.0`` or,
  rarely, a string) / newsletter / score / nickname, some ``null`` removals, some pairs with the same instant
  (written with different offsets), ignored extra fields (``currency`` included); about half are delivered
  0..40 days late, so per customer they arrive out of event-time order.  They are duplicated like the other
  events;
* optionally (``bad_profiles_per_reason``) bad profile messages of every reason that applies to profiles
  (too_large, malformed_json, schema, key_mismatch).

The optional parts draw from a second random stream: with all of them off the output is exactly what it was
before they existed.

``generate_with_expectations`` also returns the intended outcome of each message (for sanity checks).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

Message = tuple[str, "bytes | None", bytes]

_UTC = UTC
_INTERACTION_TYPES = (
    "page_view",
    "page_view",
    "page_view",
    "email_open",
    "email_click",
    "support_ticket",
    "review",
)
_OFFSETS = (("Z", 0), ("+08:00", 480), ("+05:30", 330), ("-05:00", -300), ("-08:00", -480))
_CATEGORIES = ("books", "garden", "toys", "electronics", "grocery")
_REGIONS = ("EU", "UK", "US", "APAC", "LATAM")
_INDUSTRIES = ("retail", "wholesale", "public", "tech", "health")
_NICKNAMES = ("Ana", "Zoë", "李", "o'hara", 'say "hi"', "x" * 256)
_AMOUNT_MARK = "__AMOUNT__"


@dataclass
class _Out:
    sort_key: float
    order: int
    message: Message
    expect: str  # "applied" | "duplicate" | "dead_letter:<reason>"


class _Gen:
    def __init__(self, seed: int, start: date, days: int, currency: str, categories: bool = False) -> None:
        self.rng = random.Random(seed)
        self.rng2 = random.Random(seed ^ 0x2F0F11E5)  # the optional v2 parts
        self.categories = categories
        self.seed = seed
        self.start = datetime(start.year, start.month, start.day, tzinfo=_UTC).timestamp()
        self.days = days
        self.currency = currency
        self.counter = 0
        self.out: list[_Out] = []
        self.good: list[_Out] = []
        self.duplicated: set[int] = set()

    # -- helpers -----------------------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.seed}-{self.counter}"

    def ts(self, instant: float) -> str:
        rng = self.rng
        r = rng.random()
        suffix, minutes = _OFFSETS[0] if r < 0.8 else rng.choice(_OFFSETS[1:])
        whole = int(instant)
        local = datetime.fromtimestamp(whole, _UTC) + timedelta(minutes=minutes)
        text = local.strftime("%Y-%m-%dT%H:%M:%S")
        r = rng.random()
        if r < 0.1:
            text += f".{rng.randrange(1000):03d}"
        elif r < 0.15:
            text += f".{rng.randrange(1000000):06d}"
        return text + suffix

    def amount_text(self, cents: int) -> tuple[bool, str]:
        """(as_json_number, text) in one of the accepted spellings."""
        whole, frac = divmod(cents, 100)
        two = f"{whole}.{frac:02d}"
        short = str(whole) if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")
        r = self.rng.random()
        if r < 0.4:
            return False, two
        if r < 0.7:
            return True, two
        if r < 0.85:
            return True, short
        return False, short

    def heavy_cents(self, mu: float, sigma: float = 1.1) -> int:
        return max(1, min(2_000_000, int(self.rng.lognormvariate(mu, sigma))))

    def encode(self, obj: dict, amount: tuple[bool, str] | None = None) -> bytes:
        if amount is not None:
            as_number, text = amount
            if as_number:
                obj["amount"] = _AMOUNT_MARK
                raw = json.dumps(obj, ensure_ascii=self.rng.random() < 0.5)
                return raw.replace(f'"{_AMOUNT_MARK}"', text).encode("utf-8")
            obj["amount"] = text
        return json.dumps(obj, ensure_ascii=self.rng.random() < 0.5).encode("utf-8")

    def emit(self, instant: float, message: Message, expect: str) -> _Out:
        self.counter += 1
        item = _Out(instant, self.counter, message, expect)
        self.out.append(item)
        if expect == "applied":
            self.good.append(item)
        return item

    def purchase(
        self, cid: str, instant: float, cents: int, kind: str = "purchase", category: str | None = None
    ) -> str | None:
        """Emit a purchase or refund; returns its category (None if it has none)."""
        obj: dict = {"event_id": self.next_id("p"), "type": kind, "customer_id": cid, "ts": self.ts(instant)}
        r = self.rng.random()
        if r < 0.5:
            obj["currency"] = self.currency
        if r < 0.3:
            obj["order_id"] = self.next_id("o")
            obj["category"] = self.rng.choice(_CATEGORIES)
        if self.categories:
            obj.pop("category", None)
            r2 = self.rng2.random()
            if kind == "refund" and category is not None and r2 < 0.7:
                obj["category"] = category  # the refunded purchase's own category
            elif r2 < 0.85:
                obj["category"] = self.rng2.choice(_CATEGORIES)
        value = self.encode(obj, self.amount_text(cents))
        self.emit(instant, ("purchases", cid.encode("utf-8"), value), "applied")
        return obj.get("category")

    def interaction(self, cid: str, instant: float) -> None:
        obj: dict = {
            "event_id": self.next_id("i"),
            "customer_id": cid,
            "type": self.rng.choice(_INTERACTION_TYPES),
            "ts": self.ts(instant),
        }
        if self.categories and self.rng2.random() < 0.06:
            obj["type"] = "complaint"
        if self.rng.random() < 0.3:
            obj["properties"] = {"page": f"/p/{self.rng.randrange(100)}", "n": self.rng.randrange(10)}
        self.emit(instant, ("interactions", cid.encode("utf-8"), self.encode(obj)), "applied")

    def at(self, day: float) -> float:
        return self.start + day * 86400 + self.rng.randrange(86400)

    # -- personas ----------------------------------------------------------------------------------------

    def customer(self, cid: str) -> None:
        rng = self.rng
        persona = rng.choices(
            (
                "regular",
                "whale",
                "churner",
                "bursty",
                "one_timer",
                "browser",
                "heavy_interactor",
                "refund_first",
            ),
            weights=(30, 5, 20, 10, 12, 12, 8, 3),
        )[0]
        begin = rng.uniform(0, self.days * 0.7)
        end = self.days
        mu = 10.0 if persona == "whale" else 8.0
        gap_mean = {"whale": 10, "regular": 25, "churner": 20, "bursty": 40}.get(persona, 30)

        purchase_days: list[float] = []
        if persona in ("regular", "whale", "churner", "bursty"):
            day = begin
            quiet_done = False
            while day < end:
                if persona == "bursty" and rng.random() < 0.4:
                    purchase_days += [math.floor(day) + rng.random() * 0.99 for _ in range(rng.randint(3, 8))]
                else:
                    purchase_days.append(day)
                day += rng.expovariate(1 / gap_mean) + 0.01
                if persona == "churner" and not quiet_done and rng.random() < 0.25:
                    day += rng.uniform(100, 250)
                    quiet_done = True
                    if rng.random() < 0.5:
                        break  # never comes back
        elif persona == "one_timer":
            purchase_days.append(begin)
        elif persona == "refund_first":
            self.purchase(cid, self.at(begin), self.heavy_cents(7.0), "refund")
            purchase_days += [begin + rng.uniform(1, 60) for _ in range(rng.randint(0, 2))]

        for d in purchase_days:
            if d >= end:
                continue
            instant = self.start + d * 86400
            cents = self.heavy_cents(mu)
            category = self.purchase(cid, instant, cents)
            refund_p = 0.08 if not self.categories else (0.08 if self.rng2.random() < 0.5 else 0.25)
            if rng.random() < refund_p:  # a refund a few days later, partial or full
                refund_at = instant + rng.uniform(0.1, 20) * 86400
                if refund_at < self.start + end * 86400:
                    refund = cents if rng.random() < 0.5 else max(1, rng.randrange(1, cents + 1))
                    self.purchase(cid, refund_at, refund, "refund", category)

        rate = {"browser": 0.2, "heavy_interactor": 0.5, "one_timer": 0.03}.get(persona, 0.06)
        day = begin + rng.uniform(0, 10)
        while day < end:
            burst = persona == "heavy_interactor" and rng.random() < 0.03
            for _ in range(rng.randint(20, 30) if burst else 1):
                self.interaction(cid, self.start + day * 86400 + rng.uniform(0, 3600))
            day += rng.expovariate(rate)

    # -- profiles (SPEC 10) --------------------------------------------------------------------------------

    def attribute_values(self) -> dict:
        rng = self.rng2
        pool = ["region", "region", "industry", "birth_year", "newsletter", "score", "nickname"]
        names = set(rng.sample(pool, rng.randint(1, 4)))
        out: dict = {}
        for name in sorted(names):
            if name == "region":
                out[name] = rng.choice(_REGIONS)
            elif name == "industry":
                out[name] = rng.choice(_INDUSTRIES)
            elif name == "birth_year":
                year = rng.randint(1950, 2005)
                r = rng.random()
                out[name] = year if r < 0.8 else (float(year) if r < 0.93 else str(year))
            elif name == "newsletter":
                out[name] = rng.random() < 0.5
            elif name == "score":
                out[name] = rng.choice((1, 2, 3, 4.5, 5, -0.5))
            else:
                out[name] = rng.choice(_NICKNAMES)
        if rng.random() < 0.2:  # a removal (a write that counts for last-writer-wins)
            out[rng.choice(("region", "industry", "newsletter", "birth_year", "old_flag"))] = None
        return out

    def profile(self, cid: str, instant: float, attributes: dict | None = None, delay: float = 0.0) -> None:
        rng = self.rng2
        obj: dict = {
            "event_id": self.next_id("pr"),
            "customer_id": cid,
            "ts": self.ts_v2(instant),
            "attributes": self.attribute_values() if attributes is None else attributes,
        }
        if rng.random() < 0.1:
            obj["source"] = "crm"
        if rng.random() < 0.05:
            obj["currency"] = "EUR"  # not a field of profiles: ignored
        value = json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8")
        self.emit(instant + delay, ("profiles", cid.encode("utf-8"), value), "applied")

    def ts_v2(self, instant: float) -> str:
        """Like :meth:`ts`, drawing from the second random stream."""
        suffix, minutes = _OFFSETS[0] if self.rng2.random() < 0.7 else self.rng2.choice(_OFFSETS[1:])
        local = datetime.fromtimestamp(int(instant), _UTC) + timedelta(minutes=minutes)
        return local.strftime("%Y-%m-%dT%H:%M:%S") + suffix

    def profiles_of(self, cid: str, n: int) -> None:
        rng = self.rng2
        for _ in range(n):
            instant = float(int(self.start + rng.uniform(0, self.days) * 86400))
            delay = rng.uniform(0, 40) * 86400 if rng.random() < 0.5 else 0.0
            self.profile(cid, instant, delay=delay)
            if rng.random() < 0.15:  # another write at the same instant: the later offset wins
                self.profile(cid, instant, delay=delay + 1)

    # -- duplicates, late events ---------------------------------------------------------------------------

    def duplicates(self, n: int) -> None:
        if not self.good:
            return
        for item in self.rng.sample(self.good, min(n, len(self.good))):
            delay = self.rng.uniform(60, 6 * 86400)
            self.emit(item.sort_key + delay, item.message, "duplicate")
            self.duplicated.add(item.order)

    def late(self, n: int) -> None:
        originals = [g for g in self.good if g.order not in self.duplicated]
        for item in self.rng.sample(originals, min(n, len(originals))):
            item.sort_key += self.rng.uniform(1, 40) * 86400

    # -- bad messages ------------------------------------------------------------------------------------

    def bad(self, per_reason: int, cids: list[str]) -> None:
        rng = self.rng

        def base(cid: str, kind: str = "purchases") -> dict:
            obj: dict = {"event_id": self.next_id("bad"), "customer_id": cid, "ts": self.ts(instant)}
            if kind == "purchases":
                obj.update(type="purchase", amount="12.34")
            else:
                obj.update(type="page_view")
            return obj

        def dump(obj: object) -> bytes:
            return json.dumps(obj).encode("utf-8")

        variants: dict[str, list] = {
            "malformed_json": [
                lambda cid, k: dump(base(cid, k))[:-7],
                lambda cid, k: b"\xff\xfe" + dump(base(cid, k)),
                lambda cid, k: dump(base(cid, k)).replace(b'"customer_id"', b'"customer_\xc3\x28id"'),
                lambda cid, k: dump(base(cid, k))[:-1] + b', "score": NaN}',
                lambda cid, k: b"",
                lambda cid, k: b"not json at all",
                lambda cid, k: b"{'event_id': 'single-quoted'}",
            ],
            "schema": [
                lambda cid, k: dump({key: v for key, v in base(cid, k).items() if key != "event_id"}),
                lambda cid, k: dump({**base(cid, k), "event_id": ""}),
                lambda cid, k: dump({**base(cid, k), "event_id": "x" * 129}),
                lambda cid, k: dump({**base(cid, k), "ts": "2025-03-01T10:00:00"}),
                lambda cid, k: dump({**base(cid, k), "ts": "2025-02-30T10:00:00Z"}),
                lambda cid, k: dump({**base(cid, k), "ts": 1735689600}),
                lambda cid, k: dump([base(cid, k)]),
                lambda cid, k: dump({**base(cid, "purchases"), "type": "gift"}),
                lambda cid, k: dump({**base(cid, "purchases"), "amount": "-5.00"}),
                lambda cid, k: dump({**base(cid, "purchases"), "amount": 0}),
                lambda cid, k: dump({**base(cid, "purchases"), "amount": "12,50"}),
                lambda cid, k: dump({**base(cid, "purchases"), "amount": True}),
                lambda cid, k: dump(base(cid, "purchases")).replace(b'"12.34"', b"10.005"),
                lambda cid, k: dump({**base(cid, "purchases"), "amount": "1000000000000.00"}),
                lambda cid, k: dump({key: v for key, v in base(cid, "purchases").items() if key != "amount"}),
                lambda cid, k: dump({**base(cid, "purchases"), "currency": "usd"}),
                lambda cid, k: dump({**base(cid, "interactions"), "type": "Page View"}),
                lambda cid, k: dump({**base(cid, "interactions"), "properties": ["a", "b"]}),
                lambda cid, k: dump({**base(cid, k), "customer_id": 42}),
            ],
            "key_mismatch": [
                lambda cid, k: dump(base(cid, k)),  # key replaced below
            ],
            "too_large": [
                lambda cid, k: dump({**base(cid, k), "padding": "x" * 70000}),
                lambda cid, k: b"{" + b" " * 65600,  # malformed AND too large: too_large wins
                lambda cid, k: dump({**base(cid, k), "padding": "y" * 65537}),
            ],
            "currency": [
                lambda cid, k: dump({**base(cid, "purchases"), "currency": "EUR"}),
                lambda cid, k: dump({**base(cid, "purchases"), "currency": "GBP"}),
                lambda cid, k: dump({**base(cid, "purchases"), "currency": "JPY"}),
            ],
        }
        purchases_only = {7, 8, 9, 10, 11, 12, 13, 14, 15}
        interactions_only = {16, 17}
        for reason, makers in variants.items():
            count = max(per_reason, len(makers)) if reason != "key_mismatch" else max(per_reason, 4)
            for i in range(count):
                cid = rng.choice(cids)
                instant = self.start + rng.uniform(0, self.days) * 86400
                kind = rng.choice(("purchases", "interactions"))
                index = i % len(makers)
                if reason == "currency" or (reason == "schema" and index in purchases_only):
                    kind = "purchases"
                elif reason == "schema" and index in interactions_only:
                    kind = "interactions"
                value = makers[index](cid, kind)
                key: bytes | None = cid.encode("utf-8")
                if reason == "key_mismatch":
                    other = rng.choice([c for c in cids if c != cid] or ["someone-else"])
                    key = [None, other.encode("utf-8"), b"", cid.upper().encode("utf-8") + b"!"][i % 4]
                    if i % 4 == 1 and rng.random() < 0.5:
                        key = cid.encode("utf-8") + b"\xff"  # not UTF-8
                elif reason == "schema" and index == 18:
                    key = b"42"
                self.emit(instant, (kind, key, value), f"dead_letter:{reason}")

    def bad_profiles(self, per_reason: int, cids: list[str]) -> None:
        rng = self.rng2

        def base(cid: str) -> dict:
            return {
                "event_id": self.next_id("badp"),
                "customer_id": cid,
                "ts": self.ts_v2(instant),
                "attributes": {"region": "EU"},
            }

        def dump(obj: object) -> bytes:
            return json.dumps(obj).encode("utf-8")

        def attrs(cid: str, attributes: object) -> bytes:
            return dump({**base(cid), "attributes": attributes})

        variants: dict[str, list] = {
            "too_large": [
                lambda cid: attrs(cid, {"region": "EU", "notes": "x" * 70000}),
                lambda cid: b"{" + b" " * 65600,
            ],
            "malformed_json": [
                lambda cid: dump(base(cid))[:-3],
                lambda cid: b"\xef\xbb\xbf" + dump(base(cid)),  # a BOM
                lambda cid: dump(base(cid)).replace(b'"EU"', b'"E\xc3\x28U"'),
                lambda cid: dump(base(cid)).replace(b'"EU"', b"NaN"),
                lambda cid: b"",
                lambda cid: b"region=EU",
            ],
            "schema": [
                lambda cid: dump({k: v for k, v in base(cid).items() if k != "attributes"}),
                lambda cid: attrs(cid, {}),
                lambda cid: attrs(cid, None),
                lambda cid: attrs(cid, [["region", "EU"]]),
                lambda cid: attrs(cid, "region=EU"),
                lambda cid: attrs(cid, {f"a{i}": i for i in range(65)}),
                lambda cid: attrs(cid, {"Region": "EU"}),
                lambda cid: attrs(cid, {"1st": "EU"}),
                lambda cid: attrs(cid, {"a" * 33: "EU"}),
                lambda cid: attrs(cid, {"region-code": "EU"}),
                lambda cid: attrs(cid, {"region": ""}),
                lambda cid: attrs(cid, {"region": "x" * 257}),
                lambda cid: attrs(cid, {"region": ["EU"]}),
                lambda cid: attrs(cid, {"region": {"code": "EU"}}),
                lambda cid: attrs(cid, {"region": "EU", "tags": ["a"]}),
                lambda cid: dump({k: v for k, v in base(cid).items() if k != "event_id"}),
                lambda cid: dump({**base(cid), "ts": "2025-03-01T10:00:00"}),
                lambda cid: dump({**base(cid), "customer_id": 42}),
                lambda cid: dump([base(cid)]),
            ],
            "key_mismatch": [lambda cid: dump(base(cid))],
        }
        for reason, makers in variants.items():
            count = max(per_reason, len(makers)) if reason != "key_mismatch" else max(per_reason, 4)
            for i in range(count):
                cid = rng.choice(cids)
                instant = self.start + rng.uniform(0, self.days) * 86400
                index = i % len(makers)
                value = makers[index](cid)
                key: bytes | None = cid.encode("utf-8")
                if reason == "key_mismatch":
                    other = rng.choice([c for c in cids if c != cid] or ["someone-else"])
                    key = [None, other.encode("utf-8"), b"", cid.encode("utf-8") + b"\xff"][i % 4]
                elif reason == "schema" and index == 17:
                    key = b"42"
                self.emit(instant, ("profiles", key, value), f"dead_letter:{reason}")

    def edge_valid(self, cids: list[str]) -> None:
        rng = self.rng
        for _ in range(2):
            cid = rng.choice(cids)
            instant = self.start + rng.uniform(0, self.days) * 86400
            obj = {
                "event_id": self.next_id("edge"),
                "type": "purchase",
                "customer_id": cid,
                "ts": self.ts(instant),
                "amount": "3.00",
                "currency": self.currency,
                "padding": "",
            }
            size = len(json.dumps(obj).encode("utf-8"))
            obj["padding"] = "z" * (65536 - size)
            value = json.dumps(obj).encode("utf-8")
            assert len(value) == 65536
            self.emit(instant, ("purchases", cid.encode("utf-8"), value), "applied")
            instant += 1
            long_id = (self.next_id("long") + "-" * 128)[:128]
            obj2 = {
                "event_id": long_id,
                "type": "refund",
                "customer_id": cid,
                "ts": self.ts(instant),
                "amount": _AMOUNT_MARK,
                "source": {"x": [1, 2]},
            }
            value = json.dumps(obj2).replace(f'"{_AMOUNT_MARK}"', "1e0").encode("utf-8")
            self.emit(instant, ("purchases", cid.encode("utf-8"), value), "applied")
            instant += 1
            obj3 = {
                "event_id": self.next_id("edge"),
                "type": "z",
                "customer_id": cid,
                "ts": self.ts(instant),
                "properties": {},
                "amount": "not-checked-on-interactions",
            }
            self.emit(
                instant, ("interactions", cid.encode("utf-8"), json.dumps(obj3).encode("utf-8")), "applied"
            )


def customer_ids(seed: int, n: int) -> list[str]:
    """Customer ids used by :func:`generate` (a few non-ASCII)."""
    rng = random.Random(seed ^ 0x5EED)
    ids = []
    for i in range(n):
        if rng.random() < 0.03:
            ids.append(f"kundé-{i:05d}-ü")
        else:
            ids.append(f"c-{i:05d}")
    return ids


def generate_with_expectations(
    seed: int,
    n_customers: int = 100,
    start: str | date = "2025-01-01",
    days: int = 730,
    *,
    duplicates: int | None = None,
    bad_per_reason: int = 3,
    edge_valid: bool = True,
    late_events: int = 0,
    currency: str = "USD",
    categories: bool = False,
    profiles: bool = False,
    bad_profiles_per_reason: int = 0,
) -> list[tuple[Message, str]]:
    """Like :func:`generate`, with each message's intended outcome: ``applied``, ``duplicate`` or
    ``dead_letter:<reason>`` (late events are ``applied``; a re-sent profile whose customer has a newer
    profile beyond the horizon is labelled ``duplicate`` but is applied: the oracle decides)."""
    start_date = date.fromisoformat(start) if isinstance(start, str) else start
    gen = _Gen(seed, start_date, days, currency, categories=categories)
    cids = customer_ids(seed, n_customers)
    for cid in cids:
        gen.customer(cid)
    crm_only: list[str] = []
    if profiles:
        for cid in cids:
            if gen.rng2.random() < 0.6:
                gen.profiles_of(cid, gen.rng2.randint(1, 5))
        crm_only = [f"crm-{seed}-{i:04d}" for i in range(max(2, n_customers // 8))]
        for cid in crm_only:
            gen.profiles_of(cid, gen.rng2.randint(1, 5))
    n_good = len(gen.good)
    gen.duplicates(max(1, n_good // 100) if duplicates is None else duplicates)
    if profiles:  # a few re-sent profile events on top (profiles are a small share of the events)
        sent = [g for g in gen.good if g.message[0] == "profiles"]
        for item in gen.rng2.sample(sent, min(len(sent), max(2, len(sent) // 40))):
            gen.emit(item.sort_key + gen.rng2.uniform(60, 3 * 86400), item.message, "duplicate")
    if late_events:
        gen.late(late_events)
    if edge_valid:
        gen.edge_valid(cids)
    gen.bad(bad_per_reason, cids)
    if bad_profiles_per_reason:
        gen.bad_profiles(bad_profiles_per_reason, cids + crm_only)
    gen.out.sort(key=lambda o: (o.sort_key, o.order))
    return [(o.message, o.expect) for o in gen.out]


def generate(
    seed: int,
    n_customers: int = 100,
    start: str | date = "2025-01-01",
    days: int = 730,
    *,
    duplicates: int | None = None,
    bad_per_reason: int = 3,
    edge_valid: bool = True,
    late_events: int = 0,
    currency: str = "USD",
    categories: bool = False,
    profiles: bool = False,
    bad_profiles_per_reason: int = 0,
) -> list[Message]:
    """Seeded messages ``(topic_kind, key, value)`` in global event-time order; see the module docstring.

    ``duplicates`` defaults to 1% of the valid events.
    """
    return [
        m
        for m, _ in generate_with_expectations(
            seed,
            n_customers,
            start,
            days,
            duplicates=duplicates,
            bad_per_reason=bad_per_reason,
            edge_valid=edge_valid,
            late_events=late_events,
            currency=currency,
            categories=categories,
            profiles=profiles,
            bad_profiles_per_reason=bad_profiles_per_reason,
        )
    ]
