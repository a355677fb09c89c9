"""Checks a worker runs before it starts: co-partitioned inputs (SPEC section 1) and the control topic."""

from __future__ import annotations

import click

from streams.kafka_admin import create_topics, partition_counts
from streams.topic_names import TopicNames


def input_partitions(broker: str, topics: TopicNames) -> int:
    """Partition count shared by the input topics; refuse to start otherwise. Creates the control topic."""
    counts = partition_counts(broker, [topics.purchases, topics.interactions, topics.control])
    purchases, interactions = counts[topics.purchases], counts[topics.interactions]
    missing = [name for name in (topics.purchases, topics.interactions) if counts[name] is None]
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
    control = counts[topics.control]
    if control is None:
        create_topics(broker, {topics.control: purchases})
    elif control != purchases:
        raise click.ClickException(
            f"control topic {topics.control} has {control} partitions but the inputs have {purchases}; "
            "delete it or choose another name with --control-topic"
        )
    return purchases
