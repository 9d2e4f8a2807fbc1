"""Bad input never disappears: each bad line is quarantined with file, line and reason, or stops --strict."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hibachi_lab import traffic
from hibachi_lab.errors import BadInput
from tests.conftest import read_lines

GOOD = {
    "conversation_id": "c1",
    "turn_index": 0,
    "timestamp": "2026-09-01T18:30:00-07:00",
    "query": "my name is Bob Lee",
    "customer_sentiment": 0.4,
    "pii_spans": [{"field": "query", "start": 11, "end": 18, "entity_type": "PERSON"}],
}


def line(**changes) -> bytes:
    obj = copy.deepcopy(GOOD)
    obj.update(changes)
    return (json.dumps(obj) + "\n").encode()


# (name, bad line bytes, field, words the reason must contain)
BAD_LINES = [
    ("invalid utf-8", line(turn_index=1).replace(b"Bob", b"B\xffb"), "(line)", "expected UTF-8"),
    ("wrong type", line(turn_index="2"), "turn_index", "valid integer"),
    ("bool is not an int", line(turn_index=True), "turn_index", "valid integer"),
    ("sentiment above 1", line(turn_index=3, customer_sentiment=1.7), "customer_sentiment", "less than or equal to 1"),
    ("negative sentiment", line(turn_index=4, customer_sentiment=-0.1), "customer_sentiment", "greater than or equal to 0"),
    ("no offset", line(turn_index=5, timestamp="2026-09-01T18:30:00"), "timestamp", "UTC offset"),
    ("not a timestamp", line(turn_index=6, timestamp="yesterday"), "timestamp", "ISO 8601"),
    ("missing query", line(turn_index=7).replace(b'"query"', b'"qury"'), "query", "Field required"),
    ("span past the end", line(turn_index=8, pii_spans=[{"field": "query", "start": 11, "end": 99, "entity_type": "PERSON"}]), "pii_spans/0", "end <= 18"),
    ("span on a missing text", line(turn_index=9, pii_spans=[{"field": "history/4/content", "start": 0, "end": 2, "entity_type": "PERSON"}]), "pii_spans/0/field", "history/<i>/content"),
    ("unknown entity type", line(turn_index=10, pii_spans=[{"field": "query", "start": 0, "end": 2, "entity_type": "SSN"}]), "pii_spans/0/entity_type", "PERSON"),
    ("unknown routed provider", line(turn_index=11, routed_provider="gpt5"), "routed_provider", "mistral_small"),
    ("response without tokens", line(turn_index=12, responses=[{"provider": "claude", "model": "claude-3-5-sonnet"}]), "responses/0/input_tokens", "Field required"),
    ("not an object", b"[1, 2, 3]\n", "(line)", "expected a JSON object"),
    ("not json", b"{conversation_id: c1}\n", "(line)", "not valid JSON"),
    ("duplicate turn", line(), "conversation_id/turn_index", "first was kept"),
]


@pytest.mark.parametrize("name,bad,field,reason", BAD_LINES, ids=[case[0] for case in BAD_LINES])
def test_each_bad_line_is_quarantined_with_its_line_number_and_reason(tmp_path, name, bad, field, reason):
    log = tmp_path / "log.jsonl"
    log.write_bytes(line() + line(turn_index=100) + bad + line(turn_index=101))
    quarantine = tmp_path / "quarantine.jsonl"

    result = traffic.read_logs(log, quarantine_path=quarantine)

    assert (result.report.lines_read, result.report.rows_loaded, result.report.rows_quarantined) == (4, 3, 1)
    (record,) = read_lines(quarantine)
    assert (record["file"], record["line"], record["field"]) == (str(log), 3, field)
    assert reason in record["reason"]
    assert result.dataset["turn_index"] == [0, 100, 101]


@pytest.mark.parametrize("name,bad,field,reason", BAD_LINES, ids=[case[0] for case in BAD_LINES])
def test_strict_stops_at_the_first_bad_line_naming_file_line_and_field(tmp_path, name, bad, field, reason):
    log = tmp_path / "log.jsonl"
    log.write_bytes(line() + bad + line(turn_index=101))
    with pytest.raises(BadInput) as raised:
        traffic.read_logs(log, strict=True)
    message = str(raised.value)
    assert message.startswith(f"{log}:2: {field}: ")
    assert reason in message


def test_a_truncated_last_line_is_named_as_such(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_bytes(line() + line(turn_index=1)[:40])
    result = traffic.read_logs(log)
    assert result.report.rows_loaded == 1
    assert result.report.first_problems[0].startswith(f"{log}:2: (line): truncated last line")


def test_duplicates_are_found_across_files(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(line())
    second.write_bytes(line(turn_index=1) + line())
    result = traffic.read_logs([first, second])
    assert result.report.rows_loaded == 2
    assert result.report.first_problems[0].startswith(f"{second}:2: conversation_id/turn_index")


def test_parquet_rows_are_validated_with_row_numbers(tmp_path):
    source = tmp_path / "good.jsonl"
    source.write_bytes(line() + line(turn_index=1) + line(turn_index=2))
    parquet = tmp_path / "log.parquet"
    table = traffic.load(source).with_format("arrow")[:]
    sentiments = table["customer_sentiment"].to_pylist()
    sentiments[1] = 4.0
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("customer_sentiment"), "customer_sentiment", pa.array(sentiments))
    import pyarrow.parquet as pq

    pq.write_table(table, parquet)
    result = traffic.read_logs(parquet)
    assert result.report.rows_loaded == 2
    assert result.report.first_problems[0].startswith(f"{parquet}:2: customer_sentiment:")


def test_missing_file_and_empty_glob_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        traffic.read_logs(tmp_path / "nope.jsonl")
    with pytest.raises(BadInput, match="no file matches"):
        traffic.read_logs(str(tmp_path / "*.jsonl"))


# --------------------------------------------------------------------------- property


def _invalid_utf8(raw: bytes, position: int) -> bytes:
    body = raw.rstrip(b"\n")
    cut = position % len(body)
    return body[:cut] + b"\xfe" + body[cut:] + b"\n"


def _truncate(raw: bytes, cut: int) -> bytes:
    body = raw.rstrip(b"\n")
    return body[: cut % (len(body) - 1) + 1] + b"\n"


def _with(field_path: tuple, value):
    def corrupt(raw: bytes, _: int) -> bytes:
        obj = json.loads(raw)
        target = obj
        for key in field_path[:-1]:
            target = target[key]
        target[field_path[-1]] = value
        return (json.dumps(obj) + "\n").encode()

    return corrupt


def _span_past_end(raw: bytes, _: int) -> bytes:
    obj = json.loads(raw)
    obj["pii_spans"] = [{"field": "query", "start": 0, "end": len(obj["query"]) + 1, "entity_type": "PERSON"}]
    return (json.dumps(obj) + "\n").encode()


CORRUPTIONS = [
    _invalid_utf8,
    _truncate,
    _with(("customer_sentiment",), 1.5),
    _with(("turn_index",), "7"),
    _with(("timestamp",), "2026-13-01T00:00:00Z"),
    _with(("labels", "complexity"), "hard"),
    _span_past_end,
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    corrupted=st.sets(st.integers(min_value=0, max_value=59), max_size=25),
    duplicates=st.sets(st.integers(min_value=0, max_value=59), max_size=5),
)
def test_corrupting_random_lines_loses_no_valid_row(tmp_path_factory, small_turns, data, corrupted, duplicates):
    valid_lines = [(turn.model_dump_json() + "\n").encode() for turn in small_turns[:60]]
    lines: list[bytes] = []
    expected: list[dict] = []
    for index, raw in enumerate(valid_lines):
        if index in corrupted:
            corruption = data.draw(st.sampled_from(CORRUPTIONS))
            bad = corruption(raw, data.draw(st.integers(0, 10_000)))
            assert bad != raw
            lines.append(bad)
        else:
            lines.append(raw)
            expected.append(traffic.from_row(traffic.to_row(traffic.parse_turn(raw))))
        if index in duplicates:
            lines.append(raw)  # the same turn again: loaded only if its first copy was corrupted
            if index in corrupted:
                expected.append(traffic.from_row(traffic.to_row(traffic.parse_turn(raw))))
    folder = tmp_path_factory.mktemp("prop")
    log = folder / "log.jsonl"
    log.write_bytes(b"".join(lines))

    result = traffic.read_logs(log, cache_dir=folder / "cache")

    report = result.report
    assert report.lines_read == len(lines)
    assert report.lines_read == report.rows_loaded + report.rows_quarantined
    assert result.dataset.num_rows == report.rows_loaded
    if report.rows_quarantined:
        with open(report.quarantine_file, encoding="utf-8") as quarantined:
            assert sum(1 for _ in quarantined) == report.rows_quarantined
    assert list(traffic.iter_objects(result.dataset)) == expected
