"""Records of the internal control topic: how time moves without customer events.

`segmenter clock advance` and the wall-clock ticks (`--clock wall`) are records on a topic co-partitioned
with the inputs, so a restart or a replay sees exactly the same clock as the first run: wall time enters a
partition's outputs only through these recorded ticks.
"""

from __future__ import annotations

import orjson

from segmenter.engine import ClockAdvance
from segmenter.timeutil import micros_to_rfc3339


class ControlError(ValueError):
    pass


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


def decode(value: bytes | None, partition: int) -> ClockAdvance:
    """The clock record for the engine; `ControlError` (a dead letter) for anything else."""
    try:
        message = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"control message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError("control message must be a JSON object")
    if message.get("type") != "advance":
        raise ControlError("control message type must be 'advance'")
    to_micros = message.get("to_micros")
    if not isinstance(to_micros, int) or isinstance(to_micros, bool):
        raise ControlError("control message needs an integer to_micros")
    after = message.get("after")
    if after is not None and not _offsets(after):
        raise ControlError("control message 'after' must map topics to offsets")
    return ClockAdvance(partition, to_micros, after)


def _offsets(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    )
