"""The five topic names (SPEC section 1), configurable by option or environment variable.

`control` is an internal topic, co-partitioned with the inputs, that carries clock messages
(`segmenter clock advance`) so that restarts and replays see them; `topics create` creates it too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import click

# field -> (environment variable, command-line option)
_ENV_AND_OPTION: dict[str, tuple[str, str]] = {
    "purchases": ("SEGMENTER_TOPIC_PURCHASES", "--purchases-topic"),
    "interactions": ("SEGMENTER_TOPIC_INTERACTIONS", "--interactions-topic"),
    "tier_changes": ("SEGMENTER_TOPIC_TIER_CHANGES", "--tier-changes-topic"),
    "dead_letters": ("SEGMENTER_TOPIC_DEAD_LETTERS", "--dead-letters-topic"),
    "control": ("SEGMENTER_TOPIC_CONTROL", "--control-topic"),
    "profiles": ("SEGMENTER_TOPIC_PROFILES", "--profiles-topic"),
}


@dataclass(frozen=True)
class TopicNames:
    purchases: str = "customer.purchases"
    interactions: str = "customer.interactions"
    tier_changes: str = "customer.tier-changes"
    dead_letters: str = "customer.dead-letters"
    control: str = "customer.segmenter-control"
    profiles: str = "customer.profiles"

    def __post_init__(self) -> None:
        names = self.all()
        for field_name, name in zip(self.field_names(), names, strict=True):
            if not name:
                raise ValueError(f"topic name for {field_name} is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"topic names must be distinct: {', '.join(names)}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TopicNames:
        """Defaults overridden by `SEGMENTER_TOPIC_*` variables that are set and not empty."""
        env = os.environ if environ is None else environ
        overrides = {name: env[var] for name, (var, _) in _ENV_AND_OPTION.items() if env.get(var)}
        return cls(**overrides)

    def all(self) -> tuple[str, ...]:
        """All six names: purchases, interactions, tier_changes, dead_letters, control, profiles."""
        return (
            self.purchases,
            self.interactions,
            self.tier_changes,
            self.dead_letters,
            self.control,
            self.profiles,
        )

    def inputs(self) -> tuple[str, str, str]:
        """The co-partitioned input topics (SPEC section 1)."""
        return (self.purchases, self.interactions, self.profiles)

    def items(self) -> Iterator[tuple[str, str]]:
        """(field name, topic name) pairs in the order of `all()`."""
        return zip(self.field_names(), self.all(), strict=True)

    @staticmethod
    def env_var(field_name: str) -> str:
        return _ENV_AND_OPTION[field_name][0]


def topic_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Click decorator: the six `--*-topic` options (each with its env var), passed on as `topics`."""
    defaults = TopicNames()

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(f"{name}_topic") for name in _ENV_AND_OPTION}
        try:
            kwargs["topics"] = TopicNames(**values)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return command(*args, **kwargs)

    decorated: Callable[..., Any] = wrapper
    for name, (env_var, option) in reversed(_ENV_AND_OPTION.items()):
        decorated = click.option(
            option,
            f"{name}_topic",
            envvar=env_var,
            default=getattr(defaults, name),
            show_default=True,
            metavar="NAME",
            help=f"Name of the {name.replace('_', '-')} topic. Env: {env_var}.",
        )(decorated)
    return decorated
