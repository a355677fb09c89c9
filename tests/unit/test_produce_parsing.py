"""`segmenter produce` input handling without a broker: JSONL verbatim routing, CSV mapping, ts conversion.

Also the topic-name options every Kafka command shares.
"""

from __future__ import annotations

import csv
import io
import json

import click
import pytest
from click.testing import CliRunner

from streams.cli.produce_cmd import (
    INTERACTIONS,
    PURCHASES,
    CsvConverter,
    CsvSpec,
    SourceStats,
    convert_ts,
    count_lines,
    csv_messages,
    jsonl_messages,
    parse_mappings,
    route_jsonl_line,
    row_event_id,
)
from streams.topic_names import TopicNames, topic_options

# ---- JSON lines -------------------------------------------------------------------------------------------


def test_jsonl_line_is_sent_verbatim_and_routed_by_type() -> None:
    line = b'{ "type": "purchase", "customer_id": "c-\xc3\xa9", "amount": 10.50, "ts": "x" ,"extra": [1, 2]}'
    role, key, value, ok = route_jsonl_line(line)
    assert (role, key, value, ok) == (PURCHASES, "c-é".encode(), line, True)
    assert route_jsonl_line(b'{"type":"refund","customer_id":"a"}')[0] == PURCHASES
    assert route_jsonl_line(b'{"type":"page_view","customer_id":"a"}')[:2] == (INTERACTIONS, b"a")
    assert route_jsonl_line(b'{"customer_id":"a"}')[0] == INTERACTIONS  # anything but purchase/refund
    assert route_jsonl_line(b'{"type":"purchase","customer_id":42}')[1] == b"42"
    assert route_jsonl_line(b'{"type":"purchase","customer_id":null}')[1] is None


def test_jsonl_line_that_is_not_a_json_object_goes_unkeyed_to_purchases() -> None:
    for line in (b"not json", b'{"event_id": "e1", "type": "purch', b"[1, 2]", b'"text"', b"\xff\xfe"):
        assert route_jsonl_line(line) == (PURCHASES, None, line, False)
    assert route_jsonl_line(b"not json", INTERACTIONS) == (INTERACTIONS, None, b"not json", False)


def test_topic_override_keeps_the_key() -> None:
    line = b'{"type":"purchase","customer_id":"c"}'
    assert route_jsonl_line(line, INTERACTIONS)[:2] == (INTERACTIONS, b"c")


def test_jsonl_messages_strip_only_the_line_terminator_and_count() -> None:
    stats = SourceStats()
    lines = [
        b'{"type":"purchase","customer_id":"a"}\n',
        b"\n",
        b'  {"type":"page_view","customer_id":"b"}  \r\n',
        b"garbage\n",
        None,  # an idle reader
        b'{"type":"review","customer_id":"c"}',  # last line without newline
    ]
    out = list(jsonl_messages(lines, "in.jsonl", stats))
    assert out == [
        (PURCHASES, b"a", b'{"type":"purchase","customer_id":"a"}'),
        (INTERACTIONS, b"b", b'  {"type":"page_view","customer_id":"b"}  '),
        (PURCHASES, None, b"garbage"),
        None,
        (INTERACTIONS, b"c", b'{"type":"review","customer_id":"c"}'),
    ]
    assert stats.not_json == 1 and stats.skipped == 1


# ---- CSV --------------------------------------------------------------------------------------------------


def _csv(text: str, spec: CsvSpec, name: str = "orders.csv") -> tuple[list[tuple], SourceStats]:
    stats = SourceStats()
    rows = csv.reader(io.StringIO(text, newline=""))
    return list(csv_messages(rows, spec, name, stats)), stats


