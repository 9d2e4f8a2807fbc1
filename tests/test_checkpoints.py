"""Adapter save/resume on the file system: whose checkpoints an output folder holds, which one a run continues
from, and adopting an earlier session's checkpoints. Fast: folders made by hand, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hibachi_lab import train
from hibachi_lab.errors import BadInput

IDENTITY = {"recipe": "qwen3-tiny", "dataset_digest": "abc123", "max_steps": 6, "seed": 2026}


def checkpoint(folder: Path, step: int, name: str | None = None, state: bool = True) -> Path:
    path = folder / (name or f"checkpoint-{step}")
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_text(f"weights at step {step}")
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return path


def record(folder: Path, identity: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(identity or IDENTITY))


@pytest.fixture(autouse=True)
def main_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


# --------------------------------------------------------------------------- claim_output


def test_a_fresh_folder_starts_clean_and_records_the_run(tmp_path):
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings()) is None
    assert json.loads((tmp_path / "checkpoints" / "run.json").read_text()) == IDENTITY


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(BadInput, match="give one of them"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True, overwrite=True))


def test_resume_continues_from_the_highest_step_of_the_same_run(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for step in (2, 9, 10):
        checkpoint(checkpoints, step)
    record(checkpoints)
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True)) == checkpoints / "checkpoint-10"
    assert json.loads((checkpoints / "run.json").read_text()) == IDENTITY


def test_resume_without_a_checkpoint_or_without_a_run_record_is_refused(tmp_path):
    with pytest.raises(BadInput, match="--resume: no checkpoint under"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True))
    checkpoint(tmp_path / "checkpoints", 2)
    with pytest.raises(BadInput, match="has no run.json saying what its checkpoints were trained from"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True))


def test_resume_refuses_another_runs_checkpoints_naming_each_difference(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoint(checkpoints, 2)
    record(checkpoints, {**IDENTITY, "recipe": "phi3-tiny", "seed": 1})
    with pytest.raises(BadInput, match=r"belong to another run \(recipe 'phi3-tiny', not 'qwen3-tiny'; seed 1, not 2026\)"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True))
    assert json.loads((checkpoints / "run.json").read_text())["recipe"] == "phi3-tiny"


def test_a_folder_with_checkpoints_needs_resume_or_overwrite(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoint(checkpoints, 4)
    with pytest.raises(BadInput, match=r"holds the checkpoints of another run \(a run of an older hibachi-lab, up to "
                                       r"checkpoint-4\); pass --resume"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings())
    record(checkpoints)
    with pytest.raises(BadInput, match=r"another run \(qwen3-tiny on dataset abc123, up to checkpoint-4\)"):
        train.claim_output(tmp_path, IDENTITY, train.TrainSettings())
    assert (checkpoints / "checkpoint-4").is_dir()


def test_a_run_record_without_checkpoints_is_replaced(tmp_path):
    record(tmp_path / "checkpoints", {**IDENTITY, "recipe": "phi3-tiny"})
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings()) is None
    assert json.loads((tmp_path / "checkpoints" / "run.json").read_text()) == IDENTITY


def test_overwrite_discards_the_old_checkpoints_and_smoke_base(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoint(checkpoints, 4)
    record(checkpoints, {**IDENTITY, "recipe": "phi3-tiny"})
    (tmp_path / "base").mkdir()
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings(overwrite=True)) is None
    assert not (checkpoints / "checkpoint-4").exists() and not (tmp_path / "base").exists()
    assert json.loads((checkpoints / "run.json").read_text()) == IDENTITY


def test_overwrite_on_a_fresh_folder_just_starts(tmp_path):
    assert train.claim_output(tmp_path / "new", IDENTITY, train.TrainSettings(overwrite=True)) is None
    assert json.loads((tmp_path / "new" / "checkpoints" / "run.json").read_text()) == IDENTITY


def test_other_processes_of_a_distributed_run_read_the_folder_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    checkpoints = tmp_path / "checkpoints"
    checkpoint(checkpoints, 4)
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings(resume=True)) == checkpoints / "checkpoint-4"
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings()) is None
    assert train.claim_output(tmp_path, IDENTITY, train.TrainSettings(overwrite=True)) is None
    assert (checkpoints / "checkpoint-4").is_dir() and not (checkpoints / "run.json").exists()


# --------------------------------------------------------------------------- the step a checkpoint holds


def test_the_step_comes_from_the_trainer_state_not_the_folder_name(tmp_path):
    assert train.checkpoint_step(checkpoint(tmp_path, 4, name="checkpoint-99")) == 4


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"log_history": []}), json.dumps([4]),
                                     json.dumps({"global_step": "four"})])
def test_an_unreadable_trainer_state_is_bad_input(tmp_path, content):
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    if content is not None:
        (folder / "trainer_state.json").write_text(content)
    with pytest.raises(BadInput, match=r"trainer_state\.json: cannot read the step it holds"):
        train.checkpoint_step(folder)


def test_the_last_checkpoint_is_the_highest_step_by_number(tmp_path):
    assert train.last_checkpoint(tmp_path) is None
    for step in (9, 10, 2):
        checkpoint(tmp_path, step)
    (tmp_path / "other-5").mkdir()
    assert train.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


# --------------------------------------------------------------------------- adopting another session's checkpoints


@pytest.fixture
def earlier(tmp_path) -> Path:
    """An earlier session's run folder: checkpoints 2 and 10 (and a 12 that never got its trainer state)."""
    run = tmp_path / "input" / "run"
    checkpoint(run / "checkpoints", 2)
    checkpoint(run / "checkpoints", 10)
    checkpoint(run / "checkpoints", 12, state=False)
    record(run / "checkpoints")
    return run


