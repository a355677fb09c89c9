"""`segmenter export`: one row per customer from Redis (SPEC sections 7, 15), for spreadsheets and BI tools.

Streaming: SCAN over `{prefix}:customer:*` (or SSCAN over `{prefix}:tier:{D}:{T}` with `--dimension/--tier`)
in chunks of `CHUNK` keys, each chunk's records read with one pipeline of HGETALL and written at once; memory
holds one chunk, whatever the customer count.

Columns. JSON lines need none: each line is the record as Redis holds it (`customer_id` first; a null feature
is absent, as in Redis). A CSV header must be complete before its first row, yet a record lists only its own
attributes and non-null features, so a sample could miss a column and a second Redis pass could meet a field
the first did not see. So the CSV export reads Redis once: pass 1 writes each chunk as JSON lines to a spool
file next to the output while collecting the field names (a set of names, not of customers); pass 2 streams
the spool into the CSV under the union of the names. Every row has every column (empty when the record lacks
it). Order: customer_id, the dimensions, `as_of`, the features (rules order, read from the rules text stored
at `{prefix}:rules:{version}`), `first_purchase_at`, `last_purchase_at`, any other field, the `attr.*`
fields (sorted), `rules_version`, `version`. Values are written as stored: ISO dates and times, money as
2-place decimals. The output appears under its name only when complete.

Each row is one atomic HGETALL, but the export is not a snapshot: a customer written during it is exported
with whichever record Redis held when its chunk was read; one created or removed during the export may be
missing. SCAN may return a key twice if the keyspace is resized while it runs (rows then repeat with the same
`customer_id`; drop duplicates by `customer_id` keeping the highest `version`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from streams.cli.options import redis_option

CHUNK = 1000
META_HEAD = ("as_of",)
META_MIDDLE = ("first_purchase_at", "last_purchase_at")
META_TAIL = ("rules_version", "version")
ATTRIBUTE_PREFIX = "attr."
Record = tuple[str, dict[str, str]]


@click.command()
@redis_option
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="Output format (default: from the file name, else csv).",
)
@click.option("--dimension", help="With --tier: export the members of one tier only.")
@click.option("--tier", help="With --dimension: the tier whose members to export.")
@click.option("--bom", is_flag=True, help="Start the file with a UTF-8 byte order mark (Excel on Windows).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def export(
    redis_url: str,
    redis_prefix: str,
    out_path: str,
    fmt: str | None,
    dimension: str | None,
    tier: str | None,
    bom: bool,
    quiet: bool,
) -> None:
    """Write one row per customer (customer_id, every dimension, feature and attribute) from Redis."""
    import redis

    if (dimension is None) != (tier is None):
        raise click.UsageError("--dimension and --tier go together")
    fmt = fmt or ("jsonl" if out_path.endswith((".jsonl", ".ndjson")) else "csv")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise click.ClickException(f"cannot write {out_path}: no directory {str(out.parent)!r}")
    client = redis.Redis.from_url(
        redis_url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30
    )
    try:
        count = _export(client, redis_prefix, out, fmt, dimension, tier, bom, quiet)
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot read Redis at {redis_url.split('@')[-1]}: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc.strerror or exc}") from None
    what = f"tier {tier!r} of {dimension!r}" if dimension else f"prefix '{redis_prefix}'"
    click.echo(f"exported {count:,} customers of {what} to {out_path}", err=True)


def _export(
    client: Any,
    prefix: str,
    out: Path,
    fmt: str,
    dimension: str | None,
    tier: str | None,
    bom: bool,
    quiet: bool,
) -> int:
    from tqdm import tqdm

    if dimension is not None and tier is not None:
        records = tier_members(client, prefix, dimension, tier)
        total: int | None = int(client.hget(f"{prefix}:tier-counts:{dimension}", tier) or 0)
    else:
        records = all_records(client, prefix)
        total = None
    bar = tqdm(total=total, unit=" customers", disable=quiet, dynamic_ncols=True, desc="export")
    partial = out.with_name(f".{out.name}.partial")
    spool = out.with_name(f".{out.name}.spool")
    encoding = "utf-8-sig" if bom else "utf-8"
    count = 0
    try:
        with open(partial, "w", encoding=encoding, newline="") as target:
            if fmt == "jsonl":
                for chunk in _chunks_with_total(records, client, prefix, bar, total):
                    count += write_jsonl(target, chunk)
                    bar.update(len(chunk))
            else:
                names: set[str] = set()
                versions: set[str] = set()
                with open(spool, "wb") as spool_out:
                    for chunk in _chunks_with_total(records, client, prefix, bar, total):
                        count += spool_chunk(spool_out, chunk, names, versions)
                        bar.update(len(chunk))
                bar.close()
                columns = csv_columns(names, rules_layout(client, prefix, versions))
                with open(spool, "rb") as spool_in:
                    write_csv(target, columns, spool_in)
        os.replace(partial, out)
    finally:
        bar.close()
        for path in (partial, spool):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return count


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def all_records(client: Any, prefix: str) -> Iterator[list[Record]]:
    """Every customer record under `prefix`, a chunk at a time (SCAN + pipelined HGETALL)."""
    head = f"{prefix}:customer:"
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=_glob_escape(head) + "*", count=CHUNK)
        if keys:
            yield _read(client, [key[len(head) :] for key in keys], head)
        if cursor == 0:
            return


def tier_members(client: Any, prefix: str, dimension: str, tier: str) -> Iterator[list[Record]]:
    """The records of the members of one tier (SSCAN + pipelined HGETALL); a record whose tier changed
    since the set was read is left out."""
    counts = client.hgetall(f"{prefix}:tier-counts:{dimension}")
    if not counts:
        raise click.ClickException(f"no dimension {dimension!r} under prefix '{prefix}'")
    if tier not in counts:
        raise click.ClickException(
            f"no customers in tier {tier!r} of {dimension!r} (tiers now: {', '.join(sorted(counts))})"
        )
    head = f"{prefix}:customer:"
    cursor = 0
    while True:
        cursor, ids = client.sscan(f"{prefix}:tier:{dimension}:{tier}", cursor, count=CHUNK)
        if ids:
            yield [(cid, fields) for cid, fields in _read(client, ids, head) if fields.get(dimension) == tier]
        if cursor == 0:
            return


def _read(client: Any, ids: list[str], head: str) -> list[Record]:
    pipe = client.pipeline(transaction=False)
    for cid in ids:
        pipe.hgetall(head + cid)
    return [(cid, fields) for cid, fields in zip(ids, pipe.execute(), strict=True) if fields]


def _chunks_with_total(
    chunks: Iterable[list[Record]], client: Any, prefix: str, bar: Any, total: int | None
) -> Iterator[list[Record]]:
    """Pass the chunks through; on the first record, size the progress bar from the tier counts of the
    record's rules (their sum over one dimension is the number of customers)."""
    for chunk in chunks:
        if total is None and chunk:
            total = customer_total(client, prefix, chunk[0][1].get("rules_version", ""))
            bar.reset(total=total)
        yield chunk


