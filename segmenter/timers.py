"""Timer index: which customers of a partition can change tier on which day (SPEC section 6 cost rule).

A min-heap of (due day, customer id) with lazy deletion: a day tick pops only the customers that are due,
so its cost follows the number of due customers, not the partition's population.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class TimerIndex:
    __slots__ = ("_heap", "_due")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    @classmethod
    def of(cls, due: Iterable[tuple[str, int]]) -> TimerIndex:
        """An index of (customer id, due day) pairs, built in linear time (a restart's million entries)."""
        index = cls()
        index._due = dict(due)
        index._heap = [(day, customer_id) for customer_id, day in index._due.items()]
        heapq.heapify(index._heap)
        return index

    def schedule(self, customer_id: str, day: int | None) -> None:
        """Set (or clear, with None) the customer's next due day."""
        if day is None:
            self._due.pop(customer_id, None)
            return
        if self._due.get(customer_id) == day:
            return
        self._due[customer_id] = day
        heapq.heappush(self._heap, (day, customer_id))
        if len(self._heap) > 4 * len(self._due) + 1024:
            self._compact()

    def pop_due(self, through_day: int) -> list[str]:
        """Remove and return the customers due on or before `through_day`."""
        heap, due = self._heap, self._due
        popped: list[str] = []
        while heap and heap[0][0] <= through_day:
            day, customer_id = heapq.heappop(heap)
            if due.get(customer_id) == day:
                del due[customer_id]
                popped.append(customer_id)
        return popped

    def _compact(self) -> None:
        self._heap = [(day, customer_id) for customer_id, day in self._due.items()]
        heapq.heapify(self._heap)
