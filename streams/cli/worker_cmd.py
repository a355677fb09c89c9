"""`segmenter worker`: run one stream-processing worker (SPEC section 9)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from streams.cli.options import broker_option, redis_option
from streams.topic_names import TopicNames, topic_options


@click.command()
@broker_option
@redis_option
@click.option(
    "--rules",
    "rules_path",
    envvar="SEGMENTER_RULES",
    type=click.Path(dir_okay=False),
    help="Rules YAML file (default: the built-in rules). Env: SEGMENTER_RULES.",
)
@click.option(
    "--clock",
    envvar="SEGMENTER_CLOCK",
    type=click.Choice(["wall", "event"]),
    default="wall",
    show_default=True,
    help="wall: the wall clock (minus --grace) moves time too; event: event time only.",
)
@click.option(
    "--grace",
    "grace_seconds",
    envvar="SEGMENTER_WALL_GRACE_SECONDS",
    type=float,
    default=300.0,
    show_default=True,
    help="Wall-clock grace period in seconds (--clock wall).",
)
@click.option(
    "--data-dir",
    envvar="SEGMENTER_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/segmenter-data"),
    show_default=True,
    help="Local table state. Env: SEGMENTER_DATA_DIR.",
)
@click.option(
    "--store",
    envvar="SEGMENTER_STORE",
    type=click.Choice(["memory", "rocksdb"]),
    default="memory",
    show_default=True,
    help="Table store; rocksdb keeps state on disk for fast restarts.",
)
@click.option(
    "--app-id",
    envvar="SEGMENTER_APP_ID",
    default="segmenter",
    show_default=True,
    help="Consumer group and table namespace; workers with the same id share the work.",
)
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option(
    "--web-port",
    envvar="SEGMENTER_WEB_PORT",
    type=int,
    default=6066,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz.",
)
@click.option("--currency", envvar="SEGMENTER_CURRENCY", default="USD", show_default=True)
@click.option(
    "--processing-guarantee",
    envvar="SEGMENTER_PROCESSING_GUARANTEE",
    type=click.Choice(["exactly_once", "at_least_once"]),
    default="exactly_once",
    show_default=True,
    help="exactly_once: each batch is one Kafka transaction (read tier changes with read_committed). "
    "at_least_once: no transactions; a crash in the middle of a batch can lose or duplicate its tier "
    "changes.",
)
@click.option(
    "--instance-id",
    envvar="SEGMENTER_INSTANCE_ID",
    default=None,
    help="Stable identity of this worker (e.g. the pod name): enables static group membership, so a "
    "restarted worker gets its partitions back without a rebalance. Default: none (host name + data dir "
    "name the transactional id).",
)
@click.option("--log-level", envvar="SEGMENTER_LOG_LEVEL", default="info", show_default=True)
@click.option(
    "--batch-size",
    envvar="SEGMENTER_BATCH_SIZE",
    type=click.IntRange(1, 100_000),
    default=10_000,
    show_default=True,
    help="Records handled together at most: one Kafka transaction and one Redis call per batch.",
)
@click.option(
    "--batch-window",
    envvar="SEGMENTER_BATCH_WINDOW",
    type=click.FloatRange(0.001, 10),
    default=0.1,
    show_default=True,
    help="Seconds a batch may wait to fill (sizes transactions by time under load).",
)
@click.option(
    "--stall-seconds",
    envvar="SEGMENTER_STALL_SECONDS",
    type=click.FloatRange(10, None),
    default=300.0,
    show_default=True,
    help="/healthz fails when the processing loop is silent, or an owned input partition has lag and its "
    "position has not moved, for this long.",
)
@click.option(
    "--history",
    envvar="SEGMENTER_HISTORY",
    type=click.IntRange(0, 100_000),
    default=100,
    show_default=True,
    help="Tier changes kept per customer in Redis (segmenter:history:{id}, newest first); 0 keeps none.",
)
@topic_options
def worker(
    broker: str,
    redis_url: str,
    rules_path: str | None,
    clock: str,
    grace_seconds: float,
    data_dir: Path,
    store: str,
    app_id: str,
    redis_prefix: str,
    web_port: int,
    currency: str,
    processing_guarantee: str,
    instance_id: str | None,
    log_level: str,
    batch_size: int,
    batch_window: float,
    stall_seconds: float,
    history: int,
    topics: TopicNames,
) -> None:
    """Consume events, keep customer aggregates, emit tier changes and project tiers to Redis."""
    from segmenter.rules import RulesError, default_rules, load_rules
    from streams.preflight import input_partitions
    from streams.settings import WorkerSettings

    try:
        rules = load_rules(rules_path) if rules_path else default_rules()
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    settings = WorkerSettings(
        broker=broker,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rules_path=rules_path,
        clock=clock,
        wall_grace_seconds=grace_seconds,
        data_dir=data_dir,
        store=store,
        app_id=app_id,
        web_port=web_port,
        currency=currency,
        processing_guarantee=processing_guarantee,
        instance_id=instance_id or None,
        topics=topics,
        log_level=log_level,
        batch_size=batch_size,
        batch_window_seconds=batch_window,
        stall_seconds=stall_seconds,
        history=history,
    )
    _check_redis(redis_url)
    partitions = input_partitions(broker, topics)
    run_worker(settings, rules, partitions)


def run_worker(settings, rules, partitions: int) -> None:  # type: ignore[no-untyped-def]
    from streams.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python (topic admin): connection chatter
    try:
        Worker(settings, rules, partitions).run()
    except Exception:
        logging.getLogger("segmenter").critical(
            "the worker stops on an error it cannot recover from", exc_info=True
        )
        raise SystemExit(70) from None


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
    except (redis.exceptions.RedisError, ValueError) as exc:
        safe = url.split("@")[-1]
        raise click.ClickException(f"cannot reach Redis at {safe}: {exc}") from None
