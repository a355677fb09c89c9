"""`segmenter rules check FILE` / `segmenter rules show`: validate a rules file, print the built-in rules."""

from __future__ import annotations

import sys

import click


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


def _one_line(text: str) -> str:
    return " ".join(text.split())
