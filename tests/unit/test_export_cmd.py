"""`segmenter export` against a fake Redis: columns complete and ordered, values as stored, tier filter, BOM,
JSON lines, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import fakeredis
import pytest
from click.testing import CliRunner

from segmenter.rules.loader import default_rules, default_rules_text
from streams.cli import cli, export_cmd

PREFIX = "t"


def _record(tier: str, **extra: str) -> dict[str, str]:
    return {
        "lifecycle": tier,
        "value": "low",
        "as_of": "2026-03-01",
        "lifetime_purchases": "2",
        "lifetime_monetary": "12.50",
        "first_purchase_at": "2026-01-01T10:00:00Z",
        "last_purchase_at": "2026-02-01T10:00:00Z",
        "rules_version": default_rules().version,
        "version": "3",
        **extra,
    }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    monkeypatch.setattr(
        "redis.Redis.from_url", lambda *a, **k: fakeredis.FakeRedis(server=server, decode_responses=True)
    )
    records = {
        "c-1": _record("active", **{"attr.country": "FR"}),
        "c-2": _record("churned", recency_days="200"),
        "c-3": _record("active", **{"attr.vip": "true", "attr.note": 'says "hi", ünïcode'}),
    }
    for cid, fields in records.items():
        client.hset(f"{PREFIX}:customer:{cid}", mapping=fields)
        client.sadd(f"{PREFIX}:tier:lifecycle:{fields['lifecycle']}", cid)
        client.hincrby(f"{PREFIX}:tier-counts:lifecycle", fields["lifecycle"], 1)
        client.hincrby(f"{PREFIX}:tier-counts:value", "low", 1)
    client.set(f"{PREFIX}:rules:{default_rules().version}", default_rules_text())
    client.hset("other:customer:x", mapping={"lifecycle": "active"})  # another prefix: not exported
    return client


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["export", "--redis-prefix", PREFIX, "--quiet", *args])
    return result.exit_code, result.output


def test_csv_has_every_column_for_every_row(fake: fakeredis.FakeRedis, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    code, output = _run("--out", str(out))
    assert code == 0, output
    assert "exported 3 customers" in output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["customer_id", "lifecycle", "value", "as_of"]
    assert header[-2:] == ["rules_version", "version"]
    assert (
        header.index("lifetime_purchases") < header.index("recency_days") < header.index("first_purchase_at")
    )
    assert [h for h in header if h.startswith("attr.")] == ["attr.country", "attr.note", "attr.vip"]
    assert all(len(row) == len(header) for row in body)
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert set(by_id) == {"c-1", "c-2", "c-3"}
    for cid, row in by_id.items():
        stored = fake.hgetall(f"{PREFIX}:customer:{cid}")
        assert {k: v for k, v in row.items() if v and k != "customer_id"} == stored
    assert by_id["c-3"]["attr.note"] == 'says "hi", ünïcode'
    assert by_id["c-1"]["recency_days"] == "" and by_id["c-2"]["recency_days"] == "200"
    assert not list(tmp_path.glob(".all.csv.*")), "spool and partial files are removed"


def test_tier_filter_and_bom(fake: fakeredis.FakeRedis, tmp_path: Path) -> None:
    out = tmp_path / "active.csv"
    code, output = _run("--out", str(out), "--dimension", "lifecycle", "--tier", "active", "--bom")
    assert code == 0, output
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfcustomer_id,")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert sorted(row["customer_id"] for row in rows) == ["c-1", "c-3"]
    assert b"\r\n" in data  # the excel dialect


def test_jsonl(fake: fakeredis.FakeRedis, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    code, output = _run("--out", str(out))
    assert code == 0, output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["customer_id"] for line in lines) == ["c-1", "c-2", "c-3"]
    for line in lines:
        cid = line.pop("customer_id")
        assert line == fake.hgetall(f"{PREFIX}:customer:{cid}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dimension", "lifecycle"], "--dimension and --tier go together"),
        (["--dimension", "nope", "--tier", "x"], "no dimension 'nope' under prefix 't'"),
        (["--dimension", "lifecycle", "--tier", "gold"], "no customers in tier 'gold' of 'lifecycle'"),
    ],
)
def test_errors_are_one_line(
    fake: fakeredis.FakeRedis, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "x.csv"
    code, output = _run("--out", str(out), *args)
    assert code != 0 and message in output and "Traceback" not in output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_directory(fake: fakeredis.FakeRedis, tmp_path: Path) -> None:
    code, output = _run("--out", str(tmp_path / "no" / "x.csv"))
    assert code != 0 and "no directory" in output


def test_unreachable_redis(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["export", "--out", str(tmp_path / "x.csv"), "--redis", "redis://127.0.0.1:1/0", "--quiet"]
    )
    assert result.exit_code == 1 and "cannot read Redis at redis://127.0.0.1:1/0" in result.output


def test_columns_without_rules_text() -> None:
    names = {"lifecycle", "as_of", "version", "rules_version", "attr.b", "attr.a", "zeta", "frequency"}
    columns = export_cmd.csv_columns(names, ([], []))
    assert columns == (
        ["customer_id", "as_of", "frequency", "lifecycle", "zeta"]
        + ["attr.a", "attr.b", "rules_version", "version"]
    )
