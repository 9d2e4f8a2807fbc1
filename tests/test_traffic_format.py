"""The logged-turn format: round trips and unknown-field preservation."""

from __future__ import annotations

import json

import pytest

from hibachi_lab import traffic
from tests.conftest import read_lines

TURN_WITH_UNKNOWN_FIELDS = {
    "conversation_id": "conv-x",
    "turn_index": 0,
    "timestamp": "2026-09-12T18:05:00-07:00",
    "query": "Hi, this is Ana Ruiz, can we book for 12 on Oct 3?",
    "history": [{"role": "user", "content": "hello", "client": "ios"}],
    "customer_sentiment": 0.61,
    "routed_provider": "mistral_large",
    "responses": [
        {
            "provider": "mistral_large",
            "model": "mistral-large-2",
            "content": "Sure, Ana!",
            "input_tokens": 210,
            "output_tokens": 4,
            "latency_ms": 812.5,
            "error": None,
            "tool_calls": [{"type": "function", "function": {"name": "create_booking", "arguments": {"guests": 12}}}],
            "request_id": "req-77",
        }
    ],
    "final_response": "Sure, Ana!",
    "consensus_score": None,
    "labels": {"intent": "booking_create", "complexity": "medium", "annotator": "kim"},
    "pii_spans": [{"field": "query", "start": 12, "end": 20, "entity_type": "PERSON", "source": "manual"}],
    "channel": "web",
    "experiment": {"arm": "b", "weights": [0.1, 0.9]},
}


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet"])
def test_round_trip_keeps_every_field_including_unknown_ones(tmp_path, suffix):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(TURN_WITH_UNKNOWN_FIELDS) + "\n")
    loaded = traffic.load(source)

    copy = tmp_path / f"copy{suffix}"
    assert traffic.write(loaded, copy) == 1
    back = list(traffic.iter_objects(traffic.load(copy)))

    assert back == [TURN_WITH_UNKNOWN_FIELDS]


def test_jsonl_written_back_is_the_same_objects(tmp_path, small_log):
    out = tmp_path / "again.jsonl"
    traffic.write(traffic.load(small_log), out)
    assert read_lines(out) == read_lines(small_log)


def test_optional_fields_get_their_documented_defaults(tmp_path):
    source = tmp_path / "minimal.jsonl"
    source.write_text('{"conversation_id": "c", "turn_index": 3, "timestamp": "2026-10-01T12:00:00Z", "query": "hours?"}\n')
    (obj,) = traffic.iter_objects(traffic.load(source))
    assert obj["history"] == [] and obj["responses"] == [] and obj["pii_spans"] == []
    assert obj["customer_sentiment"] is None and obj["routed_provider"] is None
    assert obj["labels"] == {"intent": None, "complexity": None}


def test_loaded_table_is_memory_mapped_arrow(small_log):
    dataset = traffic.load(small_log)
    assert dataset.cache_files, "the Dataset should be backed by an Arrow file on disk"
    assert dataset.features.arrow_schema.equals(traffic.TURN_SCHEMA, check_metadata=False)


def test_second_load_of_an_unchanged_file_comes_from_the_cache(small_log):
    first = traffic.read_logs(small_log)
    second = traffic.read_logs(small_log)
    assert not first.report.from_cache and second.report.from_cache
    assert second.dataset.num_rows == first.dataset.num_rows


def test_usage_csv_export_loads_and_bad_rows_are_quarantined(tmp_path):
    csv_file = tmp_path / "usage.csv"
    csv_file.write_text(
        "conversation_id,model,input_tokens,output_tokens,input_cost,output_cost,total_cost,created_at\n"
        "c1,gpt-4o,1200,300,0.006,0.0045,0.0105,2026-09-01T10:00:00+00:00\n"
        "c2,mistral-small,800,,0.0008,0.0,0.0008,2026-09-01T10:01:00+00:00\n"
        "c3,claude-3-5-sonnet,1000,200,0.003,0.003,0.006,2026-09-01 10:02:00+00:00\n"
    )
    result = traffic.read_usage_csv(csv_file)
    assert result.report.rows_loaded == 2
    assert result.report.first_problems == [f"{csv_file}:3: output_tokens: Input should be a valid integer, got null"]
    assert result.dataset["model"] == ["gpt-4o", "claude-3-5-sonnet"]
    assert result.dataset["input_tokens"] == [1200, 1000]
