"""`segmenter ui`: a read-only web UI over the Redis projection (SPEC section 15, docs/UI.md)."""
