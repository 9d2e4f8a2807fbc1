"""Students on a laptop through Ollama: merge, convert, write a Modelfile, create the model, ask it.

Ollama imports a safetensors LoRA adapter only onto llama and gemma2 bases, and a full
safetensors model only for Phi3ForCausalLM and Qwen2ForCausalLM (not Qwen3). So hibachi-lab
merges the adapter into its base and, where Ollama cannot read the merged folder (Qwen3, or
always when asked), converts it to GGUF with llama.cpp's ``convert_hf_to_gguf.py``
(``LLAMA_CPP_DIR`` names the llama.cpp checkout). The Modelfile carries the chat TEMPLATE and
stop tokens; without them a model rambles on or prints template tokens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hibachi_lab.errors import BadInput
from hibachi_lab.files import write_text_atomic
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
# Architectures whose merged safetensors folder Ollama imports directly.
OLLAMA_SAFETENSORS = {"Phi3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM", "GemmaForCausalLM",
                      "Gemma2ForCausalLM", "MistralForCausalLM"}


def client() -> Any:
    """The official client; its host comes from OLLAMA_HOST (default http://localhost:11434)."""
    import ollama

    return ollama.Client(host=os.environ.get("OLLAMA_HOST"))


def chat_format(recipe: ModelRecipe) -> tuple[str, list[str]]:
    key = "deepseek_r1" if recipe.chat_template.generation_markers == "deepseek_r1" else recipe.family
    return FORMATS.get(key, FORMATS["qwen3"])


def modelfile(source: str, recipe: ModelRecipe, system_prompt: str) -> str:
    template, stops = chat_format(recipe)
    lines = [f"FROM {source}", f'TEMPLATE """{template}"""', f'SYSTEM """{system_prompt}"""',
             "PARAMETER temperature 0", "PARAMETER num_ctx 4096"]
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"


@dataclass
class Export:
    folder: Path
    weights: Path  # the merged folder or the GGUF file the Modelfile's FROM names
    modelfile: Path
    architecture: str


def export(adapter: str | os.PathLike, recipe: ModelRecipe, out: str | os.PathLike, system_prompt: str,
           gguf: bool | None = None) -> Export:
    """Merge adapter + base into ``out/merged``, convert to GGUF where Ollama needs it, write ``out/Modelfile``."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").exists():
        raise BadInput(f"{adapter}: no adapter_config.json; pass OUT/adapter from train")
    smoke_base = adapter.parent / "base"
    base = smoke_base if (smoke_base / "config.json").exists() else PeftConfig.from_pretrained(adapter).base_model_name_or_path
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    folder = out / "merged"
    merged.save_pretrained(folder)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(folder)
    architecture = merged.config.architectures[0]
    needs_gguf = architecture not in OLLAMA_SAFETENSORS if gguf is None else gguf
    weights = convert_to_gguf(folder, out / "model.gguf") if needs_gguf else folder
    path = write_text_atomic(out / "Modelfile", modelfile(str(weights.resolve()), recipe, system_prompt))
    return Export(out, weights, path, architecture)


def convert_to_gguf(folder: Path, target: Path) -> Path:
    converter = _converter()
    if converter is None:
        raise BadInput(
            f"{folder} must become GGUF for Ollama (it cannot import this architecture from safetensors), and "
            "llama.cpp's convert_hf_to_gguf.py was not found: clone https://github.com/ggml-org/llama.cpp, "
            "`pip install -r llama.cpp/requirements.txt`, and set LLAMA_CPP_DIR to the checkout"
        )
    subprocess.run([sys.executable, str(converter), str(folder), "--outfile", str(target), "--outtype", "q8_0"],
                   check=True)
    return target


def _converter() -> Path | None:
    candidates = []
    if os.environ.get("LLAMA_CPP_DIR"):
        candidates.append(Path(os.environ["LLAMA_CPP_DIR"]) / "convert_hf_to_gguf.py")
    found = shutil.which("convert_hf_to_gguf.py")
    if found:
        candidates.append(Path(found))
    return next((path for path in candidates if path.exists()), None)


def create(name: str, exported: Export, recipe: ModelRecipe, system_prompt: str) -> list[str]:
    """Upload the weights as blobs and create the model on the Ollama server; returns the uploaded file names."""
    ollama = client()
    files = [exported.weights] if exported.weights.is_file() else sorted(
        path for path in exported.weights.iterdir() if path.is_file())
    digests = {path.name: ollama.create_blob(path) for path in files}
    template, stops = chat_format(recipe)
    ollama.create(model=name, files=digests, template=template, system=system_prompt,
                  parameters={"temperature": 0, "stop": stops})
    return list(digests)
