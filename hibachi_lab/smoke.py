"""Smoke models: tiny randomly initialised models of the real architectures, for pipeline checks.

``qwen3-tiny``, ``phi3-tiny`` and ``qwen2-tiny`` are built from a config (no download) with a
byte-level BPE tokenizer trained on the dataset's own text at run time and a ChatML template
with tool calls and ``{% generation %}`` markers. They exercise target modules, chat templates,
assistant-only masking, saving and resuming on CPU in seconds. They are not students: their
answers mean nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]

# ChatML as Qwen uses it, tool calls included, with the assistant's part between {% generation %}
# markers so transformers can return the assistant-token mask TRL's assistant-only loss needs.
CHATML_TEMPLATE = (
    # No whitespace control needed: the template's only whitespace is the one written out.
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\nYou may call these functions:\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n"
    "Answer a call as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n"
    "{% elif messages[0].role == 'system' %}"
    "<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{{ message.content or '' }}"
    "{% if message.tool_calls %}{% for call in message.tool_calls %}"
    "<tool_call>{\"name\": \"{{ call.function.name }}\", \"arguments\": "
    "{% if call.function.arguments is string %}{{ call.function.arguments }}"
    "{% else %}{{ call.function.arguments | tojson }}{% endif %}}</tool_call>"
    "{% endfor %}{% endif %}<|im_end|>{% endgeneration %}\n"
    "{% elif message.role != 'system' %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

ARCHITECTURES = ("qwen3", "phi3", "qwen2")


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 600) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:], chat_template=CHATML_TEMPLATE,
    )


def tiny_model(architecture: str, tokenizer: Any, seed: int = 0) -> Any:
    """A 2-layer, 64-wide randomly initialised causal LM of the named architecture family."""
    import torch
    from transformers import AutoModelForCausalLM, Phi3Config, Qwen2Config, Qwen3Config

    sizes = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
             "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
             "bos_token_id": tokenizer.pad_token_id, "initializer_range": 0.1}
    configs = {"qwen3": lambda: Qwen3Config(head_dim=16, tie_word_embeddings=True, **sizes),
               "qwen2": lambda: Qwen2Config(tie_word_embeddings=True, **sizes),
               "phi3": lambda: Phi3Config(**sizes)}
    if architecture not in configs:
        raise ValueError(f"unknown smoke architecture {architecture!r}; expected one of {', '.join(configs)}")
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(configs[architecture]())
