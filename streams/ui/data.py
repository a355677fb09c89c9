"""What the UI shows, read from Redis only (SPEC sections 7, 14, 15). See docs/UI.md for the costs.

Nothing here reads the whole keyspace per request:

* `Catalog` (the dimensions, the rules versions whose text Redis holds, the days with flows) comes from one
  incremental `SCAN` that `Reader.refresh` runs in the background every `scan_interval` seconds.
* The overview reads the tier-count hashes and one flows hash per dimension and day of the range.
* The RFM view and the reasons of the top transitions read a bounded random sample.
* The customer page reads one record, one history list and one rules text.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import redis

from segmenter.record import ATTRIBUTE_PREFIX, features_from_record
from segmenter.rules import FEATURES, RulesError, RuleSet, parse_rules
from segmenter.rules.explain import explain_rules, explanations_json

MAX_DAYS = 400  # the longest range of days the overview unwinds (flows hashes read per dimension)
NEW = ""  # the FROM of a first classification in a flows field
RECENCY_BINS: tuple[tuple[int, int | None, str], ...] = (
    (0, 7, "0-7"), (8, 30, "8-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, 180, "91-180"),
    (181, 365, "181-365"), (366, None, "366+"),
)
FREQUENCY_BINS: tuple[tuple[int, int | None, str], ...] = (
    (0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4-5"), (6, 10, "6-10"), (11, None, "11+"),
)


def glob_escape(text: str) -> str:
    """`text` matched literally in a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Catalog:
    """The keys the background scan found (small: a few per dimension and day)."""

    dimensions: tuple[str, ...] = ()
    rules_versions: tuple[str, ...] = ()
    flow_days: tuple[str, ...] = ()  # every day with a flows hash, any dimension, ascending
    scanned_at: float = 0.0
    scan_seconds: float = 0.0


def scan_catalog(client: redis.Redis, prefix: str, count: int = 10_000) -> Catalog:
    """One incremental SCAN (COUNT `count` per call, so Redis is never held long) over the keys starting
    with `{prefix}:f`, `{prefix}:r` or `{prefix}:t`; the customer records and histories are skipped by
    the server-side pattern."""
    started = time.monotonic()
    dimensions: set[str] = set()
    versions: set[str] = set()
    days: set[str] = set()
    counts_head, rules_head, flows_head = f"{prefix}:tier-counts:", f"{prefix}:rules:", f"{prefix}:flows:"
    for key in client.scan_iter(match=glob_escape(prefix) + ":[frt]*", count=count):
        if key.startswith(counts_head):
            dimensions.add(key[len(counts_head):])
        elif key.startswith(rules_head):
            versions.add(key[len(rules_head):])
        elif key.startswith(flows_head):
            days.add(key.rpartition(":")[2])
    return Catalog(tuple(sorted(dimensions)), tuple(sorted(versions)), tuple(sorted(days)), time.time(),
                   time.monotonic() - started)


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(n)).isoformat() for n in range((last - first).days + 1)]


def split_field(name: str) -> tuple[str, str]:
    """`FROM>TO` of a flows hash -> (FROM, TO); FROM "" for a first classification."""
    source, _, target = name.partition(">")
    return source, target


def sizes_over_days(
    current: Mapping[str, int], flows_by_day: Mapping[str, Mapping[str, int]], days: list[str]
) -> dict[str, dict[str, int]]:
    """Each tier's size at the end of each of `days` (ascending), unwound from the current counts.

    `flows_by_day` holds every day from `days[0]` to the latest day with flows. Going back one day:
    size(day - 1) = size(day) - inflow(day) + outflow(day), with inflow the changes TO the tier that day
    (first classifications included) and outflow the changes FROM it.
    """
    size = Counter({tier: int(n) for tier, n in current.items()})
    wanted = set(days)
    result: dict[str, dict[str, int]] = {}
    for day in sorted(set(flows_by_day) | wanted, reverse=True):
        if day < days[0]:
            break
        if day in wanted:
            result[day] = dict(size)
        for name, n in flows_by_day.get(day, {}).items():
            source, target = split_field(name)
            size[target] -= int(n)
            if source != NEW:
                size[source] += int(n)
    return {day: result[day] for day in days}


