"""A Faust table whose changelog writes can be awaited: a batch's effects wait until its state is durable."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import FutureMessage


class AckedTable(faust.Table):
    """Keeps the future of every changelog write until `take_unacked` hands them to the batch.

    Faust's own pre-commit flush is best effort (it returns once its buffer looks idle and only logs a
    failed send), so the agent awaits these futures itself before sending anything that depends on them.
    """

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        future = super().send_changelog(*args, **kwargs)
        self.__dict__.setdefault("_unacked", []).append(future)
        return future

    def take_unacked(self) -> list[FutureMessage]:
        return self.__dict__.pop("_unacked", [])
