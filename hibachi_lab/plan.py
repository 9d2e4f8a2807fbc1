"""The training planner: will this model train on this hardware, how, and for how long? No weights are loaded.

Memory (per device) = weights (blocks at the chosen bits, embeddings and head in 16 bit) + LoRA parameters
with their gradients and optimizer state + activations with gradient checkpointing (PEFT: one hidden state per
layer, one layer recomputed, fp32 logits and their gradient; Unsloth: checkpoints offloaded, chunked loss) +
CUDA overhead, calibrated against Unsloth's published QLoRA needs (see ``memory_gb``).

Time per epoch = optimizer steps x seconds per step. A step's seconds are, in this order: what the
last training run of the same model on the same profile measured (``train`` records it in the
cache folder); else its compute, 8 x parameters x tokens (forward, backward, recomputation) at 35%
of the profile's TFLOPS, plus the per-step overhead the profile states (data loading, optimizer,
Python: what dominates a small model on a CPU). These are estimates for choosing settings, not
promises; the training run logs what it used.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hibachi_lab.errors import BadInput
from hibachi_lab.files import cache_dir, write_text_atomic
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
ASSUMED_TOKENS_PER_EXAMPLE = 250  # without a dataset: a short chat turn with its system prompt
STEP_TIMES = "step_times.json"
_OVERHEAD_GB = {"cuda": 0.5, "cpu": 3.0}
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
    steps_per_epoch: int = 0
    seconds_per_step: float = 0.0
    time_basis: str = ""
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


# Unsloth's published VRAM for QLoRA (its docs' requirements table; short sequences, batch 1), in GB. The plan
# prints its own estimate under the same conditions beside them (``reference_table``).
UNSLOTH_REFERENCE_GB = {"deepseek-r1-7b": 5.0, "qwen3-8b": 6.0, "phi-4": 8.5, "qwen3-32b": 26.0,
                        "deepseek-r1-32b": 26.0}
REFERENCE_SEQUENCE = 512
# 4-bit NF4 with double quantisation: 4 bits a weight plus ~0.13 bits of block constants.
_NF4_BYTES = 4.13 / 8


def memory_gb(recipe: ModelRecipe, bits: int, batch: int, sequence: int, compute_bytes: int,
              hardware: HardwareProfile, devices_sharing_weights: int = 1, backend: str = "peft") -> dict[str, float]:
    """GiB per device, by part.

    Weights: the transformer blocks at ``bits`` (NF4 with its constants at 4), the input embeddings and the
    output head in 16 bit whatever the bits (bitsandbytes and Unsloth leave them unquantised). LoRA: fp32
    weights and gradients plus Adam's two states (16 bytes a parameter; Unsloth's 8-bit Adam: 10). Activations
    with gradient checkpointing: PEFT keeps a hidden state per layer, recomputes one layer and materialises fp32
    logits and their gradient; Unsloth offloads the per-layer checkpoints to CPU memory and computes the loss in
    chunks (one layer and a 16-bit logits buffer on the card). Overhead: the CUDA context and allocator slack.
    Calibrated against Unsloth's published needs (``UNSLOTH_REFERENCE_GB``): within 25% for 7B to 32B.
    """
    s = recipe.size
    weights = weight_bytes(recipe, bits)
    unsloth = backend == "unsloth"
    lora = recipe.lora_params() * (10 if unsloth else 16)
    one_layer = batch * sequence * (12 * s.hidden + 4 * s.intermediate) * compute_bytes
    if unsloth:
        checkpoints = 0
        logits = batch * sequence * s.vocab * 2
    else:
        checkpoints = s.layers * batch * sequence * s.hidden * compute_bytes
        logits = batch * sequence * s.vocab * 4 * 2
    parts = {
        "weights": weights / devices_sharing_weights / GB,
        "lora_and_optimizer": lora / GB,
        "activations": (checkpoints + one_layer + logits) / GB,
        "overhead": _OVERHEAD_GB[hardware.device],
    }
    parts["total"] = sum(parts.values())
    return {key: round(value, 2) for key, value in parts.items()}


def weight_bytes(recipe: ModelRecipe, bits: int) -> float:
    """The transformer blocks at ``bits``, the input embeddings and an untied output head in 16 bit (32 at 32)."""
    s = recipe.size
    embeddings = 2 * s.vocab * s.hidden
    blocks = max(recipe.params - embeddings, 0)
    return blocks * (_NF4_BYTES if bits == 4 else bits / 8) + embeddings * (2 if bits <= 16 else 4)


def reference_table() -> list[dict[str, Any]]:
    """Our estimate under Unsloth's conditions (QLoRA, batch 1, short sequences) beside its published need."""
    from hibachi_lab.recipes import load_hardware

    gpu = load_hardware("laptop-gpu-16gb")
    rows = []
    for name, published in UNSLOTH_REFERENCE_GB.items():
        recipe = load_recipe(name)
        ours = memory_gb(recipe, 4, 1, REFERENCE_SEQUENCE, 2, gpu, backend="unsloth")["total"]
        rows.append({"model": name, "params_billion": recipe.size.params_billion, "unsloth_gb": published,
                     "hibachi_gb": ours, "ratio": round(ours / published, 2)})
    return rows


