"""Checks a worker runs before it starts: co-partitioned inputs (SPEC section 1) and its other topics."""

from __future__ import annotations

import click

from streams.kafka_admin import create_topics, partition_counts
from streams.topic_names import TopicNames

# A dead-letter copy is the original message (up to the broker's limit) plus x-dlq-* headers: allow more.
DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024
DEAD_LETTER_CONFIGS = {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}


def input_partitions(broker: str, topics: TopicNames) -> int:
    """Partition count shared by the input topics; refuse to start otherwise.

    The control topic (which must match the inputs) and missing output topics are created with that count,
    so a worker also runs on inputs created by other tools.
    """
    counts = partition_counts(broker, topics.all())
    purchases, interactions = counts[topics.purchases], counts[topics.interactions]
    missing = [name for name in topics.inputs()[:2] if counts[name] is None]
    if missing:
        raise click.ClickException(
            f"input topic(s) {', '.join(missing)} do not exist; run `segmenter topics create --partitions N`"
        )
    assert purchases is not None and interactions is not None
    if purchases != interactions:
        raise click.ClickException(
            f"input topics are not co-partitioned: {topics.purchases} has {purchases} partitions, "
            f"{topics.interactions} has {interactions}; they must be equal"
        )
    profiles = counts[topics.profiles]
    if profiles is not None and profiles != purchases:
        raise click.ClickException(
            f"input topics are not co-partitioned: {topics.purchases} has {purchases} partitions, "
            f"{topics.profiles} has {profiles}; they must be equal"
        )
    control = counts[topics.control]
    if control is not None and control != purchases:
        raise click.ClickException(
            f"control topic {topics.control} has {control} partitions but the inputs have {purchases}; "
            "delete it or choose another name with --control-topic"
        )
    to_create = {
        name: purchases
        # A deployment from before the profiles topic gets it (empty) with the inputs' count.
        for name in (topics.control, topics.tier_changes, topics.dead_letters, topics.profiles)
        if counts[name] is None
    }
    if to_create:
        create_topics(broker, to_create, configs={topics.dead_letters: dict(DEAD_LETTER_CONFIGS)})
    return purchases
