"""The demo's terminal dashboard in a real pseudo-terminal (tmux): drawn in place, with the counts.

A short `segmenter demo` runs in a detached tmux pane of fixed size; the pane is captured every half second.
In place means: nothing scrolls into tmux's history, the title is on the same row of every capture and appears
once in screen + history, while the content (elapsed seconds, counts) changes. The counts shown are those of
Redis (the totals only grow, so every shown total is at most the final one in Redis). `render` is checked
without a terminal: no Python `None` anywhere, a first classification shown as `(new)`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import redis
from rich.console import Console

from segmenter.rules import default_rules
from streams.cli.demo_cmd import DEMO_PREFIX
from streams.dashboard import TITLE, Change, DashboardState, render
from tests.integration.workerproc import free_port

ROWS, COLUMNS = 45, 120
TOTAL = re.compile(r"(\w+) · ([\d,]+) customers")


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-u", "-L", socket, *args], check=True, capture_output=True, text=True
    ).stdout


def _state() -> DashboardState:
    rules = default_rules()
    return DashboardState(dimensions=[(d.name, [t.name for t in d.tiers]) for d in rules.dimensions])


def test_render_never_shows_none() -> None:
    state = _state()
    state.counts = {"lifecycle": {"active": 3, "new": 1}}
    state.add_change(
        Change.from_event(
            {
                "at": "2026-03-01T00:00:00Z",
                "customer_id": "c-1",
                "dimension": "lifecycle",
                "from": None,
                "to": "new",
                "reason": "purchase",
                "cause_event_id": None,
            }
        )  # fmt: skip
    )
    console = Console(width=100, record=True)
    console.print(render(state, now=time.monotonic()))
    screen = console.export_text()
    assert "None" not in screen and "(new)" in screen and "lifecycle · 4 customers" in screen
    assert "value · 0 customers" in screen and "tier changes 0.2/s" in screen


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_dashboard_draws_in_place(stack, tmp_path) -> None:
    socket = f"segdash-{uuid.uuid4().hex[:8]}"
    demo = [
        sys.executable, "-m", "streams.cli", "demo",
        "--duration", "30", "--customers", "200", "--rate", "600",
        "--web-port", str(free_port()), "--ui-port", str(free_port()),
        "--broker", stack.broker, "--redis", stack.redis_url,
    ]  # fmt: skip
    command = f"cd {shlex.quote(str(tmp_path))} && {shlex.join(demo)}; echo DEMO-EXIT=$?; sleep 120"
    _tmux(socket, "new-session", "-d", "-s", "demo", "-x", str(COLUMNS), "-y", str(ROWS), command)
    captures: list[list[str]] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            screen = _tmux(socket, "capture-pane", "-p", "-t", "demo")
            history = int(_tmux(socket, "display", "-p", "-t", "demo", "#{history_size}").strip())
            assert history == 0, f"the dashboard scrolled ({history} lines in history):\n{screen}"
            if "DEMO-EXIT=" in screen:
                break
            if TITLE in screen:
                captures.append(screen.splitlines())
            time.sleep(0.5)
        final = _tmux(socket, "capture-pane", "-p", "-S", "-", "-t", "demo")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    assert "DEMO-EXIT=0" in final, final
    assert final.count(TITLE) == 1, final
    assert "None" not in final and "Traceback" not in final, final
    assert len(captures) >= 20, f"{len(captures)} captures of the dashboard"
    title_rows = {next(i for i, line in enumerate(lines) if TITLE in line) for lines in captures}
    assert len(title_rows) == 1, "the title stays on one row"
    assert len({tuple(lines) for lines in captures}) > 10, "the content is redrawn"
    last = "\n".join(captures[-1])
    assert "→" in last and "tier changes" in last and "web UI" in last and "/metrics" in last
    shown = {name: int(total.replace(",", "")) for name, total in TOTAL.findall(last)}
    assert set(shown) == {"lifecycle", "value", "engagement"}, last
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    for name, total in shown.items():
        in_redis = sum(int(v) for v in client.hvals(f"{DEMO_PREFIX}:tier-counts:{name}"))
        assert 0 < total <= in_redis, (name, total, in_redis)
    rows = re.findall(r"(\w+) +[█·]{16} +([\d,]+) +(?:\d+%|-)", last)
    tiers = {tier for dimension in default_rules().dimensions for tier in (t.name for t in dimension.tiers)}
    assert {tier for tier, _ in rows} == tiers, rows  # every tier has its bar, empty ones too
    assert sum(int(count.replace(",", "")) for _, count in rows) == sum(shown.values())
