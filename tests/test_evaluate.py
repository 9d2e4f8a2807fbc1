"""The promotion decision: scoring, the gate, the registry, Ollama and the MLflow server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import datasets
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import evaluate, registry, train
from hibachi_lab.cli import SIMILARITY_PROBES, app
from hibachi_lab.errors import BadInput
from hibachi_lab.policy import load_policy
from hibachi_lab.recipes import load_hardware, load_recipe
from hibachi_lab.records import read_jsonl
from hibachi_lab.similarity import ProbePair
from hibachi_lab.verdicts import Judge

from .ollama_double import OllamaDouble

runner = CliRunner()
# The small test dataset has ~26 gate examples: the same gate, scaled to it (with no wrong answer,
# 26 examples bound the wrong rate at 9.4%).
SMALL_GATE = evaluate.PromotionConfig(min_gate_examples=5, min_examples_per_intent=3, max_wrong_rate=0.12)


@pytest.fixture(scope="module")
def gate_examples(built) -> list[dict]:
    out, _ = built
    return list(datasets.load_from_disk(str(out / "hf"))["gate"])


def teacher_answers(examples: list[dict]) -> dict[str, evaluate.StudentAnswer]:
    """The teacher's own replies, booking tool calls included."""
    return {e["prompt_id"]: evaluate.teacher_answer(e) for e in examples}


def decide(examples, answers, engine, config=SMALL_GATE) -> evaluate.GateDecision:
    return evaluate.decide(evaluate.score(examples, answers, engine), config)


