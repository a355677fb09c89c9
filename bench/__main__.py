"""`python -m bench`: run the benchmarks one after the other, then print one markdown report.

    python -m bench                       # all eight, default sizes (about 45 minutes on 2 cores)
    python -m bench throughput timers     # some of them
    python -m bench --quick               # small sizes: a smoke test of the harness (a few minutes)
    python -m bench report                # re-render bench/results/latest-*.json as markdown
    python -m bench report --from bench/results/baseline   # the baseline of docs/PERFORMANCE.md

Each benchmark runs in its own process (`python -m bench.NAME`, so memory figures don't mix), writes
`bench/results/NAME-<UTC time>.json` and `latest-NAME.json`; the combined report goes to stdout and to
`bench/results/report-<UTC time>.md`, ready to paste into docs/PERFORMANCE.md.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REPO, RESULTS_DIR, log

ORDER = ("throughput", "latency", "restart", "failover", "redis_batch", "memory", "timers", "replay")
QUICK = {
    "throughput": [
        "--events",
        "20000",
        "--customers",
        "2000",
        "--new-customers",
        "20000",
        "--repeat",
        "1",
        "--scaling",
        "--profile",
        "3",
    ],
    "latency": ["--rates", "500,2000", "--duration", "5", "--warmup", "1", "--pool", "2000", "--repeat", "1"],
    "failover": ["--repeat", "1"],
    "redis_batch": ["--customers", "5000", "--rounds", "2"],
    "memory": [
        "--customers",
        "5000",
        "--inprocess-customers",
        "20000",
        "--sim-customers",
        "300",
        "--repeat",
        "1",
        "--settle",
        "1",
    ],
    "restart": ["--customers", "20000", "--repeat", "1"],
    "timers": ["--customers", "50000", "--repeat", "2"],
    "replay": ["--customers", "300", "--repeat", "1"],
}


def report(names: list[str], directory: Path = RESULTS_DIR) -> str:
    parts = []
    for name in names:
        path = directory / f"latest-{name}.json"
        if not path.exists():
            path = directory / f"{name}.json"
        if not path.exists():
            parts.append(f"### {name}\n\n(no results: {path} missing)")
            continue
        module = importlib.import_module(f"bench.{name}")
        parts.append(module.render(json.loads(path.read_text())))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    if args[:1] == ["report"]:
        directory = RESULTS_DIR
        if "--from" in args:
            at = args.index("--from")
            directory = Path(args[at + 1])
            args = args[:at] + args[at + 2 :]
        print(report([n for n in (args[1:] or ORDER)], directory))
        return 0
    unknown = [a for a in args if a not in ORDER]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)} or `report`",
            file=sys.stderr,
        )
        return 2
    names = [n for n in ORDER if n in args] or list(ORDER)
    failed = []
    for name in names:
        command = [sys.executable, "-m", f"bench.{name}", *(QUICK[name] if quick else [])]
        log(f"=== {' '.join(command[1:])}")
        if subprocess.run(command, cwd=REPO).returncode != 0:
            failed.append(name)
    text = report([n for n in names if n not in failed])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"report-{stamp}.md"
    path.write_text(text)
    print("\n" + text)
    log(f"report: {path}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
