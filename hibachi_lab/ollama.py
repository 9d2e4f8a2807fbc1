"""Students on a laptop through Ollama: merge, convert, write a Modelfile, create the model, ask it.

Ollama imports a safetensors LoRA adapter only onto llama and gemma2 bases, and a full
safetensors model only for Phi3ForCausalLM and Qwen2ForCausalLM (not Qwen3). So hibachi-lab
merges the adapter into its base and, where Ollama cannot read the merged folder (Qwen3, or
always when asked), converts it to GGUF with llama.cpp's ``convert_hf_to_gguf.py``
(``LLAMA_CPP_DIR`` names the llama.cpp checkout). The Modelfile carries the chat TEMPLATE and
stop tokens; without them a model rambles on or prints template tokens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hibachi_lab.errors import BadInput
from hibachi_lab.files import atomic_dir
from hibachi_lab.recipes import ModelRecipe

# Ollama's Go templates for the chat formats of the recipes, and the tokens that end a turn.
CHATML = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
PHI4 = (
    "{{- if .System }}<|im_start|>system<|im_sep|>{{ .System }}<|im_end|>{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}<|im_sep|>{{ .Content }}<|im_end|>{{ end }}"
    "<|im_start|>assistant<|im_sep|>"
)
DEEPSEEK_R1 = (
    "{{- if .System }}{{ .System }}{{ end }}"
    "{{- range .Messages }}{{ if eq .Role \"user\" }}<｜User｜>{{ .Content }}"
    "{{ else if eq .Role \"assistant\" }}<｜Assistant｜>{{ .Content }}<｜end▁of▁sentence｜>{{ end }}{{ end }}"
    "<｜Assistant｜>"
)
FORMATS = {
    "qwen3": (CHATML, ["<|im_end|>", "<|im_start|>"]),
    "qwen2": (CHATML, ["<|im_end|>", "<|im_start|>"]),
    "phi3": (PHI4, ["<|im_end|>", "<|im_start|>", "<|im_sep|>"]),
    "deepseek_r1": (DEEPSEEK_R1, ["<｜end▁of▁sentence｜>", "<｜User｜>"]),
}
DEFAULT_HOST = "http://localhost:11434"
# One quantisation for every recipe's Ollama model: q8_0 (near the 16-bit quality, half its size). GGUF files are
# written q8_0 by llama.cpp's converter (Ollama does not quantise a GGUF on import); merged safetensors folders
# are quantised to q8_0 by Ollama when the model is created.
QUANTIZATION = "q8_0"
NUM_CTX = 4096
# Architectures whose merged safetensors folder Ollama imports directly.
OLLAMA_SAFETENSORS = {"Phi3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM", "GemmaForCausalLM",
                      "Gemma2ForCausalLM", "MistralForCausalLM"}


@contextlib.contextmanager
def connected() -> Iterator[Any]:
    """The official client (host from OLLAMA_HOST, else DEFAULT_HOST); a server that cannot be
    reached while it is in use is bad input naming the host and how to start one, not an internal error."""
    import ollama

    client = ollama.Client(host=os.environ.get("OLLAMA_HOST"))
    try:
        yield client
    except ConnectionError:
        host = os.environ.get("OLLAMA_HOST") or f"{DEFAULT_HOST} (the default: OLLAMA_HOST is not set)"
        raise BadInput(f"no Ollama server answers at {host}: start one with `ollama serve` (or the desktop app), "
                       "or set OLLAMA_HOST to where it runs") from None


def chat_format(recipe: ModelRecipe) -> tuple[str, list[str]]:
    key = "deepseek_r1" if recipe.chat_template.generation_markers == "deepseek_r1" else recipe.family
    return FORMATS.get(key, FORMATS["qwen3"])


def modelfile(source: str, recipe: ModelRecipe, system_prompt: str) -> str:
    template, stops = chat_format(recipe)
    lines = [f"FROM {source}", f'TEMPLATE """{template}"""', f'SYSTEM """{system_prompt}"""',
             "PARAMETER temperature 0", f"PARAMETER num_ctx {NUM_CTX}"]
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"


@dataclass
class Export:
    folder: Path
    weights: Path  # the merged folder or the GGUF file the Modelfile's FROM names
    modelfile: Path
    architecture: str
    base: str  # what the adapter was merged onto


def export(adapter: str | os.PathLike, recipe: ModelRecipe, out: str | os.PathLike, system_prompt: str,
           gguf: bool | None = None) -> Export:
    """Merge adapter + base into ``out/merged``, convert to GGUF where Ollama needs it, write ``out/Modelfile``.

    ``out`` is written whole or not at all: a merged model is gigabytes, and a failed export must not leave one.
    """
    from peft import PeftModel
    from transformers import AutoConfig, AutoTokenizer

    from hibachi_lab.students import base_model, load_base

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").exists():
        raise BadInput(f"{adapter}: no adapter_config.json; pass OUT/adapter from train")
    # Never Unsloth's pre-quantised base: a 4-bit merge is what llama.cpp and Ollama refuse.
    base = base_model(adapter, recipe, sixteen_bit=True)
    # Known from the base's config, so a missing converter is reported before the long merge, not after it.
    architecture = AutoConfig.from_pretrained(base).architectures[0]
    needs_gguf = architecture not in OLLAMA_SAFETENSORS if gguf is None else gguf
    converter = _converter(architecture) if needs_gguf else None
    # The Modelfile names the weights where they will be once the staging folder is swapped in.
    weights = out / "model.gguf" if needs_gguf else out / "merged"
    with atomic_dir(out) as staging:
        merged = PeftModel.from_pretrained(load_base(base), adapter).merge_and_unload()
        merged.save_pretrained(staging / "merged")
        AutoTokenizer.from_pretrained(adapter).save_pretrained(staging / "merged")
        if converter is not None:
            subprocess.run([sys.executable, str(converter), str(staging / "merged"), "--outfile",
                            str(staging / weights.name), "--outtype", QUANTIZATION], check=True)
        (staging / "Modelfile").write_text(modelfile(str(weights.resolve()), recipe, system_prompt), encoding="utf-8")
    return Export(out, weights, out / "Modelfile", architecture, str(base))


def _converter(architecture: str) -> Path:
    """llama.cpp's convert_hf_to_gguf.py (LLAMA_CPP_DIR, or on PATH); bad input saying how to get it when missing."""
    candidates = []
    if os.environ.get("LLAMA_CPP_DIR"):
        candidates.append(Path(os.environ["LLAMA_CPP_DIR"]) / "convert_hf_to_gguf.py")
    found = shutil.which("convert_hf_to_gguf.py")
    if found:
        candidates.append(Path(found))
    converter = next((path for path in candidates if path.exists()), None)
    if converter is None:
        raise BadInput(
            f"{architecture} must become GGUF for Ollama (it cannot import this architecture from safetensors), and "
            "llama.cpp's convert_hf_to_gguf.py was not found: clone https://github.com/ggml-org/llama.cpp, "
            "`pip install -r llama.cpp/requirements.txt`, and set LLAMA_CPP_DIR to the checkout"
        )
    return converter