def test_a_student_that_answers_like_the_teacher_passes(gate_examples, engine):
    decision = decide(gate_examples, teacher_answers(gate_examples), engine)
    assert decision.passed, decision.reasons
    assert decision.metrics["mean_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert decision.metrics["wrong_answers"] == 0 and decision.metrics["verdict.correct"] == len(gate_examples)
    assert decision.metrics["teacher_ceiling"] < 1.0


def test_a_student_with_shuffled_answers_fails_for_the_right_reasons(gate_examples, engine):
    answers = list(teacher_answers(gate_examples).values())
    shuffled = dict(zip(teacher_answers(gate_examples), answers[7:] + answers[:7], strict=True))
    decision = decide(gate_examples, shuffled, engine)
    assert not decision.passed
    text = " | ".join(decision.reasons)
    assert "similarity" in text and "below the threshold" in text
    assert "answers are wrong" in text and "upper 95% bound" in text
    assert decision.metrics["wrong_answers"] >= len(gate_examples) // 2


def test_a_student_that_changes_every_number_fails_on_facts_though_cosine_stays_high(gate_examples, engine):
    def shift(text: str) -> str:
        return re.sub(r"\d+", lambda m: str(int(m.group()) + 7), text)

    answers = {pid: reply.model_copy(update={"answer": shift(reply.answer)})
               for pid, reply in teacher_answers(gate_examples).items()}
    decision = decide(gate_examples, answers, engine)
    assert not decision.passed
    assert decision.metrics["mean_similarity"] > 0.9
    assert any("answers are wrong" in reason for reason in decision.reasons)
    assert not any("below the threshold" in reason for reason in decision.reasons)


def test_one_intent_below_its_floor_fails_the_gate_alone(gate_examples, engine):
    intents = {}
    for example in gate_examples:
        intents.setdefault(example["intent"], []).append(example)
    victim = max(intents, key=lambda name: len(intents[name]))
    answers = teacher_answers(gate_examples)
    for example in intents[victim]:
        answers[example["prompt_id"]] = answers[example["prompt_id"]].model_copy(
            update={"answer": "The capital of France is Paris."})
    decision = decide(gate_examples, answers, engine, SMALL_GATE.model_copy(update={
        "threshold": 0.5, "max_wrong_rate": 0.99, "max_missing_rate": 1.0}))
    assert not decision.passed
    assert [reason for reason in decision.reasons if reason.startswith(f"intent {victim}:")]
    assert len(decision.reasons) == 1


def test_absolute_mode_is_the_literal_rule(gate_examples, engine):
    answers = teacher_answers(gate_examples)
    absolute = SMALL_GATE.model_copy(update={"mode": "absolute"})
    assert decide(gate_examples, answers, engine, absolute).metrics["gate_value"] == pytest.approx(1.0, abs=1e-5)


def test_the_second_teacher_student_takes_only_the_other_answers_that_agree_with_the_reference():
    def example(pid: str, reference: str, others: list[str]) -> dict:
        return {"prompt_id": pid, "messages": [{"role": "user", "content": "How much is it?"},
                                               {"role": "assistant", "content": reference}],
                "other_teacher_answers": others}

    examples = [
        example("agrees", "It's $60 per adult and $30 per kid.", ["Adults are $60 each, kids $30."]),
        example("wrong price", "It's $60 per adult and $30 per kid.", ["It's $75 per adult and $35 per child."]),
        example("copy only", "It's $60 per adult.", ["It's $60 per adult!"]),
        example("none", "It's $60 per adult.", []),
    ]
    answers, from_second = evaluate.second_teacher_answers(examples, Judge(load_policy(), check_pii=False))
    assert from_second == 1
    assert {pid: reply.answer for pid, reply in answers.items()} == {
        "agrees": "Adults are $60 each, kids $30.", "wrong price": "It's $60 per adult and $30 per kid.",
        "copy only": "It's $60 per adult.", "none": "It's $60 per adult."}


def test_the_clustered_bootstrap_contains_the_mean_and_narrows_with_more_conversations():
    rng = np.random.default_rng(3)

    def interval(conversations: int) -> tuple[float, float, float]:
        clusters = np.repeat(np.arange(conversations), 3)
        values = np.clip(rng.normal(0.8, 0.1, conversations)[clusters] + rng.normal(0, 0.05, len(clusters)), 0, 1)
        low, high = evaluate.clustered_bootstrap(values, clusters)
        return low, float(values.mean()), high

    small, large = interval(20), interval(500)
    assert small[0] < small[1] < small[2]
    assert large[0] < large[1] < large[2]
    assert large[2] - large[0] < (small[2] - small[0]) / 2


def test_probes_show_facts_catching_what_cosine_misses(engine):
    table = evaluate.probe_checks(read_jsonl(SIMILARITY_PROBES, ProbePair), engine)
    assert table.loc["number_swap", "mean_cosine"] > 0.85
    assert table.loc["number_swap", "judged_wrong"] > 0.7
    assert table.loc["negation", "judged_wrong"] > table.loc["paraphrase", "judged_wrong"]


def write_answers(path: Path, answers: dict[str, evaluate.StudentAnswer | str]) -> Path:
    replies = [reply if isinstance(reply, evaluate.StudentAnswer) else evaluate.StudentAnswer(prompt_id=pid, answer=reply)
               for pid, reply in answers.items()]
    path.write_text("".join(reply.model_dump_json(exclude_none=True) + "\n" for reply in replies))
    return path


@pytest.fixture
def small_gate_config(tmp_path) -> Path:
    path = tmp_path / "promotion.yaml"
    path.write_text("min_gate_examples: 5\nmin_examples_per_intent: 3\nmax_wrong_rate: 0.12\n")
    return path


def test_answers_file_end_to_end_then_promote_moves_production(built, gate_examples, tmp_path, small_gate_config):
    out, _ = built
    good = write_answers(tmp_path / "good.jsonl", teacher_answers(gate_examples))
    result = runner.invoke(app, ["evaluate", "--dataset", str(out), "--answers", str(good), "--out",
                                 str(tmp_path / "good"), "--config", str(small_gate_config)])
    assert result.exit_code == 0, result.output
    decision = json.loads((tmp_path / "good" / "decision.json").read_text())
    assert decision["passed"] and (tmp_path / "good" / "report.html").exists()
    # decision.json goes to MLflow: files named without the user's folders
    assert decision["student"]["source"] == "good.jsonl" and decision["dataset"] == out.name
    assert str(tmp_path) not in (tmp_path / "good" / "decision.json").read_text()

    bad = write_answers(tmp_path / "bad.jsonl", {k: "We are closed." for k in teacher_answers(gate_examples)})
    failed = runner.invoke(app, ["evaluate", "--dataset", str(out), "--answers", str(bad), "--out",
                                 str(tmp_path / "bad"), "--config", str(small_gate_config)])
    assert failed.exit_code == 0, failed.output
    bad_run = json.loads((tmp_path / "bad" / "decision.json").read_text())["mlflow_run_id"]

    refused = runner.invoke(app, ["promote", "--run", bad_run])
    assert refused.exit_code == 2 and "failed the promotion gate" in " ".join(refused.output.split())
    no_reason = runner.invoke(app, ["promote", "--run", bad_run, "--force"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output

    client = MlflowClient(registry.tracking_uri())
    promoted = runner.invoke(app, ["promote", "--run", decision["mlflow_run_id"]])
    assert promoted.exit_code == 0, promoted.output
    production = client.get_model_version_by_alias(registry.STUDENT_MODEL, "production")
    assert production.run_id == decision["mlflow_run_id"]
    assert client.get_model_version_by_alias(registry.STUDENT_MODEL, "candidate").run_id == bad_run

    forced = runner.invoke(app, ["promote", "--run", bad_run, "--force", "--reason", "manager approved for a test"])
    assert forced.exit_code == 0, forced.output
    version = client.get_model_version_by_alias(registry.STUDENT_MODEL, "production")
    assert version.run_id == bad_run and version.tags["force_reason"] == "manager approved for a test"

    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert f"production: version {version.version} (run {bad_run})" in status.output
    assert "50,000 goal" in status.output


def test_adapter_end_to_end_with_a_tiny_student(built, tmp_path, small_gate_config):
    out, _ = built
    run = tmp_path / "run"
    train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), out, run,
                train.TrainSettings(max_steps=2, save_steps=100), track=False)
    result = runner.invoke(app, ["evaluate", "--dataset", str(out), "--adapter", str(run / "adapter"), "--out",
                                 str(tmp_path / "eval"), "--config", str(small_gate_config), "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    decision = json.loads((tmp_path / "eval" / "decision.json").read_text())
    assert decision["student"]["kind"] == "adapter" and decision["passed"] is False
    assert decision["generation"]["decoding"] == "greedy"
    client = MlflowClient(registry.tracking_uri())
    artifacts = [f.path for f in client.list_artifacts(decision["mlflow_run_id"], "student")]
    assert "student/adapter_config.json" in artifacts


def test_exactly_one_student_source_is_required(built, tmp_path):
    out, _ = built
    with pytest.raises(BadInput, match="exactly one"):
        evaluate.run_evaluation(out, tmp_path, None, SMALL_GATE, [], track=False)


def test_ollama_export_create_and_evaluate_against_the_double(built, gate_examples, tmp_path, monkeypatch,
                                                              small_gate_config):
    out, _ = built
    run = tmp_path / "run"
    train.train(load_recipe("qwen2-tiny"), load_hardware("laptop-cpu"), out, run,
                train.TrainSettings(max_steps=2, save_steps=100), track=False)
    by_prompt = {e["messages"][-2]["content"]: _ollama_message(e["messages"][-1]) for e in gate_examples}
    with OllamaDouble(lambda model, messages: by_prompt.get(messages[-1]["content"], "?")) as double:
        monkeypatch.setenv("OLLAMA_HOST", double.url)
        exported = runner.invoke(app, ["ollama-export", str(run / "adapter"), "--model", "qwen2-tiny", "--out",
                                       str(tmp_path / "export"), "--name", "hibachi-qwen2-tiny"])
        assert exported.exit_code == 0, exported.output
        created = double.models["hibachi-qwen2-tiny"]
        assert "<|im_start|>" in created["template"] and "<|im_end|>" in created["parameters"]["stop"]
        assert "model.safetensors" in created["files"] and "config.json" in created["files"]
        modelfile = (tmp_path / "export" / "Modelfile").read_text()
        assert modelfile.startswith("FROM ") and 'PARAMETER stop "<|im_end|>"' in modelfile

        result = runner.invoke(app, ["evaluate", "--dataset", str(out), "--ollama", "hibachi-qwen2-tiny", "--out",
                                     str(tmp_path / "eval"), "--config", str(small_gate_config)])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "eval" / "decision.json").read_text())["passed"]
        assert len(double.chats) == len(gate_examples)
        assert double.chats[0]["messages"][0]["role"] == "system"


def _ollama_message(teacher: dict) -> dict:
    """The teacher's reply as Ollama sends it: tool-call arguments as an object, not JSON text."""
    calls = [{"function": {"name": call["function"]["name"], "arguments": json.loads(call["function"]["arguments"])}}
             for call in evaluate.teacher_tool_calls(teacher) or []]
    return {"content": teacher["content"], **({"tool_calls": calls} if calls else {})}


def test_qwen3_needs_gguf_and_says_how_to_get_the_converter(built, tmp_path, monkeypatch):
    out, _ = built
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    run = tmp_path / "run"
    train.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), out, run,
                train.TrainSettings(max_steps=1, save_steps=100), track=False)
    result = runner.invoke(app, ["ollama-export", str(run / "adapter"), "--model", "qwen3-tiny", "--out",
                                 str(tmp_path / "export")])
    assert result.exit_code == 2
    assert "convert_hf_to_gguf.py" in result.output and "LLAMA_CPP_DIR" in " ".join(result.output.split())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no merged model left behind

    # A converter that fails half-way: the previous export stays as it was, and nothing else is left.
    previous = tmp_path / "export" / "Modelfile"
    previous.parent.mkdir()
    previous.write_text("FROM the-previous-export\n")
    llama_cpp = tmp_path / "llama.cpp"
    llama_cpp.mkdir()
    (llama_cpp / "convert_hf_to_gguf.py").write_text("raise SystemExit('out of disk space')\n")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(llama_cpp))
    failed = runner.invoke(app, ["ollama-export", str(run / "adapter"), "--model", "qwen3-tiny", "--out",
                                 str(tmp_path / "export")])
    assert failed.exit_code == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["export", "llama.cpp", "run"]
    assert [path.name for path in previous.parent.iterdir()] == ["Modelfile"]
    assert previous.read_text() == "FROM the-previous-export\n"


