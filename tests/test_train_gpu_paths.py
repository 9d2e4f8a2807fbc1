"""What a GPU run does differently, checked without a GPU: the DDP relaunch, rank-0-only outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from hibachi_lab import train
from hibachi_lab.cli import app
from hibachi_lab.recipes import load_hardware, load_recipe

T4X2 = load_hardware("kaggle-t4x2")


def parse_train_command(command: list[str]) -> dict:
    """The options `hibachi-lab train` would run with, parsed by the CLI itself."""
    cli_args = command[command.index("hibachi_lab.cli") + 1 :]
    assert cli_args[0] == "train"
    group = get_command(app)
    with group.make_context("hibachi-lab", list(cli_args)) as context:
        sub = group.get_command(context, "train")
        with sub.make_context("train", list(cli_args[1:]), parent=context) as sub_context:
            return sub_context.params


def test_the_relaunch_command_comes_from_the_parsed_options_not_the_kernels_argv(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/ipykernel_launcher.py", "-f", "/tmp/kernel-1234.json"])
    settings = train.TrainSettings(max_steps=40, epochs=2.0, learning_rate=1e-4, save_steps=10, seed=7,
                                   backend="peft", overwrite=True)
    command = train.relaunch_command(load_recipe("qwen3-8b"), T4X2, tmp_path / "data", tmp_path / "run", settings,
                                     track=False, resume=True)
    assert "-f" not in command and "/tmp/kernel-1234.json" not in command
    assert command[command.index("--num_processes") + 1] == "2"
    params = parse_train_command(command)
    assert params["model"] == "qwen3-8b" and params["hardware"] == "kaggle-t4x2"
    assert Path(params["dataset"]) == (tmp_path / "data").resolve()
    assert Path(params["out"]) == (tmp_path / "run").resolve()
    assert (params["max_steps"], params["epochs"], params["learning_rate"], params["save_steps"], params["seed"]) == (
        40, 2.0, 1e-4, 10, 7)
    assert params["backend"] == "peft" and params["resume"] and params["no_mlflow"]
    # The launching process already cleared the folder: the launched ones must not race to delete it again.
    assert not params["overwrite"]


def test_a_recipe_not_in_configs_travels_as_a_yaml_file(tmp_path):
    recipe = load_recipe("qwen3-8b").model_copy(update={"max_seq_length": 1024})
    command = train.relaunch_command(recipe, T4X2, tmp_path, tmp_path / "run", train.TrainSettings(), True, False)
    params = parse_train_command(command)
    assert load_recipe(params["model"]) == recipe
    assert not params["resume"] and not params["no_mlflow"]


def test_on_two_gpus_the_caller_launches_ddp_and_returns_normally(monkeypatch, built, tmp_path):
    """The notebook case: the parent must neither pass the kernel's argv on nor end with SystemExit."""
    import torch

    dataset, _ = built
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel.json"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    launched = []

    def fake_launch(command, check):
        params = parse_train_command(command)
        launched.append(params)
        # What rank 0 of the launched run leaves behind.
        out = Path(params["out"])
        chosen = train.make_plan(load_recipe(params["model"]), load_hardware(params["hardware"]))
        result = train.TrainResult(out=out, plan=chosen, global_step=12, resumed_from_step=0, losses=[(1, 2.0)],
                                   tokens_per_second=10.0, peak_memory_gb=5.0, mlflow_run_id="abc")
        (out / train.RESULT_RECORD).write_text(json.dumps(train.result_dict(result)))

    monkeypatch.setattr(train.subprocess, "run", fake_launch)
    result = train.train(load_recipe("qwen3-8b"), T4X2, dataset, tmp_path / "run",
                         train.TrainSettings(max_steps=12), track=True)
    assert len(launched) == 1 and launched[0]["max_steps"] == 12
    assert result.global_step == 12 and result.mlflow_run_id == "abc" and result.plan.multi_gpu == "ddp"
    assert (tmp_path / "run" / "checkpoints" / train.RUN_RECORD).exists()  # claimed once, by the caller


