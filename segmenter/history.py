"""Tiers in effect at a past time, from a customer's kept history (SPEC section 14, `history --at`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segmenter.timeutil import parse_rfc3339_micros


@dataclass(frozen=True)
class TiersAt:
    tiers: dict[str, str | None]  # dimension -> tier in effect (None: not classified yet)
    complete: bool  # False: the kept history may not reach back that far


def tiers_at(events_newest_first: Sequence[dict[str, Any]], at_micros: int) -> TiersAt:
    """Per dimension, the `to` of its latest change at or before `at` (by seq, the emission order).

    A dimension whose oldest kept change is its first classification (`from` null) is known at any time;
    otherwise a time before its oldest kept change cannot be answered.
    """
    by_dimension: dict[str, list[dict[str, Any]]] = {}
    for event in events_newest_first:
        by_dimension.setdefault(event["dimension"], []).append(event)
    tiers: dict[str, str | None] = {}
    complete = True
    for dimension, events in by_dimension.items():
        events.sort(key=lambda event: event["seq"])
        before = [event for event in events if parse_rfc3339_micros(event["at"]) <= at_micros]
        if before:
            tiers[dimension] = before[-1]["to"]
        elif events[0]["from"] is None and events[0]["seq"] == 1:
            tiers[dimension] = None
        else:
            complete = False
    return TiersAt(tiers, complete)