def test_evaluate_against_an_ollama_server_that_is_not_running_says_how_to_start_it(built, tmp_path, monkeypatch):
    out, _ = built
    nobody = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("OLLAMA_HOST", nobody)
    result = runner.invoke(app, ["evaluate", "--dataset", str(out), "--ollama", "hibachi-student", "--out",
                                 str(tmp_path / "eval"), "--no-mlflow"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"no Ollama server answers at {nobody}: start one with `ollama serve`" in message
    assert not (tmp_path / "eval").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_mlflow_server_serves_the_evaluation_run_and_the_aliased_version(built, gate_examples, tmp_path,
                                                                             small_gate_config):
    out, _ = built
    answers = write_answers(tmp_path / "answers.jsonl", teacher_answers(gate_examples))
    result = runner.invoke(app, ["evaluate", "--dataset", str(out), "--answers", str(answers), "--out",
                                 str(tmp_path / "eval"), "--config", str(small_gate_config)])
    assert result.exit_code == 0, result.output
    run_id = json.loads((tmp_path / "eval" / "decision.json").read_text())["mlflow_run_id"]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", registry.tracking_uri(),
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        run = json.load(urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}"))
        assert run["run"]["info"]["run_id"] == run_id
        assert {"key": "passed", "value": 1.0} in [{k: m[k] for k in ("key", "value")} for m in run["run"]["data"]["metrics"]]
        version = json.load(urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/registered-models/alias?name={registry.STUDENT_MODEL}&alias=candidate"))
        assert version["model_version"]["run_id"] == run_id
        assert {"key": "gate_result", "value": "pass"} in version["model_version"]["tags"]
    finally:
        server.terminate()
        server.wait(timeout=30)
