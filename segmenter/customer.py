"""Per-customer aggregate (SPEC section 4): sparse day buckets plus lifetime totals.

Only days that hold events are stored, as parallel sorted lists (cheap to encode, cheap to bisect);
days that left every window the customer can still be evaluated at are pruned.
"""

from __future__ import annotations

from bisect import bisect_left

import msgspec

from segmenter.events import Event
from segmenter.timeutil import MICROS_PER_DAY, day_of_micros


class Emitted(msgspec.Struct, array_like=True, frozen=True):
    """A tier change of the customer's latest batch, kept with its state until Redis has it (SPEC 14).

    `version` is the record version written with it: a projection pushes to history and flows only the
    changes newer than the record Redis holds, so a re-projection after a crash adds the missing ones and a
    replay adds nothing. `day` is the UTC day of its `at` (the flows key).
    """

    version: int
    day: int
    dimension: str
    from_tier: str | None
    to_tier: str
    body: bytes


class Attribute(msgspec.Struct, array_like=True, frozen=True):
    """One profile attribute and the write that set it (SPEC section 10: last writer by event time).

    A removal (`value` None) is kept as a write, so an older value arriving later cannot bring it back.
    """

    value: str | int | float | bool | None
    ts: int  # epoch micros of the profile event
    offset: int  # its offset on the profiles topic: equal `ts`, the later offset wins


