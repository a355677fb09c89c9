"""`segmenter ui` in a real headless Chromium (issue 16, SPEC section 15).

A worker processes a generated history; `segmenter ui` runs as a subprocess against its Redis prefix; Debian's
Chromium is driven over the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: no WebSocket
library, no port). Checked: every page renders, the numbers shown equal Redis (counts, sizes per day against
the histories, flows, the RFM grid against every record, a customer's tiers, features and history), the
search works, and every request the pages make goes to the UI's own address.

Screenshots go to `tmp_path`, or to `$SEGMENTER_UI_SCREENSHOTS` when set
(`SEGMENTER_UI_SCREENSHOTS=docs/images pytest tests/integration/test_ui_browser.py` refreshes docs/images).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.integration.pipeline_helpers import delete_prefix, produce, topic_size, wait_until_quiet
from tests.integration.test_pipeline import _clock_advance
from tests.integration.workerproc import Names, WorkerProcess, free_port
from tests.oracle import eventgen, model

PARTITIONS = 2
CLOCK_TO = "2026-03-01"
TOKEN = "s3cret-token"


def chromium_binary() -> str | None:
    """Debian's chromium; installed (apt-get, non-interactive) when missing and possible."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not shutil.which("apt-get"):
        return found
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                    ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
        subprocess.run([*sudo, *command], env=env, capture_output=True, timeout=900, check=False)
        if shutil.which("chromium"):
            break
    return shutil.which("chromium")


