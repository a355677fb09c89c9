"""`segmenter tier CUSTOMER_ID`: what support sees — a customer's current tiers and features from Redis."""

from __future__ import annotations

import json

import click

from streams.cli.options import redis_option


@click.command()
@redis_option
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
@click.argument("customer_id")
def tier(redis_url: str, redis_prefix: str, as_json: bool, customer_id: str) -> None:
    """Show CUSTOMER_ID's current tiers, features and record version."""
    import redis

    from state.redis_projection import record_key

    try:
        client = redis.Redis.from_url(redis_url, decode_responses=True, socket_connect_timeout=5)
        record = client.hgetall(record_key(redis_prefix, customer_id))
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot read Redis at {redis_url.split('@')[-1]}: {exc}") from None
    if not record:
        raise click.ClickException(f"no customer {customer_id!r} under prefix '{redis_prefix}'")
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
        return
    width = max(len(name) for name in record)
    for name in sorted(record):
        click.echo(f"{name.ljust(width)}  {record[name]}")
