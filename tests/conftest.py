"""Shared fixtures: every test gets its own cache folder, and a small valid log to work on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hibachi_lab import dataset, pii, synth, traffic
from hibachi_lab.cli import DEFAULT_DATASET, DEFAULT_PII

MEMBERS = ["gpt4o", "claude", "mistral"]

# tests/test_evaluate.py belongs to the promotion gate, which is being rewritten elsewhere: its end-to-end tests
# (MLflow, training a student, Ollama export, the MLflow server) are put in the slow tier here, by name.
SLOW_ELSEWHERE = {
    "test_evaluate.py": {
        "test_answers_file_end_to_end_then_promote_moves_production",
        "test_adapter_end_to_end_with_a_tiny_student",
        "test_ollama_export_create_and_evaluate_against_the_double",
        "test_qwen3_needs_gguf_and_says_how_to_get_the_converter",
        "test_the_mlflow_server_serves_the_evaluation_run_and_the_aliased_version",
    },
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.originalname in SLOW_ELSEWHERE.get(item.path.name, ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own load cache and MLflow database, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("HIBACHI_LAB_CACHE", str(cache))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{cache / 'mlflow.db'}")
    return cache


@pytest.fixture(scope="session")
def small_turns() -> list[traffic.LoggedTurn]:
    return list(synth.generate(40, seed=11))


@pytest.fixture
def small_log(tmp_path, small_turns) -> Path:
    path = tmp_path / "turns.jsonl"
    traffic.write_turns(small_turns, path)
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """One similarity engine (default model, its own cache) shared by the tests that only score."""
    from hibachi_lab.similarity import SimilarityEngine

    return SimilarityEngine(cache_dir=tmp_path_factory.mktemp("embeddings"))


@pytest.fixture(scope="session")
def scrubbed(tmp_path_factory) -> Path:
    """A small synthetic log, scrubbed as the README says to."""
    folder = tmp_path_factory.mktemp("scrubbed")
    raw = folder / "raw.jsonl"
    traffic.write_turns(synth.generate(120, seed=5), raw)
    turns = list(traffic.iter_objects(traffic.load(raw)))
    pii.Scrubber(pii.PiiConfig.from_yaml(DEFAULT_PII)).scrub_turns(turns)
    path = folder / "scrubbed.jsonl"
    traffic.write_turns([traffic.parse_turn(turn) for turn in turns], path)
    return path


@pytest.fixture(scope="session")
def built(scrubbed, tmp_path_factory, engine) -> tuple[Path, dataset.BuildResult]:
    """The dataset built from it with the shipped configs (no MLflow run)."""
    out = tmp_path_factory.mktemp("built") / "dataset"
    result = dataset.build(traffic.load(scrubbed), out, dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine,
                           MEMBERS, pii.PiiConfig.from_yaml(DEFAULT_PII), source=str(scrubbed), track=False)
    return out, result


@pytest.fixture(scope="session")
def config():
    """The shipped PII settings."""
    return pii.PiiConfig.from_yaml(DEFAULT_PII)


@pytest.fixture
def recorded_loads(monkeypatch) -> dict:
    """What the code under test asks ``AutoModelForCausalLM.from_pretrained`` for (name and keyword arguments),
    with no model loaded: it gets the string "model" back."""
    import transformers

    loaded: dict = {}

    class Recorder:
        @staticmethod
        def from_pretrained(name, **kwargs):
            loaded.update(kwargs, name=name)
            return "model"

    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Recorder)
    return loaded
