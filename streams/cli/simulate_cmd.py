"""`segmenter simulate`: a realistic synthetic event stream into the input topics.

The generator is segmenter.simulation (pure); this module paces, produces and reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import click

from streams.cli.options import broker_option
from streams.topic_names import TopicNames, topic_options

LIVE_DEFAULT_RATE = 100.0  # events/s of the live part when --follow is used with --rate 0


def _parse_start(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2025-01-01", param_hint="--start") from None


@click.command()
@broker_option
@topic_options
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Customers over the historic period (live mode keeps acquiring new ones).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: same seed, same stream.")
@click.option(
    "--start",
    callback=_parse_start,
    default=None,
    metavar="YYYY-MM-DD",
    help="Event-time start of the stream (UTC). Default: today minus --days.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=400,
    show_default=True,
    help="Length of the historic part in days.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help=f"Events/s in wall time (0: as fast as possible; with --follow the live part then runs at "
    f"{LIVE_DEFAULT_RATE:g}/s).",
)
@click.option(
    "--max-events",
    type=click.IntRange(min=0),
    default=None,
    help="Stop after this many messages (duplicates and bad messages included).",
)
@click.option(
    "--follow",
    is_flag=True,
    help="After the historic part, keep producing live events stamped with the current time, at "
    "--rate, until Ctrl-C.",
)
@click.option(
    "--bad-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of extra bad messages (every dead-letter reason: malformed_json, schema, "
    "key_mismatch, too_large, currency).",
)
@click.option(
    "--duplicate-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of events sent twice (same event_id and bytes).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def simulate(
    ctx: click.Context,
    broker: str,
    topics: TopicNames,
    customers: int,
    seed: int,
    start: date | None,
    days: int,
    rate: float,
    max_events: int | None,
    follow: bool,
    bad_ratio: float,
    duplicate_ratio: float,
    quiet: bool,
) -> None:
    """Produce a realistic synthetic event stream, in event-time order, keyed by customer_id.

    Personas (one-time, occasional, regular, whale buyers; prospects with interactions only), heavy-tailed
    order values, refunds, same-day bursts, churn, acquisition over time and interactions that follow
    activity. Deterministic per --seed and --start. Ctrl-C stops cleanly (flush, summary, exit 130).
    """
    from segmenter.simulation import INTERACTIONS, PROFILES, PURCHASES, SimConfig, Simulation
    from streams.cli.produce_cmd import (
        SetRate,
        check_input_topics,
        make_progress,
        pump,
        run_interruptible,
        summary_lines,
    )

    today = datetime.now(UTC).date()
    if start is None:
        start = today - timedelta(days=days)
    if follow and start + timedelta(days=days) > today:  # live events come after the history, never before
        days = (today - start).days
        if days < 1:
            raise click.BadParameter("with --follow the start must be before today", param_hint="--start")
    config = SimConfig(
        customers=customers,
        seed=seed,
        start=start,
        days=days,
        bad_ratio=bad_ratio,
        duplicate_ratio=duplicate_ratio,
    )
    simulation = Simulation(config)
    names = {PURCHASES: topics.purchases, INTERACTIONS: topics.interactions, PROFILES: topics.profiles}
    check_input_topics(broker, names.values())

    def items() -> Iterator[tuple[str, bytes | None, bytes] | SetRate]:
        for message in simulation.historic():
            yield names[message.topic], message.key, message.value
        if follow:
            yield SetRate(rate or LIVE_DEFAULT_RATE)
            for message in simulation.live(time.time):
                yield names[message.topic], message.key, message.value

    progress = make_progress(max_events, quiet, "simulate")
    try:
        result, interrupted = run_interruptible(
            lambda stop: pump(
                broker,
                items(),
                stop=stop,
                rate=rate,
                max_events=max_events,
                progress=progress,
                client_id="segmenter-simulate",
            )
        )
    finally:
        if progress is not None:
            progress.close()
    result.interrupted = interrupted
    kinds = simulation.counts
    end = config.start + timedelta(days=config.days)
    bad = {reason: count for reason, count in kinds.items() if reason not in ("event", "duplicate")}
    personas = ", ".join(f"{name} {count:,}" for name, count in simulation.persona_counts.most_common())
    extra = [
        f"  events {kinds['event']:,}, duplicates {kinds['duplicate']:,}, bad {sum(bad.values()):,}"
        + (f" ({', '.join(f'{r} {c:,}' for r, c in sorted(bad.items()))})" if bad else ""),
        f"  customers {sum(simulation.persona_counts.values()):,}: {personas}",
        f"  event time {config.start.isoformat()} .. {end.isoformat()}"
        + (" then live (now)" if follow else "")
        + f", seed {seed}",
    ]
    if result.too_large:
        extra.append(f"  skipped {result.too_large:,} message(s) over the producer size limit")
    click.echo("\n".join(summary_lines(result, extra)))
    if interrupted:
        ctx.exit(130)
