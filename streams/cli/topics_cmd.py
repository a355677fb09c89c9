"""`segmenter topics create|list|describe`: the topics of SPEC section 1 plus the internal control topic."""

from __future__ import annotations

import click

from streams.cli.options import broker_option
from streams.preflight import DEAD_LETTER_CONFIGS
from streams.topic_names import TopicNames, topic_options

_ROLES = {
    "purchases": "input",
    "interactions": "input",
    "tier_changes": "output",
    "dead_letters": "output",
    "control": "internal",
    "profiles": "input",
}


def topic_configs(names: TopicNames) -> dict[str, dict[str, str]]:
    """Topic-level configs `topics create` applies to new topics."""
    return {names.dead_letters: dict(DEAD_LETTER_CONFIGS)}


def _table(names: TopicNames, counts: dict[str, int | None], statuses: dict[str, str] | None = None) -> str:
    rows = [("TOPIC", "ROLE", "PARTITIONS") + (("STATUS",) if statuses is not None else ())]
    for field_name, name in names.items():
        count = counts.get(name)
        shown = "missing" if count is None else str(count)
        row: tuple[str, ...] = (name, f"{field_name} ({_ROLES[field_name]})", shown)
        if statuses is not None:
            row += (statuses.get(name, "-"),)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _co_partitioning(names: TopicNames, counts: dict[str, int | None]) -> tuple[bool, str]:
    purchases, interactions = counts.get(names.purchases), counts.get(names.interactions)
    if purchases is None or interactions is None:
        missing = [n for n in names.inputs() if counts.get(n) is None]
        return False, f"inputs co-partitioned: unknown, missing input topic(s): {', '.join(missing)}"
    if purchases != interactions:
        return False, (
            f"inputs co-partitioned: NO ({names.purchases} has {purchases} partitions, "
            f"{names.interactions} has {interactions}); a worker refuses to start"
        )
    profiles = counts.get(names.profiles)
    if profiles is not None and profiles != purchases:
        return False, (
            f"inputs co-partitioned: NO ({names.purchases} has {purchases} partitions, "
            f"{names.profiles} has {profiles}); a worker refuses to start"
        )
    line = f"inputs co-partitioned: yes ({purchases} partitions each)"
    control = counts.get(names.control)
    if control is not None and control != purchases:
        return False, line + f"; but control topic {names.control} has {control} (must be {purchases})"
    return True, line


@click.group()
def topics() -> None:
    """Create and inspect the segmenter's topics."""


@topics.command()
@broker_option
@topic_options
@click.option(
    "--partitions",
    "-p",
    type=click.IntRange(min=1),
    required=True,
    help="Partitions of every topic (the inputs and the control topic must be equal).",
)
@click.option("--replication-factor", type=click.IntRange(min=1), default=1, show_default=True)
def create(broker: str, topics: TopicNames, partitions: int, replication_factor: int) -> None:
    """Create the five topics (idempotent: existing topics are kept and reported)."""
    from streams.kafka_admin import PartitionCountMismatch, create_topics, partition_counts

    try:
        statuses = create_topics(
            broker,
            dict.fromkeys(topics.all(), partitions),
            configs=topic_configs(topics),
            replication_factor=replication_factor,
        )
    except PartitionCountMismatch as exc:
        counts = partition_counts(broker, topics.all())
        statuses = {name: exc.statuses.get(name, "existed") for name in topics.all()}
        for name in exc.mismatches:
            statuses[name] = f"existed, MISMATCH (wanted {partitions})"
        click.echo(_table(topics, counts, statuses))
        raise
    counts = partition_counts(broker, topics.all())
    click.echo(_table(topics, counts, statuses))
    created = sum(1 for status in statuses.values() if status == "created")
    click.echo(f"{created} created, {len(statuses) - created} existed")


@click.command("list")
@broker_option
@topic_options
def list_topics(broker: str, topics: TopicNames) -> None:
    """Show the partition count of each topic and whether the two inputs are co-partitioned."""
    from streams.kafka_admin import partition_counts

    counts = partition_counts(broker, topics.all())
    click.echo(_table(topics, counts))
    click.echo(_co_partitioning(topics, counts)[1])


topics.add_command(list_topics, "list")
topics.add_command(list_topics, "describe")
