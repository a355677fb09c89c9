"""`segmenter demo` (the README's main job) runs a worker and the simulator and shows live tier counts."""

from __future__ import annotations

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
    last_screen = result.stdout.rsplit("segmenter demo", 1)[-1]
    assert "lifecycle" in last_screen and "(waiting for events)" not in last_screen
    assert "->" in last_screen, "recent transitions are shown"
    assert "demo stopped" in result.stdout
    # The demo's worker is the default one (exactly_once: each batch a transaction; the live view reads
    # committed tier changes only), and it stopped cleanly on the demo's SIGINT.
    worker_log = (tmp_path / "var" / "demo-worker.log").read_text(errors="replace")
    assert "segmenter worker started" in worker_log and "exactly_once" in worker_log, worker_log[-2000:]
    assert "CRITICAL" not in worker_log and "Traceback" not in worker_log, worker_log[-2000:]
