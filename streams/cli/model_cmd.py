"""`segmenter model fit`: fit BG/NBD and Gamma-Gamma on every customer's state (SPEC section 12).

Reads the customers changelog read-only (the workers keep running and are not touched), takes each
customer's summary at the as-of day, fits, writes the model file and prints a short fit report.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import click

from streams.cli.options import broker_option
from streams.cli.tables import ReadProgress, app_id_option

if TYPE_CHECKING:
    from segmenter.customer import CustomerState
    from segmenter.predictive import FitReport, Model


@click.group()
def model() -> None:
    """Predictive models (SPEC section 12): fit them on the customers' state."""


def _parse_day(value: str) -> dt.date:
    """YYYY-MM-DD only (fromisoformat alone would also take 20240101 and week dates)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    # A ClickException, not BadParameter: one line on stderr, without the usage text.
    raise click.ClickException(f"--as-of {value!r} is not a date YYYY-MM-DD")


@model.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option(
    "--as-of",
    "as_of",
    metavar="YYYY-MM-DD",
    help="Day the summaries are taken at (default: the latest evaluation day over all customers).",
)
@broker_option
@app_id_option
@click.option(
    "--currency",
    envvar="SEGMENTER_CURRENCY",
    default="USD",
    show_default=True,
    help="The workers' currency (recorded in the model; v is in its units).",
)
def fit(out: str, as_of: str | None, broker: str, app_id: str, currency: str) -> None:
    """Fit BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v) by maximum likelihood and write OUT.

    Every customer with a purchase on or before the as-of day counts; purchases after it are ignored.
    """
    from segmenter.predictive import dump_model, fit_model
    from segmenter.predictive.summary import summary_at
    from segmenter.timeutil import date_to_day, day_to_date

    as_of_date = _parse_day(as_of) if as_of is not None else None
    customers = _read_customers(broker, app_id)
    if as_of_date is None:
        days = [state.day for state in customers.values() if state.day is not None]
        if not days:
            raise click.ClickException(f"no customers in {app_id}'s tables (has a worker run?)")
        as_of_date = day_to_date(max(days))
    day = date_to_day(as_of_date)
    summaries = [
        summary
        for state in customers.values()
        if (summary := summary_at(state.purchase_days, state.purchase_day_cents, day)) is not None
    ]
    if not summaries:
        raise click.ClickException(
            f"no customer has a purchase on or before {as_of_date.isoformat()} "
            f"({len(customers)} customers read)"
        )
    try:
        fitted, report = fit_model(summaries, as_of_date, currency)
        dump_model(fitted, out)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot fit the model: {exc}") from None
    _print_report(fitted, report, out)


def _read_customers(broker: str, app_id: str) -> dict[str, CustomerState]:
    from state import changelog

    progress = ReadProgress("reading customers")
    try:
        return changelog.read_customers(broker, app_id, on_progress=progress)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Kafka errors: one line, no traceback
        raise click.ClickException(f"cannot read the customers from Kafka at {broker}: {exc}") from None
    finally:
        progress.close()


def _print_report(fitted: Model, report: FitReport, out: str) -> None:
    b, g = fitted.bgnbd, fitted.gamma_gamma
    click.echo(
        f"wrote {out}: {fitted.customers} customers, {fitted.repeat_customers} repeat customers, "
        f"as of {fitted.as_of.isoformat()}"
    )
    click.echo(
        f"BG/NBD       r={b.r:.4g} alpha={b.alpha:.4g}/day a={b.a:.4g} b={b.b:.4g}  "
        f"log-likelihood {fitted.log_likelihood_bgnbd:.2f}"
    )
    click.echo(
        f"Gamma-Gamma  p={g.p:.4g} q={g.q:.4g} v={g.v:.4g} {fitted.currency}  "
        f"log-likelihood {fitted.log_likelihood_gamma_gamma:.2f}"
    )
    click.echo("repeat purchase days  customers  expected (BG/NBD)")
    for label, actual, expected in zip(report.labels, report.actual, report.expected, strict=True):
        click.echo(f"{label:>20}  {actual:>9}  {expected:>17.1f}")
