"""Export: `segmenter export` of 100k and 1M customers from Redis, peak RSS and rows/s (median of N runs).

    python -m bench.export [--sizes 100000,1000000 --repeat 3 --formats csv,jsonl]

Synthetic records (the worker's record layout of SPEC section 7 under the default rules: 3 dimensions, 9
features, 2 timestamps, rules_version, version, and 0-3 `attr.*` fields from a pool of 6 names) are written
with pipelines under a `bench-export-…` prefix, with their tier sets, tier counts and the rules text; sizes
grow in place (100k written, measured, then topped up to 1M). Each run is a separate
`python -m streams.cli export` process: peak RSS is that process's `ru_maxrss` (os.wait4), rows/s = customers
/ wall time of the process (start-up included). The keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REDIS_URL,
    cleanup_redis,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    redis_client,
    unique_prefix,
    write_results,
)

LIFECYCLE = ("prospect", "new", "active", "at_risk", "churned")
VALUE = ("none", "low", "mid", "high", "vip")
ENGAGEMENT = ("dormant", "casual", "engaged")
ATTRIBUTES = (("country", '"FR"'), ("plan", '"gold"'), ("age", "41"), ("opt_in", "true"), ("city", '"Lyon"'),
              ("score", "7.5"))  # fmt: skip


def synthetic_record(rng: random.Random, rules_version: str) -> dict[str, str]:
    record = {
        "lifecycle": rng.choice(LIFECYCLE),
        "value": rng.choice(VALUE),
        "engagement": rng.choice(ENGAGEMENT),
        "as_of": "2026-03-01",
        "lifetime_purchases": str(rng.randrange(1, 40)),
        "lifetime_monetary": f"{rng.randrange(100, 500_000) / 100:.2f}",
        "frequency": str(rng.randrange(0, 20)),
        "monetary": f"{rng.randrange(0, 200_000) / 100:.2f}",
        "recency_days": str(rng.randrange(0, 400)),
        "tenure_days": str(rng.randrange(0, 900)),
        "days_since_last_interaction": str(rng.randrange(0, 90)),
        "avg_order_value": f"{rng.randrange(100, 30_000) / 100:.2f}",
        "first_purchase_at": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:00Z",
        "last_purchase_at": f"2026-02-{rng.randrange(1, 29):02d}T18:30:00Z",
        "rules_version": rules_version,
        "version": str(rng.randrange(1, 60)),
    }
    for name, value in rng.sample(ATTRIBUTES, rng.randrange(0, 4)):
        record[f"attr.{name}"] = value
    return record


def fill(client: Any, prefix: str, start: int, stop: int, rules_version: str) -> None:
    rng = random.Random(start)
    pipe = client.pipeline(transaction=False)
    for i in range(start, stop):
        cid = f"c-{i:07d}"
        record = synthetic_record(rng, rules_version)
        pipe.hset(f"{prefix}:customer:{cid}", mapping=record)
        for dimension in ("lifecycle", "value", "engagement"):
            pipe.sadd(f"{prefix}:tier:{dimension}:{record[dimension]}", cid)
            pipe.hincrby(f"{prefix}:tier-counts:{dimension}", record[dimension], 1)
        if len(pipe) >= 20_000:
            pipe.execute()
    pipe.execute()


def run_export(prefix: str, out: Path, fmt_name: str) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one `segmenter export` process."""
    args = [sys.executable, "-m", "streams.cli", "export", "--out", str(out), "--format", fmt_name]
    args += ["--redis", REDIS_URL, "--redis-prefix", prefix, "--quiet"]
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"export failed ({process.returncode}): {error[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="csv,jsonl")
    parser.add_argument("--keep", action="store_true", help="Keep the synthetic keys.")
    options = parser.parse_args()
    from segmenter.rules.loader import default_rules, default_rules_text

    sizes = sorted(int(s) for s in options.sizes.split(","))
    formats = options.formats.split(",")
    info = machine_info()
    prefix = unique_prefix("export")
    client = redis_client()
    version = default_rules().version
    client.set(f"{prefix}:rules:{version}", default_rules_text())
    results: list[dict[str, Any]] = []
    written = 0
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            for size in sizes:
                log(f"writing customers {written:,}..{size:,} under {prefix}")
                began = time.perf_counter()
                fill(client, prefix, written, size, version)
                log(f"  {size - written:,} records in {time.perf_counter() - began:.1f}s")
                written = size
                for fmt_name in formats:
                    out = Path(tmp) / f"export.{fmt_name}"
                    runs = []
                    for attempt in range(options.repeat):
                        seconds, rss = run_export(prefix, out, fmt_name)
                        lines = sum(1 for _ in out.open("rb")) - (1 if fmt_name == "csv" else 0)
                        assert lines == size, (lines, size)
                        runs.append({"seconds": seconds, "peak_rss": rss, "bytes": out.stat().st_size})
                        mib = rss / 2**20
                        log(f"  {fmt_name} {size:,} run {attempt + 1}: {seconds:.1f}s, RSS {mib:.0f} MiB")
                    results.append({"customers": size, "format": fmt_name, "runs": runs})
    finally:
        if not options.keep:
            log(f"deleted {cleanup_redis(prefix):,} keys under {prefix}")
    data = {"machine": info, "results": results}
    write_results("export", data)
    print(machine_line(info))
    print()
    print(report(results))


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        runs = result["runs"]
        seconds = median(r["seconds"] for r in runs)
        rows.append(
            [
                f"{result['customers']:,}",
                result["format"],
                fmt(median(r["peak_rss"] / 2**20 for r in runs), 0, " MiB"),
                fmt(result["customers"] / seconds if seconds else None, 0),
                fmt(seconds, 1, " s"),
                fmt(median(r["bytes"] / 2**20 for r in runs), 0, " MiB"),
            ]
        )
    headers = ["customers", "format", "peak RSS (median)", "rows/s (median)", "wall (median)", "file size"]
    return markdown_table(headers, rows)


if __name__ == "__main__":
    main()