def test_only_rank_0_writes_the_card_the_tokenizer_and_the_mlflow_run(monkeypatch, built, tmp_path):
    dataset, _ = built
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "run"
    out.mkdir()
    result = train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), dataset, out,
                         train.TrainSettings(max_steps=1, save_steps=100), track=True)
    assert result.global_step == 1
    assert result.mlflow_run_id is None
    assert not (out / "README.md").exists() and not (out / train.RESULT_RECORD).exists()
    assert not (out / "checkpoints" / train.RUN_RECORD).exists()


# --------------------------------------------------------------------------- sequence length from the real template


def test_the_sequence_length_fits_every_example_as_trl_tokenizes_it(built, tmp_path):
    """Booking examples carry tool schemas and calls: measured with the template that renders them, TRL cuts
    nothing (the dataset's stand-in count, which once set max_length, left them out)."""
    import json as json_module

    dataset, _ = built
    recipe = load_recipe("qwen3-tiny")
    prepared = train.prepare(recipe, load_hardware("laptop-cpu"), dataset, tmp_path / "run",
                             train.TrainSettings(max_steps=1))
    plan = prepared.plan
    tokenized = prepared.trainer.train_dataset
    longest = max(len(ids) for ids in tokenized["input_ids"])
    assert plan.lengths["longest"] >= longest - 1  # TRL may add one EOS token
    assert plan.sequence_length >= plan.lengths["longest"] + train.SEQUENCE_MARGIN
    assert plan.lengths["over"] == 0
    # Nothing was cut off: every tokenized example still ends with the assistant's end-of-turn token.
    end = prepared.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(end in ids[-3:] for ids in tokenized["input_ids"])
    summary = json_module.loads((dataset / "summary.json").read_text())
    with_tools = [row for row in prepared.trainer.train_dataset if row.get("tools")]
    assert with_tools, "the built set should have booking examples with tool schemas"
    assert summary["tokens"]["max"] > 0


def test_examples_longer_than_the_recipe_allows_are_refused_with_their_count(built, tmp_path):
    dataset, _ = built
    recipe = load_recipe("qwen3-tiny").model_copy(update={"max_seq_length": 256})
    lengths = train.measured_lengths(recipe, dataset)
    assert 0 < lengths.over < lengths.examples
    with pytest.raises(train.BadInput, match=rf"{lengths.over:,} of \S+ examples are longer than .*max_seq_length 256"):
        train.prepare(recipe, load_hardware("laptop-cpu"), dataset, tmp_path / "run", train.TrainSettings(max_steps=1))