def create(name: str, exported: Export, recipe: ModelRecipe, system_prompt: str) -> list[str]:
    """Upload the weights as blobs and create the model on the Ollama server; returns the uploaded file names."""
    files = [exported.weights] if exported.weights.is_file() else sorted(
        path for path in exported.weights.iterdir() if path.is_file())
    template, stops = chat_format(recipe)
    with connected() as ollama:
        digests = {path.name: ollama.create_blob(path) for path in files}
        # The same parameters as the Modelfile's, and the same quantisation whatever the weights' format.
        ollama.create(model=name, files=digests, template=template, system=system_prompt,
                      parameters={"temperature": 0, "num_ctx": NUM_CTX, "stop": stops},
                      quantize=create_quantization(exported))
    return list(digests)


def create_quantization(exported: Export) -> str | None:
    """What Ollama should quantise to when creating the model: the merged 16-bit folder to QUANTIZATION; a GGUF
    is already QUANTIZATION (Ollama does not quantise GGUF on import)."""
    return None if exported.weights.suffix == ".gguf" else QUANTIZATION


def create_command(exported: Export, name: str = "NAME") -> str:
    quantize = create_quantization(exported)
    return f"ollama create {name} -f {exported.modelfile}" + (f" --quantize {quantize}" if quantize else "")
