"""LoRA fine-tuning of a student on a built dataset: PEFT + TRL anywhere (CPU included), Unsloth on a GPU.

``train`` plans first (:mod:`hibachi_lab.plan`), loads the recipe's model (or builds a smoke
model), fixes its chat template so TRL's assistant-only loss works, trains with checkpoints,
and writes the adapter, the tokenizer and a training card to the output folder, with an MLflow
run (params, loss curve, tokens/s, peak memory, dataset digest, the adapter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hibachi_lab import registry
from hibachi_lab.chat_templates import TEMPLATES, THINK_BLOCK
from hibachi_lab.errors import BadInput
from hibachi_lab.files import write_text_atomic
from hibachi_lab.plan import Plan, dataset_tokens, make_plan, record_step_time
from hibachi_lab.recipes import HardwareProfile, ModelRecipe
from hibachi_lab.smoke import CHATML_TEMPLATE, tiny_model, tiny_tokenizer
from hibachi_lab.students import RECIPE_RECORD

log = logging.getLogger(__name__)



def training_template(recipe: ModelRecipe) -> str | None:
    """The chat template a recipe trains (and generates) with: hibachi-lab's for the real families (tools,
    tool calls, {% generation %} markers), the smoke models' ChatML otherwise; None keeps the tokenizer's."""
    if recipe.chat_template.generation_markers:
        return TEMPLATES[recipe.chat_template.generation_markers]
    return CHATML_TEMPLATE if recipe.smoke else None


@dataclass
class TrainSettings:
    """How long and how fast: the rest comes from the recipe, the profile and the plan."""

    max_steps: int | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-4
    save_steps: int = 50
    packing: bool = False
    seed: int = 2026
    resume: bool = False
    backend: str | None = None
    overwrite: bool = False  # discard the checkpoints of another run in the output folder
    # A checkpoint kept elsewhere (a Kaggle input holding an earlier session's checkpoints): copied into the
    # output folder and continued from, as --resume does (same model, dataset and settings only).
    resume_from: Path | None = None


@dataclass
class TrainResult:
    out: Path
    plan: Plan
    global_step: int
    resumed_from_step: int
    losses: list[tuple[int, float]]
    tokens_per_second: float
    peak_memory_gb: float
    mlflow_run_id: str | None


# --------------------------------------------------------------------------- data and model


def load_splits(dataset_dir: str | os.PathLike) -> tuple[Any, Any, dict]:
    from hibachi_lab.dataset import load_built

    splits, summary = load_built(dataset_dir)
    return splits["train"], splits["eval"], summary


def prepare_examples(split: Any, recipe: ModelRecipe) -> Any:
    """Per-recipe template settings: Qwen3 without thinking, R1 think blocks stripped from targets."""
    settings = recipe.chat_template

    def adjust(example: dict) -> dict:
        if settings.think_blocks == "strip":
            example["messages"] = [
                m | {"content": THINK_BLOCK.sub("", m["content"] or "")} if m["role"] == "assistant" else m
                for m in example["messages"]
            ]
        example["messages"] = [{k: v for k, v in m.items() if v is not None} for m in example["messages"]]
        if settings.enable_thinking is not None:
            example["chat_template_kwargs"] = {"enable_thinking": settings.enable_thinking}
        return example

    return split.map(adjust, desc=None)


# Tokens added to the longest example as rendered for training: room for an EOS token TRL may append and for
# whitespace a template renders differently across transformers releases. The sequence length is at least
# this much longer than every example, so TRL never cuts an answer off.
SEQUENCE_MARGIN = 32


def load_tokenizer(recipe: ModelRecipe, out: Path, texts: list[str], resuming: bool) -> Any:
    """The tokenizer training uses, with the chat template it trains with (hibachi-lab's where the recipe says)."""
    from transformers import AutoTokenizer

    if recipe.smoke:
        base = out / "base"
        # Only a resumed run may reuse it: a fresh run's checkpoints must start from its own random init.
        tokenizer = (AutoTokenizer.from_pretrained(base) if resuming and (base / "config.json").exists()
                     else tiny_tokenizer(texts))
    else:
        tokenizer = AutoTokenizer.from_pretrained(recipe.hub_id)
    template = training_template(recipe)
    if template:
        tokenizer.chat_template = template
    return tokenizer


def example_lengths(split: Any, tokenizer: Any) -> list[int]:
    """Tokens of each prepared example as training renders it: the chat template with its tools and settings."""
    lengths = []
    for example in split:
        tools = example.get("tools")
        tools = json.loads(tools) if isinstance(tools, str) else tools or None
        rendered = tokenizer.apply_chat_template(example["messages"], tools=tools, tokenize=True, return_dict=True,
                                                 **(example.get("chat_template_kwargs") or {}))
        lengths.append(len(rendered["input_ids"]))
    return lengths


@dataclass
class Lengths:
    """What the training data measures with the recipe's tokenizer and template."""

    examples: int  # train and eval splits (both are tokenized to max_length)
    longest: int
    total: int  # tokens of the train split: one epoch
    sequence_length: int  # longest + SEQUENCE_MARGIN, rounded up to a multiple of 64, at most the recipe's
    over: int  # examples that would not fit max_seq_length with the margin

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def measure(recipe: ModelRecipe, train_lengths: list[int], eval_lengths: list[int]) -> Lengths:
    lengths = train_lengths + eval_lengths
    longest = max(lengths, default=0)
    wanted = -(-(longest + SEQUENCE_MARGIN) // 64) * 64
    over = sum(1 for length in lengths if length + SEQUENCE_MARGIN > recipe.max_seq_length)
    return Lengths(len(lengths), longest, sum(train_lengths), min(wanted, recipe.max_seq_length), over)


def refuse_truncation(recipe: ModelRecipe, lengths: Lengths) -> None:
    if lengths.over:
        raise BadInput(
            f"{lengths.over:,} of {lengths.examples:,} examples are longer than {recipe.name}'s max_seq_length "
            f"{recipe.max_seq_length} less a {SEQUENCE_MARGIN}-token margin when rendered with its chat template "
            f"and tools (longest {lengths.longest:,} tokens): training would cut their answers off. Rebuild the "
            f"dataset with a lower max_tokens (configs/dataset.yaml, its tokenizer set to {recipe.hub_id or 'the model'}) "
            "or raise max_seq_length in the recipe")


def measured_lengths(recipe: ModelRecipe, dataset_dir: str | os.PathLike) -> Lengths:
    """The training split measured as training renders it (``plan --dataset``): loads only the tokenizer."""
    train_split, eval_split, _ = load_splits(dataset_dir)
    texts = [m["content"] or "" for example in train_split for m in example["messages"]]
    tokenizer = load_tokenizer(recipe, Path(tempfile.gettempdir()), texts, resuming=False)
    return measure(recipe, example_lengths(prepare_examples(train_split, recipe), tokenizer),
                   example_lengths(prepare_examples(eval_split, recipe), tokenizer))


def load_model(recipe: ModelRecipe, plan: Plan, out: Path, tokenizer: Any, resuming: bool) -> Any:
    """The base model: a smoke model (saved under out/base, reused on resume) or the recipe's."""
    if recipe.smoke:
        base = out / "base"
        if resuming and (base / "config.json").exists():
            from transformers import AutoModelForCausalLM

            return AutoModelForCausalLM.from_pretrained(base)
        model = tiny_model(recipe.family, tokenizer)
        if is_main_process():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a bar for writing one small shard is noise
            try:
                model.save_pretrained(base)
            finally:
                hf_logging.enable_progress_bar()
            tokenizer.save_pretrained(base)
        return model
    if plan.backend == "unsloth":
        return _load_unsloth(recipe, plan, tokenizer)
    return _load_peft_base(recipe, plan)


def _load_peft_base(recipe: ModelRecipe, plan: Plan) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[plan.precision]
    kwargs: dict[str, Any] = {"dtype": dtype}
    if plan.weight_bits == 4:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
    if plan_device_map(plan) is not None:
        kwargs["device_map"] = plan_device_map(plan)
    return AutoModelForCausalLM.from_pretrained(recipe.hub_id, **kwargs)


def plan_device_map(plan: Plan) -> Any:
    """Where the base model goes: split across the cards ("auto"), else whole on this process's GPU (under DDP
    each rank its own, LOCAL_RANK; without that every rank loads onto cuda:0), None on the CPU."""
    if plan.precision == "fp32":  # the CPU profile
        return None
    if plan.multi_gpu == "model_split":
        return "auto"
    return {"": local_rank() or 0}


# Modules Unsloth patches when it is imported: imported before it, they run unpatched (Unsloth warns).
UNSLOTH_PATCHES = ("transformers", "trl", "peft")


def import_backend(backend: str) -> None:
    """Import Unsloth first when it is the backend: it must come before transformers, TRL and PEFT."""
    if backend != "unsloth":
        return
    early = [name for name in UNSLOTH_PATCHES if name in sys.modules]
    try:
        import unsloth  # noqa: F401
    except ImportError as exc:
        raise BadInput(f"backend unsloth: {exc}. Install with `pip install \"hibachi-lab[unsloth]\"` on a CUDA "
                       "machine, or pass --backend peft") from None
    except (NotImplementedError, RuntimeError) as exc:  # e.g. no GPU it can use
        raise BadInput(f"backend unsloth: {exc}; pass --backend peft") from None
    if early:
        log.warning("unsloth was imported after %s, so its patches are not applied there; start a fresh process "
                    "(or kernel) and train before importing them", ", ".join(early))


def _load_unsloth(recipe: ModelRecipe, plan: Plan, tokenizer: Any) -> Any:
    import_backend("unsloth")
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(
        model_name=recipe.unsloth_id, max_seq_length=plan.sequence_length, load_in_4bit=plan.weight_bits == 4,
        dtype=None, device_map=plan_device_map(plan))
    lora = recipe.lora
    model = FastLanguageModel.get_peft_model(
        model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=recipe.unsloth_target_modules or lora.target_modules, use_gradient_checkpointing="unsloth")
    return model


# --------------------------------------------------------------------------- training


def sft_config(plan: Plan, settings: TrainSettings, out: Path, hardware: HardwareProfile) -> Any:
    from trl import SFTConfig

    # transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns).
    renamed = "activation_checkpointing" in SFTConfig.__dataclass_fields__
    checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": hardware.device == "cuda"}
    return SFTConfig(
        output_dir=str(out / "checkpoints"), max_steps=settings.max_steps or -1, num_train_epochs=settings.epochs,
        per_device_train_batch_size=plan.batch_size, gradient_accumulation_steps=plan.gradient_accumulation,
        learning_rate=settings.learning_rate, lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=2,
        bf16=plan.precision == "bf16", fp16=plan.precision == "fp16", use_cpu=hardware.device == "cpu",
        assistant_only_loss=True, max_length=plan.sequence_length, packing=settings.packing,
        packing_strategy="bfd", report_to=[], seed=settings.seed, dataset_num_proc=None, eval_strategy="no",
        # Unsloth's recipe (and the planner's memory model for it): 8-bit Adam from bitsandbytes, which it installs.
        optim="adamw_8bit" if plan.backend == "unsloth" else "adamw_torch", **checkpointing,
    )


@contextlib.contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Warnings of the training libraries about their own code, each filtered by message, category and module.

    TRL and PEFT still read ``model.is_gradient_checkpointing``, which transformers 5 deprecates in favour of
    ``is_activation_checkpointing``: a FutureWarning per trainer built, nothing this project calls.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning,
                                module=r"transformers\.")
        yield


def training_progress() -> Any:
    """A trainer callback that shows the steps and the last loss in a progress bar (transformers' own bar
    prints every logged step as a raw ``{'loss': ...}`` line across it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[loss]}"), TimeRemainingColumn(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("training", total=state.max_steps, completed=state.global_step,
                                               loss="")

        def on_step_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.progress is not None and logs and "loss" in logs:
                self.progress.update(self.task, loss=f"loss {logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return TrainingProgress()


@dataclass
class Prepared:
    """A trainer ready to run, and what it was built from."""

    trainer: Any
    tokenizer: Any
    plan: Plan
    summary: dict
    eval_examples: int
    resume_from: Path | None


def prepare(recipe: ModelRecipe, hardware: HardwareProfile, dataset_dir: str | os.PathLike, out: Path,
            settings: TrainSettings) -> Prepared:
    """Plan, load the data and the model, and build the SFT trainer (nothing trained yet)."""
    tokens, longest = dataset_tokens(dataset_dir)
    plan = make_plan(recipe, hardware, tokens, longest, settings.backend)
    import_backend(plan.backend)  # before anything imports transformers, TRL or PEFT
    if hardware.device == "cuda":
        _require_cuda(hardware)
    from peft import LoraConfig
    from trl import SFTTrainer

    train_split, eval_split, summary = load_splits(dataset_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume_from = claim_output(out, run_identity(recipe, hardware, plan, summary, settings), settings)
    texts = [m["content"] or "" for example in train_split for m in example["messages"]]
    tokenizer = load_tokenizer(recipe, out, texts, resuming=resume_from is not None)
    train_split, eval_split = prepare_examples(train_split, recipe), prepare_examples(eval_split, recipe)
    # The sequence length from the examples as training renders them (template, tools), never a stand-in count.
    lengths = measure(recipe, example_lengths(train_split, tokenizer), example_lengths(eval_split, tokenizer))
    refuse_truncation(recipe, lengths)
    plan = make_plan(recipe, hardware, lengths.total, lengths.sequence_length, settings.backend, len(train_split))
    plan.lengths = lengths.to_dict()
    model = load_model(recipe, plan, out, tokenizer, resuming=resume_from is not None)
    peft_config = None if plan.backend == "unsloth" else LoraConfig(
        r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
        target_modules=recipe.lora.target_modules, task_type="CAUSAL_LM")
    with quiet_known_warnings():
        trainer = SFTTrainer(model=model, args=sft_config(plan, settings, out, hardware), train_dataset=train_split,
                             eval_dataset=eval_split if len(eval_split) else None, processing_class=tokenizer,
                             peft_config=peft_config)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for printing in (ProgressCallback, PrinterCallback):  # the loss goes to our progress bar instead
        trainer.remove_callback(printing)
    trainer.add_callback(training_progress())
    return Prepared(trainer, tokenizer, plan, summary, len(eval_split), resume_from)


def train(recipe: ModelRecipe, hardware: HardwareProfile, dataset_dir: str | os.PathLike, out: str | os.PathLike,
          settings: TrainSettings | None = None, track: bool = True) -> TrainResult:
    """Plan, then train a LoRA adapter; writes out/adapter, out/README.md and an MLflow run."""
    settings = settings or TrainSettings()
    out = Path(out)
    if settings.resume_from is not None:
        if is_main_process():
            adopt_checkpoint(settings.resume_from, out)
        settings = replace(settings, resume=True, resume_from=None)
    tokens, longest = dataset_tokens(dataset_dir)
    first_plan = make_plan(recipe, hardware, tokens, longest, settings.backend)
    if _wants_all_gpus(first_plan, hardware):
        return _train_on_all_gpus(recipe, hardware, dataset_dir, out, settings, track, first_plan)
    prepared = prepare(recipe, hardware, dataset_dir, out, settings)
    trainer, resume_from = prepared.trainer, prepared.resume_from
    # Before training: a checkpoint without its trainer state would silently start again from step 0.
    resumed_step = checkpoint_step(resume_from) if resume_from else 0
    started = time.perf_counter()
    with quiet_known_warnings():
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    trainer.save_model(str(out / "adapter"))  # the Trainer saves on the main process only
    losses = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    result = TrainResult(
        out=out, plan=prepared.plan, global_step=trainer.state.global_step, resumed_from_step=resumed_step,
        losses=losses, tokens_per_second=_trained_tokens(trainer) / seconds if seconds else 0.0,
        peak_memory_gb=_peak_memory_gb(), mlflow_run_id=None)
    # Every process takes part in evaluation (it is collective under DDP); only the first writes anything.
    with quiet_known_warnings():
        eval_loss = trainer.evaluate()["eval_loss"] if prepared.eval_examples else None
    if not is_main_process():
        return result
    record_step_time(prepared.plan, seconds, trainer.state.global_step - resumed_step)  # for the next plan
    prepared.tokenizer.save_pretrained(str(out / "adapter"))
    # What evaluate and export need to know about the adapter: its recipe (16-bit base, template settings).
    write_text_atomic(out / "adapter" / RECIPE_RECORD, recipe.model_dump_json(indent=2))
    _write_card(out, recipe, hardware, prepared.plan, prepared.summary, result, eval_loss)
    if track:
        result.mlflow_run_id = _track(out, recipe, hardware, prepared.plan, prepared.summary, result, eval_loss)
    write_text_atomic(out / RESULT_RECORD, json.dumps(result_dict(result), indent=2))
    return result


def _trained_tokens(trainer: Any) -> int:
    """Tokens the model saw, from TRL's running count in the logs."""
    counts = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
    return int(counts[-1]) if counts else 0


def _peak_memory_gb() -> float:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 1024**3
    except ImportError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# Beside the checkpoints: what they were trained from, so --resume can check it continues the same run.
RUN_RECORD = "run.json"


def run_identity(recipe: ModelRecipe, hardware: HardwareProfile, plan: Plan, summary: dict,
                 settings: TrainSettings) -> dict[str, Any]:
    """What a checkpoint's training depends on. Not max_steps or save_steps: a resumed run may go further."""
    return {"recipe": recipe.name, "dataset_digest": summary.get("digest"), "hardware": hardware.name,
            "backend": plan.backend, "learning_rate": settings.learning_rate, "epochs": settings.epochs,
            "packing": settings.packing, "seed": settings.seed}


def claim_output(out: Path, identity: dict[str, Any], settings: TrainSettings) -> Path | None:
    """Make ``out`` this run's: the checkpoint to resume from (same run only), or a clean start. Another run's
    checkpoints are never mixed in nor silently lost: they need --resume (checked) or --overwrite."""
    checkpoints = out / "checkpoints"
    record = checkpoints / RUN_RECORD
    if settings.resume and settings.overwrite:
        raise BadInput("--resume continues the run in OUT and --overwrite discards it: give one of them")
    last = last_checkpoint(checkpoints)
    recorded = json.loads(record.read_text()) if record.exists() else None
    if not is_main_process():
        # The main process claims the folder (and does any --overwrite); the others read what is there.
        return last if settings.resume else None
    if settings.overwrite:
        # The smoke base is part of the old run too (its random init).
        for folder in (checkpoints, out / "base"):
            shutil.rmtree(folder, ignore_errors=True)
        last = None
    elif settings.resume:
        if last is None:
            raise BadInput(f"--resume: no checkpoint under {checkpoints} to continue from")
        if recorded is None:
            raise BadInput(f"--resume: {checkpoints} has no {RUN_RECORD} saying what its checkpoints were trained "
                           "from (an older hibachi-lab wrote them), so continuing them cannot be checked; start over "
                           "with --overwrite")
        differences = [f"{key} {recorded.get(key)!r}, not {value!r}" for key, value in identity.items()
                       if recorded.get(key) != value]
        if differences:
            raise BadInput(f"--resume: the checkpoints in {checkpoints} belong to another run ({'; '.join(differences)}); "
                           "resume with the same settings, or use --overwrite or another --out to start a new run")
    elif last is not None:
        trained = (f"{recorded['recipe']} on dataset {recorded['dataset_digest']}" if recorded
                   else "a run of an older hibachi-lab")
        raise BadInput(f"{out}: holds the checkpoints of another run ({trained}, up to {last.name}); pass --resume to "
                       "continue it, --overwrite to discard them and start over, or another --out")
    write_text_atomic(record, json.dumps(identity, indent=2))
    return last


def checkpoint_step(checkpoint: Path) -> int:
    """The step a checkpoint holds, from the trainer state saved in it (what the trainer resumes from); the
    folder's name is only a label."""
    state = checkpoint / "trainer_state.json"
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"--resume: {state}: cannot read the step it holds ({type(exc).__name__}: {exc})") from None


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[-1])


