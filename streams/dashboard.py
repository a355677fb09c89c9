"""The demo's terminal dashboard (`segmenter demo`): one `rich` screen redrawn in place.

Per dimension the tier counts with bars (tiers in rules order, empty ones too), tier changes per second over
the last `RATE_WINDOW` seconds, the latest tier changes and the links to the web UI and the worker's metrics.
`render` is a pure function of a `DashboardState`, so it is tested without a terminal; no value is ever shown
as Python's `None` (a first classification's `from` is shown as `(new)`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

TITLE = "segmenter demo"
RATE_WINDOW = 5.0
LATEST = 8
BAR_WIDTH = 16


@dataclass(frozen=True)
class Change:
    at: str
    customer_id: str
    dimension: str
    from_tier: str | None
    to_tier: str
    reason: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Change:
        return cls(
            at=str(event.get("at") or "")[:19].replace("T", " "),
            customer_id=str(event.get("customer_id") or ""),
            dimension=str(event.get("dimension") or ""),
            from_tier=event.get("from") or None,
            to_tier=str(event.get("to") or ""),
            reason=str(event.get("reason") or ""),
        )


@dataclass
class DashboardState:
    """What the dashboard shows; `add_change` is called from the tier-change consumer thread."""

    dimensions: Sequence[tuple[str, Sequence[str]]]  # (dimension, its tiers in rules order)
    ui_url: str | None = None
    ui_note: str = ""
    metrics_url: str = ""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    elapsed: float = 0.0
    total_changes: int = 0
    latest: deque[Change] = field(default_factory=lambda: deque(maxlen=LATEST))
    _times: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_change(self, change: Change, now: float | None = None) -> None:
        with self._lock:
            self.latest.appendleft(change)
            self.total_changes += 1
            self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        """Tier changes per second over the last RATE_WINDOW seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] < now - RATE_WINDOW:
                self._times.popleft()
            return len(self._times) / RATE_WINDOW

    def refresh_counts(self, client: Any, prefix: str) -> None:
        """Read every dimension's tier-count hash (one pipeline)."""
        pipe = client.pipeline(transaction=False)
        for name, _ in self.dimensions:
            pipe.hgetall(f"{prefix}:tier-counts:{name}")
        for (name, _), counts in zip(self.dimensions, pipe.execute(), strict=True):
            self.counts[name] = {_text(tier): int(count) for tier, count in counts.items()}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def render(state: DashboardState, now: float | None = None) -> RenderableType:
    links = Text.assemble(("web UI   ", "bold"))
    if state.ui_url:
        links.append(state.ui_url, style="underline cyan")
    if state.ui_note:
        links.append(("  " if state.ui_url else "") + state.ui_note, style="yellow")
    if state.metrics_url:
        links.append("\nmetrics  ", style="bold").append(state.metrics_url, style="cyan")
    rate = Text.assemble(
        ("tier changes ", "bold"),
        (f"{state.rate(now):,.1f}/s", "bold green"),
        f" (last {RATE_WINDOW:.0f} s)   {state.total_changes:,} since start",
    )
    body = Group(
        links,
        Text(""),
        Columns([_dimension_table(state, name, tiers) for name, tiers in state.dimensions], padding=(0, 3)),
        Text(""),
        rate,
        _latest_table(state),
    )
    return Panel(
        body,
        title=f"[bold]{TITLE}[/bold] · {state.elapsed:,.0f} s",
        subtitle="Ctrl-C stops",
        border_style="blue",
    )


def _dimension_table(state: DashboardState, name: str, tiers: Sequence[str]) -> Table:
    counts = state.counts.get(name, {})
    total = sum(counts.values())
    shown = list(tiers) + sorted(t for t in counts if t not in tiers)
    table = Table(
        title=f"{name} · {total:,} customers",
        title_justify="left",
        title_style="bold",
        box=None,
        show_header=False,
        padding=(0, 1),
    )
    table.add_column("tier", no_wrap=True)
    table.add_column("bar", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    largest = max(counts.values(), default=0)
    for tier in shown:
        count = counts.get(tier, 0)
        filled = round(BAR_WIDTH * count / largest) if largest else 0
        bar = Text("█" * filled, style="green") + Text("·" * (BAR_WIDTH - filled), style="dim")
        share = f"{100 * count / total:.0f}%" if total else "-"
        table.add_row(tier, bar, f"{count:,}", share)
    return table


def _latest_table(state: DashboardState) -> Table:
    table = Table(
        title="latest tier changes", title_justify="left", title_style="bold", box=None, padding=(0, 1)
    )
    for column in ("at (event time)", "customer", "dimension", "from", "to", "reason"):
        table.add_column(column, no_wrap=True)
    with state._lock:
        latest = list(state.latest)
    for change in latest:
        table.add_row(
            change.at,
            change.customer_id,
            change.dimension,
            change.from_tier or "(new)",
            f"→ {change.to_tier}",  # one cell: a narrow terminal shrinks columns, never drops the arrow
            change.reason,
        )
    if not latest:
        table.add_row("(waiting for tier changes)", "", "", "", "", "")
    return table
