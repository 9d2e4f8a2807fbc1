"""A trained adapter's base for merging and generating, where it is loaded, and whether the GPU can run it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from hibachi_lab import gpu, ollama, students, train
from hibachi_lab.errors import BadInput
from hibachi_lab.recipes import load_hardware, load_recipe

UNSLOTH_BASE = "unsloth/Qwen2-tiny-unsloth-bnb-4bit"


@pytest.fixture(scope="module")
def unsloth_style_adapter(built, tmp_path_factory) -> tuple[Path, Path]:
    """An adapter whose config names an Unsloth 4-bit repo as its base, as Unsloth training writes it, and the
    16-bit base (the tiny model standing in for the recipe's hub id) in a folder of its own."""
    dataset, _ = built
    run = tmp_path_factory.mktemp("unsloth-style") / "run"
    train.train(load_recipe("qwen2-tiny"), load_hardware("laptop-cpu"), dataset, run,
                train.TrainSettings(max_steps=1, save_steps=100), track=False)
    sixteen_bit = run.parent / "hub" / "Qwen2-tiny"
    shutil.move(run / "base", sixteen_bit)
    config = run / "adapter" / "adapter_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"base_model_name_or_path": UNSLOTH_BASE}))
    (run / "adapter" / students.RECIPE_RECORD).unlink()  # as from an older hibachi-lab
    return run / "adapter", sixteen_bit


def _recipe(sixteen_bit: Path):
    return load_recipe("qwen2-tiny").model_copy(update={"hub_id": str(sixteen_bit), "unsloth_id": UNSLOTH_BASE})


def test_export_of_an_unsloth_adapter_merges_onto_the_16_bit_base(unsloth_style_adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the 4-bit repo must not even be looked up
    adapter, sixteen_bit = unsloth_style_adapter
    exported = ollama.export(adapter, _recipe(sixteen_bit), tmp_path / "export", "Be brief.", gguf=False)
    assert exported.base == str(sixteen_bit)
    merged = json.loads((tmp_path / "export" / "merged" / "config.json").read_text())
    assert merged["architectures"] == ["Qwen2ForCausalLM"] and "quantization_config" not in merged


def test_the_base_for_merging_maps_prequantised_ids_to_the_recipes_hub_id(unsloth_style_adapter):
    adapter, sixteen_bit = unsloth_style_adapter
    assert students.base_model(adapter, _recipe(sixteen_bit), sixteen_bit=True) == str(sixteen_bit)
    # Generation may load what the adapter names.
    assert students.base_model(adapter, sixteen_bit=False) == UNSLOTH_BASE
    with pytest.raises(BadInput, match="pre-quantised .* pass --model"):
        students.base_model(adapter, None, sixteen_bit=True)
    for name in ("unsloth/Qwen3-8B-unsloth-bnb-4bit", "unsloth/phi-4", "someone/model-bnb-4bit"):
        assert students.is_prequantised(name)
    assert not students.is_prequantised("Qwen/Qwen3-8B")


def test_a_recorded_or_stock_recipe_names_the_16_bit_base(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "unsloth/DeepSeek-R1-Distill-Qwen-7B-unsloth-bnb-4bit"}))
    assert students.base_model(adapter) == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    (adapter / students.RECIPE_RECORD).write_text(load_recipe("qwen3-8b").model_dump_json())
    assert students.base_model(adapter) == "Qwen/Qwen3-8B"


# --------------------------------------------------------------------------- where bases are loaded


def test_with_a_gpu_bases_load_on_it_in_half_precision(monkeypatch, recorded_loads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert students.inference_placement() == ("cuda", torch.float16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: (8, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert students.inference_placement() == ("cuda", torch.bfloat16)
    assert students.load_base("Qwen/Qwen3-8B") == "model"
    assert recorded_loads == {"name": "Qwen/Qwen3-8B", "dtype": torch.bfloat16, "device_map": "cuda"}


def test_without_a_gpu_bases_load_on_the_cpu_in_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert students.inference_placement() == ("cpu", torch.float32)


# --------------------------------------------------------------------------- a torch without the card's kernels


def _fake_gpu(monkeypatch, capability, arch_list, name="Tesla P100-PCIE-16GB"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch_list)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=0: name)


def test_a_p100_with_a_torch_built_from_sm_70_is_refused_saying_what_to_install(monkeypatch):
    _fake_gpu(monkeypatch, (6, 0), ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"])
    with pytest.raises(BadInput, match=r"Tesla P100.*sm_60.*built for sm_70.*whl/cu126") as refused:
        gpu.require_kernels_for_this_gpu()
    assert "restart the kernel" in str(refused.value)
    # train checks it before loading anything on the card
    with pytest.raises(BadInput, match="sm_60"):
        train._require_cuda(load_hardware("kaggle-p100"))


@pytest.mark.parametrize("capability, arch_list", [
    ((6, 0), ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]),  # a CUDA 12.6 build
    ((7, 5), ["sm_70", "sm_75", "sm_80"]),
    ((8, 9), ["sm_80", "sm_86", "compute_86"]),  # PTX for an older architecture is compiled for the card
])
def test_a_build_with_the_cards_kernels_or_ptx_is_accepted(monkeypatch, capability, arch_list):
    _fake_gpu(monkeypatch, capability, arch_list)
    gpu.require_kernels_for_this_gpu()
    assert gpu.has_kernels(capability, arch_list)


def test_ptx_for_a_newer_architecture_does_not_run_on_an_older_card():
    assert not gpu.has_kernels((6, 0), ["sm_70", "compute_70"])
