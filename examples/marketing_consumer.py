#!/usr/bin/env python3
"""Example downstream consumer: turns segmenter tier changes into marketing actions.

Reads the tier-changes topic (SPEC section 6) as a consumer group, prints one JSON line per action on
stdout, and commits offsets only after the actions of a message were handled, so a crash re-delivers
rather than loses.

The worker writes each batch of tier changes in one Kafka transaction (--processing-guarantee exactly_once,
the default), so this consumer reads with isolation_level="read_committed": it never sees the tier changes
of an aborted batch (a batch that failed and was decided again), and it sees a batch only once committed.
kafka-python, like the Java client, defaults to read_uncommitted; librdkafka-based clients default to
read_committed. Offsets have gaps (transaction markers take one each). Events are still de-duplicated by
event_id: this consumer's own re-deliveries after a crash, and workers run with at_least_once, can repeat one.

Actions of a tier change:
  * to `vip`      -> vip_welcome
  * to `at_risk`  -> winback_offer
  * to `churned`  -> winback_last_chance
  * plus every action the rules file attaches to the new tier (the event's `actions` field).

    python examples/marketing_consumer.py --broker localhost:9092 --group marketing
    python examples/marketing_consumer.py --max-messages 10 --timeout 60     # stop after 10 messages

Exit status: 0 when stopped normally (end of --max-messages, --timeout or Ctrl-C), 2 on bad arguments,
1 when Kafka cannot be reached. Needs only kafka-python (pip install kafka-python).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

TIER_ACTIONS = {
    "vip": "vip_welcome",
    "at_risk": "winback_offer",
    "churned": "winback_last_chance",
}


class SeenEvents:
    """A bounded set of recently handled event ids; the oldest id is forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; return False if it was already there (a duplicate)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def actions_for(event: dict[str, Any]) -> list[str]:
    """The marketing actions of one tier-change event, without repeats, in a stable order."""
    actions: list[str] = []
    mapped = TIER_ACTIONS.get(str(event.get("to")))
    if mapped:
        actions.append(mapped)
    for action in event.get("actions") or []:
        if isinstance(action, str) and action not in actions:
            actions.append(action)
    return actions


def action_lines(event: dict[str, Any]) -> Iterator[str]:
    """One JSON line per action of `event`."""
    for action in actions_for(event):
        yield json.dumps(
            {
                "action": action,
                "customer_id": event.get("customer_id"),
                "dimension": event.get("dimension"),
                "from": event.get("from"),
                "to": event.get("to"),
                "at": event.get("at"),
                "reason": event.get("reason"),  # a rules change (rules_changed) may deserve no campaign
                "when": event.get("when"),  # the condition of the tier entered: why, for the campaign copy
                "event_id": event.get("event_id"),
            },
            separators=(",", ":"),
        )


def decode(record: Any) -> dict[str, Any] | None:
    """The tier-change event of a Kafka record, or None (with a note on stderr) if it is not one."""
    try:
        event = json.loads(record.value)
    except (TypeError, ValueError):
        event = None
    if not isinstance(event, dict):
        print(
            f"skipping {record.topic}[{record.partition}]@{record.offset}: not a JSON object",
            file=sys.stderr,
        )
        return None
    if not event.get("event_id"):
        # CloudEvents binary mode: ce_id carries the event id too.
        headers = dict(record.headers or [])
        if headers.get("ce_id"):
            event["event_id"] = headers["ce_id"].decode("utf-8", "replace")
    return event


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Turn segmenter tier changes into marketing actions.")
    parser.add_argument(
        "--broker",
        default=os.environ.get("SEGMENTER_BROKER", "localhost:9092"),
        help="Kafka bootstrap servers, host:port[,host:port...] (env SEGMENTER_BROKER; default %(default)s)",
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("SEGMENTER_TOPIC_TIER_CHANGES", "customer.tier-changes"),
        help="tier-changes topic (env SEGMENTER_TOPIC_TIER_CHANGES; default %(default)s)",
    )
    parser.add_argument("--group", default="marketing", help="consumer group id (default %(default)s)")
    parser.add_argument(
        "--max-messages", type=int, default=None, help="stop after handling this many messages"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="stop after this many seconds in total"
    )
    parser.add_argument(
        "--offset-reset",
        choices=("earliest", "latest"),
        default="earliest",
        help="where a new group starts (default %(default)s)",
    )
    parser.add_argument(
        "--dedupe-size",
        type=int,
        default=100_000,
        help="how many recent event ids to remember for de-duplication (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.max_messages is not None and args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.dedupe_size < 1:
        parser.error("--dedupe-size must be at least 1")
    args.broker = [part.strip().removeprefix("kafka://") for part in args.broker.split(",") if part.strip()]
    return args


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    try:
        consumer = KafkaConsumer(
            args.topic,
            bootstrap_servers=args.broker,
            group_id=args.group,
            client_id="segmenter-marketing-example",
            isolation_level="read_committed",  # the worker's output is transactional: skip aborted batches
            enable_auto_commit=False,
            auto_offset_reset=args.offset_reset,
            allow_auto_create_topics=False,
        )
    except KafkaError as exc:
        print(f"cannot connect to Kafka at {','.join(args.broker)}: {exc}", file=sys.stderr)
        return 1

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    seen = SeenEvents(args.dedupe_size)
    handled = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while not stopping:
            if args.max_messages is not None and handled >= args.max_messages:
                break
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                break
            batches = consumer.poll(timeout_ms=int(wait * 1000))
            commits = {}
            for partition, records in batches.items():
                for record in records:
                    if args.max_messages is not None and handled >= args.max_messages:
                        break
                    event = decode(record)
                    if event is not None and seen.add(str(event.get("event_id"))):
                        for line in action_lines(event):
                            print(line, flush=True)
                    handled += 1
                    commits[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
            if commits:
                # Only what was handled: the rest of a batch cut by --max-messages is read again next time.
                consumer.commit(commits)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"handled {handled} messages", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