class CustomerState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the segmenter keeps about one customer; stored in the table, encoded with msgpack."""

    customer_id: str
    partition: int
    day: int | None = None  # evaluation day D_c; None until the first applied event
    as_of: int | None = None  # day of the evaluation that last wrote the Redis record
    version: int = 0  # Redis record version: +1 per applied event and per transition day
    # Epoch micros of the newest applied event per input topic ("p"/"i"): the de-dup horizon's anchor.
    newest: dict[str, int] = msgspec.field(default_factory=dict)
    p_days: list[int] = msgspec.field(default_factory=list)  # days with purchases or refunds, ascending
    p_count: list[int] = msgspec.field(default_factory=list)  # purchases per day
    p_cents: list[int] = msgspec.field(default_factory=list)  # purchase cents per day
    r_cents: list[int] = msgspec.field(default_factory=list)  # refund cents per day
    i_days: list[int] = msgspec.field(default_factory=list)  # days with interactions, ascending
    i_count: list[int] = msgspec.field(default_factory=list)
    lifetime_purchases: int = 0
    lifetime_cents: int = 0
    first_purchase_ts: int | None = None
    first_purchase_at: str | None = None
    last_purchase_ts: int | None = None
    last_purchase_at: str | None = None
    last_interaction_day: int | None = None
    tiers: dict[str, str] = msgspec.field(default_factory=dict)
    seqs: dict[str, int] = msgspec.field(default_factory=dict)
    seen: dict[str, int] = msgspec.field(default_factory=dict)  # event_id -> ts micros, within the horizon
    next_due: int | None = None  # next candidate day: a rule comparison can flip then without any event
    # Offset of the last record applied per input topic ("purchases"/"interactions"): written with the state
    # in one changelog record, so records redelivered after a crash are recognised whatever their age.
    offsets: dict[str, int] = msgspec.field(default_factory=dict)
    # The predictive summary (SPEC section 12) as of any day, whatever the arrival order: every distinct day
    # with a purchase event over the lifetime, ascending, and that day's purchase total in cents (refunds play
    # no part). Never pruned: one int pair per purchase day.
    purchase_days: list[int] = msgspec.field(default_factory=list)
    purchase_day_cents: list[int] = msgspec.field(default_factory=list)
    # The tier changes of the latest batch that touched this customer (see `Emitted`).
    emitted: list[Emitted] = msgspec.field(default_factory=list)
    attributes: dict[str, Attribute] = msgspec.field(default_factory=dict)
    # Detail buckets for custom features (SPEC section 11), kept while the rules in effect declare some, for
    # `history_days`: per (day, category) purchases, purchase cents and refund cents (category "" when the
    # event has none), and per (day, interaction type) counts; parallel lists sorted by (day, name).
    c_days: list[int] = msgspec.field(default_factory=list)
    c_names: list[str] = msgspec.field(default_factory=list)
    c_count: list[int] = msgspec.field(default_factory=list)
    c_cents: list[int] = msgspec.field(default_factory=list)
    c_refunds: list[int] = msgspec.field(default_factory=list)
    t_days: list[int] = msgspec.field(default_factory=list)
    t_names: list[str] = msgspec.field(default_factory=list)
    t_count: list[int] = msgspec.field(default_factory=list)
    # The custom features' last values (`segmenter.derived.CustomValues`), per bucket list (interactions
    # t_, purchases c_): [first day, end day] on which they hold, then (value, first expiry) per feature;
    # emptied when the list's buckets change; `custom_key` names the feature definitions they are for.
    custom_key: int = 0
    t_values: list[int] = msgspec.field(default_factory=list)
    c_values: list[int] = msgspec.field(default_factory=list)

    def attribute_values(self) -> dict[str, str | int | float | bool]:
        """The present attributes, as conditions read them (`attr.NAME` keys)."""
        return {
            f"attr.{name}": attribute.value
            for name, attribute in self.attributes.items()
            if attribute.value is not None
        }

    def attributes_json(self) -> dict[str, str | int | float | bool]:
        """The present attributes by name (tier-change `attributes`)."""
        return {
            name: attribute.value
            for name, attribute in sorted(self.attributes.items())
            if attribute.value is not None
        }

    @property
    def first_purchase_day(self) -> int | None:
        return None if self.first_purchase_ts is None else day_of_micros(self.first_purchase_ts)

    @property
    def last_purchase_day(self) -> int | None:
        return None if self.last_purchase_ts is None else day_of_micros(self.last_purchase_ts)


def is_duplicate(state: CustomerState, event: Event, horizon_micros: int) -> bool:
    """SPEC section 2: same event_id already applied, and ts within the horizon of the newest event.

    "Newest" is taken on the event's own input topic: a re-sent event travels on the topic of the original,
    and a consumer may read one topic far ahead of the other, so the other topic's events must not push a
    genuine duplicate out of the horizon.
    """
    if event.event_id not in state.seen:
        return False
    newest = state.newest.get(_topic_key(event))
    return newest is None or event.ts_micros >= newest - horizon_micros


def apply_event(
    state: CustomerState, event: Event, horizon_micros: int, offset: int = 0, details: bool = False
) -> None:
    """Fold one validated, non-duplicate event into the aggregate (`offset`: its input offset; `details`:
    keep the custom features' detail buckets)."""
    if details and event.attributes is None:
        _add_detail(state, event)
    if event.attributes is not None:
        _apply_profile(state, event.attributes, event.ts_micros, offset)
    elif event.is_interaction:
        _add_to_buckets(state.i_days, (state.i_count,), event.day, (1,))
        if state.last_interaction_day is None or event.day > state.last_interaction_day:
            state.last_interaction_day = event.day
    elif event.is_purchase:
        _add_to_buckets(
            state.p_days, (state.p_count, state.p_cents, state.r_cents), event.day, (1, event.amount_cents, 0)
        )
        state.lifetime_purchases += 1
        state.lifetime_cents += event.amount_cents
        _add_to_buckets(state.purchase_days, (state.purchase_day_cents,), event.day, (event.amount_cents,))
        if state.first_purchase_ts is None or event.ts_micros < state.first_purchase_ts:
            state.first_purchase_ts, state.first_purchase_at = event.ts_micros, event.ts
        if state.last_purchase_ts is None or event.ts_micros > state.last_purchase_ts:
            state.last_purchase_ts, state.last_purchase_at = event.ts_micros, event.ts
    else:  # refund
        _add_to_buckets(
            state.p_days, (state.p_count, state.p_cents, state.r_cents), event.day, (0, 0, event.amount_cents)
        )
        state.lifetime_cents -= event.amount_cents
    topic_key = _topic_key(event)
    if event.ts_micros > state.newest.get(topic_key, event.ts_micros - 1):
        state.newest[topic_key] = event.ts_micros
    state.seen[event.event_id] = event.ts_micros
    _prune_seen(state, horizon_micros)


def _add_detail(state: CustomerState, event: Event) -> None:
    if event.is_interaction:
        _add_named(state.t_days, state.t_names, (state.t_count,), event.day, event.type, (1,))
        state.t_values.clear()
    else:
        state.c_values.clear()
        amounts = (1, event.amount_cents, 0) if event.is_purchase else (0, 0, event.amount_cents)
        columns = (state.c_count, state.c_cents, state.c_refunds)
        _add_named(state.c_days, state.c_names, columns, event.day, event.category or "", amounts)


def _add_named(
    days: list[int],
    names: list[str],
    columns: tuple[list[int], ...],
    day: int,
    name: str,
    amounts: tuple[int, ...],
) -> None:
    index = bisect_left(days, day)
    while index < len(days) and days[index] == day:
        if names[index] == name:
            for column, amount in zip(columns, amounts, strict=True):
                column[index] += amount
            return
        index += 1
    days.insert(index, day)
    names.insert(index, name)
    for column, amount in zip(columns, amounts, strict=True):
        column.insert(index, amount)


def prune_details(state: CustomerState, keep_from_day: int) -> None:
    """Drop detail buckets older than the retained history."""
    cut = bisect_left(state.c_days, keep_from_day)
    if cut:
        del state.c_days[:cut], state.c_names[:cut], state.c_count[:cut]
        del state.c_cents[:cut], state.c_refunds[:cut]
        state.c_values.clear()
    cut = bisect_left(state.t_days, keep_from_day)
    if cut:
        del state.t_days[:cut], state.t_names[:cut], state.t_count[:cut]
        state.t_values.clear()


def _apply_profile(
    state: CustomerState, attributes: dict[str, str | int | float | bool | None], ts: int, offset: int
) -> None:
    for name, value in attributes.items():
        current = state.attributes.get(name)
        if current is None or (ts, offset) > (current.ts, current.offset):
            state.attributes[name] = Attribute(value, ts, offset)


def prune_buckets(
    state: CustomerState, keep_from_day_purchases: int, keep_from_day_interactions: int
) -> None:
    """Drop buckets of days before the given first days (they are outside every window still needed)."""
    cut = bisect_left(state.p_days, keep_from_day_purchases)
    if cut:
        del state.p_days[:cut], state.p_count[:cut], state.p_cents[:cut], state.r_cents[:cut]
    cut = bisect_left(state.i_days, keep_from_day_interactions)
    if cut:
        del state.i_days[:cut], state.i_count[:cut]


def _add_to_buckets(
    days: list[int], columns: tuple[list[int], ...], day: int, amounts: tuple[int, ...]
) -> None:
    if days and days[-1] == day:  # the common, in-order case
        for column, amount in zip(columns, amounts, strict=True):
            column[-1] += amount
        return
    index = bisect_left(days, day)
    if index < len(days) and days[index] == day:
        for column, amount in zip(columns, amounts, strict=True):
            column[index] += amount
        return
    days.insert(index, day)
    for column, amount in zip(columns, amounts, strict=True):
        column.insert(index, amount)


def _prune_seen(state: CustomerState, horizon_micros: int) -> None:
    # Amortised: only sweep when the set has grown, and keep everything still inside the horizon.
    if not state.newest or len(state.seen) < 16:
        return
    floor = min(state.newest.values()) - horizon_micros
    if min(state.seen.values()) < floor:
        state.seen = {event_id: ts for event_id, ts in state.seen.items() if ts >= floor}


DEFAULT_DEDUPE_HORIZON_MICROS = 7 * MICROS_PER_DAY


def _topic_key(event: Event) -> str:
    if event.attributes is not None:
        return "f"
    return "i" if event.is_interaction else "p"