def test_csv_mapping_ts_format_and_verbatim_amounts() -> None:
    text = (
        "order_no,cust,date,total,shop\n"
        "A-1,c-9,20250103,0019.90,north\n"
        "A-2,c-8,20250229,5.5,south\n"  # no such day: skipped
        "A-3,c-7,20251231,1234567.01,west\n"
    )
    spec = CsvSpec(
        mapping=parse_mappings(["event_id=order_no", "customer_id=cust", "ts=date", "amount=total"]),
        ts_format="%Y%m%d",
        default_type="purchase",
    )
    out, stats = _csv(text, spec)
    assert [(role, key) for role, key, _ in out] == [(PURCHASES, b"c-9"), (PURCHASES, b"c-7")]
    first = json.loads(out[0][2])
    assert first == {"event_id": "A-1", "type": "purchase", "customer_id": "c-9",
                     "ts": "2025-01-03T00:00:00Z", "amount": "0019.90"}
    assert list(first) == ["event_id", "type", "customer_id", "ts", "amount"]  # SPEC field order
    assert json.loads(out[1][2])["amount"] == "1234567.01"
    assert stats.skipped == 1 and "ts does not match --ts-format" in stats.skip_reasons


def test_csv_type_column_routes_rows_and_known_columns_need_no_mapping() -> None:
    text = (
        "event_id,customer_id,ts,type,amount,currency,category,ignored\n"
        "e1,c1,2025-01-01T10:00:00+02:00,purchase,10.00,USD,shoes,x\n"
        "e2,c1,2025-01-02,page_view,,,,y\n"
        "e3,c2,2025-01-03T00:00:00Z,,3.00,,,z\n"  # empty type: --default-type
        "e4,,2025-01-03T00:00:00Z,refund,3.00,,,z\n"  # no customer: skipped
        ",,,,,,,\n"  # blank row: skipped
    )
    out, stats = _csv(text, CsvSpec(default_type="refund"))
    events = [(role, json.loads(value)) for role, _, value in out]
    assert events[0] == (PURCHASES, {"event_id": "e1", "type": "purchase", "customer_id": "c1",
                                     "ts": "2025-01-01T10:00:00+02:00", "amount": "10.00", "currency": "USD",
                                     "category": "shoes"})
    assert events[1] == (INTERACTIONS, {"event_id": "e2", "type": "page_view", "customer_id": "c1",
                                        "ts": "2025-01-02T00:00:00Z"})  # bare date -> midnight UTC
    assert events[2][0] == PURCHASES and events[2][1]["type"] == "refund"
    assert len(events) == 3 and stats.skipped == 2
    assert stats.skip_reasons == {"empty customer_id": 1, "blank row": 1}


def test_csv_event_id_from_row_is_deterministic() -> None:
    text = "cust,day,amount\nc1,2025-01-01,1.00\nc1,2025-01-01,1.00\n"
    spec = CsvSpec(mapping={"customer_id": "cust", "ts": "day"}, default_type="purchase",
                   event_id_from_row=True)
    first, _ = _csv(text, spec)
    again, _ = _csv(text, spec)
    other_file, _ = _csv(text, spec, name="other.csv")
    ids = [json.loads(v)["event_id"] for _, _, v in first]
    assert ids == [json.loads(v)["event_id"] for _, _, v in again]
    assert len(set(ids)) == 2
    assert ids[0] == row_event_id("orders.csv", 1)
    assert set(ids).isdisjoint(json.loads(v)["event_id"] for _, _, v in other_file)
    assert all(1 <= len(i) <= 128 for i in ids)
    assert list(json.loads(first[0][2]))[0] == "event_id"


