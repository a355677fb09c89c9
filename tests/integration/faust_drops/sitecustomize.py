"""Test-only: make Faust lose fetched records the way faust-streaming 0.15 does around rebalances.

Loaded by the worker subprocesses of `tests/integration/test_faust_skips.py` only (their PYTHONPATH starts
with this directory). `SEGMENTER_TEST_FAUST_DROPS="topic:partition:start:stop;..."` removes the records with
start <= offset < stop from the first fetch that returns them, after aiokafka's position moved past them,
which is exactly what Faust's fetcher does when it abandons a fetched batch.
"""

import os

_SPEC = os.environ.get("SEGMENTER_TEST_FAUST_DROPS")

if _SPEC:
    from faust.transport.drivers import aiokafka as _driver

    _DROPS = []
    for _part in _SPEC.split(";"):
        _topic, _partition, _start, _stop = _part.rsplit(":", 3)
        _DROPS.append((_topic, int(_partition), int(_start), int(_stop)))
    _dropped: set = set()
    _fetch_records = _driver.AIOKafkaConsumerThread._fetch_records

    async def _fetch_records_losing_some(self, *args, **kwargs):
        records = await _fetch_records(self, *args, **kwargs)
        for tp, batch in list(records.items()):
            keep = []
            for record in batch:
                lost = any(
                    tp.topic == topic and tp.partition == partition and start <= record.offset < stop
                    for topic, partition, start, stop in _DROPS
                )
                if lost and (tp, record.offset) not in _dropped:
                    _dropped.add((tp, record.offset))
                    continue
                keep.append(record)
            records[tp] = keep
        return records

    _driver.AIOKafkaConsumerThread._fetch_records = _fetch_records_losing_some
