"""`segmenter history CUSTOMER_ID [--at TIME]`: a customer's tier changes from Redis (SPEC section 14)."""

from __future__ import annotations

import json

import click

from streams.cli.options import redis_option


@click.command()
@redis_option
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option("--at", "at", default=None, help="Show the tiers in effect at this time (or date) instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("customer_id")
def history(redis_url: str, redis_prefix: str, at: str | None, as_json: bool, customer_id: str) -> None:
    """CUSTOMER_ID's kept tier changes, newest first; with --at, the tiers in effect at that time."""
    import redis

    from segmenter.history import tiers_at
    from state.redis_projection import history_key, record_key
    from streams.cli.clock_cmd import parse_time_arg

    at_micros = None if at is None else parse_time_arg(at, "--at")
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        raw = client.lrange(history_key(redis_prefix, customer_id), 0, -1)
        known = raw or client.exists(record_key(redis_prefix, customer_id))
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot read Redis at {redis_url.split('@')[-1]}: {exc}") from None
    if not known:
        raise click.ClickException(f"no customer {customer_id!r} under prefix '{redis_prefix}'")
    events = [json.loads(item) for item in raw]
    if at_micros is None:
        if as_json:
            click.echo(json.dumps(events))
            return
        for event in events:
            click.echo(
                f"{event['at']}  {event['dimension']}: {event['from'] or '(none)'} -> {event['to']}  "
                f"({event['reason']}{', ' + event['cause_event_id'] if event.get('cause_event_id') else ''})"
            )
        if not events:
            click.echo("no tier changes kept")
        return
    result = tiers_at(events, at_micros)
    if as_json:
        click.echo(json.dumps({"at": at, "tiers": result.tiers, "complete": result.complete}))
    else:
        for dimension, tier in sorted(result.tiers.items()):
            click.echo(f"{dimension}: {tier or '(not classified yet)'}")
    if not result.complete:
        click.echo(
            f"the kept history ({len(events)} changes) does not reach back to {at}: dimensions without a "
            "change before it are not shown",
            err=True,
        )
