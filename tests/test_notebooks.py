"""The four notebooks, executed as a user would run them, with smoke parameters (sample data, tiny model, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from hibachi_lab import train
from hibachi_lab.recipes import load_hardware, load_recipe

from .ollama_double import OllamaDouble

pytestmark = pytest.mark.slow  # each runs a notebook end to end in a kernel

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, folder: Path, **parameters) -> nbformat.NotebookNode:
    """Run a notebook with its parameters cell overridden (papermill's convention: a cell after it)."""
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    position = next(i for i, cell in enumerate(book.cells) if "parameters" in cell.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    book.cells.insert(position + 1, injected)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return book


def outputs(book: nbformat.NotebookNode) -> str:
    return "\n".join(json.dumps(cell.get("outputs", [])) for cell in book.cells if cell.cell_type == "code")


@pytest.mark.parametrize("name, extra", [("kaggle_train", {}), ("colab_train", {"USE_DRIVE": False})])
def test_training_notebooks_plan_train_resume_and_gate_on_cpu(name, extra, built, tmp_path):
    out, _ = built
    parameters = {"DATASET_DIR": str(out / "kaggle"), "WORK_DIR": str(tmp_path / "work"), "MODEL": "qwen3-tiny",
                  "HARDWARE": "laptop-cpu", "MAX_STEPS": 3, "SAVE_STEPS": 2, "MAX_NEW_TOKENS": 8, "INSTALL": False}
    (tmp_path / "work").mkdir()
    book = execute(name, tmp_path, **parameters, **extra)
    text = outputs(book)
    assert "smoke model" in text and "trained to step 3 (resumed from 0)" in text
    assert "gate: FAILED" in text and "image/png" in text
    assert (tmp_path / "work" / "qwen3-tiny-student.zip").exists()
    # The session "ends" and the notebook runs again: training continues from the last checkpoint.
    again = execute(name, tmp_path, **(parameters | {"MAX_STEPS": 5}), **extra)
    assert "trained to step 5 (resumed from 3)" in outputs(again) or "trained to step 5 (resumed from 2)" in outputs(again)


def test_laptop_notebook_exports_to_ollama_gates_and_reports(built, tmp_path, monkeypatch):
    out, _ = built
    run = tmp_path / "run"
    train.train(load_recipe("qwen2-tiny"), load_hardware("laptop-cpu"), out, run,
                train.TrainSettings(max_steps=2, save_steps=100), track=False)
    with OllamaDouble(lambda model, messages: "Thanks! We'll be in touch.") as double:
        monkeypatch.setenv("OLLAMA_HOST", double.url)
        book = execute("laptop_ollama_compare", tmp_path, ADAPTER=str(run / "adapter"), MODEL="qwen2-tiny",
                       DATASET_DIR=str(out), OUT_DIR=str(tmp_path / "laptop"), OLLAMA_NAME="hibachi-tiny",
                       USE_OLLAMA=True, PROMOTE=True, MAX_NEW_TOKENS=8)
        assert "hibachi-tiny" in double.models and double.chats
    text = outputs(book)
    assert "FROM " in text and "gate: FAILED" in text and "mlflow ui --backend-store-uri" in text


def test_router_notebook_replays_sweeps_and_scores_consensus(small_log, tmp_path):
    book = execute("router_ab_replay", tmp_path, LOGS=str(small_log), OUT_DIR=str(tmp_path / "reports"),
                   SWEEP_VALUES="0.5,0.7")
    text = outputs(book)
    assert "escalation misses" in text and "mean agreement" in text
    assert text.count("image/png") >= 7
