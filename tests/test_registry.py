"""The student registry from the command line: which store is read, and naming runs the way status shows them."""

from __future__ import annotations

from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import registry
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
