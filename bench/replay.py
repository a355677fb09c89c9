"""Replay: one simulated year through a worker (`--clock event`), then `clock advance` one more year.

    python -m bench.replay [--customers 5000 --days 365 --repeat 3]

`segmenter simulate --customers N --days 365` (every event of the year) is produced to fresh topics per run
(same seed, same events; the control topic keeps `clock advance` messages, so topics are not reused) and a
fresh worker (fresh app id and Redis prefix) replays it: events/s from its first to its last processed event
(polling `segmenter_events_total`), and from spawn. Then `segmenter clock advance --to <end + 365 days>`
and the time until every partition's watermark gauge reached it (all time-driven transitions of the year
evaluated, written to Redis and sent), with the number of time-driven transitions.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

from bench.common import (
    WORK_DIR,
    BenchNames,
    Worker,
    cleanup,
    cleanup_redis,
    create_topics,
    fmt,
    log,
    machine_info,
    machine_line,
    markdown_table,
    median,
    metric_samples,
    metric_sum,
    run_benchmark,
    runs_cell,
    segmenter_cli,
    simulate,
    total_messages,
    unique_prefix,
)


def time_transitions(text: str) -> float:
    return metric_sum(text, "segmenter_tier_transitions_total", lambda labels: labels.get("reason") == "time")


def replay_run(
    names: BenchNames, run: str, total: int, advance_to: date, partitions: int, timeout: float
) -> dict[str, Any]:
    worker = Worker(names, run, WORK_DIR / names.prefix / run / "data").start()
    try:
        ready_s = worker.wait_ready(timeout=timeout)
        progress = worker.wait_events(total, timeout=timeout)
        consumed_s = time.monotonic() - worker.started_at
        text = worker.metrics()
        replay_time_transitions = time_transitions(text)
        all_transitions = metric_sum(text, "segmenter_tier_transitions_total")
        cpu_before = worker.cpu_seconds()
        target = (advance_to - date(1970, 1, 1)).days * 86_400
        started = time.monotonic()
        segmenter_cli(["clock", "advance", "--to", advance_to.isoformat()], names.env(run))
        cli_s = time.monotonic() - started
        deadline = started + timeout
        while True:
            worker.check_alive()
            text = worker.metrics()
            marks = {
                labels.get("partition"): value
                for labels, value in metric_samples(text, "segmenter_watermark_timestamp_seconds")
            }
            if len(marks) >= partitions and all(value >= target for value in marks.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"watermarks {marks} did not reach {advance_to} in {timeout}s")
            time.sleep(0.1)
        advance_s = time.monotonic() - started
        advance_cpu = worker.cpu_seconds() - cpu_before
        advance_transitions = time_transitions(text) - replay_time_transitions
    finally:
        worker.stop()
        cleanup_redis(names.redis_prefix(run))
    return {
        "ready_s": ready_s,
        "rate": progress.rate,
        "rate_from_spawn": total / consumed_s,
        "spawn_to_all_consumed_s": consumed_s,
        "cpu_us_per_event": progress.cpu_per_event_us,
        "transitions_during_replay": all_transitions,
        "time_transitions_during_replay": replay_time_transitions,
        "advance_cli_s": cli_s,
        "advance_s": advance_s,
        "advance_cpu_s": advance_cpu,
        "advance_time_transitions": advance_transitions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2025, 1, 1),
        help="Event-time start of the history (default 2025-01-01).",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = BenchNames(unique_prefix("rp"))
    end = args.start + timedelta(days=args.days)
    advance_to = end + timedelta(days=365)
    result: dict[str, Any] = {
        "benchmark": "replay",
        "params": vars(args),
        "prefix": names.prefix,
        "machine": machine_info(),
        "history": f"{args.start}..{end}",
        "advance_to": advance_to.isoformat(),
    }
    runs = []
    for rep in range(args.repeat):
        # Fresh topics per repetition (same seed, same events): the control topic keeps `clock advance`
        # messages, and a fresh worker would apply the previous run's advance during its replay.
        run_names = BenchNames(f"{names.prefix}-{rep}")
        try:
            create_topics(run_names, args.partitions)
            log(f"run {rep + 1}/{args.repeat}: simulating {args.customers:,} customers, {args.days} days")
            result["simulate_output"] = simulate(
                run_names, args.customers, args.seed, args.days, None, args.start.isoformat()
            )
            total = total_messages(run_names.inputs())
            result["events"] = total
            log(f"repetition {rep + 1}/{args.repeat}: replaying {total:,} events")
            runs.append(replay_run(run_names, f"r{rep}", total, advance_to, args.partitions, args.timeout))
            log(
                f"  {fmt(runs[-1]['rate'])} events/s; clock advance {runs[-1]['advance_s']:.1f}s, "
                f"{runs[-1]['advance_time_transitions']:,.0f} time-driven transitions"
            )
        finally:
            if not args.keep:
                cleanup(run_names)
    result["runs"] = runs
    result["summary"] = {key: median(r[key] for r in result["runs"]) for key in result["runs"][0]}
    return result


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    s, runs = result["summary"], result["runs"]
    lines = [
        f"### Replay ({p['customers']:,} simulated customers, history {result['history']}, "
        f"{result['events']:,} events, {p['partitions']} partitions, {p['repeat']} runs)",
        "",
        machine_line(result["machine"]),
        "",
        f"Command: `python -m bench.replay --customers {p['customers']} --days {p['days']} "
        f"--repeat {p['repeat']}`",
        "",
    ]
    rows = [
        ["replay events/s (first → last processed)", fmt(s["rate"]), runs_cell(r["rate"] for r in runs)],
        [
            "replay events/s (from spawn)",
            fmt(s["rate_from_spawn"]),
            runs_cell(r["rate_from_spawn"] for r in runs),
        ],
        [
            "worker CPU µs per event",
            fmt(s["cpu_us_per_event"], 1),
            runs_cell((r["cpu_us_per_event"] for r in runs), 1),
        ],
        [
            "tier changes during the replay (of which time-driven)",
            f"{fmt(s['transitions_during_replay'])} ({fmt(s['time_transitions_during_replay'])})",
            "",
        ],
        [
            f"`clock advance --to {result['advance_to']}` → all watermarks there, s",
            fmt(s["advance_s"], 2),
            runs_cell((r["advance_s"] for r in runs), 2),
        ],
        ["time-driven tier changes emitted by that advance", fmt(s["advance_time_transitions"]), ""],
        [
            "worker CPU s for that advance",
            fmt(s["advance_cpu_s"], 2),
            runs_cell((r["advance_cpu_s"] for r in runs), 2),
        ],
    ]
    lines.append(markdown_table(["measure", "median", "runs"], rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_benchmark("replay", parse_args, run, render, argv)


if __name__ == "__main__":
    main()
