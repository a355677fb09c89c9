"""Re-tiering: the cost of `segmenter rules apply` on N customers of one partition (SPEC section 13).

    python -m bench.retier [--customers 1000000 --events-per-customer 2 --repeat 3]

In-process, no Kafka or Redis, plain dict tables (what the worker's memory store holds, decoded). N
customers on partition 0 are built once by the engine itself: `--events-per-customer` synthetic events each
(first a purchase, then interactions and purchases alternating; random times over the year before D0, as
bench.memory), fed through `Engine.process` in batches of 10,000 with the returned states written to the
tables. The built states are kept as msgpack (state.codec) and decoded into fresh tables for every run, so
each run starts from the same N customers under the default rules.

Per run, side by side on the same Engine(default rules, table, clocks, autoflush=False):
  1. events: N purchases, one per existing customer (shuffled, ts in the last hours before D0 midnight, so
     the watermark stays on the same day and no timer fires), through `process` in batches of 10,000;
     the returned states are written back to the table (not timed).
  2. re-tier: one `process([RulesChange(0, RULES_B, version, issued_at)])`: the default rules -> RULES_B
     (thresholds changed, dimension `engagement` removed, dimension `frequency_band` added). Every customer
     is evaluated again at its D_c.
Reported: re-tier customers/s and µs per customer; event µs per event; the ratio re-tier µs per customer /
event µs per event (median of per-run ratios); the re-tier's BatchResult (transitions, records, states) and
RSS: before the re-tier, while its BatchResult is held, and peak (getrusage ru_maxrss, whole process).
The process's default GC settings are kept (the worker does not tune them).

`--profile` adds one more re-tier (not timed) with py-spy attached: the top functions by self time.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    MICROS_PER_DAY,
    WORK_DIR,
    collapsed_top,
    fmt,
    iter_chunks,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    proc_rss_bytes,
    py_spy_available,
    py_spy_record,
    render_synthetic,
    rfc3339,
    run_benchmark,
    runs_cell,
    synthetic_events,
)

MIB = 1024 * 1024
BATCH = 10_000
# D0: a fixed midnight, so runs on different days build the same customers.
D0_MICROS = 20_454 * MICROS_PER_DAY  # 2026-01-01T00:00:00Z

# The default rules (segmenter/rules/default.yaml) with thresholds changed, `engagement` removed and
# `frequency_band` added.
RULES_B = """\
version: 1
windows: {value_days: 365, engagement_days: 30}
dimensions:
  lifecycle:
    - {tier: prospect, when: "lifetime_purchases == 0"}
    - {tier: churned,  when: "recency_days >= 150"}
    - {tier: at_risk,  when: "recency_days >= 60"}
    - {tier: new,      when: "tenure_days < 45"}
    - {tier: loyal,    when: "frequency >= 4 and tenure_days >= 120"}
    - {tier: active,   when: "true"}
  value:
    - {tier: none,     when: "lifetime_purchases == 0"}
    - {tier: vip,      when: "monetary >= 500 and frequency >= 4"}
    - {tier: high,     when: "monetary >= 200"}
    - {tier: medium,   when: "monetary >= 40"}
    - {tier: low,      when: "true"}
  frequency_band:
    - {tier: repeat,   when: "frequency >= 2"}
    - {tier: one_time, when: "frequency == 1"}
    - {tier: none,     when: "true"}
"""


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------- build
def build(customers: int, per_customer: int, seed: int) -> tuple[dict[str, bytes], bytes, float]:
    """The N customers' msgpack states and the partition clock, built by the engine; and the seconds."""
    from segmenter.engine import Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules
    from state.codec import encode_clock, encode_customer

    log(f"build: generating {customers * per_customer:,} events for {customers:,} customers")
    events = synthetic_events(customers, per_customer, D0_MICROS - 6 * 3_600_000_000, seed=seed)
    kinds = {"purchases": Kind.PURCHASES, "interactions": Kind.INTERACTIONS}
    table: dict[str, Any] = {}
    clocks: dict[str, Any] = {}
    engine = Engine(default_rules(), table, clocks, autoflush=False)
    offsets = {"purchases": 0, "interactions": 0}
    t0 = time.perf_counter()
    for n, chunk in enumerate(iter_chunks(events, BATCH)):
        records = []
        for event in chunk:
            role, key, value = render_synthetic(event)
            records.append(InputMessage(kinds[role], role, 0, offsets[role], key, value, []))
            offsets[role] += 1
        result = engine.process(records)
        table.update(result.customers)
        clocks.update({str(p): c for p, c in result.clocks.items()})
        if n % 20 == 19:
            log(f"build: {(n + 1) * BATCH:,} / {len(events):,} events")
    seconds = time.perf_counter() - t0
    del events
    encoded = {cid: encode_customer(state) for cid, state in table.items()}
    clock = encode_clock(engine.clock_for(0))
    log(f"build: {len(encoded):,} customers in {seconds:.0f} s")
    return encoded, clock, seconds


