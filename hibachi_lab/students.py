"""A trained adapter's base model and how to load it for generation or merging: shared by evaluate and export.

An adapter trained with Unsloth names Unsloth's pre-quantised repository (``unsloth/...-bnb-4bit``) as its base.
Generation can use it, but merging onto it needs bitsandbytes and gives a 4-bit checkpoint that llama.cpp's
converter refuses ("Quant method is not yet supported") and Ollama cannot import: merges use the recipe's
16-bit hub id instead. On a GPU the base is loaded there, in bf16 where the card has it, else fp16.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hibachi_lab.errors import BadInput
from hibachi_lab.recipes import ModelRecipe, load_recipe, recipe_names

# Written into the adapter folder by train: which recipe (and so which template settings) it was trained from.
RECIPE_RECORD = "hibachi_recipe.json"


def is_prequantised(name: str) -> bool:
    """A pre-quantised checkpoint (Unsloth's dynamic 4-bit uploads, bitsandbytes 4-bit repos)."""
    lowered = str(name).lower()
    return "bnb-4bit" in lowered or lowered.endswith("-4bit") or lowered.startswith("unsloth/")


def adapter_recipe(adapter: str | os.PathLike) -> ModelRecipe | None:
    """The recipe train recorded beside the adapter, or the stock recipe whose hub or Unsloth id it names."""
    adapter = Path(adapter)
    record = adapter / RECIPE_RECORD
    if record.exists():
        return ModelRecipe.model_validate(json.loads(record.read_text()))
    config = adapter / "adapter_config.json"
    if not config.exists():
        return None
    named = json.loads(config.read_text()).get("base_model_name_or_path")
    for name in recipe_names():
        recipe = load_recipe(name)
        if named in (recipe.hub_id, recipe.unsloth_id):
            return recipe
    return None


def base_model(adapter: str | os.PathLike, recipe: ModelRecipe | None = None, sixteen_bit: bool = True) -> str:
    """What to load under the adapter: the smoke model saved beside it, else the base its config names, with a
    pre-quantised (Unsloth) base replaced by the recipe's 16-bit hub id when ``sixteen_bit`` (merging)."""
    adapter = Path(adapter)
    smoke_base = adapter.parent / "base"
    if (smoke_base / "config.json").exists():
        return str(smoke_base)
    config = adapter / "adapter_config.json"
    if not config.exists():
        raise BadInput(f"{adapter}: no adapter_config.json; pass the adapter folder written by train (OUT/adapter)")
    named = json.loads(config.read_text())["base_model_name_or_path"]
    if not (sixteen_bit and is_prequantised(named)):
        return named
    recipe = recipe or adapter_recipe(adapter)
    if recipe is None or not recipe.hub_id:
        raise BadInput(f"{adapter} was trained on the pre-quantised {named}, which cannot be merged into a model "
                       "llama.cpp or Ollama reads; pass --model with the recipe whose 16-bit hub id to merge onto")
    return recipe.hub_id


def inference_placement() -> tuple[str, Any]:
    """(device, dtype) to generate or merge with: the GPU when there is one (bf16 where it has it, else fp16),
    else the CPU in fp32."""
    import torch

    if torch.cuda.is_available():
        from hibachi_lab.gpu import require_kernels_for_this_gpu

        require_kernels_for_this_gpu()
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def load_base(name: str) -> Any:
    """The base model, placed by :func:`inference_placement`."""
    from transformers import AutoModelForCausalLM

    device, dtype = inference_placement()
    return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device)
