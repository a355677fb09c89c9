"""The per-customer summary (x, t_x, T, m) of SPEC section 12, as of any day.

Built from the state's lifetime purchase days, so it can be taken at any day whatever the events' arrival
order; money stays exact (cents) and `m` is derived in currency units only when a model needs a float.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Summary:
    """x = purchase days - 1, t_x = last - first purchase day, T = day - first purchase day (all in days).

    `repeat_cents` is the purchase total of the days after the first; `m` is its mean per day.
    """

    x: int
    t_x: int
    T: int
    repeat_cents: int
    first_day: int

    @property
    def m(self) -> float | None:
        """Mean repeat-day spend in currency units; None for one-time buyers (x = 0)."""
        return None if self.x == 0 else self.repeat_cents / (100 * self.x)

    @property
    def m_exact(self) -> Fraction | None:
        """`m` as an exact fraction of currency units."""
        return None if self.x == 0 else Fraction(self.repeat_cents, 100 * self.x)

    def at(self, day: int) -> Summary:
        """The same purchases seen from a later `day` (only T moves while no purchase happens)."""
        return Summary(self.x, self.t_x, day - self.first_day, self.repeat_cents, self.first_day)


def summary_at(purchase_days: list[int], purchase_day_cents: list[int], day: int) -> Summary | None:
    """Summary over the purchase days <= `day`; None when there is none.

    `purchase_days` is ascending and distinct (days since 1970-01-01 UTC), `purchase_day_cents` the
    matching day totals, as `CustomerState` keeps them.
    """
    end = bisect_right(purchase_days, day)
    if end == 0:
        return None
    first = purchase_days[0]
    return Summary(
        x=end - 1,
        t_x=purchase_days[end - 1] - first,
        T=day - first,
        repeat_cents=sum(purchase_day_cents[1:end]),
        first_day=first,
    )
