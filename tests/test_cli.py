"""The command line as a person uses it: help, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import REPO_ROOT, registry
from hibachi_lab.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_every_subcommand_with_a_line_each():
    result = run("--help")
    assert result.exit_code == 0
    names = [cmd.name or cmd.callback.__name__.replace("_", "-") for cmd in app.registered_commands]
    lines = result.output.splitlines()
    for name in names:
        assert any(line.startswith(f"  {name} ") for line in lines), name
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("command", [[], *[[cmd.name or cmd.callback.__name__.replace("_", "-")]
                                           for cmd in app.registered_commands]])
def test_help_reads_well_at_80_columns(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert "<bool>" not in result.output and "…" not in result.output
    assert str(REPO_ROOT) not in result.output  # bundled defaults by their place in hibachi-lab, not this install's
    for flag in ("--no-packing", "--no-resume", "--no-overwrite", "--no-force"):
        assert flag not in result.output
    if command == ["replay"]:
        assert "[default: (bundled configs/pricing.yaml)]" in " ".join(result.output.split())


def test_validate_a_clean_log_exits_0(small_log):
    result = run("validate", str(small_log))
    assert result.exit_code == 0, result.output
    assert "rows quarantined" in result.output


def test_validate_reports_problems_per_field_and_exits_2(tmp_path, small_log):
    lines = small_log.read_text().splitlines()
    obj = json.loads(lines[1])
    obj["customer_sentiment"] = 3
    lines[1] = json.dumps(obj)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    quarantine = tmp_path / "q.jsonl"

    result = run("validate", str(bad), "--quarantine", str(quarantine))

    assert result.exit_code == 2
    assert f"{bad}:2: customer_sentiment: Input should be less than or equal to 1, got 3" in result.output
    assert json.loads(quarantine.read_text())["line"] == 2


def test_strict_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversation_id": "c", "turn_index": -1, "timestamp": "2026-09-01T10:00:00Z", "query": "hi"}\n')
    result = run("validate", str(bad), "--strict")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {bad}:1: turn_index: Input should be greater than or equal to 0, got -1"
    ]


def test_missing_file_is_bad_input(tmp_path):
    result = run("summarize", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 2 and "no such file" in result.output


def test_invalid_config_names_file_and_key(tmp_path):
    config = tmp_path / "synth.yaml"
    config.write_text("shadow_share: 1.5\ndays: 10\n")
    result = run("synth", "--out", str(tmp_path / "x.jsonl"), "-n", "2", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}: shadow_share: Input should be less than or equal to 1, got 1.5" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_unknown_config_key_is_named(tmp_path):
    config = tmp_path / "synth.yaml"
    config.write_text("shadow_shar: 0.2\n")
    result = run("synth", "--out", str(tmp_path / "x.jsonl"), "--config", str(config))
    assert result.exit_code == 2 and "shadow_shar: Extra inputs are not permitted" in result.output


def test_synth_then_summarize(tmp_path):
    out = tmp_path / "t.jsonl.gz"
    assert run("synth", "--out", str(out), "-n", "30", "--seed", "9").exit_code == 0
    result = run("summarize", str(out))
    assert result.exit_code == 0 and "conversations" in result.output and "30" in result.output


def test_internal_errors_exit_1_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    from hibachi_lab import traffic

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(traffic, "summarize", broken)
    log = tmp_path / "t.jsonl"
    run("synth", "--out", str(log), "-n", "3")
    plain = run("summarize", str(log))
    assert plain.exit_code == 1
    assert "internal error: RuntimeError: boom (run with --debug for the traceback)" in plain.output
    debug = run("--debug", "summarize", str(log))
    assert debug.exit_code == 1 and "Traceback" in debug.output


@pytest.mark.slow
def test_console_script_exit_codes(tmp_path):
    """The installed entry point, as a shell sees it."""
    missing = subprocess.run(
        [sys.executable, "-m", "hibachi_lab.cli", "validate", str(tmp_path / "none.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


@pytest.mark.slow
def test_demo_runs_every_landed_stage_on_the_sample(tmp_path):
    result = run("demo", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["load"]["rows_quarantined"] == 0
    assert summary["summary"]["conversations"] == 2000
    assert summary["replay"]["policies"]["seed"]["agreement_with_logged_routing"] == 1.0
    assert (tmp_path / "replay_ab" / "report.html").exists()
    consensus = summary["consensus"]
    assert consensus["turns_in"] == 5409
    assert consensus["contested_turns"] > 1000
    assert (tmp_path / "consensus" / "report.html").exists()
    assert isinstance(summary["replay"]["policies"]["seed"]["answer_similarity_to_ensemble"]["mean"], float)
    assert summary["scrub"]["rows_out"] == summary["scrub"]["rows_in"] == 5409
    assert summary["leak_check"]["passed"]
    assert (tmp_path / "scrubbed" / "scrub_report.json").exists()
    built = summary["dataset"]
    assert built["examples_out"] > 1000 and set(built["per_split"]) == {"train", "eval", "gate"}
    assert (tmp_path / "dataset" / "hf" / "dataset_dict.json").exists()
    assert summary["training"]["global_step"] == 30
    assert summary["evaluation"]["passed"] is False  # a smoke model is no student
    assert summary["evaluation"]["registered_version"]
    assert summary["smoke_promotion_refused"]
    # The other side: a second teacher passes and becomes production, as the registry itself says.
    honest = summary["second_teacher"]["evaluation"]
    assert honest["passed"] is True, honest["reasons"]
    assert summary["second_teacher"]["answers_from_second_teacher"] > 20
    assert (tmp_path / "second_teacher" / "answers.jsonl").exists()
    production = MlflowClient(registry.tracking_uri()).get_model_version_by_alias(registry.STUDENT_MODEL, "production")
    assert production.run_id == honest["mlflow_run_id"] != summary["evaluation"]["mlflow_run_id"]
    assert production.tags["gate_result"] == "pass"
    said = " ".join(result.output.split())
    assert "FAILED the quality check" in said and "PASSED the quality check" in said
    assert "Demo summary" in result.output and "escalation misses" in result.output


def _not_a_usable_log(kind: str, folder) -> tuple:
    """(path, what the error must say) for an empty log, a log whose every line is bad, and a CSV."""
    if kind == "empty":
        path = folder / "empty.jsonl"
        path.write_text("")
        return path, f"{path}: empty: no logged turn to work on"
    if kind == "all bad":
        path = folder / "bad.jsonl"
        path.write_text('{"query": "hi"}\n[1, 2]\n')
        return path, f"{path}: no valid turn: all 2 lines were set aside"
    path = folder / "usage.csv"
    path.write_text("conversation_id,model,input_tokens\nc1,gpt-4o,10\n")
    return path, f"{path}: a CSV file, not a turn log"


@pytest.mark.parametrize("kind", ["empty", "all bad", "csv"])
@pytest.mark.parametrize("command", [
    ["replay", "--policy", str(REPO_ROOT / "configs" / "router" / "seed.yaml")], ["consensus"], ["build-dataset"],
    ["validate"], ["summarize"],
])
def test_a_log_with_no_usable_turn_is_bad_input_in_every_stage(tmp_path, command, kind):
    path, expected = _not_a_usable_log(kind, tmp_path)
    out = [] if command[0] in ("validate", "summarize") else ["--out", str(tmp_path / "out"), "--no-mlflow"]

    result = run(command[0], str(path), *command[1:], *out)

    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    if kind == "csv":  # refused before reading a line: nothing set aside, nothing written
        assert [p.name for p in tmp_path.iterdir()] == [path.name]
