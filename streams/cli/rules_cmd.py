"""`segmenter rules check|show|preview|apply`: validate, print, preview and apply rules files (SPEC 5, 13)."""

from __future__ import annotations

import json
import sys

import click

from streams.cli.options import broker_option, redis_option
from streams.cli.tables import app_id_option, read_tables, rules_option
from streams.topic_names import TopicNames, topic_options


@click.group()
def rules() -> None:
    """Rules files (SPEC section 5): windows, dimensions and tiers."""


@rules.command()
@click.argument("file", metavar="FILE")
def check(file: str) -> None:
    """Validate the rules file FILE ('-' reads standard input).

    Prints a one-line summary and exits 0, or prints `error: FILE:LINE: reason` on stderr and exits 1.
    """
    from segmenter.rules import RulesError, load_rules, parse_rules

    try:
        ruleset = parse_rules(sys.stdin.read(), "<stdin>") if file == "-" else load_rules(file)
    except RulesError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        raise click.exceptions.Exit(1) from None
    names = ruleset.dimension_names
    click.echo(
        f"OK {ruleset.source}: {len(names)} dimension{'s' if len(names) != 1 else ''} ({', '.join(names)}), "
        f"windows value_days={ruleset.value_days} engagement_days={ruleset.engagement_days}, "
        f"version {ruleset.version}"
    )


@rules.command()
def show() -> None:
    """Print the built-in default rules (a starting point for your own rules file)."""
    from segmenter.rules import RulesError, default_rules_text

    try:
        text = default_rules_text()
    except RulesError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(text, nl=False)


def _load_file(file: str):  # type: ignore[no-untyped-def]
    """(rules, text) of FILE, or one line on stderr and exit 1."""
    from segmenter.rules import RulesError, parse_rules

    try:
        with open(file, "rb") as handle:
            text = handle.read().decode("utf-8")
        return parse_rules(text, file), text
    except OSError as exc:
        click.echo(f"error: {file}: {exc.strerror or exc}", err=True)
    except UnicodeDecodeError:
        click.echo(f"error: {file}: not UTF-8 text", err=True)
    except RulesError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
    raise click.exceptions.Exit(1)


@rules.command()
@broker_option
@app_id_option
@rules_option
@click.option("--json", "as_json", is_flag=True, help="Print the preview as one JSON document.")
@click.option("--examples", default=3, show_default=True, help="Example customers per move.")
@click.argument("file", metavar="FILE")
def preview(
    broker: str, app_id: str, rules_path: str | None, as_json: bool, examples: int, file: str
) -> None:
    """What applying FILE would do: tier counts now and under FILE, the moves between tiers and example
    customers per move, over every customer's current state (read from the changelogs; nothing is
    written anywhere, the workers are not involved)."""
    from segmenter.preview import preview as compute

    proposed, _ = _load_file(file)
    tables = read_tables(broker, app_id, rules_path)
    result = compute(
        tables.customers.values(), tables.rules_of, proposed, examples, tables.watermark_day_of
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    in_effect = ", ".join(v[:12] for v in sorted(result.current_versions)) or "-"
    click.echo(
        f"{result.customers} customers; rules in effect {in_effect} -> {proposed.version[:12]} ({file}): "
        f"{result.changed} tier changes"
    )
    for note in result.shorter_history:
        click.echo(f"note: {note}")
    for dimension in result.dimensions.values():
        click.echo(f"\n{dimension.name}")
        tiers = list(dict.fromkeys([*dimension.before, *dimension.after]))
        width = max([len(t) for t in tiers] + [4])
        click.echo(f"  {'tier'.ljust(width)}  {'now':>9}  {'after':>9}")
        for tier in tiers:
            click.echo(f"  {tier.ljust(width)}  {dimension.before[tier]:>9}  {dimension.after[tier]:>9}")
        changed = [(m, n) for m, n in dimension.moves.items() if m[0] != m[1]]
        if changed:
            click.echo("  moves:")
        for (old, new), n in sorted(changed, key=lambda item: -item[1]):
            names = ", ".join(dimension.examples.get((old, new), []))
            click.echo(f"    {old or '(none)'} -> {new or '(dropped)'}: {n}  e.g. {names}")


@rules.command()
@broker_option
@redis_option
@topic_options
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.argument("file", metavar="FILE")
def apply(broker: str, redis_url: str, topics: TopicNames, redis_prefix: str, file: str) -> None:
    """Check FILE and make it the rules in effect: a `rules` record on every partition of the control
    topic. Workers switch each partition after the events produced before this command and evaluate
    every customer again (tier changes with reason `rules_changed`, at = now)."""
    import time

    from segmenter.timeutil import micros_to_rfc3339
    from streams.cli.clock_cmd import send_control_records
    from streams.control import encode_rules

    ruleset, text = _load_file(file)
    files = _named_files(file, text)
    issued_at = micros_to_rfc3339(int(time.time() * 1_000_000))
    partitions = send_control_records(
        broker,
        topics,
        b"rules",
        lambda after: encode_rules(text, ruleset.version, issued_at, after, files),
    )
    _publish_rules(redis_url, redis_prefix, ruleset.version, text)
    click.echo(
        f"applied rules {ruleset.version[:12]} ({file}) at {issued_at} to {partitions} partition(s); "
        "workers re-tier every customer (reason rules_changed)"
    )


def _named_files(file: str, text: str) -> dict[str, str] | None:
    """The model file the rules name, by the path as written (the record carries it to the workers)."""
    import os

    import yaml

    document = yaml.safe_load(text)
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("file"), str):
        return None
    written = model["file"]
    path = os.path.join(os.path.dirname(file) or ".", os.path.expanduser(written))
    with open(path, encoding="utf-8") as handle:
        return {written: handle.read()}


def _publish_rules(redis_url: str, prefix: str, version: str, text: str) -> None:
    """Keep the rules text in Redis by version, for `explain` and the UI (a warning if Redis is away)."""
    import redis

    from state.redis_projection import rules_key

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        client.set(rules_key(prefix, version), text)
        client.close()
    except (redis.exceptions.RedisError, ValueError) as exc:
        click.echo(f"warning: could not store the rules in Redis ({exc}); `explain` needs --rules", err=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())
