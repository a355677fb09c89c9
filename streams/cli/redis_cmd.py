"""`segmenter redis rebuild|check`: restore and verify the Redis projection from the tables' changelog."""

from __future__ import annotations

import asyncio

import click
from tqdm import tqdm

from streams.cli.options import broker_option, redis_option

app_id_option = click.option(
    "--app-id",
    envvar="SEGMENTER_APP_ID",
    default="segmenter",
    show_default=True,
    help="The workers' app id (names the changelog topic).",
)
prefix_option = click.option(
    "--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True
)
rules_option = click.option(
    "--rules",
    "rules_path",
    envvar="SEGMENTER_RULES",
    type=click.Path(dir_okay=False),
    help="The rules the workers run (default: built-in).",
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
@click.option("--yes", is_flag=True, help="Do not ask before deleting the prefix's keys.")
def rebuild(
    broker: str, redis_url: str, app_id: str, redis_prefix: str, rules_path: str | None, yes: bool
) -> None:
    """Delete every key under the prefix and rewrite records, counts and sets from the tables.

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
        engine, customers = _load(broker, app_id, rules_path, ends)
        written = asyncio.run(_rebuild(engine, customers, redis_url, redis_prefix, app_id, ends))
    finally:
        client.delete(flag)
        client.close()
    click.echo(f"rebuilt {written} customer records under '{redis_prefix}:' from {app_id}'s tables")


@redis_group.command()
@broker_option
@redis_option
@app_id_option
@prefix_option
@rules_option
@click.option("--show", default=20, show_default=True, help="How many differences to print.")
def check(
    broker: str, redis_url: str, app_id: str, redis_prefix: str, rules_path: str | None, show: int
) -> None:
    """Compare Redis with the tables; exit 1 and list differences if they disagree."""
    from state.consistency import compare

    engine, customers = _load(broker, app_id, rules_path)
    differences = asyncio.run(compare(engine, customers, redis_url, redis_prefix))
    for line in differences[:show]:
        click.echo(line)
    if differences:
        raise click.ClickException(f"{len(differences)} difference(s) between Redis and the tables")
    click.echo(f"Redis agrees with the tables: {len(customers)} customers, counts and sets")


def _load(broker: str, app_id: str, rules_path: str | None, ends=None):  # type: ignore[no-untyped-def]
    from segmenter.engine import Engine
    from segmenter.rules import RulesError, default_rules, load_rules
    from state.changelog import read_customers

    try:
        rules = load_rules(rules_path) if rules_path else default_rules()
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    bar = tqdm(desc="reading tables", unit="msg", disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        customers = read_customers(broker, app_id, progress, ends)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # kafka errors: one line, no traceback
        raise click.ClickException(f"cannot read the tables from Kafka at {broker}: {exc}") from None
    finally:
        bar.close()
    customers = {cid: state for cid, state in customers.items() if state.as_of is not None}
    return Engine(rules, {}, {}), customers


async def _rebuild(engine, customers, redis_url, prefix, app_id, ends) -> int:  # type: ignore[no-untyped-def]
    from state.redis_projection import RedisProjection, projected_key

    projection = RedisProjection(redis_url, prefix)
    try:
        await projection.delete_all()
        written = 0
        items = list(customers.items())
        with tqdm(total=len(items), desc="writing Redis", unit="customer", disable=None) as bar:
            for start in range(0, len(items), 1000):
                chunk = items[start : start + 1000]
                records = [(cid, engine.record_fields(state)) for cid, state in chunk]
                written += await projection.write(records, engine.rules.dimension_names)
                bar.update(len(chunk))
        if ends:  # what Redis now reflects: workers' restores re-project only past these offsets
            await projection.client.hset(
                projected_key(prefix), mapping={f"{app_id}:{p}": offset for p, offset in ends.items()}
            )
        return written
    finally:
        await projection.close()
