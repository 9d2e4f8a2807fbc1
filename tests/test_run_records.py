"""What a run records and exports: the effective batch on several GPUs, Unsloth's base and targets, Ollama's
parameters and quantisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hibachi_lab import ollama, plan, registry, train
from hibachi_lab.recipes import hardware_names, load_hardware, load_recipe, recipe_names

from .ollama_double import OllamaDouble


@pytest.mark.parametrize("hardware", hardware_names())
@pytest.mark.parametrize("model", recipe_names())
def test_the_effective_batch_is_16_on_one_gpu_or_two(model, hardware):
    try:
        chosen = plan.make_plan(load_recipe(model), load_hardware(hardware))
    except plan.BadInput:
        return
    assert chosen.effective_batch == plan.EFFECTIVE_BATCH == 16
    if chosen.multi_gpu == "ddp":
        assert chosen.replicas == 2 and chosen.batch_size * chosen.gradient_accumulation == 8


def _fake_result(out: Path, chosen) -> train.TrainResult:
    return train.TrainResult(out=out, plan=chosen, global_step=3, resumed_from_step=0, losses=[(1, 2.0), (3, 1.0)],
                             tokens_per_second=100.0, peak_memory_gb=5.0, mlflow_run_id=None)


def test_an_unsloth_run_records_unsloths_base_and_targets(tmp_path, monkeypatch):
    recipe = load_recipe("phi-4")
    chosen = plan.make_plan(recipe, load_hardware("colab-t4"))
    assert chosen.backend == "unsloth"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    summary = {"digest": "d" * 64, "per_split": {"train": 10}}
    result = _fake_result(tmp_path, chosen)
    train._write_card(tmp_path, recipe, load_hardware("colab-t4"), chosen, summary, result, None)
    card = (tmp_path / "README.md").read_text()
    assert "base: unsloth/phi-4-unsloth-bnb-4bit (merged for Ollama onto microsoft/phi-4)" in card
    assert "targets q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in card
    assert "qkv_proj" not in card and "= 16 per step" in card
    logged = {}
    monkeypatch.setattr(registry, "log_run", lambda experiment, name, params, *a, **k: logged.update(params) or "run")
    train._track(tmp_path, recipe, load_hardware("colab-t4"), chosen, summary, result, None)
    assert logged["base"] == "unsloth/phi-4-unsloth-bnb-4bit" and logged["hub_id"] == "microsoft/phi-4"
    assert logged["target_modules"] == "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    # Without Unsloth the original's fused projections are trained.
    peft_plan = plan.make_plan(recipe, load_hardware("kaggle-p100"))
    assert train.trained_targets(recipe, peft_plan) == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert train.trained_base(recipe, peft_plan) == "microsoft/phi-4"


def test_ollama_models_get_the_modelfiles_num_ctx_and_one_quantisation(built, tmp_path, monkeypatch):
    dataset, _ = built
    run = tmp_path / "run"
    recipe = load_recipe("qwen2-tiny")
    train.train(recipe, load_hardware("laptop-cpu"), dataset, run, train.TrainSettings(max_steps=1, save_steps=100),
                track=False)
    exported = ollama.export(run / "adapter", recipe, tmp_path / "export", "Be brief.", gguf=False)
    modelfile = exported.modelfile.read_text()
    assert f"PARAMETER num_ctx {ollama.NUM_CTX}" in modelfile
    with OllamaDouble(lambda model, messages: "ok") as double:
        monkeypatch.setenv("OLLAMA_HOST", double.url)
        ollama.create("hibachi-tiny", exported, recipe, "Be brief.")
        created = double.models["hibachi-tiny"]
    assert created["parameters"]["num_ctx"] == ollama.NUM_CTX == 4096
    assert created["quantize"] == ollama.QUANTIZATION == "q8_0"
    assert ollama.create_command(exported).endswith("--quantize q8_0")
    # A GGUF is written q8_0 by the converter; Ollama is not asked to quantise it again.
    gguf = ollama.Export(tmp_path, tmp_path / "model.gguf", tmp_path / "Modelfile", "Qwen3ForCausalLM", "base")
    assert ollama.create_quantization(gguf) is None and "--quantize" not in ollama.create_command(gguf)


# --------------------------------------------------------------------------- the memory model


def test_the_memory_model_is_within_30_percent_of_unsloths_published_needs():
    rows = plan.reference_table()
    assert {row["model"] for row in rows} >= {"deepseek-r1-7b", "qwen3-8b", "phi-4", "qwen3-32b"}
    for row in rows:
        assert 0.7 <= row["ratio"] <= 1.3, row


def test_7b_and_8b_students_fit_an_8_gb_gpu():
    gpu8 = load_hardware("laptop-gpu-8gb")
    r1 = plan.make_plan(load_recipe("deepseek-r1-7b"), gpu8)
    assert r1.backend == "unsloth" and r1.weight_bits == 4 and r1.memory_gb["total"] <= 8 * 0.9
    qwen = plan.make_plan(load_recipe("qwen3-8b"), gpu8, sequence_length=1024)
    assert qwen.memory_gb["total"] <= 8 * 0.9
    assert plan.longest_sequence_that_fits(load_recipe("qwen3-8b"), gpu8) >= 1024
    with pytest.raises(plan.BadInput, match="fits with sequences up to 1344 tokens"):
        plan.make_plan(load_recipe("qwen3-8b"), gpu8)


def test_a_model_split_across_cards_trains_with_peft_not_unsloth():
    split = plan.make_plan(load_recipe("qwen3-32b"), load_hardware("kaggle-t4x2"), sequence_length=512)
    assert split.multi_gpu == "model_split" and split.backend == "peft"


def test_plan_prints_the_unsloth_reference_beside_its_estimate():
    from typer.testing import CliRunner

    from hibachi_lab.cli import app

    result = CliRunner().invoke(app, ["plan", "--model", "deepseek-r1-7b", "--hardware", "laptop-gpu-8gb"])
    assert result.exit_code == 0, result.output
    assert "Unsloth reference" in result.output and "hibachi-lab estimate" in result.output


def test_the_readme_reference_table_is_what_the_planner_says():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for row in plan.reference_table():
        assert (f"| {row['model']} | {row['params_billion']:g} | ~{row['unsloth_gb']:g} | {row['hibachi_gb']:.1f} | "
                f"{row['ratio']:.2f} |") in text