def customer_total(client: Any, prefix: str, rules_version: str) -> int | None:
    dimensions, _ = rules_layout(client, prefix, {rules_version})
    sums = [sum(int(v) for v in client.hvals(f"{prefix}:tier-counts:{d}")) for d in dimensions]
    return max(sums) if sums else None


def rules_layout(client: Any, prefix: str, versions: Iterable[str]) -> tuple[list[str], list[str]]:
    """(dimension names, feature names) of the stored rules texts of these versions, in rules order;
    a text that is absent or does not parse adds nothing (its fields are then ordered by name)."""
    from segmenter.rules import parse_rules

    dimensions: dict[str, None] = {}
    features: dict[str, None] = {}
    for version in sorted(versions):
        text = client.get(f"{prefix}:rules:{version}") if version else None
        if text is None:
            continue
        try:
            rules = parse_rules(text, f"rules {version[:12]}")
        except Exception:  # e.g. a model file not at hand: fall back to name order
            continue
        dimensions.update(dict.fromkeys(d.name for d in rules.dimensions))
        features.update(dict.fromkeys(rules.catalog.names))
    return list(dimensions), list(features)


def csv_columns(names: set[str], layout: tuple[list[str], list[str]]) -> list[str]:
    """The header: every field name seen, in the order of the module docstring."""
    dimensions, features = layout
    fixed = set(META_HEAD + META_MIDDLE + META_TAIL)
    columns = ["customer_id"]
    columns += [d for d in dimensions if d in names]
    columns += [m for m in META_HEAD if m in names]
    columns += [f for f in features if f in names and f not in columns and f not in fixed]
    columns += [m for m in META_MIDDLE if m in names]
    placed = set(columns) | fixed
    columns += sorted(n for n in names if n not in placed and not n.startswith(ATTRIBUTE_PREFIX))
    columns += sorted(n for n in names if n not in placed and n.startswith(ATTRIBUTE_PREFIX))
    columns += [m for m in META_TAIL if m in names]
    return columns


def write_jsonl(target: IO[str], chunk: list[Record]) -> int:
    import orjson

    target.write(
        "".join(orjson.dumps({"customer_id": cid, **fields}).decode() + "\n" for cid, fields in chunk)
    )
    return len(chunk)


def spool_chunk(spool: IO[bytes], chunk: list[Record], names: set[str], versions: set[str]) -> int:
    import orjson

    for cid, fields in chunk:
        names.update(fields)
        versions.add(fields.get("rules_version", ""))
        spool.write(orjson.dumps([cid, fields]) + b"\n")
    return len(chunk)


def write_csv(target: IO[str], columns: list[str], spool: IO[bytes]) -> None:
    import orjson

    writer = csv.writer(target)  # the excel dialect: comma, "\r\n", quoted where needed
    writer.writerow(columns)
    fields_of = columns[1:]
    rows: list[list[str]] = []
    for line in spool:
        cid, fields = orjson.loads(line)
        rows.append([cid, *(fields.get(name, "") for name in fields_of)])
        if len(rows) >= CHUNK:
            writer.writerows(rows)
            rows.clear()
    writer.writerows(rows)
