"""Timers: the cost of advancing time must follow the customers that are due, not the population.

    python -m bench.timers [--customers 1000000 --fractions 0,0.001,0.01,0.1 --repeat 5]

In-process, no Kafka. 1M customers on partition 0, cloned (msgpack round trip) from engine-built templates:
one purchase k days before day D0, evaluated up to D0 by the engine itself, so tiers, `day` and `next_due`
are exactly what the engine would hold. Due templates change tier on D0+1 (new->active at tenure 30,
active->at_risk at recency 90, at_risk->churned at 180, a purchase leaving the 365-day window); the others
have `next_due` after D0+1 (or none). A fraction f of the customers (random, per run) get a due template.

Timed: `engine.handle_clock(0, (D0 + 1) midnight, effects)` on a fresh Engine whose partition clock already
stands at D0 (its timer index is built before timing, as the worker has it in steady state). Reported:
median time per fraction, time per due customer, and the ratio between fractions measured in the same run
(10% / 1% should be ~10; ~1 would mean a scan of everyone). For scale, a naive scan that evaluates every
customer at D0+1 is estimated from a sample.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from datetime import date
from typing import Any

from bench.common import (
    MICROS_PER_DAY,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    run_benchmark,
    runs_cell,
)

D0_DATE = date(2026, 1, 1)
DUE_AGES = (29, 89, 179, 364)  # days since the only purchase on D0 for customers due on D0+1


def build_templates(d0: int) -> tuple[list[bytes], list[bytes]]:
    """msgpack of (due, not-due) one-customer states, built by the engine up to day D0."""
    import msgspec

    from segmenter.engine import Effects, Engine, InputMessage
    from segmenter.events import Kind
    from segmenter.rules import default_rules
    from segmenter.timeutil import day_iso

    rules = default_rules()
    encoder = msgspec.msgpack.Encoder()
    due, not_due = [], []
    for age in range(0, 420):
        engine = Engine(rules, {}, {})
        effects = Effects()
        # 20..620 dollars (low, medium, high value tiers); due ones >= 50: leaving the window changes the tier
        cents = 12_000 if age in DUE_AGES else 2_000 + (age * 7_919) % 60_000
        value = (
            f'{{"event_id":"t{age}","type":"purchase","customer_id":"t","ts":"{day_iso(d0 - age)}T12:00:00Z",'
            f'"amount":"{cents // 100}.{cents % 100:02d}"}}'
        ).encode()
        engine.handle_input(InputMessage(Kind.PURCHASES, "purchases", 0, 0, b"t", value, []), effects)
        engine.handle_clock(0, d0 * MICROS_PER_DAY, effects)
        if hasattr(engine, "flush"):
            engine.flush()
        state = engine.customers["t"]
        if state.next_due == d0 + 1:
            if age in DUE_AGES:
                due.append(encoder.encode(state))
        elif state.next_due is None or state.next_due > d0 + 1:
            not_due.append(encoder.encode(state))
    assert len(due) == len(DUE_AGES), f"expected {len(DUE_AGES)} due templates, got {len(due)}"
    return due, not_due


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--fractions",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 0.001, 0.01, 0.1],
        help="Due fractions (default 0,0.001,0.01,0.1).",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--scan-sample",
        type=int,
        default=20_000,
        help="Customers evaluated to estimate a naive full scan (0 skips).",
    )
    parser.add_argument("--seed", type=int, default=13)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import msgspec

    from segmenter.customer import CustomerState
    from segmenter.engine import Effects, Engine
    from segmenter.features import WindowSums
    from segmenter.rules import default_rules
    from segmenter.timeutil import date_to_day

    result: dict[str, Any] = {"benchmark": "timers", "params": vars(args), "machine": machine_info()}
    rules = default_rules()
    d0 = date_to_day(D0_DATE)
    due_templates, other_templates = build_templates(d0)
    decoder = msgspec.msgpack.Decoder(CustomerState)
    n = args.customers

    def clone(template: bytes, index: int) -> CustomerState:
        state = decoder.decode(template)
        state.customer_id = f"c{index}"
        return state

    def base_template(index: int) -> bytes:
        return other_templates[index % len(other_templates)]

    log(f"building {n:,} customers")
    t0 = time.perf_counter()
    customers: dict[str, CustomerState] = {f"c{i}": clone(base_template(i), i) for i in range(n)}
    result["build_seconds"] = time.perf_counter() - t0
    in_heap = sum(1 for s in customers.values() if s.next_due is not None)
    result["customers_with_timer"] = in_heap

    if args.scan_sample:
        sample = list(customers.values())[: args.scan_sample]
        t0 = time.perf_counter()
        for state in sample:
            rules.classify(WindowSums(state, rules.value_days, rules.engagement_days).at(d0 + 1))
        per_customer = (time.perf_counter() - t0) / len(sample)
        result["naive_scan_estimate_s"] = per_customer * n
        result["naive_scan_per_customer_us"] = per_customer * 1e6

    runs: dict[str, list[dict[str, float]]] = {str(f): [] for f in args.fractions}
    for rep in range(args.repeat):
        rng = random.Random(args.seed + rep)
        for fraction in args.fractions:
            due_count = round(n * fraction)
            due_indices = rng.sample(range(n), due_count)
            for j, index in enumerate(due_indices):
                customers[f"c{index}"] = clone(due_templates[j % len(due_templates)], index)
            engine = Engine(rules, customers, {})
            effects = Effects()
            engine.handle_clock(0, d0 * MICROS_PER_DAY, effects)  # the clock stands at D0
            engine.timers_for(0)  # steady state: the index exists (built at start-up / rebalance)
            effects.clear()
            gc.collect()
            t0 = time.perf_counter()
            engine.handle_clock(0, (d0 + 1) * MICROS_PER_DAY, effects)
            elapsed = time.perf_counter() - t0
            if hasattr(engine, "flush"):
                engine.flush()
            advanced = len(effects.projections)
            entry = {
                "due": due_count,
                "advanced": advanced,
                "transitions": len(effects.transitions),
                "seconds": elapsed,
                "us_per_due": elapsed / due_count * 1e6 if due_count else None,
            }
            runs[str(fraction)].append(entry)
            log(
                f"  run {rep + 1}, {fraction:.1%} due ({due_count:,}): {elapsed * 1e3:.2f} ms, "
                f"{advanced:,} advanced, {len(effects.transitions):,} transitions"
            )
            for index in due_indices:  # back to not due for the next measurement
                customers[f"c{index}"] = clone(base_template(index), index)
            del engine, effects
    result["runs"] = runs
    summary: dict[str, Any] = {}
    for fraction in args.fractions:
        entries = runs[str(fraction)]
        summary[str(fraction)] = {
            "due": entries[0]["due"],
            "advanced": median(e["advanced"] for e in entries),
            "seconds": median(e["seconds"] for e in entries),
            "us_per_due": median(e["us_per_due"] for e in entries),
        }
    ratios = {}
    positive = [f for f in args.fractions if f > 0]
    for low, high in zip(positive, positive[1:], strict=False):
        ratios[f"{high:g}/{low:g}"] = median(
            a["seconds"] / b["seconds"] for a, b in zip(runs[str(high)], runs[str(low)], strict=True)
        )
    summary["ratios"] = ratios
    result["summary"] = summary
    return result


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    s = result["summary"]
    lines = [
        f"### Time-driven transitions ({p['customers']:,} customers in-process, advancing one day, "
        f"{p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.timers --customers {p['customers']} --fractions "
        f"{','.join(f'{f:g}' for f in p['fractions'])} --repeat {p['repeat']}`",
        "",
    ]
    rows = []
    for fraction in p["fractions"]:
        m = s[str(fraction)]
        rows.append(
            [
                f"{fraction:.1%}",
                f"{m['due']:,}",
                fmt(m["advanced"]),
                fmt(m["seconds"] * 1e3, 2),
                runs_cell((e["seconds"] * 1e3 for e in result["runs"][str(fraction)]), 1),
                fmt(m["us_per_due"], 1),
            ]
        )
    lines.append(
        markdown_table(
            [
                "due",
                "customers due",
                "advanced",
                "handle_clock ms (median)",
                "runs ms",
                "µs per due customer",
            ],
            rows,
        )
    )
    ratio_rows = [
        [
            f"time({k.replace('/', ') / time(')})",
            f"{v:.2f}",
            f"{float(k.split('/')[0]) / float(k.split('/')[1]):g}",
        ]
        for k, v in s["ratios"].items()
    ]
    lines += [
        "",
        markdown_table(["ratio (median of per-run ratios)", "measured", "proportional would be"], ratio_rows),
    ]
    if result.get("naive_scan_estimate_s"):
        lines += [
            "",
            f"For scale: evaluating every customer at D0+1 (a naive scan) would take "
            f"~{result['naive_scan_estimate_s']:.1f} s ({result['naive_scan_per_customer_us']:.1f} µs "
            f"per customer, estimated from {p['scan_sample']:,}). "
            f"{result['customers_with_timer']:,} of {p['customers']:,} customers hold a timer.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("timers", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