def _precision(hardware: HardwareProfile) -> tuple[str, int]:
    if hardware.bf16:
        return "bf16", 2
    return ("fp16", 2) if hardware.device == "cuda" else ("fp32", 4)


def make_plan(recipe: ModelRecipe, hardware: HardwareProfile, dataset_tokens: int | None = None,
              sequence_length: int | None = None, backend: str | None = None, train_examples: int | None = None,
              measured: bool = True) -> Plan:
    """The highest precision that fits, then the largest batch; raises BadInput naming the nearest feasible pair.

    ``measured``: use the step time the last training run of this model on this profile recorded.
    """
    found = _search(recipe, hardware, sequence_length, backend)
    if found is None:
        raise BadInput(_infeasible_message(recipe, hardware, sequence_length, backend))
    bits, batch, sequence, multi_gpu, memory, chosen_backend = found
    precision, _ = _precision(hardware)
    tokens = dataset_tokens or ASSUMED_TOKENS
    examples = train_examples or max(1, round(tokens / ASSUMED_TOKENS_PER_EXAMPLE))
    speedup = hardware.devices if multi_gpu == "ddp" else 1
    accumulation = max(1, EFFECTIVE_BATCH // (batch * speedup))
    steps = max(1, math.ceil(examples / (batch * accumulation * speedup)))
    flops = 8 * recipe.params * tokens * (1.3 if bits == 4 else 1.0)
    compute = flops / (hardware.tflops * 1e12 * UTILISATION * speedup) / steps
    seconds, basis = _step_seconds(recipe, hardware, chosen_backend, batch, accumulation, compute, measured)
    hours = steps * seconds / 3600
    warnings = []
    if hardware.session_hours and hours > hardware.session_hours:
        warnings.append(f"an epoch (~{hours:.1f} h) outlasts a {hardware.session_hours:g} h session: "
                        f"checkpoint and continue with --resume (~{math.ceil(hours / hardware.session_hours)} sessions)")
    if hardware.device == "cpu" and not recipe.smoke:
        warnings.append("CPU training of a real model is very slow; use it for checks, a GPU for students")
    return Plan(
        model=recipe.name, hardware=hardware.name, backend=chosen_backend, weight_bits=bits, precision=precision,
        # The effective batch is EFFECTIVE_BATCH however many cards share it: DDP's replicas each add a batch.
        batch_size=batch, gradient_accumulation=accumulation, sequence_length=sequence,
        multi_gpu=multi_gpu, memory_gb=memory,
        weights_gb_at_bits={b: round(weight_bytes(recipe, b) / GB, 1) for b in (4, 8, 16)},
        lora_parameters=recipe.lora_params(), tokens_per_epoch=tokens, tokens_assumed=dataset_tokens is None,
        hours_per_epoch=round(hours, 4), steps_per_epoch=steps, seconds_per_step=round(seconds, 4),
        time_basis=basis, warnings=warnings, hardware_devices=hardware.devices,
    )


def _step_seconds(recipe: ModelRecipe, hardware: HardwareProfile, backend: str, batch: int, accumulation: int,
                  compute: float, measured: bool) -> tuple[float, str]:
    """Seconds per optimizer step and where the figure comes from."""
    found = measured_step(recipe.name, hardware.name, backend, batch, accumulation) if measured else None
    if found:
        return found["seconds_per_step"], (f"measured over the last {found['steps']:,} steps trained of "
                                           f"{recipe.name} on {hardware.name} ({found['date']})")
    compute_text = (f"compute {compute:.2g} s (8 x parameters x tokens at {UTILISATION:.0%} of "
                    f"{hardware.tflops:g} TFLOPS)")
    if hardware.step_overhead_seconds:
        return compute + hardware.step_overhead_seconds, (
            f"{compute_text} + overhead {hardware.step_overhead_seconds:g} s stated by the {hardware.name} "
            "profile; a training run here measures it")
    return compute, f"{compute_text}; the {hardware.name} profile states no per-step overhead"


def _step_key(recipe: str, hardware: str, backend: str, batch: int, accumulation: int) -> str:
    return f"{recipe}@{hardware} {backend} {batch}x{accumulation}"


def measured_step(recipe: str, hardware: str, backend: str, batch: int, accumulation: int) -> dict[str, Any] | None:
    """What the last training run of this model on this profile (same backend and batch) took per step."""
    path = cache_dir() / STEP_TIMES
    try:
        return json.loads(path.read_text()).get(_step_key(recipe, hardware, backend, batch, accumulation))
    except (OSError, ValueError):  # none yet, or unreadable: plan from the profile instead
        return None


def record_step_time(plan: Plan, seconds: float, steps: int) -> None:
    """Keep a training run's seconds per step for the next plan of the same model on the same profile."""
    if steps <= 0:
        return
    path = cache_dir() / STEP_TIMES
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known[_step_key(plan.model, plan.hardware, plan.backend, plan.batch_size, plan.gradient_accumulation)] = {
        "seconds_per_step": round(seconds / steps, 4), "steps": steps, "date": datetime.date.today().isoformat()}
    write_text_atomic(path, json.dumps(known, indent=2, sort_keys=True))


def _search(recipe: ModelRecipe, hardware: HardwareProfile, sequence_length: int | None, backend: str | None):
    _, compute_bytes = _precision(hardware)
    sequence = min(sequence_length or recipe.max_seq_length, recipe.max_seq_length)
    if backend == "unsloth" and not (hardware.unsloth and recipe.unsloth_id):
        raise BadInput(f"--backend unsloth: not available for {recipe.name} on {hardware.name} "
                       f"({'no Unsloth build of the model' if not recipe.unsloth_id else 'Unsloth does not run there'})")
    chosen_backend = backend or _default_backend(recipe, hardware)
    # 4-bit (QLoRA) needs bitsandbytes on CUDA; 8-bit is estimated but never picked (slower, no better).
    full = 16 if compute_bytes == 2 else 32
    candidates = [full, 4] if hardware.device == "cuda" else [full]
    usable = hardware.memory_gb * _USABLE
    layouts = [(None, 1)] if hardware.devices == 1 else [("ddp", 1), ("model_split", hardware.devices)]
    # Several cards: data parallel (a copy on each) first, at any precision; split the model only when no copy fits.
    for multi_gpu, sharing in layouts:
        # Unsloth trains a copy per card, never one model split across cards: a split model trains with PEFT.
        layout_backend = "peft" if multi_gpu == "model_split" else chosen_backend
        if multi_gpu == "model_split" and backend == "unsloth":
            continue
        for bits in candidates:
            for batch in (8, 4, 2, 1):
                memory = memory_gb(recipe, bits, batch, sequence, compute_bytes, hardware, sharing, layout_backend)
                if memory["total"] <= usable:
                    return bits, batch, sequence, multi_gpu, memory, layout_backend
    return None


def longest_sequence_that_fits(recipe: ModelRecipe, hardware: HardwareProfile, backend: str | None = None) -> int | None:
    """The longest sequence (in steps of 64 tokens) some plan fits at, or None if not even 64 tokens do."""
    fits = None
    for sequence in range(64, recipe.max_seq_length + 1, 64):
        if _search(recipe, hardware, sequence, backend) is None:
            break
        fits = sequence
    return fits


def _default_backend(recipe: ModelRecipe, hardware: HardwareProfile) -> str:
    return "unsloth" if hardware.unsloth and recipe.unsloth_id and not recipe.smoke else "peft"


def _infeasible_message(recipe: ModelRecipe, hardware: HardwareProfile, sequence_length: int | None,
                        backend: str | None = None) -> str:
    _, compute_bytes = _precision(hardware)
    sequence = min(sequence_length or recipe.max_seq_length, recipe.max_seq_length)
    smallest_bits = 4 if hardware.device == "cuda" else (16 if compute_bytes == 2 else 32)
    need = memory_gb(recipe, smallest_bits, 1, sequence, compute_bytes, hardware, hardware.devices,
                     backend or _default_backend(recipe, hardware))["total"]
    why = "" if hardware.device == "cuda" else " (4-bit loading needs a CUDA GPU)"
    shorter = longest_sequence_that_fits(recipe, hardware, backend)
    shorter_text = (f" It fits with sequences up to {shorter} tokens (`plan --dataset` measures the dataset's "
                    "longest example)." if shorter else "")
    return (f"{recipe.name} does not fit {hardware.name}: it needs ~{need:.1f} GB even at {smallest_bits}-bit with "
            f"batch 1 and {sequence} tokens{why}; the profile has {hardware.memory_gb:g} GB per device, "
            f"{_USABLE:.0%} of it usable.{shorter_text} Nearest feasible: {nearest_feasible(recipe, hardware)}")


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


def dataset_examples(dataset_dir: str | os.PathLike | None) -> int | None:
    """Training examples per epoch in a built dataset; None without one."""
    if dataset_dir is None:
        return None
    dataset_tokens(dataset_dir)  # the same checks
    return int(json.loads((Path(dataset_dir) / "summary.json").read_text())["per_split"]["train"])


def plan_table() -> list[dict[str, str]]:
    """Every recipe x profile: the plan or why not. The README's table is this."""
    rows = []
    for model in recipe_names():
        for hardware in hardware_names():
            try:
                plan = make_plan(load_recipe(model), load_hardware(hardware), measured=False)
                verdict = plan.summary_line()
            except BadInput as exc:
                shorter = longest_sequence_that_fits(load_recipe(model), load_hardware(hardware))
                verdict = ((f"fits only sequences up to {shorter} tokens; " if shorter else "does not fit: ")
                           + "nearest feasible " + str(exc).split("Nearest feasible: ")[1])
            rows.append({"model": model, "hardware": hardware, "plan": verdict})
    return rows
