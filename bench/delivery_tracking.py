"""Delivery tracking: what checking every record for holes Faust left costs the agent.

    python -m bench.delivery_tracking [--records 200000 --repeat 5]

In-process, no Kafka: the per-record calls the agent makes (`SourceContinuity.continues`, adding the
record's partition to the batch's set, `delivered`) on a contiguous partition, timed with `timeit`; the
minimum of the repeats is reported (the least disturbed run on a shared machine), with the median.
"""

from __future__ import annotations

import argparse
import statistics
import timeit

from streams.continuity import SourceContinuity
from streams.delivery import DeliveryTracker


def per_record_micros(records: int, repeat: int) -> list[float]:
    key = ("bench.purchases", 0)
    tracker = DeliveryTracker()
    continuity = SourceContinuity(tracker, records=None, committed=None)  # type: ignore[arg-type]
    tracker.start(key, 0)
    position = {"next": 0}

    def one_record() -> None:
        offset = position["next"]
        if not continuity.continues(key, offset):
            raise AssertionError("a contiguous partition must not show a hole")
        touched = set()
        touched.add(key)
        continuity.delivered(key, offset)
        position["next"] = offset + 1

    return [t / records * 1e6 for t in timeit.repeat(one_record, number=records, repeat=repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = per_record_micros(args.records, args.repeat)
    print(
        f"delivery tracking: {min(runs):.2f} µs per record (min of {args.repeat}), "
        f"median {statistics.median(runs):.2f} µs"
    )


if __name__ == "__main__":
    main()
