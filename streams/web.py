"""The worker's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness).

Served from a daemon thread with the standard library's threading HTTP server: the endpoints only read the
`Health` snapshot the processing loop keeps, so they answer even while the loop waits for Redis or Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.progress import PartitionProgress

log = logging.getLogger(__name__)


@dataclass
class Health:
    """What the loop reports; what the probes judge. Times are `time.monotonic()`."""

    stall_seconds: float
    progress: PartitionProgress = field(init=False)
    heartbeat: float = field(default_factory=time.monotonic)
    assigned_once: bool = False
    restoring_since: float | None = None
    waiting_since: float | None = None  # the loop waits for Redis or Kafka (an outage, not a stall)
    redis_ok: bool = False
    loop_error: str | None = None

    def __post_init__(self) -> None:
        self.progress = PartitionProgress(self.stall_seconds)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def ready(self) -> bool:
        ok = (
            self.loop_error is None
            and self.assigned_once
            and self.restoring_since is None
            and self.redis_ok
            and self.waiting_since is None
        )
        metrics.READY.set(1 if ok else 0)
        return ok

    def liveness(self) -> tuple[bool, str]:
        """Alive: the loop runs and owned partitions with lag progress (outages and restores excepted)."""
        now = time.monotonic()
        if self.loop_error is not None:
            return False, f"processing loop ended: {self.loop_error}"
        if self.restoring_since is not None:
            held = now - self.restoring_since
            if held > 4 * self.stall_seconds:
                return False, f"restoring partitions for {held:.0f}s"
            return True, "ok (restoring partitions)"
        if self.waiting_since is not None:
            waited = now - self.waiting_since
            if waited > 4 * self.stall_seconds:
                return False, f"waiting for Redis or Kafka for {waited:.0f}s"
            return True, "ok (waiting for Redis or Kafka)"
        quiet = now - self.heartbeat
        if quiet > self.stall_seconds:
            return False, f"processing loop silent for {quiet:.0f}s"
        stalled = self.progress.stalled(now, None)
        if stalled:
            shown = ", ".join(
                f"{topic}[{partition}] for {s:.0f}s" for (topic, partition), s in stalled.items()
            )
            return False, f"input not progressing with lag: {shown}"
        return True, "ok"


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """Start the endpoints on a daemon thread; the caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                health.ready()
                self._send(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, text = health.liveness()
                self._send(200 if ok else 503, (text if ok else f"stalled: {text}").encode() + b"\n")
            elif path == "/readyz":
                ready = health.ready()
                self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
            return  # probes every few seconds: no access log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="segmenter-web", daemon=True).start()
    log.info("serving /metrics, /healthz and /readyz on %s:%d", host, port)
    return server
