"""Benchmarks of the segmenter: `python -m bench` runs them all (see docs/PERFORMANCE.md)."""