def tier_order(dimension: str, rule_sets: Iterable[RuleSet], seen: Iterable[str]) -> list[str]:
    """The tiers of `dimension` in rule order (first rule set that has the dimension), then any other."""
    order: list[str] = []
    for rules in rule_sets:
        if dimension in rules.dimension_names:
            order = [tier.name for tier in rules.dimension(dimension).tiers]
            break
    return order + sorted(set(seen) - set(order))


@dataclass
class Reader:
    """Reads Redis for the UI; keeps the background catalog, parsed rules by version and a short cache."""

    client: redis.Redis
    prefix: str = "segmenter"
    sample_size: int = 1000
    reason_sample: int = 30
    cache_seconds: float = 2.0
    catalog: Catalog = field(default_factory=Catalog)
    _rules: dict[str, RuleSet | None] = field(default_factory=dict)
    _cache: dict[tuple[Any, ...], tuple[float, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scanned: threading.Event = field(default_factory=threading.Event)

    # -------------------------------------------------------------------------------------------- plumbing

    def refresh(self) -> Catalog:
        self.catalog = scan_catalog(self.client, self.prefix)
        with self._lock:
            self._cache.clear()
        self._scanned.set()
        return self.catalog

    def wait_scanned(self, timeout: float = 60.0) -> None:
        """Until the first catalog scan ended (the server starts serving while it runs)."""
        self._scanned.wait(timeout)

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value

    def rules(self, version: str) -> RuleSet | None:
        """The rules of `version` from `{prefix}:rules:{version}` (None if absent or unreadable)."""
        if version not in self._rules:
            text = self.client.get(f"{self.prefix}:rules:{version}") if version else None
            try:
                self._rules[version] = parse_rules(str(text), f"rules {version[:12]}") if text else None
            except RulesError:
                self._rules[version] = None
        return self._rules[version]

    def rule_sets(self) -> list[RuleSet]:
        return [r for r in (self.rules(v) for v in self.catalog.rules_versions) if r is not None]

    # -------------------------------------------------------------------------------------------- overview

    def counts(self) -> dict[str, dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for dimension in self.catalog.dimensions:
            pipe.hgetall(f"{self.prefix}:tier-counts:{dimension}")
        return {
            dimension: {tier: int(n) for tier, n in raw.items()}
            for dimension, raw in zip(self.catalog.dimensions, pipe.execute(), strict=True)
        }

    def overview(self, days: int = 30, end: str | None = None) -> dict[str, Any]:
        self.wait_scanned()
        return self.cached(("overview", days, end), lambda: self._overview(days, end))  # type: ignore[no-any-return]

    def _overview(self, days: int, end: str | None) -> dict[str, Any]:
        catalog = self.catalog
        latest = catalog.flow_days[-1] if catalog.flow_days else date.today().isoformat()
        last = _day(end) if end else _day(latest)
        days = max(1, min(days, MAX_DAYS))
        first = last - timedelta(days - 1)
        unwind_to = max(_day(latest), last)
        if (unwind_to - first).days + 1 > MAX_DAYS:
            raise ValueError(f"the range must lie within {MAX_DAYS} days of the latest day with flows")
        span = _days(first, unwind_to)
        shown = _days(first, last)
        counts = self.counts()
        pipe = self.client.pipeline(transaction=False)
        for dimension in catalog.dimensions:
            for day in span:
                pipe.hgetall(f"{self.prefix}:flows:{dimension}:{day}")
        replies = iter(pipe.execute())
        raw = {dimension: [next(replies) for _ in span] for dimension in catalog.dimensions}
        rule_sets = self.rule_sets()
        dimensions = []
        top: list[dict[str, Any]] = []
        ordered = [d for r in rule_sets for d in r.dimension_names if d in catalog.dimensions]
        for dimension in dict.fromkeys(ordered + list(catalog.dimensions)):
            flows = {day: {k: int(v) for k, v in reply.items()}
                     for day, reply in zip(span, raw[dimension], strict=True)}
            flows = {day: f for day, f in flows.items() if f}
            sizes = sizes_over_days(counts[dimension], flows, shown)
            seen = set(counts[dimension]) | {t for f in flows.values() for k in f for t in split_field(k)}
            seen.discard(NEW)
            tiers = tier_order(dimension, rule_sets, seen)
            moves: Counter[tuple[str, str]] = Counter()
            for day in shown:
                for name, n in flows.get(day, {}).items():
                    moves[split_field(name)] += n
            dimensions.append({
                "dimension": dimension,
                "tiers": tiers,
                "counts": {tier: counts[dimension].get(tier, 0) for tier in tiers},
                "total": sum(counts[dimension].values()),
                "sizes": {tier: [sizes[day].get(tier, 0) for day in shown] for tier in tiers},
                "flows": [{"from": s or None, "to": t, "count": n} for (s, t), n in moves.most_common()],
            })
            for name, n in flows.get(latest, {}).items():
                source, target = split_field(name)
                top.append({"dimension": dimension, "from": source or None, "to": target, "count": n})
        top.sort(key=lambda m: (-m["count"], m["dimension"], m["from"] or "", m["to"]))
        top = top[:10]
        self._add_reasons(top, latest)
        return {
            "prefix": self.prefix,
            "days": shown,
            "latest_day": latest,
            "dimensions": dimensions,
            "top_transitions": top,
            "catalog": {"scanned_at": catalog.scanned_at, "scan_seconds": round(catalog.scan_seconds, 3)},
        }

    def _add_reasons(self, moves: list[dict[str, Any]], day: str) -> None:
        """Reasons of each move from the histories of up to `reason_sample` random current members of its
        target tier: the changes of that day with that FROM and TO, tallied by `reason`."""
        if not moves or self.reason_sample <= 0:
            return
        pipe = self.client.pipeline(transaction=False)
        for move in moves:
            pipe.srandmember(f"{self.prefix}:tier:{move['dimension']}:{move['to']}", self.reason_sample)
        members = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for ids in members:
            for customer_id in ids:
                pipe.lrange(f"{self.prefix}:history:{customer_id}", 0, 4)
        histories = iter(pipe.execute())
        for move, ids in zip(moves, members, strict=True):
            reasons: Counter[str] = Counter()
            for _ in ids:
                for text in next(histories):
                    event = orjson.loads(text)
                    if (event.get("dimension") == move["dimension"] and event.get("to") == move["to"]
                            and (event.get("from") or None) == move["from"]
                            and utc_day(str(event.get("at", ""))) == day):
                        reasons[str(event.get("reason"))] += 1
                        break
            move["reasons"] = dict(reasons.most_common())
            move["reasons_sampled"] = len(ids)

    # -------------------------------------------------------------------------------------------- RFM

    def rfm(self) -> dict[str, Any]:
        self.wait_scanned()
        return self.cached(("rfm",), self._rfm)  # type: ignore[no-any-return]

    def _rfm(self) -> dict[str, Any]:
        """A recency x frequency grid over a random sample of records, stratified by the tiers of the
        first dimension (each tier sampled in proportion to its count), monetary as each cell's mean."""
        if not self.catalog.dimensions:
            return {"recency_bins": [], "frequency_bins": [], "cells": [], "sampled": 0, "customers": 0,
                    "no_purchase": 0, "dimension": None}
        dimension = self.catalog.dimensions[0]
        counts = self.counts()[dimension]
        total = sum(counts.values())
        pipe = self.client.pipeline(transaction=False)
        for tier, n in counts.items():
            if n > 0:
                pipe.srandmember(f"{self.prefix}:tier:{dimension}:{tier}",
                                 min(n, math.ceil(self.sample_size * n / total)))
        ids = [customer_id for chunk in pipe.execute() for customer_id in chunk]
        random.shuffle(ids)
        ids = ids[: self.sample_size]
        pipe = self.client.pipeline(transaction=False)
        for customer_id in ids:
            pipe.hmget(f"{self.prefix}:customer:{customer_id}", "recency_days", "frequency", "monetary")
        cells: dict[tuple[int, int], list[float]] = {}
        no_purchase = 0
        for recency, frequency, monetary in pipe.execute():
            if recency is None:
                no_purchase += 1
                continue
            x = _bin(int(recency), RECENCY_BINS)
            y = _bin(int(frequency or 0), FREQUENCY_BINS)
            cells.setdefault((x, y), []).append(float(monetary or 0))
        return {
            "dimension": dimension,
            "recency_bins": [label for *_, label in RECENCY_BINS],
            "frequency_bins": [label for *_, label in FREQUENCY_BINS],
            "cells": [
                {"recency": x, "frequency": y, "customers": len(v),
                 "mean_monetary": round(sum(v) / len(v), 2)}
                for (x, y), v in sorted(cells.items())
            ],
            "sampled": len(ids),
            "customers": total,
            "no_purchase": no_purchase,
        }

    # -------------------------------------------------------------------------------------------- customer

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        self.wait_scanned()
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(f"{self.prefix}:customer:{customer_id}")
        pipe.lrange(f"{self.prefix}:history:{customer_id}", 0, -1)
        record, history = pipe.execute()
        if not record:
            return None
        version = record.get("rules_version", "")
        rules = self.rules(version)
        dimension_names = list(rules.dimension_names) if rules else sorted(
            d for d in self.catalog.dimensions if d in record)
        names = set(FEATURES) | (set(rules.feature_names) if rules else set())
        hidden = names & set(dimension_names)  # the record's field holds the tier (e.g. `engagement`)
        features = {name: (None if name in hidden else record.get(name)) for name in sorted(names)}
        explained: list[dict[str, Any]] = []
        if rules is not None:
            values = features_from_record(record, names, rules.money_features)
            for name in hidden:
                values[name] = None
            for document in explanations_json(explain_rules(rules, values)):
                read = _read_names(document)
                document["unavailable"] = sorted(read & hidden)
                document["record_tier"] = record.get(document["dimension"])
                explained.append(document)
        return {
            "customer_id": customer_id,
            "as_of": record.get("as_of"),
            "rules_version": version,
            "rules_known": rules is not None,
            "version": record.get("version"),
            "first_purchase_at": record.get("first_purchase_at"),
            "last_purchase_at": record.get("last_purchase_at"),
            "tiers": {d: record.get(d) for d in dimension_names},
            "features": features,
            "unavailable_features": sorted(hidden),
            "attributes": {k[len(ATTRIBUTE_PREFIX):]: v for k, v in sorted(record.items())
                           if k.startswith(ATTRIBUTE_PREFIX)},
            "explanations": explained,
            "history": [orjson.loads(text) for text in history],
        }


def utc_day(at: str) -> str:
    """The UTC day of an RFC 3339 time (the flows key's day; `at` keeps the offset the event had)."""
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC).date().isoformat()
    except ValueError:
        return at[:10]


def _bin(value: int, bins: tuple[tuple[int, int | None, str], ...]) -> int:
    for index, (low, high, _) in enumerate(bins):
        if value >= low and (high is None or value <= high):
            return index
    return 0


def _read_names(document: Mapping[str, Any]) -> set[str]:
    """Every feature or attribute name an explanation document shows a value for."""
    names = set(document.get("values", {}))
    for key in ("failed", "parts"):
        for part in document.get(key, ()):
            names |= _read_names(part.get("failed", part))
    return names
