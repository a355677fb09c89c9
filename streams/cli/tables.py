"""Reading the workers' tables from their changelogs, read-only: every customer, every partition's clock,
and the rules in effect on each partition (`rules preview`, `redis rebuild|check`, `explain`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import click
from tqdm import tqdm

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState
from segmenter.engine import Engine
from segmenter.rules import RulesError, RuleSet, default_rules, load_rules

app_id_option = click.option(
    "--app-id",
    envvar="SEGMENTER_APP_ID",
    default="segmenter",
    show_default=True,
    help="The workers' app id (names the changelog topics).",
)
rules_option = click.option(
    "--rules",
    "rules_path",
    envvar="SEGMENTER_RULES",
    type=click.Path(dir_okay=False),
    help="The rules the workers were started with (default: built-in); `rules apply` records win.",
)


def startup_rules(rules_path: str | None) -> RuleSet:
    try:
        return load_rules(rules_path) if rules_path else default_rules()
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None


@dataclass
class Tables:
    customers: dict[str, CustomerState]
    clocks: dict[int, PartitionClock]
    startup: RuleSet
    ends: dict[int, int] = field(default_factory=dict)  # customers changelog end offset per partition

    @functools.cached_property
    def engine(self) -> Engine:
        """An engine over these clocks: it knows each partition's rules in effect and renders records."""
        return Engine(self.startup, {}, {str(p): clock for p, clock in self.clocks.items()})

    def watermark_day_of(self, partition: int) -> int | None:
        clock = self.clocks.get(partition)
        return None if clock is None else clock.watermark_day()

    def rules_of(self, partition: int) -> RuleSet:
        """The rules in effect on `partition`: its last `rules` record's, else the start-up rules."""
        return self.engine.rules_for(partition)


def read_tables(broker: str, app_id: str, rules_path: str | None, desc: str = "reading tables") -> Tables:
    """Every customer and clock, with a progress bar; one clear line on any Kafka error."""
    from state.changelog import read_clocks, read_customers

    startup = startup_rules(rules_path)
    progress = ReadProgress(desc)
    ends: dict[int, int] = {}
    try:
        customers = read_customers(broker, app_id, progress, ends)
        clocks = read_clocks(broker, app_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Kafka errors: one line, no traceback
        raise click.ClickException(f"cannot read the tables from Kafka at {broker}: {exc}") from None
    finally:
        progress.close()
    return Tables(customers, clocks, startup, ends)


class ReadProgress:
    """A progress bar fed by the changelog readers' `on_progress(done, total)` callback."""

    def __init__(self, desc: str) -> None:
        self.bar = tqdm(desc=desc, unit="msg", disable=None)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
