"""Consumer lag and stalled-partition detection (streams/progress.py)."""

from __future__ import annotations

from streams.progress import PartitionProgress

P0, P1 = ("in.purchases", 0), ("in.purchases", 1)


def test_lag_is_end_minus_committed_and_never_negative() -> None:
    progress = PartitionProgress(stall_seconds=60)
    assert progress.observe(0, {P0: 40}, {P0: 100, P1: 5}) == {P0: 60, P1: 5}
    assert progress.observe(1, {P0: 120}, {P0: 100}) == {P0: 0}


def test_a_partition_with_lag_and_a_still_offset_is_stalled_after_the_limit() -> None:
    progress = PartitionProgress(stall_seconds=60)
    progress.observe(0, {P0: 40, P1: 10}, {P0: 100, P1: 10})
    progress.observe(59, {P0: 40, P1: 10}, {P0: 100, P1: 10})
    assert progress.stalled(59, None) == {}
    progress.observe(61, {P0: 40, P1: 10}, {P0: 100, P1: 50})
    assert progress.stalled(61, None) == {P0: 61}  # P1 only got lag now: its clock starts at 61


def test_moving_offsets_and_caught_up_partitions_are_not_stalled() -> None:
    progress = PartitionProgress(stall_seconds=60)
    for second in range(0, 200, 10):
        progress.observe(second, {P0: second, P1: 7}, {P0: 1000, P1: 7})
    assert progress.stalled(200, None) == {}


def test_an_agent_held_in_one_batch_by_an_outage_is_not_a_stall() -> None:
    progress = PartitionProgress(stall_seconds=60)
    progress.observe(0, {P0: 40}, {P0: 100})
    progress.observe(100, {P0: 40}, {P0: 100})
    assert progress.stalled(100, batch_started_at=50) == {}
    assert progress.stalled(100, batch_started_at=95) == {P0: 100}


def test_a_partition_given_away_is_forgotten() -> None:
    progress = PartitionProgress(stall_seconds=60)
    progress.observe(0, {P0: 40}, {P0: 100})
    progress.observe(100, {}, {P1: 0})
    assert progress.stalled(100, None) == {}


def test_a_rebalance_restarts_the_stall_clocks() -> None:
    progress = PartitionProgress(stall_seconds=60)
    progress.observe(0, {P0: 40}, {P0: 100})
    progress.restart_clocks(50)  # the group rebalanced: nothing moved meanwhile, by design
    progress.observe(100, {P0: 40}, {P0: 100})
    assert progress.stalled(100, None) == {}
    assert progress.stalled(110, None) == {P0: 60}
