"""The `segmenter` command line (SPEC section 9): one entry point, one module per command group."""

from __future__ import annotations

import importlib
import sys

import click

# (module under streams.cli, attribute) for every command; imported lazily so `--help` stays fast
# and a command's heavy imports (Kafka clients, RocksDB) are only paid by that command.
COMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("worker_cmd", "worker"),
    "topics": ("topics_cmd", "topics"),
    "simulate": ("simulate_cmd", "simulate"),
    "produce": ("produce_cmd", "produce"),
    "clock": ("clock_cmd", "clock"),
    "tier": ("tier_cmd", "tier"),
    "rules": ("rules_cmd", "rules"),
    "redis": ("redis_cmd", "redis_group"),
    "demo": ("demo_cmd", "demo"),
    "model": ("model_cmd", "model"),
    "history": ("history_cmd", "history"),
    "explain": ("explain_cmd", "explain"),
    "ui": ("ui_cmd", "ui"),
    "export": ("export_cmd", "export"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        module = importlib.import_module(f"streams.cli.{module_name}")
        return getattr(module, attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="segmenter")
def cli() -> None:
    """segmenter: real-time customer segmentation on Kafka and Redis."""


def main() -> None:
    """Console entry point: user mistakes end as one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(prog_name="segmenter", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