@pytest.mark.parametrize("where", ["run", "checkpoints", "checkpoint"])
def test_the_newest_complete_checkpoint_is_copied_with_its_run_record(tmp_path, earlier, where):
    source = {"run": earlier, "checkpoints": earlier / "checkpoints",
              "checkpoint": earlier / "checkpoints" / "checkpoint-10"}[where]
    out = tmp_path / "out"
    adopted = train.adopt_checkpoint(source, out)
    assert adopted == out / "checkpoints" / "checkpoint-10"
    assert (adopted / "adapter_model.safetensors").read_text() == "weights at step 10"
    assert train.checkpoint_step(adopted) == 10
    assert json.loads((out / "checkpoints" / "run.json").read_text()) == IDENTITY
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["checkpoint-10", "run.json"]
    # the input is left as it was
    assert sorted(path.name for path in (earlier / "checkpoints").iterdir()) == [
        "checkpoint-10", "checkpoint-12", "checkpoint-2", "run.json"]


def test_a_source_without_a_checkpoint_or_without_its_record_is_refused(tmp_path, earlier):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="no checkpoint there"):
        train.adopt_checkpoint(empty, tmp_path / "out")
    (earlier / "checkpoints" / "run.json").unlink()
    with pytest.raises(BadInput, match="no run.json beside the checkpoint"):
        train.adopt_checkpoint(earlier, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints" / "checkpoint-10").exists()


def test_another_runs_checkpoints_in_the_output_are_refused(tmp_path, earlier):
    out = tmp_path / "out"
    record(out / "checkpoints", {**IDENTITY, "seed": 1})
    with pytest.raises(BadInput, match="already holds another run's checkpoints"):
        train.adopt_checkpoint(earlier, out)
    assert not (out / "checkpoints" / "checkpoint-10").exists()


@pytest.mark.parametrize("step", [10, 11])
def test_a_checkpoint_here_at_or_past_the_adopted_step_is_kept(tmp_path, earlier, step):
    out = tmp_path / "out"
    here = checkpoint(out / "checkpoints", step)
    record(out / "checkpoints")
    assert train.adopt_checkpoint(earlier, out) == here
    assert (here / "adapter_model.safetensors").read_text() == f"weights at step {step}"
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == [here.name, "run.json"]


def test_an_older_checkpoint_here_is_overtaken_by_the_adopted_one(tmp_path, earlier):
    out = tmp_path / "out"
    checkpoint(out / "checkpoints", 9)
    record(out / "checkpoints")
    assert train.adopt_checkpoint(earlier, out) == out / "checkpoints" / "checkpoint-10"
    assert train.last_checkpoint(out / "checkpoints") == out / "checkpoints" / "checkpoint-10"
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-9", "run.json"]
