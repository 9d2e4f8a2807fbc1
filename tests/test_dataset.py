"""The dataset builder as a user runs it: scrubbed traffic in, chat datasets out that TRL can train on."""

from __future__ import annotations

import json
import re

import datasets
import pytest
from typer.testing import CliRunner

from hibachi_lab import dataset, pii, traffic
from hibachi_lab.cli import DEFAULT_DATASET, DEFAULT_PII, app
from hibachi_lab.errors import BadInput
from hibachi_lab.smoke import tiny_model, tiny_tokenizer

MEMBERS = ["gpt4o", "claude", "mistral"]
runner = CliRunner()


def test_no_conversation_is_in_two_splits(built):
    _, result = built
    conversations = [set(frame["conversation_id"]) for frame in result.splits.values()]
    assert all(len(frame) for frame in result.splits.values())
    for i, first in enumerate(conversations):
        for second in conversations[i + 1 :]:
            assert not first & second


def test_every_turn_is_an_example_or_counted_under_one_reason(built, scrubbed):
    _, result = built
    summary = result.summary
    turns_in = len(scrubbed.read_text().splitlines())
    assert summary["turns_in"] == turns_in
    assert turns_in == summary["examples_out"] + sum(summary["dropped"].values()) + sum(summary["removed"].values())
    assert summary["dropped"]["low_agreement"] > 0 and summary["removed"]["exact_duplicate"] > 0


def test_outputs_are_a_datasetdict_jsonl_a_card_and_a_kaggle_bundle(built):
    out, result = built
    loaded = datasets.load_from_disk(str(out / "hf"))
    assert set(loaded) == set(dataset.SPLITS)
    for name in dataset.SPLITS:
        lines = (out / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == len(loaded[name]) == result.summary["per_split"][name]
        example = json.loads(lines[0])
        assert example["messages"][0]["role"] == "system"
        assert example["messages"][-1]["role"] == "assistant"
    card = (out / "README.md").read_text()
    assert "gate" in card and "low_agreement" in card and "figures/token_lengths.png" in card
    metadata = json.loads((out / "kaggle" / "dataset-metadata.json").read_text())
    assert metadata["id"].endswith("/my-hibachi-sft")
    assert (out / "kaggle" / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()


@pytest.mark.slow
def test_the_same_input_twice_gives_identical_files(built, scrubbed, tmp_path, engine):
    out, _ = built
    again = tmp_path / "again"
    dataset.build(traffic.load(scrubbed), again, dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine, MEMBERS,
                  pii.PiiConfig.from_yaml(DEFAULT_PII), source=str(scrubbed), track=False)
    for name in dataset.SPLITS:
        assert (again / f"{name}.jsonl").read_bytes() == (out / f"{name}.jsonl").read_bytes()
        arrow_files = sorted((out / "hf" / name).glob("*.arrow"))
        assert arrow_files
        for file in arrow_files:
            assert (again / "hf" / name / file.name).read_bytes() == file.read_bytes()


@pytest.mark.slow
def test_a_planted_phone_number_stops_the_build_and_nothing_is_written(scrubbed, tmp_path, engine):
    turns = list(traffic.iter_objects(traffic.load(scrubbed)))
    turns[3]["final_response"] = "Sure, call our manager back at 916-555-0188."
    turns[3]["responses"] = [r | {"content": turns[3]["final_response"]} for r in turns[3]["responses"]]
    leaky = tmp_path / "leaky.jsonl"
    traffic.write_turns([traffic.parse_turn(turn) for turn in turns], leaky)
    out = tmp_path / "dataset"
    with pytest.raises(BadInput, match=f"PII leak check failed.*{turns[3]['conversation_id']}.*PHONE_NUMBER"):
        dataset.build(traffic.load(leaky), out, dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine, MEMBERS,
                      pii.PiiConfig.from_yaml(DEFAULT_PII), track=False)
    assert not out.exists()
    assert not list(tmp_path.glob(".dataset*"))


def test_tool_call_examples_render_through_the_chat_template(built):
    _, result = built
    with_tools = result.splits["train"][result.splits["train"]["tools"].notna()]
    assert len(with_tools)
    row = with_tools.iloc[0]
    tokenizer = tiny_tokenizer(["hello world"] * 10)
    tools = json.loads(row["tools"])
    messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
    rendered = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    call = row["messages"][-1]["tool_calls"][0]["function"]
    assert '"name": "create_booking"' in rendered or '"name": "update_booking"' in rendered
    assert f'"name": "{call["name"]}", "arguments": {call["arguments"]}' in rendered


@pytest.mark.slow
def test_the_output_trains_with_trl_and_the_loss_masks_the_prompt(built, tmp_path):
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    out, _ = built
    train = datasets.load_from_disk(str(out / "hf"))["train"].select(range(16))
    texts = [m["content"] or "" for example in train for m in example["messages"]]
    tokenizer = tiny_tokenizer(texts)
    model = tiny_model("qwen3", tokenizer)
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=2,
                     assistant_only_loss=True, report_to=[], logging_steps=1, save_strategy="no", bf16=False,
                     use_cpu=True, max_length=512, learning_rate=1e-3, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                task_type="CAUSAL_LM"))
    # TRL turns the template's assistant mask into labels: -100 (no loss) on every prompt token.
    labels = trainer.train_dataset["labels"]
    ids = trainer.train_dataset["input_ids"]
    assert all(0 < sum(label != -100 for label in row) < len(row) for row in labels)
    learned = tokenizer.decode([t for t, label in zip(ids[0], labels[0], strict=True) if label != -100])
    assert learned.startswith(train[0]["messages"][-1]["content"][:20])
    assert "<|im_start|>user" not in learned and "<|im_start|>system" not in learned
    trainer.train()
    assert trainer.state.global_step == 3
    assert all(entry["loss"] == entry["loss"] for entry in trainer.state.log_history if "loss" in entry)


