"""The four notebooks, executed as a user would run them, with smoke parameters (sample data, tiny model, CPU)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import datasets
import nbformat
import pytest
from nbclient import NotebookClient

from hibachi_lab import train
from hibachi_lab.recipes import load_hardware, load_recipe

from .ollama_double import OllamaDouble

pytestmark = pytest.mark.slow  # each runs a notebook end to end in a kernel

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, folder: Path, kernel: str = "python3", **parameters) -> nbformat.NotebookNode:
    """Run a notebook with its parameters cell overridden (papermill's convention: a cell after it)."""
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    position = next(i for i, cell in enumerate(book.cells) if "parameters" in cell.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    book.cells.insert(position + 1, injected)
    NotebookClient(book, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(folder)}}).execute()
    return book


def outputs(book: nbformat.NotebookNode) -> str:
    return "\n".join(json.dumps(cell.get("outputs", [])) for cell in book.cells if cell.cell_type == "code")


@pytest.fixture
def fresh_kernel(tmp_path, monkeypatch) -> str:
    """A Jupyter kernel in a fresh venv that has the dependencies but not hibachi-lab: only the notebook's own
    install cell can make it importable (as on Kaggle and Colab)."""
    from .fresh_env import clean_env, fresh_venv

    python = fresh_venv(tmp_path / "venv")
    spec = tmp_path / "jupyter" / "kernels" / "fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "fresh",
        "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    missing = subprocess.run([str(python), "-c", "import hibachi_lab"], cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, check=False)
    assert missing.returncode != 0 and "No module named 'hibachi_lab'" in missing.stderr
    return "fresh"


@pytest.mark.parametrize("name, extra, resume_from_input", [("kaggle_train", {}, True),
                                                             ("colab_train", {"USE_DRIVE": False}, False)])
def test_training_notebooks_install_plan_train_resume_and_gate_on_cpu(name, extra, resume_from_input, built, tmp_path,
                                                                       fresh_kernel):
    """The real install cell in a fresh kernel (clone, pip install, import in the same kernel), then run all
    again: the checkout is already there (Kaggle with Persistence on), and training continues from the work
    folder (Colab's Drive) or, on Kaggle, from the first session's checkpoints attached as a read-only input in
    a fresh work folder (a "Save Version" run keeps nothing in /kaggle/working)."""
    from .fresh_env import OFFLINE_PIP, copy_checkout

    out, _ = built
    repository = copy_checkout(tmp_path / "origin", git_commit=True)
    parameters = {"DATASET_DIR": str(out / "kaggle"), "WORK_DIR": str(tmp_path / "work"), "MODEL": "qwen3-tiny",
                  "HARDWARE": "laptop-cpu", "MAX_STEPS": 3, "SAVE_STEPS": 2, "MAX_NEW_TOKENS": 8, "INSTALL": True,
                  "REPOSITORY": str(repository), "CHECKOUT": str(tmp_path / "hibachi-lab"), "PIP_OPTIONS": OFFLINE_PIP}
    (tmp_path / "work").mkdir()
    book = execute(name, tmp_path, fresh_kernel, **parameters, **extra)
    text = outputs(book)
    assert (tmp_path / "hibachi-lab" / ".git").exists()
    assert "smoke model" in text and "trained to step 3 (resumed from 0)" in text
    assert "gate: FAILED" in text and "image/png" in text
    assert (tmp_path / "work" / "qwen3-tiny-student.zip").exists()
    # The session "ends" and the notebook runs again: no clone over the checkout, training continues.
    second = parameters | {"MAX_STEPS": 5}
    if resume_from_input:
        (tmp_path / "work-2").mkdir()
        second |= {"WORK_DIR": str(tmp_path / "work-2"),
                   "RESUME_FROM": str(tmp_path / "work" / "qwen3-tiny-laptop-cpu" / "checkpoints")}
    again = outputs(execute(name, tmp_path, fresh_kernel, **second, **extra))
    assert "using the checkout already in" in again
    assert "trained to step 5 (resumed from 3)" in again or "trained to step 5 (resumed from 2)" in again


def production_version() -> str | None:
    """The registry version the `production` alias points at, read back from the MLflow store."""
    from hibachi_lab import registry
    from hibachi_lab.errors import BadInput

    try:
        versions = registry.student_status()["versions"]
    except BadInput:  # no store yet
        return None
    return next((row["version"] for row in versions if "production" in row["aliases"]), None)


@pytest.mark.parametrize("student", ["canned", "teacher"])
def test_laptop_notebook_exports_to_ollama_gates_and_promotes_only_a_passing_student(student, built, tmp_path,
                                                                                      monkeypatch):
    """The Ollama double (the wire protocol over loopback) answers with one canned line, which fails the
    gate, or with the teacher's own reply to each gate prompt, which passes and is promoted by the notebook."""
    from .test_evaluate import _ollama_message

    out, _ = built
    run = tmp_path / "run"
    train.train(load_recipe("qwen2-tiny"), load_hardware("laptop-cpu"), out, run,
                train.TrainSettings(max_steps=2, save_steps=100), track=False)
    gate = list(datasets.load_from_disk(str(out / "hf"))["gate"])
    by_prompt = {example["messages"][-2]["content"]: _ollama_message(example["messages"][-1]) for example in gate}
    reply = (lambda model, messages: "Thanks! We'll be in touch.") if student == "canned" else \
        (lambda model, messages: by_prompt.get(messages[-1]["content"], "?"))
    # The fixture's gate split is small: the shipped rules with room for it (as test_evaluate's small gate).
    promotion = tmp_path / "promotion.yaml"
    promotion.write_text("min_gate_examples: 5\nmin_examples_per_intent: 3\nmax_wrong_rate: 0.12\n")
    before = production_version()
    with OllamaDouble(reply) as double:
        monkeypatch.setenv("OLLAMA_HOST", double.url)
        book = execute("laptop_ollama_compare", tmp_path, ADAPTER=str(run / "adapter"), MODEL="qwen2-tiny",
                       DATASET_DIR=str(out), OUT_DIR=str(tmp_path / "laptop"), OLLAMA_NAME="hibachi-tiny",
                       USE_OLLAMA=True, PROMOTE=True, MAX_NEW_TOKENS=8, PROMOTION=str(promotion))
        assert "hibachi-tiny" in double.models and len(double.chats) == len(gate)
    text = outputs(book)
    assert "FROM " in text and "mlflow ui --backend-store-uri" in text
    after = production_version()
    if student == "canned":
        assert "gate: FAILED" in text and after == before
    else:
        assert "gate: PASSED" in text and "production is now version" in text
        assert after is not None and after != before


def test_router_notebook_replays_sweeps_and_scores_consensus(small_log, tmp_path):
    book = execute("router_ab_replay", tmp_path, LOGS=str(small_log), OUT_DIR=str(tmp_path / "reports"),
                   SWEEP_VALUES="0.5,0.7")
    text = outputs(book)
    assert "escalation misses" in text and "mean agreement" in text
    assert text.count("image/png") >= 7
