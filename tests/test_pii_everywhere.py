"""A value planted in any field of a logged turn is removed or refused at every stage that could pass it on.

One turn, one field planted at a time: the customer's message, the history, the answers, the final answer,
a provider's error, another ensemble member's answer, and tool-call arguments both as a JSON object and as
JSON text inside the JSON line. Two values: a raw phone number (the scrubber removes it) and a value only the
leak gate catches (the scrubber leaves it). Each stage is its own case: ``scrub`` (removes it, or the gate
flags what is left), the ``leak gate`` (flags the turn in that field), ``build-dataset`` (refuses, or the value
is in no written file) and the MLflow copies of replay and build-dataset (never hold it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hibachi_lab import dataset, pii, traffic
from hibachi_lab.cli import DEFAULT_DATASET, app
from hibachi_lab.errors import BadInput

runner = CliRunner()
MEMBERS = ["gpt4o", "claude", "mistral"]
MODELS = {"gpt4o": "gpt-4o", "claude": "claude-3-5-sonnet", "mistral": "mistral-large-2"}
RECORD = "planted-1/1"

PHONE = "916-555-0188"
# Nine digits in the SSN shape that Presidio's SSN recognizer rejects as an invalid number and no phone shape of
# the scrubber matches: the scrubber leaves it, the gate's residual-digits rule (7+ digits) does not.
GATE_ONLY = "078-05-1120"
ANSWER = "Saturday works! We booked 12 guests at $60 per adult, and the chef brings the grill and propane."


def logged_turn() -> dict:
    """A booking turn the ensemble answered (three identical answers with a tool call), one failed provider."""
    arguments = {"event_date": "Saturday", "event_time": "6:30 PM", "guest_count": 12}
    responses = [
        {"provider": provider, "model": MODELS[provider], "content": ANSWER, "input_tokens": 120,
         "output_tokens": 30, "latency_ms": 900.0, "error": None,
         "tool_calls": [{"type": "function", "function": {"name": "create_booking", "arguments": dict(arguments)}}]}
        for provider in MEMBERS
    ]
    responses.append({"provider": "mixtral_8x22b", "model": "mixtral-8x22b", "content": None, "input_tokens": 0,
                      "output_tokens": 0, "latency_ms": 30000.0, "error": "upstream timeout after 30000 ms",
                      "tool_calls": None})
    return {
        "conversation_id": "planted-1", "turn_index": 1, "timestamp": "2026-10-01T18:00:00-07:00",
        # "facebook": the seed router sends it to the tool tier, the word-boundary one does not, so the replay
        # report lists this query among its disagreements
        "query": "Saw you on facebook! Can we do Saturday for 12 guests?",
        "history": [{"role": "user", "content": "Hi, do you cater in Fresno?"},
                    {"role": "assistant", "content": "Yes, we cater in Fresno and nearby towns!"}],
        "customer_sentiment": 0.7, "routed_provider": "ensemble", "responses": responses,
        "final_response": ANSWER, "consensus_score": 1.0, "labels": {"intent": "booking", "complexity": "medium"},
    }


def filler_turns() -> list[dict]:
    """Two clean conversations, so that the dataset has more than one split to write."""
    texts = [("What are your hours on Sunday?", "We cook from noon to 10pm every day, Sunday included."),
             ("Do you bring the propane?", "Yes, the chef brings the grill, the propane and the utensils.")]
    return [{"conversation_id": f"clean-{i}", "turn_index": 0, "timestamp": "2026-10-01T10:00:00-07:00",
             "query": query, "routed_provider": "mistral_small", "final_response": answer,
             "responses": [{"provider": "mistral_small", "model": "mistral-small", "content": answer,
                            "input_tokens": 40, "output_tokens": 15}],
             "labels": {"intent": "faq", "complexity": "simple"}}
            for i, (query, answer) in enumerate(texts)]


def _append(text: str, value: str) -> str:
    return f"{text} You can reach me at {value}."


def _plant_tool_arguments(turn: dict, value: str, as_json_text: bool) -> None:
    for response in turn["responses"][:3]:
        function = response["tool_calls"][0]["function"]
        function["arguments"]["phone"] = value
        if as_json_text:
            function["arguments"] = json.dumps(function["arguments"])


# field -> (how to plant, the field path the leak gate must name, whether build-dataset writes that field)
FIELDS = {
    "query": (lambda t, v: t.update(query=_append(t["query"], v)), "query", True),
    "history": (lambda t, v: t["history"][0].update(content=_append(t["history"][0]["content"], v)),
                "history/0/content", True),
    # every member gave the planted answer: it is the teacher's answer that would be written
    "responses content": (lambda t, v: [r.update(content=_append(ANSWER, v)) for r in t["responses"][:3]],
                          "responses/0/content", True),
    "final answer": (lambda t, v: t.update(final_response=_append(ANSWER, v)), "final_response", False),
    "error": (lambda t, v: t["responses"][3].update(error=f"upstream rejected the call for customer {v}"),
              "responses/3/error", False),
    # one member's answer only: not the teacher's, but kept as another teacher's answer for the gate's ceiling
    "other teacher's answer": (lambda t, v: t["responses"][2].update(content=_append(ANSWER, v)),
                               "responses/2/content", True),
    "tool-call arguments (object)": (lambda t, v: _plant_tool_arguments(t, v, as_json_text=False),
                                     "responses/0/tool_calls/0/function/arguments/phone", True),
    "tool-call arguments (JSON text)": (lambda t, v: _plant_tool_arguments(t, v, as_json_text=True),
                                        "responses/0/tool_calls/0/function/arguments/phone", True),
}
STAGES = ["scrub", "leak gate", "build-dataset", pytest.param("mlflow", marks=pytest.mark.slow)]


def planted_log(tmp_path: Path, field: str, value: str | None) -> Path:
    turn = logged_turn()
    if value is not None:
        FIELDS[field][0](turn, value)
    path = tmp_path / "planted.jsonl"
    traffic.write_turns([traffic.parse_turn(t) for t in [turn, *copy.deepcopy(filler_turns())]], path)
    return path


@pytest.fixture(scope="module")
def checker(config) -> pii.LeakChecker:
    return pii.LeakChecker(config)


def build(log: Path, out: Path, engine, config, track: bool = False) -> dataset.BuildResult:
    return dataset.build(traffic.load(log), out, dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine, MEMBERS,
                         config, source=str(log), track=track)


def written_text(folder: Path) -> str:
    return "\n".join(file.read_bytes().decode("utf-8", "replace") for file in sorted(folder.rglob("*"))
                     if file.is_file())


def test_the_unplanted_turn_is_clean_and_builds(tmp_path, checker, engine, config):
    """The control: without a planted value every stage lets the turn through (so a refusal below is the value)."""
    log = planted_log(tmp_path, "query", None)
    assert checker.check_turns(traffic.load(log)).passed
    result = build(log, tmp_path / "dataset", engine, config)
    examples = {f"{row.conversation_id}/{row.turn_index}": row for frame in result.splits.values()
                for row in frame.itertuples()}
    planted = examples[RECORD]
    assert planted.messages[-1]["content"] == ANSWER and planted.messages[-1]["tool_calls"]
    assert planted.other_teacher_answers == [ANSWER, ANSWER]
    assert "Fresno and nearby towns" in planted.messages[-3]["content"]  # the history is written


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("value", [PHONE, GATE_ONLY], ids=["phone", "gate-only value"])
@pytest.mark.parametrize("field", list(FIELDS))
def test_a_value_planted_in_any_field_is_removed_or_refused(field, value, stage, tmp_path, checker, engine, config):
    _, gate_field, written = FIELDS[field]
    log = planted_log(tmp_path, field, value)
    assert value in log.read_text()  # planted (inside JSON text inside JSON for the text form of the arguments)

    if stage == "scrub":
        out = tmp_path / "scrubbed.jsonl"
        pii.scrub_file([log], out, config)
        report = checker.check_turns(traffic.load(out))
        if value == PHONE:
            assert value not in out.read_text() and "9165550188" not in out.read_text()
            assert report.passed, report.leaks
        else:  # the scrubber misses it by design of this value; the gate must stop what it left
            assert value in out.read_text()
            assert {"record": RECORD, "field": gate_field, "entity_type": "RESIDUAL_DIGITS"} in report.leaks

    elif stage == "leak gate":
        report = checker.check_turns(traffic.load(log))
        assert RECORD in report.by_record()
        assert gate_field in {leak["field"] for leak in report.leaks if leak["record"] == RECORD}
        assert {leak["record"] for leak in report.leaks} == {RECORD}
        command = runner.invoke(app, ["pii-check", str(log)])
        assert command.exit_code == 2 and RECORD in command.output and value not in command.output

    elif stage == "build-dataset":
        out = tmp_path / "dataset"
        if written:
            with pytest.raises(BadInput, match=f"PII leak check failed, nothing written: .*{RECORD}"):
                build(log, out, engine, config)
            assert not out.exists()
        else:
            build(log, out, engine, config)
            assert value not in written_text(out)

    else:  # the MLflow copies: replay's report (queries) and build-dataset's run
        from hibachi_lab.cost import Pricing
        from hibachi_lab.replay import WITHHELD, run_replay

        routers = Path(__file__).resolve().parent.parent / "configs" / "router"
        replay_out = tmp_path / "replay"
        summary = run_replay(traffic.load(log), [routers / "seed.yaml", routers / "word_boundary.yaml"], replay_out,
                             Pricing.from_yaml(), logs_description=str(log))
        assert summary["mlflow_run_id"]
        if field == "query":  # the local report shows the query: the copy must not
            assert value in (replay_out / "report.md").read_text()
        try:
            build(log, tmp_path / "dataset", engine, config, track=True)
        except BadInput:
            assert written
        copied = mlflow_text(tmp_path / "mlflow-download")
        assert value not in copied
        if field == "query":
            assert WITHHELD in copied


def mlflow_text(download: Path) -> str:
    """Everything the MLflow store holds for every run: params, tags, dataset inputs and artifacts."""
    from mlflow.tracking import MlflowClient

    from hibachi_lab import registry

    client = MlflowClient(registry.tracking_uri())
    parts = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            parts += [json.dumps(run.data.params), json.dumps(run.data.tags), run.info.run_name or ""]
            parts += [str(dataset_input.dataset) for dataset_input in run.inputs.dataset_inputs]
            (download / run.info.run_id).mkdir(parents=True, exist_ok=True)
            local = Path(client.download_artifacts(run.info.run_id, "", str(download / run.info.run_id)))
            parts.append(written_text(local))
    assert len(parts) > 1  # there was something to look at
    return "\n".join(parts)


def test_the_scrub_report_names_files_without_the_users_folders(tmp_path, monkeypatch, small_log, config):
    monkeypatch.chdir(tmp_path)
    pii.scrub_file([small_log.resolve()], (tmp_path / "out" / "scrubbed.jsonl").resolve(), config)
    written = (tmp_path / "out" / "scrub_report.json").read_text()
    report = json.loads(written)
    assert report["output"] == "out/scrubbed.jsonl"
    assert report["input"] == report["load"]["files"] == ["turns.jsonl"]
    assert str(tmp_path) not in written
