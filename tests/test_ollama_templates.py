"""The Modelfile templates, rendered with Go's text/template as the Ollama server renders them.

Needs `go` (Debian: golang-go); without it these tests are skipped. The prompt Ollama builds must be the one
the student was trained on: same text as the training chat template renders for the same conversation,
tools and tool calls included, the system prompt once, Qwen3's empty think block prefilled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hibachi_lab import ollama, train
from hibachi_lab.recipes import load_recipe, recipe_names
from hibachi_lab.smoke import tiny_tokenizer

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "ollama"
GO = shutil.which("go")
pytestmark = pytest.mark.skipif(GO is None, reason="rendering Ollama's Go templates needs `go` (apt-get install "
                                                   "golang-go); not installed here")

SYSTEM = "You are My Hibachi's assistant. Be brief."
FUNCTION = {"name": "create_booking", "description": "Book a hibachi party.",
            "parameters": {"type": "object", "properties": {"guests": {"type": "integer"}}}}
TOOLS = [{"type": "function", "function": FUNCTION}]
ARGUMENTS = {"guests": 12, "date": "2026-12-05"}
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Book us for 12 on Dec 5."},
    {"role": "assistant", "content": "Done, you're booked!",
     "tool_calls": [{"type": "function", "function": {"name": "create_booking", "arguments": json.dumps(ARGUMENTS)}}]},
    {"role": "tool", "content": "{\"booking_id\": \"B-1\"}"},
    {"role": "user", "content": "Thanks! Do you bring the grill?"},
]
PLAIN = [CONVERSATION[0], CONVERSATION[1], {"role": "assistant", "content": "Sure, what date?"},
         {"role": "user", "content": "Dec 5, 12 guests."}]


def render(template: str, messages: list[dict], tools: list[dict] | None = None, system: str = SYSTEM,
           **extra) -> str:
    """What Ollama hands the template: .System (the Modelfile's SYSTEM or the request's system message) and
    .Messages with the system message still in them; JSON values print as given."""
    wire = [{"role": m["role"], "content": m.get("content") or "",
             "tool_calls": [{"function": {"name": c["function"]["name"],
                                          "arguments": json.loads(c["function"]["arguments"])}}
                            for c in m.get("tool_calls") or []]} for m in messages]
    payload = json.dumps({"template": template, "system": system, "messages": wire,
                          "tools": [{"type": "function", "function": tool["function"]} for tool in tools or []],
                          **extra})
    env = os.environ | {"GO111MODULE": "off", "GOCACHE": str(HERE.parent / ".cache" / "go"),
                        "GOPATH": str(HERE.parent / ".cache" / "gopath")}
    done = subprocess.run([GO, "run", str(HERE / "ollama_render" / "main.go")], input=payload, text=True,
                          capture_output=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def training_prompt(recipe_name: str, messages: list[dict], tools: list[dict] | None) -> str:
    recipe = load_recipe(recipe_name)
    tokenizer = tiny_tokenizer(["hello"] * 3)
    tokenizer.bos_token = "<|endoftext|>"
    kwargs = {"enable_thinking": recipe.chat_template.enable_thinking} if recipe.chat_template.enable_thinking is not None else {}
    text = tokenizer.apply_chat_template(messages, tools=tools, chat_template=train.training_template(recipe),
                                         tokenize=False, add_generation_prompt=True, **kwargs)
    return text.removeprefix(tokenizer.bos_token)  # Ollama adds the BOS token itself


@pytest.mark.parametrize("name", recipe_names(include_smoke=True))
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["plain", "tools"])
def test_ollama_builds_the_prompt_the_student_was_trained_on(name, tools):
    messages = CONVERSATION if tools else PLAIN
    template, _ = ollama.chat_format(load_recipe(name))
    assert render(template, messages, tools) == training_prompt(name, messages, tools)


@pytest.mark.parametrize("key", sorted(ollama.FORMATS))
def test_the_system_prompt_is_printed_once(key):
    template, _ = ollama.FORMATS[key]
    assert render(template, PLAIN).count(SYSTEM) == 1
    assert render(template, CONVERSATION, TOOLS).count(SYSTEM) == 1


@pytest.mark.parametrize("fixture", ["qwen3", "phi4", "deepseek-r1"])
def test_the_official_style_templates_print_the_system_prompt_once_too(fixture):
    template = (FIXTURES / f"{fixture}.gotmpl").read_text().rstrip("\n")
    assert render(template, PLAIN).count(SYSTEM) == 1


def test_qwen3_has_the_official_tools_section_calls_and_empty_think_prefill():
    official_template = (FIXTURES / "qwen3.gotmpl").read_text().rstrip("\n")
    official = render(official_template, CONVERSATION, TOOLS, think=False, is_think_set=True)
    ours = render(ollama.QWEN3, CONVERSATION, TOOLS)
    section = official[official.index("# Tools"):official.index("<|im_end|>")]
    assert section in ours
    call = '<tool_call>\n{"name": "create_booking", "arguments": ' + json.dumps(ARGUMENTS) + "}\n</tool_call>"
    assert call in ours
    # A call without text, as the official template renders one (it drops the calls of a message with text).
    call_only = [*CONVERSATION[:2], CONVERSATION[2] | {"content": ""}, *CONVERSATION[3:]]
    assert call in render(official_template, call_only, TOOLS) and call in render(ollama.QWEN3, call_only, TOOLS)
    assert official.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert ours.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<tool_response>\n{\"booking_id\": \"B-1\"}\n</tool_response>" in ours


def test_the_old_templates_repeated_the_system_prompt():
    """The ChatML template hibachi-lab shipped before: .System and then every message, the system one included."""
    old = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
           "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n")
    assert render(old, PLAIN).count(SYSTEM) == 2
