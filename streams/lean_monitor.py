"""Faust's Monitor without its per-message bookkeeping.

Faust's default Monitor records every message in, every stream event in and out, every table get/set and
every send in Python dicts and deques (several µs each, five to eight times per event) for statistics the
segmenter never reads: its own metrics are Prometheus counters updated once per batch. Offsets, commits and
end offsets are still tracked (the consumer calls those hooks, and they are per batch, not per message).
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor


class LeanMonitor(Monitor):
    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None
