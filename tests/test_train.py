"""Training on CPU with the smoke models, the planner, and what a GPU would add."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hibachi_lab import plan, train
from hibachi_lab.cli import app
from hibachi_lab.errors import BadInput
from hibachi_lab.recipes import load_hardware, load_recipe, recipe_names

README = Path(__file__).resolve().parent.parent / "README.md"
runner = CliRunner()
CPU = load_hardware("laptop-cpu")


@pytest.fixture(scope="module")
def memorisation_set(built, tmp_path_factory) -> Path:
    """The built dataset cut to 8 training examples, so a few steps can memorise them."""
    import shutil

    import datasets

    source, _ = built
    folder = tmp_path_factory.mktemp("memorise") / "dataset"
    shutil.copytree(source, folder)
    splits = datasets.load_from_disk(str(source / "hf"))
    small = datasets.DatasetDict({"train": splits["train"].select(range(8)), "eval": splits["eval"].select(range(4)),
                                  "gate": splits["gate"]})
    shutil.rmtree(folder / "hf")
    small.save_to_disk(str(folder / "hf"))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("recipe_name", ["qwen3-tiny", "phi3-tiny", "qwen2-tiny"])
def test_each_smoke_architecture_trains_its_family_targets_and_the_loss_goes_down(recipe_name, memorisation_set,
                                                                                   tmp_path):
    recipe = load_recipe(recipe_name)
    settings = train.TrainSettings(max_steps=30, learning_rate=5e-3, save_steps=100)
    result = train.train(recipe, CPU, memorisation_set, tmp_path / "run", settings, track=False)
    assert result.global_step == 30
    first, last = result.losses[0][1], result.losses[-1][1]
    assert last < first * 0.8
    adapter_config = (tmp_path / "run" / "adapter" / "adapter_config.json").read_text()
    for module in recipe.lora.target_modules:
        assert f'"{module}"' in adapter_config
    card = (tmp_path / "run" / "README.md").read_text()
    assert "smoke model" in card and "not a student" in card


def watch_training(monkeypatch) -> dict:
    """Keep the trainer that train() builds, and record the steps it runs in this call (not those restored)."""
    from transformers import TrainerCallback

    seen: dict = {"steps": []}

    class StepsRun(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen["steps"].append(state.global_step)

    real_prepare = train.prepare

    def prepare(*args, **kwargs):
        prepared = real_prepare(*args, **kwargs)
        prepared.trainer.add_callback(StepsRun())
        seen["trainer"] = prepared.trainer
        return prepared

    monkeypatch.setattr(train, "prepare", prepare)
    return seen


@pytest.mark.slow
def test_the_saved_adapter_is_the_trained_one_and_reloads_to_the_same_logits_and_answers(memorisation_set,
                                                                                          tmp_path, monkeypatch):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    seen = watch_training(monkeypatch)
    settings = train.TrainSettings(max_steps=20, learning_rate=5e-3, save_steps=100)
    train.train(load_recipe("qwen3-tiny"), CPU, memorisation_set, out, settings, track=False)
    assert seen["steps"] == list(range(1, 21))

    # LoRA starts with B = 0: an adapter saved before (or without) training has only zero B matrices.
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    lora_b = {name: tensor for name, tensor in weights.items() if "lora_B" in name}
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b.values()), "untrained lora_B in the adapter"

    tokenizer = AutoTokenizer.from_pretrained(out / "adapter")
    trained = seen["trainer"].model.eval()
    base = AutoModelForCausalLM.from_pretrained(out / "base").eval()
    inputs = tokenizer(["How much per adult? We are 12 guests on Saturday."], return_tensors="pt")
    with torch.no_grad():
        trained_logits = trained(**inputs).logits
        base_logits = base(**inputs).logits
        reloaded = PeftModel.from_pretrained(base, out / "adapter").eval()
        reloaded_logits = reloaded(**inputs).logits
    assert not torch.allclose(base_logits, trained_logits, atol=1e-4)  # training moved the model
    torch.testing.assert_close(reloaded_logits, trained_logits, atol=1e-5, rtol=1e-5)

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "How much per adult?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def new_tokens(model) -> list[int]:
        """Greedy answer tokens only: the prompt is cut off, so the count is of generated tokens."""
        with torch.no_grad():
            generated = model.generate(**prompt, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        return generated[0, prompt["input_ids"].shape[1] :].tolist()

    answer = new_tokens(trained)
    assert len(answer) == 12
    assert new_tokens(reloaded) == answer


@pytest.mark.slow
def test_resume_runs_only_the_remaining_steps_from_the_checkpoints_trainer_state(memorisation_set, tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "run"
    recipe = load_recipe("qwen3-tiny")
    first = train.train(recipe, CPU, memorisation_set, out, train.TrainSettings(max_steps=4, save_steps=2),
                        track=False)
    assert (out / "checkpoints" / "checkpoint-4").exists()
    # The folder name is a label: the step is the one the trainer state inside holds.
    (out / "checkpoints" / "checkpoint-4").rename(out / "checkpoints" / "checkpoint-9")
    seen = watch_training(monkeypatch)
    resumed = train.train(recipe, CPU, memorisation_set, out,
                          train.TrainSettings(max_steps=6, save_steps=2, resume=True), track=False)
    assert seen["steps"] == [5, 6]  # only the remaining steps ran
    assert resumed.resumed_from_step == 4
    assert resumed.global_step == 6
    # The curve carries on: the first four steps come from the checkpoint, only 5 and 6 are new.
    assert [step for step, _ in resumed.losses] == [1, 2, 3, 4, 5, 6]
    assert resumed.losses[:4] == first.losses
    assert "steps 6 (resumed from 4)" in (out / "README.md").read_text()


@pytest.mark.slow
def test_resume_from_a_checkpoint_without_its_trainer_state_is_bad_input(memorisation_set, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe("qwen3-tiny")
    train.train(recipe, CPU, memorisation_set, out, train.TrainSettings(max_steps=2, save_steps=2), track=False)
    (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").unlink()
    with pytest.raises(BadInput, match="checkpoint-2/trainer_state.json: cannot read the step it holds"):
        train.train(recipe, CPU, memorisation_set, out, train.TrainSettings(max_steps=4, save_steps=2, resume=True),
                    track=False)


def test_resume_without_a_checkpoint_is_bad_input(memorisation_set, tmp_path):
    with pytest.raises(BadInput, match="no checkpoint"):
        train.train(load_recipe("qwen3-tiny"), CPU, memorisation_set, tmp_path / "fresh",
                    train.TrainSettings(max_steps=2, resume=True), track=False)


@pytest.mark.slow
def test_training_records_an_mlflow_run_with_the_loss_curve(memorisation_set, tmp_path):
    from mlflow.tracking import MlflowClient

    from hibachi_lab import registry

    result = train.train(load_recipe("qwen3-tiny"), CPU, memorisation_set, tmp_path / "run",
                         train.TrainSettings(max_steps=3, save_steps=100), track=True)
    client = MlflowClient(registry.tracking_uri())
    run = client.get_run(result.mlflow_run_id)
    assert run.data.params["recipe"] == "qwen3-tiny"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 3
    assert run.data.metrics["tokens_per_second"] > 0
    assert "adapter/adapter_config.json" in [f.path for f in client.list_artifacts(run.info.run_id, "adapter")]


def test_the_planner_refuses_infeasible_pairs_and_names_the_nearest_feasible_one():
    with pytest.raises(BadInput, match="qwen3-32b does not fit laptop-cpu.*Nearest feasible: qwen3-32b on colab-a100"):
        plan.make_plan(load_recipe("qwen3-32b"), CPU)


@pytest.mark.parametrize("hardware", ["kaggle-t4x2", "kaggle-p100", "colab-t4"])
def test_the_planner_picks_fp16_where_bf16_is_missing(hardware):
    chosen = plan.make_plan(load_recipe("qwen3-8b"), load_hardware(hardware))
    assert chosen.precision == "fp16"


def test_the_planner_uses_both_t4s_and_keeps_unsloth_off_the_p100():
    assert plan.make_plan(load_recipe("qwen3-8b"), load_hardware("kaggle-t4x2")).multi_gpu == "ddp"
    assert plan.make_plan(load_recipe("qwen3-8b"), load_hardware("kaggle-p100")).backend == "peft"
    assert plan.make_plan(load_recipe("qwen3-8b"), load_hardware("colab-a100")).precision == "bf16"
    with pytest.raises(BadInput, match="backend unsloth: not available"):
        plan.make_plan(load_recipe("qwen3-8b"), load_hardware("kaggle-p100"), backend="unsloth")


def test_phi4_lora_targets_are_its_fused_projections():
    recipe = load_recipe("phi-4")
    assert recipe.lora.target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert recipe.lora_params() > 0


def test_plan_command_exits_2_on_an_infeasible_pair():
    result = runner.invoke(app, ["plan", "--model", "qwen3-32b", "--hardware", "laptop-cpu"])
    assert result.exit_code == 2
    assert "Nearest feasible" in " ".join(result.output.split())


def test_the_readme_plan_table_is_what_the_planner_says():
    rows = plan.plan_table()
    text = README.read_text()
    for row in rows:
        assert f"| {row['model']} | {row['hardware']} | {row['plan']} |" in text
    assert len(rows) == len(recipe_names()) * 7


def test_the_phi4_and_r1_templates_mask_only_what_the_assistant_says():
    from hibachi_lab.smoke import tiny_tokenizer

    tokenizer = tiny_tokenizer(["How much is it? Our price is $60 per adult."] * 5)
    tokenizer.bos_token = "<|endoftext|>"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How much is it?"},
                {"role": "assistant", "content": "Our price is $60 per adult."}]
    for name, template in train.TEMPLATES.items():
        rendered = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                                 return_assistant_tokens_mask=True)
        learned = tokenizer.decode([t for t, m in zip(rendered["input_ids"], rendered["assistant_masks"], strict=True)
                                    if m])
        assert learned.startswith("Our price is $60 per adult."), name
        assert "How much" not in learned and "Be brief" not in learned, name


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Unsloth backend needs a CUDA GPU; none is present")
def test_unsloth_backend_trains_a_few_steps(memorisation_set, tmp_path):
    recipe = load_recipe("qwen3-8b")
    result = train.train(recipe, load_hardware("colab-t4"), memorisation_set, tmp_path / "run",
                         train.TrainSettings(max_steps=2, backend="unsloth"), track=False)
    assert result.global_step == 2


@pytest.mark.slow
def test_an_output_folder_with_another_runs_checkpoints_needs_resume_or_overwrite(memorisation_set, tmp_path):
    out = tmp_path / "run"
    recipe = load_recipe("qwen3-tiny")
    train.train(recipe, CPU, memorisation_set, out, train.TrainSettings(max_steps=2, save_steps=1), track=False)
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    reused = runner.invoke(app, ["train", "--model", "qwen3-tiny", "--hardware", "laptop-cpu", "--dataset",
                                 str(memorisation_set), "--out", str(out), "--max-steps", "1", "--no-mlflow"])
    assert reused.exit_code == 2
    assert (f"{out}: holds the checkpoints of another run (qwen3-tiny on dataset "
            in " ".join(reused.output.split()))
    assert "pass --resume to continue it, --overwrite to discard them" in " ".join(reused.output.split())

    train.train(recipe, CPU, memorisation_set, out,
                train.TrainSettings(max_steps=1, save_steps=1, learning_rate=1e-3, overwrite=True), track=False)
    assert [p.name for p in (out / "checkpoints").glob("checkpoint-*")] == ["checkpoint-1"]  # the old ones are gone


@pytest.mark.slow
def test_resume_refuses_checkpoints_of_another_model_dataset_or_settings(memorisation_set, tmp_path):
    import json
    import shutil

    out = tmp_path / "run"
    train.train(load_recipe("qwen3-tiny"), CPU, memorisation_set, out, train.TrainSettings(max_steps=1, save_steps=1),
                track=False)
    recorded = json.loads((out / "checkpoints" / train.RUN_RECORD).read_text())
    assert recorded["recipe"] == "qwen3-tiny" and recorded["learning_rate"] == 2e-4
    other_data = tmp_path / "other-dataset"
    shutil.copytree(memorisation_set, other_data)
    summary = json.loads((other_data / "summary.json").read_text())
    (other_data / "summary.json").write_text(json.dumps(summary | {"digest": "0" * 64}))

    resume = train.TrainSettings(max_steps=2, resume=True)
    for recipe, dataset, settings, difference in [
        ("phi3-tiny", memorisation_set, resume, "recipe 'qwen3-tiny', not 'phi3-tiny'"),
        ("qwen3-tiny", other_data, resume, f"dataset_digest {recorded['dataset_digest']!r}, not '{'0' * 64}'"),
        ("qwen3-tiny", memorisation_set, train.TrainSettings(max_steps=2, resume=True, learning_rate=1e-3),
         "learning_rate 0.0002, not 0.001"),
    ]:
        with pytest.raises(BadInput, match="belong to another run") as refused:
            train.train(load_recipe(recipe), CPU, dataset, out, settings, track=False)
        assert difference in str(refused.value)
    assert [p.name for p in (out / "checkpoints").glob("checkpoint-*")] == ["checkpoint-1"]


def test_training_shows_its_loss_in_the_progress_bar_and_no_known_library_warning(memorisation_set, tmp_path, capfd):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train.train(load_recipe("qwen3-tiny"), CPU, memorisation_set, tmp_path / "run",
                             train.TrainSettings(max_steps=3, save_steps=100), track=False)
    assert result.global_step == 3 and len(result.losses) == 3
    printed = "".join(capfd.readouterr())
    assert "{'loss'" not in printed and "'train_runtime'" not in printed  # no raw log dicts
    assert not [str(w.message) for w in caught if "checkpointing" in str(w.message)]


def test_the_trainer_reports_through_one_progress_bar(memorisation_set, tmp_path):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    prepared = train.prepare(load_recipe("qwen3-tiny"), CPU, memorisation_set, tmp_path / "run",
                             train.TrainSettings(max_steps=1))
    kinds = [type(callback).__name__ for callback in prepared.trainer.callback_handler.callbacks]
    assert "TrainingProgress" in kinds
    assert ProgressCallback.__name__ not in kinds and PrinterCallback.__name__ not in kinds


def test_a_cpu_plan_of_the_smoke_model_gives_real_memory_and_time(memorisation_set):
    import json
    import math

    summary = json.loads((memorisation_set / "summary.json").read_text())
    result = runner.invoke(app, ["plan", "--model", "qwen3-tiny", "--hardware", "laptop-cpu", "--dataset",
                                 str(memorisation_set)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert " 0 GB" not in text and "0.00 GB" not in text and "~0.00 h" not in text
    assert "<0.1 GB / <0.1 GB / <0.1 GB" in text and re.search(r"memory: total │ \d+\.\d GB", text)
    assert re.search(r"time per epoch │ ~\d+ (s|min) \(an estimate\)", text)
    assert "stated by the laptop-cpu profile" in text

    chosen = plan.make_plan(load_recipe("qwen3-tiny"), CPU, *plan.dataset_tokens(memorisation_set),
                            train_examples=plan.dataset_examples(memorisation_set))
    steps = math.ceil(summary["per_split"]["train"] / (chosen.batch_size * chosen.gradient_accumulation))
    assert chosen.steps_per_epoch == steps
    assert chosen.seconds_per_step > CPU.step_overhead_seconds
    assert chosen.hours_per_epoch == pytest.approx(steps * chosen.seconds_per_step / 3600, abs=1e-4)


def test_the_plan_takes_the_step_time_a_training_run_measured(memorisation_set, tmp_path):
    recipe = load_recipe("qwen3-tiny")
    before = plan.make_plan(recipe, CPU)
    assert "stated by the laptop-cpu profile" in before.time_basis
    train.train(recipe, CPU, memorisation_set, tmp_path / "run", train.TrainSettings(max_steps=2, save_steps=100),
                track=False)
    after = plan.make_plan(recipe, CPU)
    assert after.time_basis.startswith("measured over the last 2 steps trained of qwen3-tiny on laptop-cpu")
    assert after.seconds_per_step > 0 and after.hours_per_epoch == pytest.approx(
        after.steps_per_epoch * after.seconds_per_step / 3600, abs=1e-4)
    assert "measured" not in plan.make_plan(recipe, CPU, measured=False).time_basis
