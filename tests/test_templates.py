"""Chat templates: tools and tool calls in every recipe's training target, Qwen3 with thinking off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hibachi_lab import evaluate, train
from hibachi_lab.chat_templates import TEMPLATES, strip_think
from hibachi_lab.recipes import load_hardware, load_recipe, recipe_names
from hibachi_lab.smoke import tiny_tokenizer

TOOLS = [{"type": "function", "function": {
    "name": "create_booking", "description": "Book a hibachi party.",
    "parameters": {"type": "object", "properties": {"guests": {"type": "integer"}, "date": {"type": "string"}}}}}]
BOOKING = [
    {"role": "system", "content": "You are My Hibachi's assistant."},
    {"role": "user", "content": "Book us for 12 guests on 2026-12-05."},
    {"role": "assistant", "content": "Done, you're booked!", "tool_calls": [
        {"type": "function", "function": {"name": "create_booking",
                                          "arguments": json.dumps({"guests": 12, "date": "2026-12-05"})}}]},
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [m["content"] for m in BOOKING] + [json.dumps(TOOLS)] * 3
    made = tiny_tokenizer(texts)
    made.bos_token = "<|endoftext|>"
    return made


def learned_and_prompt(tokenizer, template: str, messages, **kwargs) -> tuple[str, str]:
    rendered = tokenizer.apply_chat_template(messages, tools=TOOLS, chat_template=template, tokenize=True,
                                             return_dict=True, return_assistant_tokens_mask=True, **kwargs)
    ids, mask = rendered["input_ids"], rendered["assistant_masks"]
    learned = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    prompt = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    return learned, prompt


ALL_RECIPES = recipe_names(include_smoke=True)


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_learns_the_booking_call_and_sees_the_tool_schemas(name, tokenizer):
    recipe = load_recipe(name)
    template = train.training_template(recipe)
    assert template is not None, f"{name} would train with whatever template its tokenizer ships"
    kwargs = {"enable_thinking": recipe.chat_template.enable_thinking} if recipe.chat_template.enable_thinking is not None else {}
    learned, prompt = learned_and_prompt(tokenizer, template, BOOKING, **kwargs)
    assert "create_booking" in prompt and "Book a hibachi party." in prompt  # the schemas are in the prompt
    assert "Done, you're booked!" in learned and "<tool_call>" in learned
    parsed = evaluate.reply_from_text("p", learned)  # what the gate reads back from a generated reply
    assert parsed.tool_calls == [{"type": "function", "function": {
        "name": "create_booking", "arguments": {"guests": 12, "date": "2026-12-05"}}}]
    assert parsed.answer.startswith("Done, you're booked!")
    assert "You are My Hibachi's assistant." not in learned and "Book us" not in learned


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_a_call_without_text_and_arguments_as_an_object_render_too(name, tokenizer):
    template = train.training_template(load_recipe(name))
    call_only = [*BOOKING[:2], {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "create_booking", "arguments": {"guests": 3}}}]}]
    learned, _ = learned_and_prompt(tokenizer, template, call_only)
    assert evaluate.reply_from_text("p", learned).tool_calls[0]["function"]["arguments"] == {"guests": 3}


def test_qwen3_keeps_the_empty_think_block_out_of_the_learned_span_and_prefills_it(tokenizer):
    learned, prompt = learned_and_prompt(tokenizer, TEMPLATES["qwen3"], BOOKING, enable_thinking=False)
    assert "<think>" not in learned and learned.startswith("Done, you're booked!")
    # (the newline after <|im_end|> closes the turn outside the learned span)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n\n")
    generation_prompt = tokenizer.apply_chat_template(BOOKING[:2], chat_template=TEMPLATES["qwen3"], tokenize=False,
                                                      add_generation_prompt=True, enable_thinking=False)
    # At generation the prompt ends exactly where training's learned span begins.
    assert generation_prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_think_blocks_are_not_part_of_an_answer():
    assert strip_think("<think>\nLet me see.\n</think>\n\nWe open at 5pm.") == "We open at 5pm."
    assert strip_think("<think>\n\n</think>\n\nYes.") == "Yes."
    assert strip_think("<think>still thinking when the tokens ran out") == ""
    assert strip_think("No tags here.") == "No tags here."


def test_adapter_answers_pass_enable_thinking_false_and_drop_think_tags(built, tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerBase

    dataset, _ = built
    out = tmp_path / "run"
    train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), dataset, out,
                train.TrainSettings(max_steps=1, save_steps=100), track=False)
    rendered_prompts = []
    original = PreTrainedTokenizerBase.apply_chat_template

    def spy(self, conversation, *args, **kwargs):
        result = original(self, conversation, *args, **kwargs)
        rendered_prompts.append((kwargs.get("enable_thinking"), result))
        return result

    monkeypatch.setattr(PreTrainedTokenizerBase, "apply_chat_template", spy)
    monkeypatch.setattr(PreTrainedTokenizerBase, "decode",
                        lambda self, *a, **k: "<think>\nThe price is listed.\n</think>\n\nIt is $60 per adult.")
    examples = [json.loads(line) for line in (dataset / "gate.jsonl").read_text().splitlines()[:3]]
    answers = evaluate.answers_from_adapter(out / "adapter", examples, evaluate.GenerationSettings(max_new_tokens=2))
    assert rendered_prompts and all(flag is False for flag, _ in rendered_prompts)
    assert all(text.endswith("<think>\n\n</think>\n\n") for _, text in rendered_prompts)
    assert {answer.answer for answer in answers.values()} == {"It is $60 per adult."}


def test_the_recipe_travels_with_the_adapter(built, tmp_path):
    from hibachi_lab.students import RECIPE_RECORD, adapter_recipe

    dataset, _ = built
    train.train(load_recipe("phi3-tiny"), load_hardware("laptop-cpu"), dataset, tmp_path / "run",
                train.TrainSettings(max_steps=1, save_steps=100), track=False)
    assert (Path(tmp_path / "run" / "adapter") / RECIPE_RECORD).exists()
    assert adapter_recipe(tmp_path / "run" / "adapter") == load_recipe("phi3-tiny")
