"""Records of the internal control topic: how time moves without customer events.

`segmenter clock advance` and the wall-clock ticks (`--clock wall`) are records on a topic co-partitioned
with the inputs, so a restart or a replay sees exactly the same clock as the first run: wall time enters a
partition's outputs only through these recorded ticks.
"""

from __future__ import annotations

import orjson

from segmenter.engine import ClockAdvance, RulesChange
from segmenter.rules import RulesError, parse_rules
from segmenter.timeutil import TimestampError, micros_to_rfc3339, parse_rfc3339_micros


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


def encode_rules(
    text: str,
    version: str,
    issued_at: str,
    after: dict[str, int] | None = None,
    files: dict[str, str] | None = None,
) -> bytes:
    """A `rules` record (SPEC section 13): the rules file's text, its version, when it was issued, and the
    files it names (the model), so that workers need nothing but the record."""
    body: dict[str, object] = {"type": "rules", "rules": text, "version": version, "issued_at": issued_at}
    if after:
        body["after"] = after
    if files:
        body["files"] = files
    return orjson.dumps(body)


def decode(value: bytes | None, partition: int) -> ClockAdvance | RulesChange:
    """The clock or rules record for the engine; `ControlError` (a dead letter) for anything else."""
    try:
        message = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"control message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError("control message must be a JSON object")
    if message.get("type") == "rules":
        return _decode_rules(message, partition)
    if message.get("type") != "advance":
        raise ControlError("control message type must be 'advance' or 'rules'")
    to_micros = message.get("to_micros")
    if not isinstance(to_micros, int) or isinstance(to_micros, bool):
        raise ControlError("control message needs an integer to_micros")
    after = message.get("after")
    if after is not None and not _offsets(after):
        raise ControlError("control message 'after' must map topics to offsets")
    return ClockAdvance(partition, to_micros, after)


def _decode_rules(message: dict[str, object], partition: int) -> RulesChange:
    text, version, issued_at = message.get("rules"), message.get("version"), message.get("issued_at")
    if not isinstance(text, str) or not isinstance(version, str) or not isinstance(issued_at, str):
        raise ControlError("a rules record needs the strings 'rules', 'version' and 'issued_at'")
    try:
        parse_rfc3339_micros(issued_at)
    except TimestampError:
        raise ControlError(f"a rules record's issued_at is not an RFC 3339 time: {issued_at!r}") from None
    after = message.get("after")
    if after is not None and not _offsets(after):
        raise ControlError("control message 'after' must map topics to offsets")
    files = message.get("files")
    if files is not None and not (
        isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
    ):
        raise ControlError("a rules record's 'files' must map paths to texts")
    try:
        parse_rules(text, "rules record", files=files or {})
    except RulesError as exc:
        raise ControlError(f"a rules record's rules do not load: {exc}") from None
    return RulesChange(partition, text, version, issued_at, after, files)  # type: ignore[arg-type]


def _offsets(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    )
