"""What the probes answer: liveness and readiness from the loop's reports (streams/web.py)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from streams.web import Health, serve


def ready_health() -> Health:
    health = Health(stall_seconds=30)
    health.assigned_once = True
    health.redis_ok = True
    return health


def test_ready_only_once_assigned_restored_and_redis_reached() -> None:
    health = Health(stall_seconds=30)
    assert not health.ready()
    health.assigned_once = True
    assert not health.ready()  # Redis not reached yet
    health.redis_ok = True
    assert health.ready()
    health.restoring_since = time.monotonic()
    assert not health.ready()
    health.restoring_since = None
    health.waiting_since = time.monotonic()  # a commit waiting out an outage
    assert not health.ready()


def test_a_silent_loop_fails_liveness_but_an_outage_or_restore_does_not() -> None:
    health = ready_health()
    assert health.liveness() == (True, "ok")
    health.heartbeat = time.monotonic() - 31
    ok, text = health.liveness()
    assert not ok and "silent" in text
    health.waiting_since = time.monotonic() - 100
    assert health.liveness()[0]
    health.waiting_since = None
    health.restoring_since = time.monotonic() - 60
    assert health.liveness()[0]
    health.restoring_since = time.monotonic() - 4 * 30 - 1
    assert not health.liveness()[0]
    health.restoring_since = None
    health.loop_error = "RuntimeError: boom"
    ok, text = health.liveness()
    assert not ok and "boom" in text


def test_a_partition_with_lag_that_does_not_move_fails_liveness() -> None:
    health = ready_health()
    start = time.monotonic() - 40
    health.progress.observe(start, {("in", 0): 5}, {("in", 0): 10})
    ok, text = health.liveness()
    assert not ok and "in[0]" in text
    health.progress.observe(time.monotonic(), {("in", 0): 10}, {("in", 0): 10})  # caught up
    assert health.liveness()[0]


def test_endpoints_answer_over_http() -> None:
    health = ready_health()
    server = serve(health, "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert response.status == 200 and response.read() == b"ready\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"segmenter_ready 1.0" in response.read()
        health.loop_error = "stopped"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as error:
            assert error.code == 503 and b"stalled" in error.read()
    finally:
        server.shutdown()