@pytest.mark.slow
def test_build_dataset_command_refuses_unscrubbed_logs(small_log, tmp_path):
    out = tmp_path / "dataset"
    result = runner.invoke(app, ["build-dataset", str(small_log), "--out", str(out), "--no-mlflow"])
    assert result.exit_code == 2
    assert "PII leak check failed" in result.output
    assert not out.exists()


def test_dataset_config_errors_name_the_key(tmp_path):
    config = tmp_path / "dataset.yaml"
    config.write_text("split: {train: 0.7, eval: 0.1, gate: 0.1}\n")
    with pytest.raises(BadInput, match="split: Value error, train \\+ eval \\+ gate must be 1"):
        dataset.DatasetConfig.from_yaml(config)


def test_the_card_and_the_kaggle_bundle_name_no_absolute_path(built, scrubbed):
    out, result = built  # built from an absolute path outside the working folder
    absolute = re.compile(r"(?:^|[\s\"'(`=])/(?!/)[\w.-]+/")
    assert result.summary["source"] == scrubbed.name
    shared = [out / "README.md", out / "summary.json", *sorted((out / "kaggle").iterdir())]
    for path in shared:
        if path.suffix in (".md", ".json", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            assert not absolute.search(text) and str(scrubbed.parent) not in text, path.name
    assert f"Built from {scrubbed.name}:" in (out / "kaggle" / "README.md").read_text()
    assert (out / "kaggle" / "figures" / "token_lengths.png").exists()  # the card shows it


def test_teacher_answers_against_the_sheet_are_flagged_in_train_and_kept_out_of_the_gate():
    import pandas as pd

    def example(answer: str, split: str) -> dict:
        return {"messages": [{"role": "user", "content": "?"}, {"role": "assistant", "content": answer}], "split": split}

    examples = pd.DataFrame([
        example("It's $75 per adult and $30 per child.", "gate"),            # the sheet says $60 per adult
        example("Please bring your own propane and tables.", "train"),       # we bring the propane
        example("It's $60 per adult; you provide tables and chairs.", "gate"),
        example("The deposit is $250 to hold the date.", "eval"),            # the sheet says $100
        example("Sure! See you at 6 on the 12th.", "train"),
    ])
    kept, left_out = dataset.check_against_sheet(examples, None)
    assert left_out == 1
    assert list(kept["off_policy"].str.split(": ").str[0]) == ["provision:propane", "", "deposit", ""]
    assert not (kept[kept["split"] == "gate"]["off_policy"] != "").any()


def test_the_built_dataset_accounts_for_references_left_out(built):
    _, result = built
    summary = result.summary
    assert all(not answer for answer in result.splits["gate"]["off_policy"])
    assert summary["teacher_answers_off_policy"]["gate"] == 0
    assert set(summary["teacher_answers_off_policy"]) == {"train", "eval", "gate"}


def test_a_prompt_asked_twice_keeps_one_gate_example_and_its_repeats_elsewhere_stay():
    import pandas as pd

    examples = pd.DataFrame({
        "prompt_id": ["p1", "p1", "p2", "p1", "p3", "p3"],
        "split": ["gate", "gate", "gate", "train", "train", "train"],
        "conversation_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
    })
    kept, repeated = dataset.one_example_per_gate_prompt(examples)
    assert repeated == 1
    assert kept["conversation_id"].tolist() == ["c1", "c3", "c4", "c5", "c6"]  # a student answers p1 once
