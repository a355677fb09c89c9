"""`segmenter redis rebuild|check`: restore and verify the Redis projection from the tables' changelog."""

from __future__ import annotations

import asyncio

import click
from tqdm import tqdm

from streams.cli.options import broker_option, redis_option
from streams.cli.tables import ReadProgress, app_id_option, read_tables, rules_option
from streams.topic_names import TopicNames, topic_options

history_option = click.option(
    "--history",
    envvar="SEGMENTER_HISTORY",
    type=click.IntRange(0, 100_000),
    default=100,
    show_default=True,
    help="Tier changes the workers keep per customer (their --history).",
)

prefix_option = click.option(
    "--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True
)


REBUILD_FLAG_SECONDS = 900


@click.group("redis")
def redis_group() -> None:
    """Maintain the Redis projection."""


@redis_group.command()
@broker_option
@redis_option
@app_id_option
@prefix_option
@rules_option
@history_option
@topic_options
@click.option("--yes", is_flag=True, help="Do not ask before deleting the prefix's keys.")
def rebuild(
    broker: str,
    redis_url: str,
    app_id: str,
    redis_prefix: str,
    rules_path: str | None,
    history: int,
    topics: TopicNames,
    yes: bool,
) -> None:
    """Delete every key under the prefix and rewrite records, counts and sets from the tables, and
    history and flows from the tier-changes topic (read_committed; as far back as its retention keeps).

    Safe while workers run: a flag key makes them hold their Redis writes until the rebuild is done (their
    committed batches are in the changelog it reads), so no write interleaves with the delete and rewrite.
    """
    import redis

    from state.redis_projection import rebuild_flag_key

    if not yes and not click.confirm(f"Delete all '{redis_prefix}:*' keys and rebuild them from the tables?"):
        raise click.Abort()
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    flag = rebuild_flag_key(redis_prefix)
    try:
        # Expires by itself if this command dies: workers then resume (and `redis check` tells).
        client.set(flag, "1", ex=REBUILD_FLAG_SECONDS)
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot reach Redis at {redis_url.split('@')[-1]}: {exc}") from None
    try:
        ends: dict[int, int] = {}
        changes = _history(broker, topics, history)  # first: see `HistoryAndFlows.add_unread`
        engine, customers = _load(broker, app_id, rules_path, ends)
        changes.add_unread(customers.values())
        written = asyncio.run(_rebuild(engine, customers, redis_url, redis_prefix, app_id, ends))
        _write_history(client, redis_prefix, changes)
    finally:
        client.delete(flag)
        client.close()
    click.echo(
        f"rebuilt {written} customer records, {len(changes.history)} histories and "
        f"{len(changes.flows)} daily flows under '{redis_prefix}:' from {app_id}'s tables"
    )


@redis_group.command()
@broker_option
@redis_option
@app_id_option
@prefix_option
@rules_option
@history_option
@topic_options
@click.option("--show", default=20, show_default=True, help="How many differences to print.")
def check(
    broker: str,
    redis_url: str,
    app_id: str,
    redis_prefix: str,
    rules_path: str | None,
    history: int,
    topics: TopicNames,
    show: int,
) -> None:
    """Compare Redis with the tables and the tier-changes topic (records, counts, sets, history, flows);
    exit 1 and list differences if they disagree."""
    from state.consistency import compare

    changes = _history(broker, topics, history)
    engine, customers = _load(broker, app_id, rules_path)
    changes.add_unread(customers.values())
    differences = asyncio.run(compare(engine, customers, redis_url, redis_prefix, changes))
    for line in differences[:show]:
        click.echo(line)
    if differences:
        raise click.ClickException(f"{len(differences)} difference(s) between Redis and the tables")
    click.echo(f"Redis agrees with the tables: {len(customers)} customers, counts and sets")


def _load(broker: str, app_id: str, rules_path: str | None, ends=None):  # type: ignore[no-untyped-def]
    """An engine that renders records under each partition's rules in effect, and the customers."""

    tables = read_tables(broker, app_id, rules_path)
    if ends is not None:
        ends.update(tables.ends)
    customers = {cid: state for cid, state in tables.customers.items() if state.as_of is not None}
    return tables.engine, customers


async def _rebuild(engine, customers, redis_url, prefix, app_id, ends) -> int:  # type: ignore[no-untyped-def]
    from state.redis_projection import RedisProjection, projected_key

    projection = RedisProjection(redis_url, prefix)
    try:
        await projection.delete_all()
        written = 0
        by_partition: dict[int, list] = {}
        for customer_id, state in customers.items():
            by_partition.setdefault(state.partition, []).append((customer_id, state))
        with tqdm(total=len(customers), desc="writing Redis", unit="customer", disable=None) as bar:
            for partition, items in sorted(by_partition.items()):
                dimensions = engine.projection_dimensions(partition)
                for start in range(0, len(items), 1000):
                    chunk = items[start : start + 1000]
                    records = [(cid, engine.record_fields(state)) for cid, state in chunk]
                    written += await projection.write(records, dimensions)
                    bar.update(len(chunk))
        if ends:  # what Redis now reflects: workers' restores re-project only past these offsets
            await projection.client.hset(
                projected_key(prefix), mapping={f"{app_id}:{p}": offset for p, offset in ends.items()}
            )
        return written
    finally:
        await projection.close()


def _history(broker: str, topics: TopicNames, keep: int):  # type: ignore[no-untyped-def]
    """History and flows from every committed tier change of the topic."""
    from state.changelog import read_tier_changes
    from state.history import HistoryAndFlows

    progress = ReadProgress("reading tier changes")
    try:
        return HistoryAndFlows.of(read_tier_changes(broker, topics.tier_changes, progress), keep)
    except LookupError:
        return HistoryAndFlows(keep)  # no tier change yet
    except Exception as exc:  # noqa: BLE001 - Kafka errors: one line, no traceback
        raise click.ClickException(
            f"cannot read {topics.tier_changes} from Kafka at {broker}: {exc}"
        ) from None
    finally:
        progress.close()


def _write_history(client, prefix: str, changes) -> None:  # type: ignore[no-untyped-def]
    pipe = client.pipeline(transaction=False)
    for n, (key, newest_first) in enumerate(changes.redis_history(prefix).items(), start=1):
        pipe.rpush(key, *newest_first)
        if n % 1000 == 0:
            pipe.execute()
    for n, (key, counts) in enumerate(changes.redis_flows(prefix).items(), start=1):
        pipe.hset(key, mapping=counts)
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
