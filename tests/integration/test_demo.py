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
