"""The student registry from the command line: which store is read, and naming runs the way status shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import REPO_ROOT, registry
from hibachi_lab.cli import app

runner = CliRunner()
pytestmark = pytest.mark.slow  # every test here creates and reads an MLflow store


def evaluated_run(gate_result: str = "pass") -> str:
    """A run with a registered student version, as `evaluate` leaves it."""
    client = MlflowClient(registry.tracking_uri())
    experiment = client.get_experiment_by_name("evaluation") or client.get_experiment(
        client.create_experiment("evaluation"))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    registry.register_student(run_id, "student", {"gate_result": gate_result})
    return run_id


def test_promote_accepts_the_short_id_status_prints_and_refuses_an_ambiguous_one():
    runs = [evaluated_run() for _ in range(17)]  # 17 ids over 16 hex digits: two share a first character
    by_first = defaultdict(list)
    for run_id in runs:
        by_first[run_id[0]].append(run_id)
    shared, *_ = (ids for ids in by_first.values() if len(ids) > 1)

    ambiguous = runner.invoke(app, ["promote", "--run", shared[0][0]])
    assert ambiguous.exit_code == 2
    message = " ".join(ambiguous.output.split())
    assert f"run {shared[0][0]}: {len(shared)} evaluated runs start with it" in message
    assert all(run_id in message for run_id in shared)

    status = runner.invoke(app, ["status"])
    short = runs[3][:8]
    assert short in status.output
    promoted = runner.invoke(app, ["promote", "--run", short])
    assert promoted.exit_code == 0, promoted.output
    production = MlflowClient(registry.tracking_uri()).get_model_version_by_alias(registry.STUDENT_MODEL, "production")
    assert production.run_id == runs[3]


def test_status_and_promote_from_another_folder_refuse_to_create_an_empty_store(tmp_path, monkeypatch):
    store = registry.tracking_uri()
    promoted_run = evaluated_run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")

    for command in (["status"], ["promote", "--run", promoted_run]):
        refused = runner.invoke(app, command)
        assert refused.exit_code == 2, refused.output
        message = " ".join(refused.output.split())
        assert "registry: sqlite:///mlflow.db" in message
        assert f"no MLflow store at sqlite:///mlflow.db ({elsewhere / 'mlflow.db'} does not exist" in message
        assert "--tracking-uri" in message
    assert list(elsewhere.iterdir()) == []

    promoted = runner.invoke(app, ["promote", "--run", promoted_run, "--tracking-uri", store])
    assert promoted.exit_code == 0, promoted.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert f"registry: {store}" in status.output and f"production: version 1 (run {promoted_run})" in status.output
    assert list(elsewhere.iterdir()) == []


def test_recording_a_run_with_a_dataset_input_shows_no_known_mlflow_warning(tmp_path):
    # In a fresh process: SQLAlchemy's deprecation fires once per process, on the first store opened.
    script = """
import warnings
warnings.simplefilter("always")
import mlflow.data
import pandas as pd
from hibachi_lab import registry
frame = pd.DataFrame({"turn_index": [0, 1], "tokens": [12, 40], "prompt": ["a", "b"]})
with registry.quiet_mlflow():  # as dataset.py makes it
    data = mlflow.data.from_pandas(frame, source="train.jsonl", name="train", digest="0123456789abcdef")
registry.log_run("datasets", "test", {"source": "train.jsonl"}, {"examples": 2}, inputs=[(data, "training")])
print(registry.student_status()["pairs"])
"""
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONWARNINGS": "always",
                        "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "Inferred schema contains integer column" not in done.stderr
    assert "noload" not in done.stderr
    assert "can be interpreted in multiple ways" not in done.stderr
    assert "Warning" not in done.stderr, done.stderr