def clone(templates: dict[str, bytes], clock: bytes, customers: int) -> tuple[dict[str, bytes], bytes]:
    """N customers `c0..c{N-1}`, customer i a copy of template i mod T (its id replaced); the clock's tier
    counts recounted for the N."""
    import msgspec

    from state.codec import decode_clock, decode_customer, encode_clock, encode_customer

    states = [decode_customer(raw) for raw in templates.values()]
    encoded: dict[str, bytes] = {}
    counts: dict[str, dict[str, int]] = {}
    for i in range(customers):
        template = states[i % len(states)]
        customer_id = f"c{i}"
        encoded[customer_id] = encode_customer(msgspec.structs.replace(template, customer_id=customer_id))
        for dimension, tier in template.tiers.items():
            per_tier = counts.setdefault(dimension, {})
            per_tier[tier] = per_tier.get(tier, 0) + 1
    partition_clock = decode_clock(clock)
    partition_clock.tier_counts = counts
    return encoded, encode_clock(partition_clock)


def purchase_records(customer_ids: list[str], seed: int, first_offset: int) -> list[Any]:
    """One purchase per customer, shuffled, ts in (D0 - 3 h, D0): the watermark's day does not change."""
    from segmenter.engine import InputMessage
    from segmenter.events import Kind

    rng = random.Random(seed)
    order = customer_ids[:]
    rng.shuffle(order)
    start = D0_MICROS - 3 * 3_600_000_000
    step = max(1, (3 * 3_600_000_000 - 1_000_000) // max(1, len(order)))
    records = []
    for i, customer_id in enumerate(order):
        cents = 500 + (i * 7919) % 20_000
        value = (
            f'{{"event_id":"{customer_id}-x{seed}","type":"purchase","customer_id":"{customer_id}",'
            f'"ts":"{rfc3339(start + i * step)}","amount":"{cents // 100}.{cents % 100:02d}",'
            '"currency":"USD"}'
        ).encode()
        records.append(
            InputMessage(Kind.PURCHASES, "purchases", 0, first_offset + i, customer_id.encode(), value, [])
        )
    return records


def fresh_engine(encoded: dict[str, bytes], clock: bytes) -> tuple[Any, dict[str, Any]]:
    from segmenter.engine import Engine
    from segmenter.rules import default_rules
    from state.codec import decode_clock, decode_customer

    table = {cid: decode_customer(raw) for cid, raw in encoded.items()}
    clocks = {"0": decode_clock(clock)}
    engine = Engine(default_rules(), table, clocks, autoflush=False)
    engine.timers_for(0)  # the worker has its timer index in steady state: built before timing
    return engine, table


def rules_change(issued_micros: int) -> Any:
    from segmenter.engine import RulesChange
    from segmenter.rules import parse_rules

    return RulesChange(0, RULES_B, parse_rules(RULES_B, "bench rules B").version, rfc3339(issued_micros))


# ---------------------------------------------------------------------------------------------- one run
def one_run(encoded: dict[str, bytes], clock: bytes, n_run: int, first_offset: int) -> dict[str, Any]:
    engine, table = fresh_engine(encoded, clock)
    customers = len(table)
    records = purchase_records(list(table), seed=n_run, first_offset=first_offset)
    gc.collect()

    # 1. events: N purchases of existing customers, batches of 10,000
    event_seconds = 0.0
    transitions_events = 0
    for chunk in iter_chunks(records, BATCH):
        t0 = time.perf_counter()
        result = engine.process(chunk)
        event_seconds += time.perf_counter() - t0
        transitions_events += len(result.transitions)
        table.update(result.customers)
        engine.clocks.update({str(p): c for p, c in result.clocks.items()})
    applied = sum(n for (_, outcome), n in result.outcomes.items() if outcome == "applied")
    del records, result, chunk
    gc.collect()

    # 2. re-tier: one rules record, default rules -> RULES_B
    change = rules_change(D0_MICROS + 3_600_000_000)
    rss_before = proc_rss_bytes()
    t0 = time.perf_counter()
    result = engine.process([change])
    retier_seconds = time.perf_counter() - t0
    rss_held = proc_rss_bytes()
    by_dimension: dict[str, int] = {}
    first = 0
    for change_out in result.transitions:
        by_dimension[change_out.dimension] = by_dimension.get(change_out.dimension, 0) + 1
        first += change_out.from_tier is None
    records_bytes = sum(len(k) + len(v) for fields in result.records.values() for k, v in fields.items())
    transitions_bytes = sum(len(t.to_json()) for t in result.transitions)
    run = {
        "records_field_bytes": records_bytes,
        "transitions_json_bytes": transitions_bytes,
        "customers": customers,
        "events": customers,
        "events_applied_last_batch": applied,
        "event_seconds": event_seconds,
        "event_us": event_seconds / customers * 1e6,
        "event_rate": customers / event_seconds,
        "event_transitions": transitions_events,
        "retier_seconds": retier_seconds,
        "retier_us": retier_seconds / customers * 1e6,
        "retier_rate": customers / retier_seconds,
        "ratio": (retier_seconds / customers) / (event_seconds / customers),
        "transitions": len(result.transitions),
        "transitions_by_dimension": by_dimension,
        "first_classifications": first,
        "records": len(result.records),
        "states": len(result.customers),
        "removed_dimensions": {str(p): sorted(d) for p, d in engine_removed(result).items()},
        "rss_before_retier_mib": rss_before / MIB,
        "rss_with_result_mib": rss_held / MIB,
        "result_rss_delta_mib": (rss_held - rss_before) / MIB,
        "peak_rss_mib": peak_rss_bytes() / MIB,
    }
    log(
        f"run {n_run}: events {run['event_us']:.1f} µs/event, re-tier {run['retier_us']:.1f} µs/customer "
        f"({run['retier_seconds']:.1f} s), ratio {run['ratio']:.2f}, {run['transitions']:,} transitions, "
        f"RSS {run['rss_before_retier_mib']:,.0f} -> {run['rss_with_result_mib']:,.0f} MiB"
    )
    del result, engine, table
    gc.collect()
    return run


def engine_removed(result: Any) -> dict[int, set[str]]:
    """The dimensions the re-tier dropped, from the BatchResult's projection groups (`-NAME`)."""
    out: dict[int, set[str]] = {}
    for dimensions, _ in result.groups:
        dropped = {d[1:] for d in dimensions if d.startswith("-")}
        if dropped:
            out.setdefault(0, set()).update(dropped)
    return out


def profile_retier(encoded: dict[str, bytes], clock: bytes, out: Path) -> dict[str, Any]:
    """One more re-tier (not timed) with py-spy attached to this process."""
    engine, _table = fresh_engine(encoded, clock)
    gc.collect()
    change = rules_change(D0_MICROS + 3_600_000_000)
    out.parent.mkdir(parents=True, exist_ok=True)
    seconds = max(5, int(len(encoded) * 60e-6) + 5)  # longer than the re-tier; stopped when it is done
    spy = py_spy_record(os.getpid(), seconds, out)
    time.sleep(1.0)  # let py-spy attach
    t0 = time.perf_counter()
    engine.process([change])
    elapsed = time.perf_counter() - t0
    spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled on SIGINT
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
    if not out.exists():
        return {"error": "py-spy wrote no output", "seconds": elapsed}
    top = collapsed_top(out, top=10)
    return {"seconds": elapsed, "samples": top["samples"], "self": top["self"], "total": top["project_total"]}


# ---------------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.retier", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events-per-customer", type=int, default=2)
    parser.add_argument(
        "--templates",
        type=int,
        default=20_000,
        help="Distinct customers built by the engine; the N are copies of them (ids replaced).",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--profile", action="store_true", help="One more re-tier (not timed) with py-spy attached."
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "retier", "params": vars(args), "machine": machine_info()}
    templates = min(args.customers, args.templates)
    encoded, clock, build_seconds = build(templates, args.events_per_customer, args.seed)
    if templates < args.customers:
        log(f"build: cloning {templates:,} templates into {args.customers:,} customers")
        encoded, clock = clone(encoded, clock, args.customers)
    result["build"] = {
        "templates": templates,
        "customers": len(encoded),
        "seconds": build_seconds,
        "msgpack_mean_bytes": sum(map(len, encoded.values())) / max(1, len(encoded)),
    }
    first_offset = args.customers * args.events_per_customer
    runs = [one_run(encoded, clock, n, first_offset) for n in range(1, args.repeat + 1)]
    result["runs"] = runs
    result["summary"] = {
        key: median(r[key] for r in runs)
        for key in ("event_us", "event_rate", "retier_us", "retier_rate", "retier_seconds", "ratio")
    }
    if args.profile:
        if not py_spy_available():
            result["profile"] = {"error": "py-spy not installed (pip install py-spy)"}
        else:
            log("profiling one more re-tier with py-spy")
            result["profile"] = profile_retier(encoded, clock, WORK_DIR / "retier-profile.raw")
    result["peak_rss_mib"] = peak_rss_bytes() / MIB
    return result


def render(result: dict[str, Any]) -> str:
    p, s, runs = result["params"], result["summary"], result["runs"]
    n = p["customers"]
    last = runs[-1]
    command = (
        f"python -m bench.retier --customers {n} --events-per-customer {p['events_per_customer']} "
        f"--templates {p['templates']} --repeat {p['repeat']}" + (" --profile" if p.get("profile") else "")
    )
    lines = [
        f"#### Re-tiering {n:,} customers of one partition (default rules -> changed thresholds, "
        f"-1 dimension, +1 dimension), in-process, {p['repeat']} runs",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `{command}`",
        "",
        f"Build (once, not timed in the table): {result['build']['templates']:,} customers × "
        f"{p['events_per_customer']} events through `Engine.process` in {result['build']['seconds']:.0f} s, "
        f"copied (ids replaced) into {result['build']['customers']:,}; "
        f"msgpack state {result['build']['msgpack_mean_bytes']:.0f} B/customer.",
        "",
    ]
    rows = [
        [
            f"**re-tier** (one `RulesChange`, {n:,} customers)",
            fmt(s["retier_rate"], 0, " customers/s"),
            fmt(s["retier_us"], 1, " µs/customer"),
            fmt(s["retier_seconds"], 1, " s"),
            runs_cell((r["retier_us"] for r in runs), 1),
        ],
        [
            f"events ({n:,} purchases of existing customers, batches of {BATCH:,})",
            fmt(s["event_rate"], 0, " events/s"),
            fmt(s["event_us"], 1, " µs/event"),
            fmt(median(r["event_seconds"] for r in runs), 1, " s"),
            runs_cell((r["event_us"] for r in runs), 1),
        ],
        [
            "**ratio re-tier µs/customer ÷ event µs/event** (per-run ratios)",
            "",
            fmt(s["ratio"], 2),
            "",
            runs_cell((r["ratio"] for r in runs), 2),
        ],
    ]
    lines.append(markdown_table(["measure", "rate (median)", "per item (median)", "total", "runs"], rows))
    by_dim = ", ".join(f"{d} {c:,}" for d, c in sorted(last["transitions_by_dimension"].items()))
    removed = ", ".join(sorted({d for ds in last["removed_dimensions"].values() for d in ds})) or "-"
    rows = [
        ["tier changes (`rules_changed`)", f"{last['transitions']:,}", by_dim],
        ["of which first classifications (`from` null)", f"{last['first_classifications']:,}", ""],
        [
            "tier-change events, JSON",
            f"{last['transitions_json_bytes'] / MIB:,.0f} MiB",
            f"{last['transitions_json_bytes'] / max(1, last['transitions']):,.0f} B each",
        ],
        [
            "Redis records",
            f"{last['records']:,}",
            f"{last['records_field_bytes'] / MIB:,.0f} MiB of field names + values; "
            f"dropped dimension: {removed}",
        ],
        ["changed states (changelog writes)", f"{last['states']:,}", ""],
        [
            "RSS before the re-tier → with its BatchResult held",
            f"{last['rss_before_retier_mib']:,.0f} → {last['rss_with_result_mib']:,.0f} MiB",
            f"+{last['result_rss_delta_mib']:,.0f} MiB "
            f"({last['result_rss_delta_mib'] * MIB / max(1, last['customers']):,.0f} B/customer)",
        ],
        ["peak RSS of the process (ru_maxrss)", f"{result['peak_rss_mib']:,.0f} MiB", "build + runs"],
    ]
    lines += ["", markdown_table(["BatchResult of the re-tier (last run)", "value", "note"], rows)]
    profile = result.get("profile")
    if profile and profile.get("self"):
        lines += [
            "",
            f"py-spy, one more re-tier ({profile['seconds']:.1f} s, {profile['samples']:,} samples), "
            "top functions by self time:",
            "",
            markdown_table(
                ["function", "self"], [[f"`{name}`", f"{share:.1%}"] for name, share in profile["self"][:8]]
            ),
            "",
            "Project functions by inclusive time:",
            "",
            markdown_table(
                ["function", "total"],
                [[f"`{name}`", f"{share:.1%}"] for name, share in profile["total"][:8]],
            ),
        ]
    elif profile:
        lines += ["", f"Profile: {profile.get('error')}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("retier", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
