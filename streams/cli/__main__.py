"""`python -m streams.cli` runs the segmenter CLI (used by the demo to spawn its subprocesses)."""

from streams.cli import main

main()
