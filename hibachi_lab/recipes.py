"""Model recipes (configs/models/) and hardware profiles (configs/hardware/), by name or path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from hibachi_lab import CONFIGS
from hibachi_lab.config import StrictConfig, load_yaml_config
from hibachi_lab.errors import BadInput


class ModelSize(StrictConfig):
    """What memory and time estimates need; no weights are read to plan."""

    params_billion: float = Field(gt=0)
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    intermediate: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    vocab: int = Field(ge=1)


class LoraSettings(StrictConfig):
    r: int = Field(16, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str]


class ChatTemplateSettings(StrictConfig):
    enable_thinking: bool | None = Field(None, description="Qwen3: false answers without a thinking block")
    think_blocks: Literal["strip", "keep"] = Field("keep", description="R1 distills: <think> blocks in targets")
    generation_markers: Literal["qwen3", "phi4", "deepseek_r1"] | None = Field(
        None, description="replace the model's template with hibachi-lab's for the family (hibachi_lab.chat_templates): "
                          "{% generation %} markers, tools and tool calls")


class ModelRecipe(StrictConfig):
    name: str
    hub_id: str | None = None
    unsloth_id: str | None = None
    unsloth_target_modules: list[str] | None = None
    family: Literal["qwen3", "qwen2", "phi3", "llama"]
    smoke: bool = Field(False, description="a randomly initialised pipeline check, not a student")
    size: ModelSize
    lora: LoraSettings
    max_seq_length: int = Field(2048, ge=64)
    chat_template: ChatTemplateSettings = ChatTemplateSettings()
    ollama_base: str | None = None

    @property
    def params(self) -> float:
        return self.size.params_billion * 1e9

    def lora_params(self) -> int:
        """Trainable LoRA parameters: r x (inputs + outputs) of every targeted projection in every layer."""
        s = self.size
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        shapes = {"q_proj": (s.hidden, q), "k_proj": (s.hidden, kv), "v_proj": (s.hidden, kv), "o_proj": (q, s.hidden),
                  "qkv_proj": (s.hidden, q + 2 * kv), "gate_proj": (s.hidden, s.intermediate),
                  "up_proj": (s.hidden, s.intermediate), "gate_up_proj": (s.hidden, 2 * s.intermediate),
                  "down_proj": (s.intermediate, s.hidden)}
        per_layer = sum(self.lora.r * sum(shapes[name]) for name in self.lora.target_modules if name in shapes)
        return per_layer * s.layers


class HardwareProfile(StrictConfig):
    name: str
    description: str = ""
    device: Literal["cpu", "cuda"]
    devices: int = Field(1, ge=1)
    memory_gb: float = Field(gt=0, description="per device: GPU memory, or RAM for cpu")
    bf16: bool
    unsloth: bool
    tflops: float = Field(gt=0, description="sustained half-precision TFLOPS per device, for time estimates")
    step_overhead_seconds: float | None = Field(
        None, ge=0, description="seconds an optimizer step takes beyond its compute (data loading, optimizer, "
                                "Python), measured with a smoke model; the time estimate adds it to every step")
    session_hours: float | None = None


def _load(kind: str, name_or_path: str | os.PathLike, model: type):
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIGS / kind / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in (CONFIGS / kind).glob("*.yaml")))
        raise BadInput(f"{name_or_path}: no such {kind.removesuffix('s')} (known: {known})")
    return load_yaml_config(path, model)


def load_recipe(name_or_path: str | os.PathLike) -> ModelRecipe:
    return _load("models", name_or_path, ModelRecipe)


def load_hardware(name_or_path: str | os.PathLike) -> HardwareProfile:
    return _load("hardware", name_or_path, HardwareProfile)


def recipe_names(include_smoke: bool = False) -> list[str]:
    names = sorted(p.stem for p in (CONFIGS / "models").glob("*.yaml"))
    return [name for name in names if include_smoke or not load_recipe(name).smoke]


def hardware_names() -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "hardware").glob("*.yaml"))