def test_plan_with_a_dataset_reports_the_measured_longest_example_and_how_many_do_not_fit(built, tmp_path):
    from typer.testing import CliRunner

    dataset, _ = built
    recipe = tmp_path / "short.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(load_recipe("qwen3-tiny").model_copy(update={"max_seq_length": 256})
                                     .model_dump(mode="json")))
    result = CliRunner().invoke(app, ["plan", "--model", str(recipe), "--hardware", "laptop-cpu", "--dataset",
                                      str(dataset)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "longest example (measured)" in text and "examples over max_seq_length" in text
    assert "train refuses them rather than cut their answers off" in text


# --------------------------------------------------------------------------- Unsloth first


STUB_UNSLOTH = '''
import json, os, sys
with open(os.environ["UNSLOTH_STUB_RECORD"], "w") as record:
    json.dump([name for name in ("transformers", "trl", "peft") if name in sys.modules], record)
'''


@pytest.mark.parametrize("entry", ["cli", "notebook"])
def test_unsloth_is_imported_before_transformers_trl_and_peft(entry, built, tmp_path):
    """A stub `unsloth` records what was already imported when it was; the run then stops at the missing GPU."""
    import os
    import subprocess

    dataset, _ = built
    stub = tmp_path / "stub" / "unsloth"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(STUB_UNSLOTH)
    record = tmp_path / "imported-before-unsloth.json"
    root = Path(__file__).resolve().parent.parent
    env = os.environ | {"PYTHONPATH": f"{stub.parent}{os.pathsep}{root}", "UNSLOTH_STUB_RECORD": str(record),
                        "CUDA_VISIBLE_DEVICES": ""}
    if entry == "cli":
        command = [sys.executable, "-m", "hibachi_lab.cli", "train", "--model", "qwen3-8b", "--hardware", "colab-t4",
                   "--dataset", str(dataset), "--out", str(tmp_path / "run"), "--no-mlflow"]
    else:  # what the notebooks run, after their plan cell
        command = [sys.executable, "-c", (
                   "from hibachi_lab import plan, train\n"
                   "from hibachi_lab.recipes import load_hardware, load_recipe\n"
                   "recipe, hardware = load_recipe('qwen3-8b'), load_hardware('colab-t4')\n"
                   f"tokens, longest = plan.dataset_tokens({str(dataset)!r})\n"
                   "print(plan.make_plan(recipe, hardware, tokens, longest).summary_line())\n"
                   f"train.train_and_evaluate(recipe, hardware, {str(dataset)!r}, {str(tmp_path)!r}, max_steps=1)\n")]
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
    assert "needs a CUDA GPU" in finished.stderr, finished.stderr[-2000:]
    assert json.loads(record.read_text()) == []


# --------------------------------------------------------------------------- one GPU per DDP rank


@pytest.mark.parametrize("rank, expected", [(None, {"": 0}), ("0", {"": 0}), ("1", {"": 1})])
def test_each_ddp_rank_loads_the_4_bit_base_on_its_own_gpu(rank, expected, monkeypatch, recorded_loads):
    if rank is None:
        monkeypatch.delenv("LOCAL_RANK", raising=False)
    else:
        monkeypatch.setenv("LOCAL_RANK", rank)
    loaded = recorded_loads
    chosen = train.make_plan(load_recipe("qwen3-8b"), T4X2, backend="peft")
    assert chosen.multi_gpu == "ddp" and chosen.weight_bits == 4
    assert train._load_peft_base(load_recipe("qwen3-8b"), chosen) == "model"
    assert loaded["device_map"] == expected and loaded["name"] == "Qwen/Qwen3-8B"
    assert loaded["quantization_config"].load_in_4bit


def test_a_model_split_across_cards_and_the_cpu_keep_their_placement():
    cpu_plan = train.make_plan(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"))
    assert train.plan_device_map(cpu_plan) is None
    split = train.make_plan(load_recipe("qwen3-8b"), T4X2, backend="peft")
    split.multi_gpu = "model_split"
    assert train.plan_device_map(split) == "auto"


# --------------------------------------------------------------------------- resuming from an attached input


@pytest.mark.slow  # trains twice per folder shape
@pytest.mark.parametrize("attach", ["checkpoints", "checkpoint", "run"])
def test_a_run_continues_from_checkpoints_attached_read_only(attach, built, tmp_path):
    """Kaggle "Save Version" keeps nothing in /kaggle/working: the last session's checkpoints come back as a
    read-only input, and training goes on from there in a fresh output folder."""
    import os
    import shutil
    import stat

    dataset, _ = built
    recipe, cpu = load_recipe("qwen3-tiny"), load_hardware("laptop-cpu")
    first = tmp_path / "session-1"
    train.train(recipe, cpu, dataset, first, train.TrainSettings(max_steps=2, save_steps=1), track=False)
    attached = tmp_path / "kaggle-input"
    shutil.copytree(first, attached)
    for folder, _, files in os.walk(attached):
        for name in files:
            os.chmod(Path(folder) / name, stat.S_IREAD)
    source = {"checkpoints": attached / "checkpoints", "checkpoint": attached / "checkpoints" / "checkpoint-2",
              "run": attached}[attach]
    resumed = train.train(recipe, cpu, dataset, tmp_path / "session-2",
                          train.TrainSettings(max_steps=4, save_steps=1, resume_from=source), track=False)
    assert resumed.resumed_from_step == 2 and resumed.global_step == 4
    assert sorted(p.name for p in (attached / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_resume_from_refuses_a_folder_without_checkpoints_or_run_record(tmp_path, built):
    dataset, _ = built
    (tmp_path / "empty").mkdir()
    with pytest.raises(train.BadInput, match="no checkpoint there"):
        train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), dataset, tmp_path / "out",
                    train.TrainSettings(max_steps=1, resume_from=tmp_path / "empty"), track=False)
    lone = tmp_path / "lone" / "checkpoint-3"
    lone.mkdir(parents=True)
    (lone / "trainer_state.json").write_text("{}")
    with pytest.raises(train.BadInput, match="no run.json beside the checkpoint"):
        train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), dataset, tmp_path / "out",
                    train.TrainSettings(max_steps=1, resume_from=lone), track=False)