def adopt_checkpoint(source: str | os.PathLike, out: Path) -> Path:
    """Copy the newest checkpoint under ``source`` (a checkpoint-N folder, the checkpoints/ folder of a run, or
    the run folder) into ``out/checkpoints`` with the run record that says what it was trained from; returns
    the checkpoint to continue from. Attached inputs are read-only: nothing is written there. A newer
    checkpoint already in ``out`` (this session got further) is kept."""
    source = Path(source)
    if (source / "checkpoints").is_dir():
        source = source / "checkpoints"
    if (source / "trainer_state.json").exists():
        found, record = [source], source.parent / RUN_RECORD
    else:
        found, record = sorted(source.glob("checkpoint-*"), key=_step), source / RUN_RECORD
    found = [path for path in found if (path / "trainer_state.json").exists()]
    if not found:
        raise BadInput(f"--resume-from {source}: no checkpoint there (a checkpoint-N folder with trainer_state.json, "
                       "or the checkpoints/ folder of a run)")
    if not record.exists():
        raise BadInput(f"--resume-from {source}: no {RUN_RECORD} beside the checkpoint saying what it was trained "
                       "from; attach the whole checkpoints/ folder of the run")
    newest, checkpoints = found[-1], out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    local_record = checkpoints / RUN_RECORD
    if local_record.exists() and json.loads(local_record.read_text()) != json.loads(record.read_text()):
        raise BadInput(f"--resume-from {source}: {checkpoints} already holds another run's checkpoints; use "
                       "another --out")
    here = last_checkpoint(checkpoints)
    if here is not None and _step(here) >= _step(newest):
        log.warning("%s is at step %d, past %s: continuing from it", here, _step(here), newest)
        return here
    staging = Path(tempfile.mkdtemp(prefix=".adopt-", dir=checkpoints))
    shutil.copytree(newest, staging / newest.name)
    (staging / newest.name).replace(checkpoints / newest.name)
    shutil.rmtree(staging, ignore_errors=True)
    if not local_record.exists():
        write_text_atomic(local_record, record.read_text())
    return checkpoints / newest.name


