"""The chat templates students train and generate with, with ``{% generation %}`` around what is learned.

One tool format for every family: tool schemas in the system turn inside ``<tools></tools>`` and calls as
``<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`` (Qwen's and Hermes' format). It is Qwen3's
native one; Phi-4's template has no tool support at all, and the R1 distills' native format (DeepSeek's
tool-call tokens) is not one the gate's parser nor Ollama's reads back, so they learn this one. Without it,
booking turns trained on Phi-4 and R1 lost their call from the target.

Qwen3 with thinking off: Qwen3's own template prefills ``<think>\n\n</think>\n\n`` after the generation prompt
when ``enable_thinking`` is false, so the empty think block is part of the prompt, not of the answer: here it is
rendered before ``{% generation %}`` (TRL's Qwen3 training template puts it inside the learned span).
"""

from __future__ import annotations

import re

TOOLS_PREAMBLE = (
    "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\\n<tools>"
)
TOOLS_CLOSING = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call>"
)


def _system(start: str, end: str) -> str:
    """The system turn: the system message, then the tool schemas when there are tools."""
    return (
        "{%- if tools %}"
        f"{{{{- '{start}' }}}}"
        "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
        f"{{{{- \"{TOOLS_PREAMBLE}\" }}}}"
        "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
        f"{{{{- \"{TOOLS_CLOSING}\" }}}}"
        f"{{{{- '{end}' }}}}"
        "{%- elif messages[0].role == 'system' %}"
        f"{{{{- '{start}' + messages[0].content + '{end}' }}}}"
        "{%- endif %}"
    )


# The assistant's text and its calls (inside a generation block in every template).
_CONTENT_AND_CALLS = (
    "{{- content }}"
    "{%- if message.tool_calls %}{%- for call in message.tool_calls %}"
    "{%- if content or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{%- set call = call.function if call.function else call %}"
    "{{- '<tool_call>\\n{\"name\": \"' + call.name + '\", \"arguments\": ' }}"
    "{%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
)
_CONTENT = "{%- set content = message.content if message.content is string else '' %}"

QWEN3 = (
    _system("<|im_start|>system\\n", "<|im_end|>\\n")
    + "{%- for message in messages %}" + _CONTENT
    + "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    # An empty think block, as Qwen3 prefills it with thinking off, is prompt; a real one is learned.
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if not reasoning %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- generation %}"
    "{%- if reasoning %}{{- '<think>\\n' + reasoning + '\\n</think>\\n\\n' }}{%- endif %}"
    + _CONTENT_AND_CALLS +
    "{{- '<|im_end|>' }}"
    "{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

PHI4 = (
    _system("<|im_start|>system<|im_sep|>", "<|im_end|>")
    + "{%- for message in messages %}" + _CONTENT
    + "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant<|im_sep|>' }}"
    "{%- generation %}" + _CONTENT_AND_CALLS + "{{- '<|im_end|>' }}{%- endgeneration %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user<|im_sep|><tool_response>\\n' + content + '\\n</tool_response><|im_end|>' }}"
    "{%- elif message.role != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message.role + '<|im_sep|>' + content + '<|im_end|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant<|im_sep|>' }}{%- endif %}"
)

DEEPSEEK_R1 = (
    "{{- bos_token }}"
    + _system("", "")
    + "{%- for message in messages %}" + _CONTENT
    + "{%- if message.role == 'user' %}{{- '<｜User｜>' + content }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<｜Assistant｜>' }}"
    "{%- generation %}" + _CONTENT_AND_CALLS + "{{- '<｜end▁of▁sentence｜>' }}{%- endgeneration %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<｜User｜><tool_response>\\n' + content + '\\n</tool_response>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<｜Assistant｜>' }}{%- endif %}"
)

TEMPLATES = {"qwen3": QWEN3, "phi4": PHI4, "deepseek_r1": DEEPSEEK_R1}

THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
_UNCLOSED_THINK = re.compile(r"<think>.*\Z", re.DOTALL)


def strip_think(text: str) -> str:
    """An answer without its think blocks (and without an unclosed one that ran out of tokens)."""
    return _UNCLOSED_THINK.sub("", THINK_BLOCK.sub("", text)).strip()
