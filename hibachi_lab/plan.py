"""The training planner: will this model train on this hardware, how, and for how long? No weights are loaded.

Memory (per device) = weights (at the chosen bits) + LoRA parameters with their gradients and
Adam state (16 bytes each) + activations with gradient checkpointing (one hidden state per layer,
one layer recomputed, fp32 logits and their gradient) + framework overhead. Time per epoch =
8 x parameters x tokens (forward, backward, recomputation) at 35% of the profile's TFLOPS.
These are estimates for choosing settings, not promises; the training run logs what it used.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hibachi_lab.errors import BadInput
from hibachi_lab.recipes import (
    HardwareProfile,
    ModelRecipe,
    hardware_names,
    load_hardware,
    load_recipe,
    recipe_names,
)

GB = 1024**3
EFFECTIVE_BATCH = 16
UTILISATION = 0.35
ASSUMED_TOKENS = 1_000_000
_OVERHEAD_GB = {"cuda": 1.0, "cpu": 3.0}
_USABLE = 0.9  # of a device's memory; the rest is fragmentation and the unexpected


@dataclass
class Plan:
    model: str
    hardware: str
    backend: str
    weight_bits: int
    precision: str
    batch_size: int
    gradient_accumulation: int
    sequence_length: int
    multi_gpu: str | None
    memory_gb: dict[str, float]
    weights_gb_at_bits: dict[int, float]
    lora_parameters: int
    tokens_per_epoch: int
    tokens_assumed: bool
    hours_per_epoch: float
    warnings: list[str] = field(default_factory=list)
    # Measured with the recipe's tokenizer and chat template (train.measure): examples, longest, total,
    # sequence_length, over (examples that do not fit max_seq_length). None: not measured.
    lengths: dict[str, int] | None = None
    hardware_devices: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def replicas(self) -> int:
        """Processes that each train on their own batches (DDP: one per card)."""
        return int(self.hardware_devices) if self.multi_gpu == "ddp" else 1

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.gradient_accumulation * self.replicas

    def summary_line(self) -> str:
        split = f", {self.multi_gpu} x {self.replicas}" if self.multi_gpu == "ddp" else (
            f", {self.multi_gpu}" if self.multi_gpu else "")
        return (f"{self.backend}, {self.weight_bits}-bit weights, {self.precision}, batch {self.batch_size} x "
                f"{self.gradient_accumulation} accumulation{split}, {self.memory_gb['total']:.1f} GB per device, "
                f"~{self.hours_per_epoch:.1f} h/epoch")


def memory_gb(recipe: ModelRecipe, bits: int, batch: int, sequence: int, compute_bytes: int,
              hardware: HardwareProfile, devices_sharing_weights: int = 1) -> dict[str, float]:
    s = recipe.size
    weights = recipe.params * bits / 8
    if bits == 4:
        # Embeddings and the output head stay in 16 bit; quantisation constants add ~6%.
        weights = weights * 1.06 + 2 * s.vocab * s.hidden * 2 * (1 - bits / 16)
    lora = recipe.lora_params() * 16
    checkpoints = s.layers * batch * sequence * s.hidden * compute_bytes
    one_layer = batch * sequence * (12 * s.hidden + 4 * s.intermediate) * compute_bytes
    logits = batch * sequence * s.vocab * 4 * 2
    parts = {
        "weights": weights / devices_sharing_weights / GB,
        "lora_and_optimizer": lora / GB,
        "activations": (checkpoints + one_layer + logits) / GB,
        "overhead": _OVERHEAD_GB[hardware.device],
    }
    parts["total"] = sum(parts.values())
    return {key: round(value, 2) for key, value in parts.items()}


def _precision(hardware: HardwareProfile) -> tuple[str, int]:
    if hardware.bf16:
        return "bf16", 2
    return ("fp16", 2) if hardware.device == "cuda" else ("fp32", 4)


def make_plan(recipe: ModelRecipe, hardware: HardwareProfile, dataset_tokens: int | None = None,
              sequence_length: int | None = None, backend: str | None = None) -> Plan:
    """The highest precision that fits, then the largest batch; raises BadInput naming the nearest feasible pair."""
    found = _search(recipe, hardware, sequence_length, backend)
    if found is None:
        raise BadInput(_infeasible_message(recipe, hardware, sequence_length))
    bits, batch, sequence, multi_gpu, memory, chosen_backend = found
    precision, _ = _precision(hardware)
    tokens = dataset_tokens or ASSUMED_TOKENS
    speedup = hardware.devices if multi_gpu == "ddp" else 1
    flops = 8 * recipe.params * tokens * (1.3 if bits == 4 else 1.0)
    hours = flops / (hardware.tflops * 1e12 * UTILISATION * speedup) / 3600
    warnings = []
    if hardware.session_hours and hours > hardware.session_hours:
        warnings.append(f"an epoch (~{hours:.1f} h) outlasts a {hardware.session_hours:g} h session: "
                        f"checkpoint and continue with --resume (~{math.ceil(hours / hardware.session_hours)} sessions)")
    if hardware.device == "cpu" and not recipe.smoke:
        warnings.append("CPU training of a real model is very slow; use it for checks, a GPU for students")
    return Plan(
        model=recipe.name, hardware=hardware.name, backend=chosen_backend, weight_bits=bits, precision=precision,
        # The effective batch is EFFECTIVE_BATCH however many cards share it: DDP's replicas each add a batch.
        batch_size=batch, gradient_accumulation=max(1, EFFECTIVE_BATCH // (batch * speedup)),
        sequence_length=sequence,
        multi_gpu=multi_gpu, memory_gb=memory,
        weights_gb_at_bits={b: round(recipe.params * b / 8 / GB, 1) for b in (4, 8, 16)},
        lora_parameters=recipe.lora_params(), tokens_per_epoch=tokens, tokens_assumed=dataset_tokens is None,
        hours_per_epoch=round(hours, 2), warnings=warnings, hardware_devices=hardware.devices,
    )


def _search(recipe: ModelRecipe, hardware: HardwareProfile, sequence_length: int | None, backend: str | None):
    _, compute_bytes = _precision(hardware)
    sequence = min(sequence_length or recipe.max_seq_length, recipe.max_seq_length)
    if backend == "unsloth" and not (hardware.unsloth and recipe.unsloth_id):
        raise BadInput(f"--backend unsloth: not available for {recipe.name} on {hardware.name} "
                       f"({'no Unsloth build of the model' if not recipe.unsloth_id else 'Unsloth does not run there'})")
    chosen_backend = backend or ("unsloth" if hardware.unsloth and recipe.unsloth_id and not recipe.smoke else "peft")
    # 4-bit (QLoRA) needs bitsandbytes on CUDA; 8-bit is estimated but never picked (slower, no better).
    full = 16 if compute_bytes == 2 else 32
    candidates = [full, 4] if hardware.device == "cuda" else [full]
    usable = hardware.memory_gb * _USABLE
    layouts = [(None, 1)] if hardware.devices == 1 else [("ddp", 1), ("model_split", hardware.devices)]
    # Several cards: data parallel (a copy on each) first, at any precision; split the model only when no copy fits.
    for multi_gpu, sharing in layouts:
        for bits in candidates:
            for batch in (8, 4, 2, 1):
                memory = memory_gb(recipe, bits, batch, sequence, compute_bytes, hardware, sharing)
                if memory["total"] <= usable:
                    return bits, batch, sequence, multi_gpu, memory, chosen_backend
    return None


def _infeasible_message(recipe: ModelRecipe, hardware: HardwareProfile, sequence_length: int | None) -> str:
    _, compute_bytes = _precision(hardware)
    sequence = min(sequence_length or recipe.max_seq_length, recipe.max_seq_length)
    smallest_bits = 4 if hardware.device == "cuda" else (16 if compute_bytes == 2 else 32)
    need = memory_gb(recipe, smallest_bits, 1, sequence, compute_bytes, hardware, hardware.devices)["total"]
    why = "" if hardware.device == "cuda" else " (4-bit loading needs a CUDA GPU)"
    return (f"{recipe.name} does not fit {hardware.name}: it needs ~{need:.0f} GB even at {smallest_bits}-bit with "
            f"batch 1 and {sequence} tokens{why}; the profile has {hardware.memory_gb:g} GB per device, "
            f"{_USABLE:.0%} of it usable. Nearest feasible: {nearest_feasible(recipe, hardware)}")


def nearest_feasible(recipe: ModelRecipe, hardware: HardwareProfile) -> str:
    options = []
    profiles = sorted((load_hardware(name) for name in hardware_names()), key=lambda h: h.memory_gb * h.devices)
    elsewhere = next((h.name for h in profiles if _search(recipe, h, None, None) is not None), None)
    if elsewhere:
        options.append(f"{recipe.name} on {elsewhere}")
    smaller = sorted((load_recipe(name) for name in recipe_names()), key=lambda r: -r.params)
    here = next((r.name for r in smaller if r.params < recipe.params and _search(r, hardware, None, None)), None)
    if here:
        options.append(f"{here} on {hardware.name}")
    if not options:
        return f"no recipe fits {hardware.name}; a smoke model (qwen3-tiny) checks the pipeline there"
    return " or ".join(options)


def dataset_tokens(dataset_dir: str | os.PathLike | None) -> tuple[int | None, int | None]:
    """(training tokens per epoch, longest example) from a built dataset's summary; (None, None) without one."""
    if dataset_dir is None:
        return None, None
    path = Path(dataset_dir) / "summary.json"
    if not path.exists():
        raise BadInput(f"{dataset_dir}: no summary.json; is it a folder written by build-dataset?")
    summary = json.loads(path.read_text())
    train_share = summary["per_split"]["train"] / max(1, summary["examples_out"])
    return int(summary["tokens"]["total"] * train_share), int(summary["tokens"]["max"])


def plan_table() -> list[dict[str, str]]:
    """Every recipe x profile: the plan or why not. The README's table is this."""
    rows = []
    for model in recipe_names():
        for hardware in hardware_names():
            try:
                plan = make_plan(load_recipe(model), load_hardware(hardware))
                verdict = plan.summary_line()
            except BadInput as exc:
                verdict = "does not fit: nearest feasible " + str(exc).split("Nearest feasible: ")[1]
            rows.append({"model": model, "hardware": hardware, "plan": verdict})
    return rows
