"""Control messages on the internal control topic: how time moves without customer events.

Faust only lets a table change inside an event of the partition that owns it (see NOTES), so `clock
advance`, wall-clock ticks and re-checks travel as messages on a topic co-partitioned with the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from segmenter.timeutil import micros_to_rfc3339


class ControlError(ValueError):
    pass


@dataclass(frozen=True)
class Control:
    kind: str  # advance | recheck | catch-up
    to_micros: int = 0
    after: dict[str, int] | None = None  # input topic -> offset the partition must have processed first
    until: dict[str, int] | None = None  # catch-up: input topic -> offset the partition must be read up to


def encode_advance(
    to_micros: int, source: str = "clock-advance", after: dict[str, int] | None = None
) -> bytes:
    body: dict[str, object] = {
        "type": "advance",
        "to": micros_to_rfc3339(to_micros),
        "to_micros": to_micros,
        "source": source,
    }
    if after:
        body["after"] = after
    return orjson.dumps(body)


def encode_recheck() -> bytes:
    return orjson.dumps({"type": "recheck"})


def encode_catch_up(until: dict[str, int]) -> bytes:
    """Ask the partition's owner to read these inputs from Kafka up to the offsets (`streams.continuity`)."""
    return orjson.dumps({"type": "catch-up", "until": until})


def decode(value: bytes | None) -> Control:
    try:
        message = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"control message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError("control message must be a JSON object")
    if message.get("type") == "recheck":
        return Control("recheck")
    if message.get("type") == "catch-up":
        until = message.get("until")
        if not _offsets(until):
            raise ControlError("catch-up 'until' must map topics to offsets")
        return Control("catch-up", until=until)
    if message.get("type") != "advance":
        raise ControlError("control message type must be 'advance', 'recheck' or 'catch-up'")
    to_micros = message.get("to_micros")
    if not isinstance(to_micros, int) or isinstance(to_micros, bool):
        raise ControlError("control message needs an integer to_micros")
    after = message.get("after")
    if after is not None and not _offsets(after):
        raise ControlError("control message 'after' must map topics to offsets")
    return Control("advance", to_micros, after)


def _offsets(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    )
