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

# Ollama's Go templates for the chat formats the students train with (hibachi_lab.chat_templates, and the smoke
# models' ChatML), and the tokens that end a turn. Like Ollama's official qwen3/phi4/deepseek-r1 templates they
# print the system prompt once, from .System: Ollama also keeps system messages in .Messages, so the loop over
# messages skips them (printing both repeated the system prompt). Tools and tool calls are rendered as in
# training (.Tools in the system turn, calls as <tool_call> blocks, which is also how Ollama learns to parse
# calls out of a reply), and Qwen3's empty think block is prefilled, as training had it, since these students
# answer with thinking off.
_TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{{- range .Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}{{- end }}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
)


def _system_turn(start: str, end: str) -> str:
    return ("{{- if or .System .Tools }}" + start + "{{ if .System }}{{ .System }}{{ if .Tools }}\n\n{{ end }}{{ end }}"
            "{{- if .Tools }}" + _TOOLS + "{{- end }}" + end + "{{ end }}")


# The assistant's text, then each call on its own line, as the training templates write them.
_CALLS = (
    "{{- $content := .Content }}"
    "{{- range $j, $call := .ToolCalls }}{{- if or $content $j }}\n{{ end }}<tool_call>\n"
    "{\"name\": \"{{ $call.Function.Name }}\", \"arguments\": {{ $call.Function.Arguments }}}\n</tool_call>"
    "{{- end }}"
)
_LAST = "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
QWEN3 = (
    _system_turn("<|im_start|>system\n", "<|im_end|>\n")
    + "{{- range $i, $_ := .Messages }}" + _LAST
    + "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
    "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n<think>\n\n</think>\n\n{{ .Content }}" + _CALLS
    + "{{- if not $last }}<|im_end|>\n{{ end }}"
    "{{- else if eq .Role \"tool\" }}<|im_start|>user\n<tool_response>\n{{ .Content }}\n</tool_response><|im_end|>\n"
    "{{ end }}"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant\n<think>\n\n</think>\n\n{{ end }}"
    "{{- end }}"
)
PHI4 = (
    _system_turn("<|im_start|>system<|im_sep|>", "<|im_end|>")
    + "{{- range $i, $_ := .Messages }}" + _LAST
    + "{{- if eq .Role \"user\" }}<|im_start|>user<|im_sep|>{{ .Content }}<|im_end|>"
    "{{- else if eq .Role \"assistant\" }}<|im_start|>assistant<|im_sep|>{{ .Content }}" + _CALLS
    + "{{- if not $last }}<|im_end|>{{ end }}"
    "{{- else if eq .Role \"tool\" }}<|im_start|>user<|im_sep|><tool_response>\n{{ .Content }}\n</tool_response><|im_end|>"
    "{{- end }}"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant<|im_sep|>{{ end }}"
    "{{- end }}"
)
DEEPSEEK_R1 = (
    _system_turn("", "")
    + "{{- range $i, $_ := .Messages }}" + _LAST
    + "{{- if eq .Role \"user\" }}<｜User｜>{{ .Content }}"
    "{{- else if eq .Role \"assistant\" }}<｜Assistant｜>{{ .Content }}" + _CALLS
    + "{{- if not $last }}<｜end▁of▁sentence｜>{{ end }}"
    "{{- else if eq .Role \"tool\" }}<｜User｜><tool_response>\n{{ .Content }}\n</tool_response>"
    "{{- end }}"
    "{{- if and (ne .Role \"assistant\") $last }}<｜Assistant｜>{{ end }}"
    "{{- end }}"
)
# The smoke models' ChatML (hibachi_lab.smoke.CHATML_TEMPLATE), tool preamble and call format included.
CHATML = (
    "{{- if .Tools }}<|im_start|>system\n{{ if .System }}{{ .System }}\n\n{{ end }}# Tools\nYou may call these "
    # (no newlines around the schemas: the Jinja template's follow block tags, which trim_blocks drops)
    "functions:\n<tools>{{- range .Tools }}{\"type\": \"function\", \"function\": {{ .Function }}}{{- end }}"
    "</tools>\nAnswer a call as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n"
    "{{ else if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}" + _LAST
    + "{{- if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}"
    "{{- range .ToolCalls }}<tool_call>{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}"
    "</tool_call>{{- end }}"
    # (no newline after an assistant turn: the Jinja template's one follows a block tag, which trim_blocks drops)
    "{{- if not $last }}<|im_end|>{{ end }}"
    "{{- else if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant\n{{ end }}"
    "{{- end }}"
)
FORMATS = {
    "qwen3": (QWEN3, ["<|im_end|>", "<|im_start|>"]),
    "chatml": (CHATML, ["<|im_end|>", "<|im_start|>"]),
    "phi4": (PHI4, ["<|im_end|>", "<|im_start|>", "<|im_sep|>"]),
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
    """The Ollama template matching the chat template the recipe trains with (train.training_template)."""
    return FORMATS[recipe.chat_template.generation_markers or "chatml"]


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
