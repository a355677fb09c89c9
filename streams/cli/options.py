"""Connection options shared by every command that talks to Kafka or Redis (SPEC section 9)."""

from __future__ import annotations

import click

DEFAULT_BROKER = "localhost:9092"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def normalise_broker(value: str) -> str:
    """Accept `host:port[,host:port...]` with or without a `kafka://` scheme; return the bare list."""
    hosts = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith("kafka://"):
            part = part[len("kafka://") :]
        part = part.rstrip("/")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise click.BadParameter(f"{value!r} is not host:port[,host:port...]", param_hint="--broker")
        hosts.append(part)
    if not hosts:
        raise click.BadParameter("no broker given", param_hint="--broker")
    return ",".join(hosts)


def _broker_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return normalise_broker(value)


broker_option = click.option(
    "--broker",
    envvar="SEGMENTER_BROKER",
    default=DEFAULT_BROKER,
    show_default=True,
    callback=_broker_callback,
    help="Kafka bootstrap servers, host:port[,host:port...] (kafka:// optional). Env: SEGMENTER_BROKER.",
)

redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="SEGMENTER_REDIS_URL",
    default=DEFAULT_REDIS_URL,
    show_default=True,
    help="Redis URL as redis-py accepts it, database included. Env: SEGMENTER_REDIS_URL.",
)