def test_csv_bad_mapping_and_missing_columns_are_one_line_errors() -> None:
    header = ["order_no", "cust", "date"]
    expected = r"column 'nope' \(--map amount=nope\) is not in the header"
    with pytest.raises(click.ClickException, match=expected):
        CsvConverter(header, CsvSpec(mapping={"amount": "nope"}), "f.csv")
    with pytest.raises(click.ClickException) as missing:
        CsvConverter(header, CsvSpec(), "f.csv")
    message = missing.value.format_message()
    assert "\n" not in message
    for field_name in ("customer_id", "ts", "event_id", "type"):
        assert field_name in message
    with pytest.raises(click.ClickException, match="no amount column"):
        CsvConverter(header, CsvSpec({"customer_id": "cust", "ts": "date", "event_id": "order_no"},
                                     default_type="purchase"), "f.csv")
    with pytest.raises(click.ClickException, match="empty file"):
        _csv("", CsvSpec())


@pytest.mark.parametrize("bad", ["event_id", "=col", "field=", "1x=col", "a b=col"])
def test_parse_mappings_rejects_malformed_items(bad: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_mappings([bad])


def test_parse_mappings() -> None:
    assert parse_mappings(["event_id=order_no", " ts = date "]) == {"event_id": "order_no", "ts": "date"}
    with pytest.raises(click.BadParameter, match="twice"):
        parse_mappings(["ts=a", "ts=b"])


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("20250103", "%Y%m%d", "2025-01-03T00:00:00Z"),
        ("03/01/2025", "%d/%m/%Y", "2025-01-03T00:00:00Z"),
        ("2025-01-03 23:59:58", "%Y-%m-%d %H:%M:%S", "2025-01-03T23:59:58Z"),
        ("2025-01-03 01:30:00+0200", "%Y-%m-%d %H:%M:%S%z", "2025-01-02T23:30:00Z"),
        ("2025-01-03 10:00:00.25", "%Y-%m-%d %H:%M:%S.%f", "2025-01-03T10:00:00.250000Z"),
        ("00050101", "%Y%m%d", "0005-01-01T00:00:00Z"),
    ],
)
def test_convert_ts(text: str, fmt: str, expected: str) -> None:
    assert convert_ts(text, fmt) == expected


def test_convert_ts_rejects_mismatch() -> None:
    with pytest.raises(ValueError):
        convert_ts("2025-01-03", "%Y%m%d")


def test_count_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").write_bytes(b"1\n2\n3")
    (tmp_path / "b").write_bytes(b"1\n2\n")
    (tmp_path / "c").write_bytes(b"")
    assert [count_lines(str(tmp_path / n)) for n in "abc"] == [3, 2, 0]
    assert count_lines("-") is None


# ---- topic names ------------------------------------------------------------------------------------------


def test_topic_names_defaults_env_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TopicNames().all() == ("customer.purchases", "customer.interactions", "customer.tier-changes",
                                  "customer.dead-letters", "customer.segmenter-control", "customer.profiles")
    env = {"SEGMENTER_TOPIC_PURCHASES": "p", "SEGMENTER_TOPIC_CONTROL": "ctl",
           "SEGMENTER_TOPIC_DEAD_LETTERS": ""}
    names = TopicNames.from_env(env)
    assert (names.purchases, names.control, names.dead_letters) == ("p", "ctl", "customer.dead-letters")

    seen: list[TopicNames] = []

    @click.command()
    @topic_options
    def show(topics: TopicNames) -> None:
        seen.append(topics)

    monkeypatch.setenv("SEGMENTER_TOPIC_INTERACTIONS", "from-env")
    result = CliRunner().invoke(show, ["--purchases-topic", "opt", "--tier-changes-topic", "tc"])
    assert result.exit_code == 0, result.output
    assert seen[-1] == TopicNames(purchases="opt", interactions="from-env", tier_changes="tc")
    result = CliRunner().invoke(show, ["--purchases-topic", "same", "--interactions-topic", "same"])
    assert result.exit_code == 2 and "distinct" in result.output
    help_text = CliRunner().invoke(show, ["--help"]).output
    for option in ("--purchases-topic", "--interactions-topic", "--tier-changes-topic",
                   "--dead-letters-topic", "--control-topic", "SEGMENTER_TOPIC_CONTROL"):
        assert option in help_text