def last_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=_step)
    return found[-1] if found else None


def _require_cuda(hardware: HardwareProfile) -> None:
    import torch

    if not torch.cuda.is_available():
        raise BadInput(f"hardware profile {hardware.name} needs a CUDA GPU and none is visible here; "
                       "use --hardware laptop-cpu (smoke models) or run on a GPU machine")
    from hibachi_lab.gpu import require_kernels_for_this_gpu

    require_kernels_for_this_gpu()


# --------------------------------------------------------------------------- several GPUs (DDP)

# Written by the main process beside the adapter: what the launching process reads back after a DDP run.
RESULT_RECORD = "result.json"


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or the only process: the one that writes outputs and logs to MLflow."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def local_rank() -> int | None:
    """This process's GPU under ``accelerate launch``/torchrun; None outside a distributed run."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else None


def _wants_all_gpus(plan: Plan, hardware: HardwareProfile) -> bool:
    """A copy of the model per card (DDP) on a machine that has the cards, and not already a launched process."""
    if plan.multi_gpu != "ddp" or local_rank() is not None:
        return False
    import torch

    return torch.cuda.device_count() >= hardware.devices


def _config_argument(kind: str, config: Any, out: Path) -> str:
    """A stock config by name; anything else written beside the run as YAML, so the launched processes load the
    same recipe or profile the caller had (never rebuilt from ``sys.argv``, which in a notebook is the kernel's)."""
    import yaml

    from hibachi_lab.recipes import load_hardware, load_recipe

    loader = load_recipe if kind == "model" else load_hardware
    try:
        if loader(config.name) == config:
            return config.name
    except BadInput:
        pass
    path = out / "launch" / f"{kind}.yaml"
    write_text_atomic(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return str(path)


def relaunch_command(recipe: ModelRecipe, hardware: HardwareProfile, dataset_dir: str | os.PathLike, out: Path,
                     settings: TrainSettings, track: bool, resume: bool) -> list[str]:
    """``accelerate launch ... hibachi-lab train ...`` built from the parsed options (one process per GPU).

    The output folder is already claimed by the launching process, so the launched ones never get
    ``--overwrite`` (they would race to delete it); they get ``--resume`` when there is a checkpoint to continue.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(hardware.devices), "-m", "hibachi_lab.cli", "train",
               "--model", _config_argument("model", recipe, out), "--hardware", _config_argument("hardware", hardware, out),
               "--dataset", str(Path(dataset_dir).resolve()), "--out", str(out.resolve()),
               "--epochs", repr(settings.epochs), "--learning-rate", repr(settings.learning_rate),
               "--save-steps", str(settings.save_steps), "--seed", str(settings.seed)]
    if settings.packing:
        command.append("--packing")
    if settings.max_steps is not None:
        command += ["--max-steps", str(settings.max_steps)]
    if settings.backend:
        command += ["--backend", settings.backend]
    if resume:
        command.append("--resume")
    if not track:
        command.append("--no-mlflow")
    return command


def _train_on_all_gpus(recipe: ModelRecipe, hardware: HardwareProfile, dataset_dir: str | os.PathLike, out: Path,
                       settings: TrainSettings, track: bool, plan: Plan) -> TrainResult:
    """Run the training under ``accelerate launch`` (DDP) and return its result; this process carries on normally
    (a notebook goes on to the gate cell, ``train_and_evaluate`` evaluates once, here)."""
    summary = json.loads((Path(dataset_dir) / "summary.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    last = claim_output(out, run_identity(recipe, hardware, plan, summary, settings), settings)
    (out / RESULT_RECORD).unlink(missing_ok=True)
    command = relaunch_command(recipe, hardware, dataset_dir, out, settings, track, resume=last is not None)
    log.warning("training on %d GPUs: %s", hardware.devices, " ".join(command))
    subprocess.run(command, check=True)
    return result_from_dict(json.loads((out / RESULT_RECORD).read_text()))


# --------------------------------------------------------------------------- outputs


def trained_base(recipe: ModelRecipe, plan: Plan) -> str:
    """The checkpoint the adapter was trained on: Unsloth's pre-quantised upload under Unsloth."""
    if plan.backend == "unsloth" and recipe.unsloth_id:
        return recipe.unsloth_id
    return recipe.hub_id or f"{recipe.family} (built from config)"


def trained_targets(recipe: ModelRecipe, plan: Plan) -> list[str]:
    """The LoRA targets the run used: Unsloth's Phi-4 has Llama module names, so its own list."""
    if plan.backend == "unsloth" and recipe.unsloth_target_modules:
        return recipe.unsloth_target_modules
    return recipe.lora.target_modules


def _write_card(out: Path, recipe: ModelRecipe, hardware: HardwareProfile, plan: Plan, summary: dict,
                result: TrainResult, eval_loss: float | None) -> None:
    kind = ("**A smoke model: randomly initialised, a pipeline check, not a student. Its answers mean nothing.**"
            if recipe.smoke else f"LoRA adapter for `{trained_base(recipe, plan)}`.")
    first, last = (result.losses[0][1], result.losses[-1][1]) if result.losses else (None, None)
    merged_onto = f" (merged for Ollama onto {recipe.hub_id})" if trained_base(recipe, plan) != recipe.hub_id and recipe.hub_id else ""
    lines = [
        f"# {recipe.name} student adapter", "", kind, "",
        f"- base: {trained_base(recipe, plan)}{merged_onto}; Ollama base: {recipe.ollama_base}",
        f"- hardware profile: {hardware.name}; backend {plan.backend}; {plan.weight_bits}-bit weights, {plan.precision}",
        (f"- LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha}, dropout={recipe.lora.dropout}, "
        f"targets {', '.join(trained_targets(recipe, plan))}"),
        (f"- batch {plan.batch_size} x {plan.gradient_accumulation} accumulation x {plan.replicas} GPU(s) = "
         f"{plan.effective_batch} per step, sequence {plan.sequence_length}"),
        f"- dataset digest {summary.get('digest', '?')}; {summary['per_split']['train']:,} training examples",
        (f"- steps {result.global_step} (resumed from {result.resumed_from_step}); loss {first} -> {last}; "
        f"eval loss {eval_loss}"),
        f"- {result.tokens_per_second:,.0f} tokens/s; peak memory {result.peak_memory_gb:.2f} GB",
        "", "Assistant-only loss: only the teacher's answers are learned; prompts are masked.",
    ]
    write_text_atomic(out / "README.md", "\n".join(lines) + "\n")


def _track(out: Path, recipe: ModelRecipe, hardware: HardwareProfile, plan: Plan, summary: dict,
           result: TrainResult, eval_loss: float | None) -> str:
    params = {"recipe": recipe.name, "hub_id": recipe.hub_id, "base": trained_base(recipe, plan), "smoke": recipe.smoke,
              "hardware": hardware.name, "backend": plan.backend, "plan": json.dumps(plan.to_dict()),
              "dataset_digest": summary.get("digest"), "lora_r": recipe.lora.r, "lora_alpha": recipe.lora.alpha,
              "target_modules": ",".join(trained_targets(recipe, plan)), "effective_batch": plan.effective_batch}
    metrics = {"final_loss": result.losses[-1][1] if result.losses else None, "eval_loss": eval_loss,
               "tokens_per_second": result.tokens_per_second, "peak_memory_gb": result.peak_memory_gb,
               "global_step": result.global_step}
    with tempfile.TemporaryDirectory() as artifacts:
        shutil.copytree(out / "adapter", Path(artifacts) / "adapter")
        shutil.copyfile(out / "README.md", Path(artifacts) / "README.md")
        return registry.log_run("training", f"{recipe.name}@{hardware.name}", params, metrics, artifacts,
                                tags={"smoke": str(recipe.smoke).lower()}, history={"loss": result.losses})


def train_and_evaluate(recipe: ModelRecipe, hardware: HardwareProfile, dataset_dir: str | os.PathLike,
                       work_dir: str | os.PathLike, max_steps: int | None = None, save_steps: int = 50,
                       max_new_tokens: int = 256, resume_from: str | os.PathLike | None = None
                       ) -> tuple[TrainResult, dict[str, Any]]:
    """What the Kaggle and Colab notebooks run: train (continuing a run a session cut short, from the work folder
    or from ``resume_from``, e.g. an earlier session's checkpoints attached as a Kaggle input), then the gate."""
    out = Path(work_dir) / f"{recipe.name}-{hardware.name}"
    resume = last_checkpoint(out / "checkpoints") is not None
    result = train(recipe, hardware, dataset_dir, out,
                   TrainSettings(max_steps=max_steps, save_steps=save_steps, resume=resume and resume_from is None,
                                 resume_from=Path(resume_from) if resume_from else None))
    # Only now: evaluation imports transformers, which must come after Unsloth.
    from hibachi_lab import BUNDLED_PROBES, CONFIGS, evaluate
    from hibachi_lab.records import read_jsonl
    from hibachi_lab.similarity import ProbePair, SimilarityEngine

    decision = evaluate.run_evaluation(
        dataset_dir, out / "evaluation", SimilarityEngine(),
        evaluate.PromotionConfig.from_yaml(CONFIGS / "promotion.yaml"), read_jsonl(BUNDLED_PROBES, ProbePair),
        adapter=out / "adapter",
        generation=evaluate.GenerationSettings(max_new_tokens=max_new_tokens))
    return result, decision


def loss_curve_png(result: TrainResult) -> bytes:
    """The training loss per step as a PNG (for notebooks, where hibachi-lab's file backend shows nothing)."""
    import io

    import matplotlib.pyplot as plt

    import hibachi_lab.report  # noqa: F401 - sets the headless backend before pyplot draws

    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot(*zip(*result.losses, strict=True))
    axis.set_xlabel("step")
    axis.set_ylabel("training loss")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def result_dict(result: TrainResult) -> dict[str, Any]:
    data = asdict(result)
    data["out"] = str(result.out)
    return data


def result_from_dict(data: dict[str, Any]) -> TrainResult:
    plan = dict(data["plan"])
    plan["weights_gb_at_bits"] = {int(bits): gb for bits, gb in plan["weights_gb_at_bits"].items()}
    return TrainResult(out=Path(data["out"]), plan=Plan(**plan), global_step=data["global_step"],
                       resumed_from_step=data["resumed_from_step"],
                       losses=[tuple(pair) for pair in data["losses"]], tokens_per_second=data["tokens_per_second"],
                       peak_memory_gb=data["peak_memory_gb"], mlflow_run_id=data["mlflow_run_id"])