def _above_nine(fd: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """A headless Chromium and one page, over CDP on a pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # The child's fds 3 and 4 are made from these: move them above 9 first, or a pipe that happens to
        # be fd 3 or 4 is clobbered by the other one.
        commands_read, replies_write = (_above_nine(fd) for fd in (commands_read, replies_write))
        args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
            "--hide-scrollbars", f"--user-data-dir={profile}", "about:blank",
        ]
        def to_3_and_4() -> None:  # in the child: CDP reads commands on fd 3 and writes replies on fd 4
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self.process = subprocess.Popen(
            [binary, *args], pass_fds=(3, 4), preexec_fn=to_3_and_4,  # noqa: PLW1509 - no threads touch fds
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._next = 0
        self._results: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.requests: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._replies, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if message.get("method") == "Network.requestWillBeSent":
                    self.requests.append(message["params"]["request"]["url"])
                if "id" in message:
                    with self._cond:
                        self._results[message["id"]] = message
                        self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False,
             timeout: float = 30) -> dict[str, Any]:
        with self._cond:
            self._next += 1
            ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._results, timeout):
                raise AssertionError(f"no reply to {method}")
            reply = self._results.pop(ident)
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}; page: {self.evaluate('document.title')}")

    def open(self, url: str) -> None:
        self.evaluate("document.body && delete document.body.dataset.loaded")
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("document.readyState === 'complete' && document.body.dataset.loaded === '1'")
        time.sleep(0.3)  # charts draw on the same tick; let the canvas settle for screenshots

    def screenshot(self, path: Path) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1440, "height": min(int(height), 3000), "deviceScaleFactor": 1, "mobile": False},
                  session=True)
        time.sleep(0.5)
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


@pytest.fixture
def browser(tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Debian's chromium is not installed and cannot be installed here "
                    "(apt-get install chromium)")
    browser = Browser(binary, tmp_path / "chromium-profile")
    yield browser
    browser.close()


def start_ui(stack, names: Names, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "SEGMENTER_REDIS_URL": stack.redis_url, "SEGMENTER_REDIS_PREFIX": names.redis_prefix,
           "SEGMENTER_UI_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "ui", "--port", str(port), "--refresh", "2",
         "--sample", "5000"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"ui not up:\n{log.read_text()}")


def utc_day(at: str) -> str:
    """The UTC day of an RFC 3339 time (an event's `at` keeps the offset it was sent with)."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC).date().isoformat()


def sizes_from_histories(records: dict[str, dict], histories: dict[str, list[dict]], dimension: str,
                         day: str) -> Counter:
    """Independent of the UI's flows reading: each customer's current tier with every change of its full
    history dated after `day` undone (a worker may apply an event out of event-time order across the two
    input topics, so `at` is not monotone in `seq`: docs/UI.md)."""
    sizes: Counter = Counter()
    for customer_id, record in records.items():
        if dimension in record:
            sizes[record[dimension]] += 1
        for event in histories.get(customer_id, []):
            if event["dimension"] == dimension and utc_day(event["at"]) > day:
                sizes[event["to"]] -= 1
                if event["from"]:
                    sizes[event["from"]] += 1
    return +sizes


def test_ui_in_chromium(stack, names, browser, tmp_path) -> None:
    started = time.monotonic()
    messages = eventgen.generate(seed=16, n_customers=150, start="2025-01-01", days=420, duplicates=0,
                                 bad_per_reason=0, edge_valid=False)
    messages = [m for m in messages if isinstance(model.validate_message(*m), model.Event)]
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data", ["--history", "1000"])
    worker.start()
    port = free_port()
    ui = None
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, CLOCK_TO)
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        ui = start_ui(stack, names, port, tmp_path / "ui.log")
        base = f"http://127.0.0.1:{port}"
        client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        prefix = names.redis_prefix
        shots = Path(os.environ.get("SEGMENTER_UI_SCREENSHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)

        # Without the token: refused. With it once: a cookie carries it afterwards.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/overview", timeout=5)
        assert refused.value.code == 401

        # Overview: the distribution tables equal the tier-count hashes.
        browser.open(f"{base}/?token={TOKEN}&days=90")
        shown = browser.evaluate("""[...document.querySelectorAll('section.dimension')].map(s => ({
            dimension: s.dataset.dimension,
            counts: Object.fromEntries([...s.querySelectorAll('.dist-table tbody tr')].map(r =>
                [r.dataset.tier, Number(r.querySelector('.count').textContent.replace(/,/g, ''))])),
            canvases: s.querySelectorAll('canvas').length}))""")
        dimensions = sorted((k.rpartition(":")[2] for k in client.scan_iter(match=f"{prefix}:tier-counts:*")),
                            key=["lifecycle", "value", "engagement"].index)  # the rules' order
        assert [d["dimension"] for d in shown] == ["lifecycle", "value", "engagement"] == dimensions
        for d in shown:
            counts = {t: int(n) for t, n in client.hgetall(f"{prefix}:tier-counts:{d['dimension']}").items()}
            assert {t: n for t, n in d["counts"].items() if n or t in counts} == counts
            assert d["canvases"] >= 3  # distribution, sizes per day, Sankey
        browser.screenshot(shots / "ui-overview.png")

        # Sizes per day (the JSON the charts draw) equal every customer's tier from its full history.
        overview = browser.evaluate("fetch('/api/overview?days=90').then(r => r.json())")
        histories = {
            key.rpartition(":")[2]: [orjson.loads(e) for e in client.lrange(key, 0, -1)]
            for key in client.scan_iter(match=f"{prefix}:history:*", count=1000)
        }
        records = {key.rpartition(":")[2]: client.hgetall(key)
                   for key in client.scan_iter(match=f"{prefix}:customer:*", count=1000)}
        for d in overview["dimensions"]:
            for index in (0, 45, len(overview["days"]) - 1):
                day = overview["days"][index]
                expected = sizes_from_histories(records, histories, d["dimension"], day)
                got = {t: series[index] for t, series in d["sizes"].items() if series[index]}
                assert got == dict(expected), (d["dimension"], day)
            flows: Counter = Counter()
            for day in overview["days"]:
                for name, n in client.hgetall(f"{prefix}:flows:{d['dimension']}:{day}").items():
                    flows[name] += int(n)
            assert {f"{f['from'] or ''}>{f['to']}": f["count"] for f in d["flows"]} == dict(flows)
        # Top transitions of the latest day equal its flows hashes.
        latest = browser.evaluate("document.getElementById('latest-day').textContent")
        assert latest == overview["latest_day"]
        rows = browser.evaluate("""[...document.querySelectorAll('#top tbody tr[data-to]')].map(r =>
            [r.dataset.dimension, r.dataset.from, r.dataset.to,
             Number(r.querySelector('.count').textContent.replace(/,/g, ''))])""")
        latest_flows = {(d, *name.split(">")): int(n) for d in dimensions
                        for name, n in client.hgetall(f"{prefix}:flows:{d}:{latest}").items()}
        assert rows and all(latest_flows[(d, s, t)] == n for d, s, t, n in rows)
        assert [n for *_, n in rows] == sorted(latest_flows.values(), reverse=True)[: len(rows)]

        # RFM: with a sample larger than the customer count, the grid covers every record exactly.
        browser.open(f"{base}/rfm")
        grid = browser.evaluate("""({sampled: document.getElementById('rfm-sampled').textContent,
            noPurchase: document.getElementById('rfm-no-purchase').textContent,
            cells: [...document.querySelectorAll('#rfm-cells tbody tr')].map(r =>
                [...r.querySelectorAll('td')].map(td => td.textContent)),
            canvas: document.querySelectorAll('#rfm-chart canvas').length})""")
        assert int(grid["sampled"].replace(",", "")) == len(records) and grid["canvas"] >= 1
        assert int(grid["noPurchase"]) == sum("recency_days" not in r for r in records.values())
        cells: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in records.values():
            if "recency_days" in r:
                cell = (rfm_bin(int(r["recency_days"]), RECENCY),
                        rfm_bin(int(r.get("frequency", 0)), FREQUENCY))
                cells[cell].append(float(r.get("monetary", 0)))
        assert {(a, b): (int(n), float(m)) for a, b, n, m in grid["cells"]} == {
            k: (len(v), round(sum(v) / len(v), 2)) for k, v in cells.items()}

        # Customer: search from the header, then tiers, features and history equal Redis.
        customer_id = max(records, key=lambda c: (len(histories.get(c, [])), c))
        browser.open(f"{base}/customer")
        browser.evaluate(f"document.getElementById('search-id').value = {json.dumps(customer_id)};"
                         "document.getElementById('search-go').click()")
        time.sleep(0.5)
        browser.wait_for("document.body.dataset.loaded === '1' && "
                         "document.querySelectorAll('#history li').length")
        assert browser.evaluate("location.pathname + location.search") == f"/customer?id={customer_id}"
        page = browser.evaluate("""({
            tiers: Object.fromEntries([...document.querySelectorAll('#tiers .tier')].map(t =>
                [t.dataset.dimension, t.querySelector('.badge').textContent])),
            why: [...document.querySelectorAll('#tiers .why')].map(w => w.textContent),
            features: Object.fromEntries([...document.querySelectorAll('#features tr')].map(r =>
                [r.dataset.name, r.querySelector('td').textContent])),
            history: [...document.querySelectorAll('#history li')].map(li =>
                [li.dataset.dimension, Number(li.dataset.seq)]),
            canvas: document.querySelectorAll('#timeline canvas').length})""")
        record = records[customer_id]
        assert page["tiers"] == {d: record[d] for d in dimensions}
        for name, text in page["features"].items():
            assert text == ("unavailable" if name in dimensions else record.get(name, "—")), name
        assert page["history"] == [[e["dimension"], e["seq"]] for e in histories[customer_id]]
        assert all("✔" in w or "unavailable" in w for w in page["why"]) and page["canvas"] >= 1
        browser.screenshot(shots / "ui-customer.png")

        # An unknown customer says so.
        browser.open(f"{base}/customer?id=no-such-customer")
        assert "no customer" in browser.evaluate("document.getElementById('customer-missing').textContent")

        # No request went anywhere but the UI itself.
        assert browser.requests
        outside = [u for u in browser.requests if not u.startswith(base + "/") and not u.startswith("data:")
                   and u != "about:blank"]
        assert outside == []
        print(f"\nui browser test: {len(records)} customers, {len(browser.requests)} requests, "
              f"{time.monotonic() - started:.1f}s")
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(timeout=10)
        worker.stop()


RECENCY = [(0, 7, "0-7"), (8, 30, "8-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, 180, "91-180"),
           (181, 365, "181-365"), (366, 10**9, "366+")]
FREQUENCY = [(0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4-5"), (6, 10, "6-10"),
             (11, 10**9, "11+")]


def rfm_bin(value: int, bins: list[tuple[int, int, str]]) -> str:
    return next(label for low, high, label in bins if low <= value <= high)

