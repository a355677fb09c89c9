"""`segmenter demo` (the README's main job) runs a worker, the simulator and the web UI and shows live tier
counts. Without a terminal (stdout captured here) the dashboard prints its last frame once, at the end; the
dashboard in a real terminal is tests/integration/test_demo_dashboard.py."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.integration.workerproc import free_port


def test_demo_shows_tiers_and_transitions(stack, tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "demo",
            "--duration",
            "25",
            "--customers",
            "200",
            "--rate",
            "800",
            "--web-port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
            "--broker",
            stack.broker,
            "--redis",
            stack.redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("segmenter demo") == 1, "one frame, not a scroll of screens"
    frame = result.stdout
    assert "None" not in frame
    assert "(waiting for tier changes)" not in frame, frame
    for dimension in ("lifecycle", "value", "engagement"):
        total = re.search(rf"{dimension} · ([\d,]+) customers", frame)
        assert total and int(total.group(1).replace(",", "")) > 0, frame
    assert "→" in frame and re.search(r"tier changes [\d,.]+/s", frame), "latest tier changes and their rate"
    assert "web UI" in frame and "/metrics" in frame
    assert "demo stopped" in result.stdout
    # The demo's worker is the default one (exactly_once: each batch a transaction; the live view reads
    # committed tier changes only), and it stopped cleanly on the demo's SIGINT.
    worker_log = (tmp_path / "var" / "demo-worker.log").read_text(errors="replace")
    assert "segmenter worker started" in worker_log and "exactly_once" in worker_log, worker_log[-2000:]
    assert "CRITICAL" not in worker_log and "Traceback" not in worker_log, worker_log[-2000:]
