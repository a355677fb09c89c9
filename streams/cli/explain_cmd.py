"""`segmenter explain CUSTOMER_ID`: per dimension the tier and why (SPEC section 13), from Redis."""

from __future__ import annotations

import json

import click

from streams.cli.options import broker_option, redis_option
from streams.cli.tables import app_id_option


@click.command()
@redis_option
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option(
    "--rules",
    "rules_path",
    envvar="SEGMENTER_RULES",
    type=click.Path(dir_okay=False),
    help="Rules file to use when Redis does not hold the text of the record's rules version.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@broker_option
@app_id_option
@click.argument("customer_id")
def explain(
    redis_url: str,
    redis_prefix: str,
    rules_path: str | None,
    as_json: bool,
    broker: str,
    app_id: str,
    customer_id: str,
) -> None:
    """Why CUSTOMER_ID is in each tier: the matched condition with the values it reads, and for each tier
    above it the part of its condition that failed."""
    import redis

    from segmenter.record import features_from_record
    from segmenter.rules import FEATURES, RulesError, parse_rules
    from segmenter.rules.explain import explain_rules, explanations_json, render_text
    from state.redis_projection import record_key, rules_key
    from streams.cli.tables import startup_rules

    try:
        client = redis.Redis.from_url(redis_url, decode_responses=True, socket_connect_timeout=5)
        record = client.hgetall(record_key(redis_prefix, customer_id))
        version = record.get("rules_version", "")
        text = client.get(rules_key(redis_prefix, version)) if record else None
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot read Redis at {redis_url.split('@')[-1]}: {exc}") from None
    if not record:
        raise click.ClickException(f"no customer {customer_id!r} under prefix '{redis_prefix}'")
    if text is not None:
        try:
            rules = parse_rules(text, f"rules {version[:12]}")
        except RulesError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        rules = startup_rules(rules_path)
        if rules.version != version:
            raise click.ClickException(
                f"the record was evaluated with rules {version[:12]}, whose text Redis does not hold; "
                "pass that rules file with --rules"
            )
    names = set(FEATURES) | set(getattr(rules, "feature_names", ()))
    features = features_from_record(record, names, rules.money_features)
    hidden = names & set(rules.dimension_names)  # the record's field shows the tier (e.g. `engagement`)
    if hidden:
        features.update(_hidden_features(broker, app_id, customer_id, rules, hidden))
    explanations = explain_rules(rules, features)
    if as_json:
        body = {"customer_id": customer_id, "as_of": record.get("as_of"), "rules_version": version,
                "dimensions": explanations_json(explanations)}
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(f"{customer_id} as of {record.get('as_of')} (rules {version[:12]})")
    click.echo(render_text(explanations))


def _hidden_features(broker, app_id, customer_id, rules, names):  # type: ignore[no-untyped-def]
    """Features whose record field a same-named dimension's tier took: from the customer's state in the
    customers changelog (only its partition is read)."""
    from segmenter.features import features_at
    from state.changelog import read_customer

    try:
        state = read_customer(broker, app_id, customer_id)
    except Exception as exc:  # noqa: BLE001 - Kafka errors: one line
        raise click.ClickException(f"cannot read {customer_id!r} from the tables: {exc}") from None
    if state is None or state.as_of is None:
        return dict.fromkeys(names)
    values = features_at(state, state.as_of, rules.value_days, rules.engagement_days)
    return {name: values.get(name) for name in names}
