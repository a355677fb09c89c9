"""Independent test oracle for the segmenter, written from SPEC.md only.

Nothing in this package imports (or was written by reading) ``segmenter``, ``streams`` or ``state``.

- :mod:`tests.oracle.model`: slow, literal, day-by-day batch replay of SPEC sections 2-6
  (+ the Redis view of section 7).
- :mod:`tests.oracle.eventgen`: seeded generator of realistic event sets with duplicates and bad messages.
"""

from tests.oracle.model import (
    DEFAULT_DIMENSIONS,
    DLQ_REASONS,
    CustomerView,
    CustomFeature,
    Event,
    Features,
    Rejection,
    Result,
    attr_cmp,
    attr_in,
    compute_custom,
    compute_features,
    day_of,
    default_classify,
    feature_cmp,
    format_cents,
    format_day,
    murmur2,
    parse_amount_cents,
    parse_ts,
    partition_for_key,
    run_messages,
    run_partition,
    run_partitions,
    split_by_partition,
    validate_message,
)

__all__ = [
    "CustomFeature",
    "attr_cmp",
    "attr_in",
    "compute_custom",
    "DEFAULT_DIMENSIONS",
    "DLQ_REASONS",
    "CustomerView",
    "Event",
    "Features",
    "Rejection",
    "Result",
    "compute_features",
    "day_of",
    "default_classify",
    "format_cents",
    "format_day",
    "murmur2",
    "parse_amount_cents",
    "parse_ts",
    "partition_for_key",
    "run_messages",
    "run_partition",
    "run_partitions",
    "split_by_partition",
    "feature_cmp",
    "validate_message",
]
