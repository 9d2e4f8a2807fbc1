"""Router replay as a user runs it: A/B on a small log, reports that parse, sweeps that calibrate."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import registry, traffic
from hibachi_lab.cli import app
from hibachi_lab.cost import Pricing
from hibachi_lab.replay import WITHHELD, paired_bootstrap_interval, run_replay, run_sweep
from hibachi_lab.router import Policy

ROUTERS = Path(__file__).resolve().parent.parent / "configs" / "router"
SEED, WORD = ROUTERS / "seed.yaml", ROUTERS / "word_boundary.yaml"

# query -> (seed tier, word-boundary tier), worked out by hand from the production formula
HAND_MADE = {
    "what are your hours": ("simple", "simple"),
    "bring tissue paper": ("simple", "simple"),  # "issue" in "tissue": 1 complex hit, still simple
    "saw you on facebook": ("medium", "simple"),  # "book" in "facebook": tool override -> medium
    "I want to cancel and get a refund, very disappointed": ("complex", "complex"),
    "is the deposit refundable, we must cancel": ("complex", "simple"),  # "refund" in "refundable" + cancel = 2
}


@pytest.fixture
def hand_made_log() -> traffic.pa.Table:
    turns = [
        traffic.parse_turn({"conversation_id": f"c{i}", "turn_index": 0, "timestamp": "2026-09-01T10:00:00-07:00",
                            "query": query, "labels": {"intent": "faq_hours"}})
        for i, query in enumerate(HAND_MADE)
    ]
    return traffic.turns_table(turns)


def test_hand_made_decisions(hand_made_log):
    seed, word = Policy.from_yaml(SEED), Policy.from_yaml(WORD)
    for query, (seed_tier, word_tier) in HAND_MADE.items():
        assert (seed.classify(query).tier, word.classify(query).tier) == (seed_tier, word_tier), query


def test_ab_gives_the_expected_confusion_matrix(tmp_path, hand_made_log):
    summary = run_replay(hand_made_log, [SEED, WORD], tmp_path, Pricing.from_yaml(), track=False)
    confusion = summary["ab"]["confusion_tiers_a_rows_b_columns"]
    assert confusion == {
        "simple": {"simple": 2, "medium": 0, "complex": 0},
        "medium": {"simple": 1, "medium": 0, "complex": 0},
        "complex": {"simple": 1, "medium": 0, "complex": 1},
    }
    assert summary["ab"]["tier_agreement"] == pytest.approx(3 / 5)
    assert summary["policies"]["seed"]["substring_only_hit_turns"] == 3


@pytest.mark.slow
def test_replay_writes_decisions_summary_and_reports_that_parse(tmp_path, small_log):
    dataset = traffic.load(small_log)
    summary = run_replay(dataset, [SEED, WORD], tmp_path, Pricing.from_yaml(), logs_description=str(small_log))

    decisions = pd.read_parquet(tmp_path / "decisions.parquet")
    assert list(decisions.columns[:11]) == ["conversation_id", "turn_index", "policy", "tier", "score", "provider",
                                             "simple_hits", "complex_hits", "tool_hits", "cost_usd", "cost_source"]
    assert "cost_estimated" in decisions.columns
    assert len(decisions) == 2 * dataset.num_rows
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["policies"]["seed"]["agreement_with_logged_routing"] == 1.0  # seed reproduces production
    assert set(on_disk["ab"]) >= {"tier_agreement", "cost_delta_usd", "cost_delta_95ci_usd", "escalation_miss_delta"}

    parser = _Collector()
    parser.feed((tmp_path / "report.html").read_text())
    assert len(parser.images) == 4 and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert "20 most consequential disagreements" in parser.text
    markdown = (tmp_path / "report.md").read_text()
    for figure in ("tier_shares", "cost_per_tier", "daily_cost", "confusion"):
        assert f"(figures/{figure}.png)" in markdown and (tmp_path / "figures" / f"{figure}.png").stat().st_size > 1000

    run = MlflowClient(registry.tracking_uri()).get_run(summary["mlflow_run_id"])
    assert run.data.params["seed.policy_sha256"] == summary_hash(SEED)
    assert run.data.metrics["seed.total_cost_usd"] == pytest.approx(summary["policies"]["seed"]["total_cost_usd"])
    artifacts = {a.path for a in MlflowClient(registry.tracking_uri()).list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "summary.json"} <= artifacts


@pytest.mark.slow
def test_only_queries_that_pass_the_leak_check_reach_the_mlflow_copy_of_the_report(tmp_path, small_log):
    dataset = traffic.load(small_log)
    summary = run_replay(dataset, [SEED, WORD], tmp_path, Pricing.from_yaml())
    client = MlflowClient(registry.tracking_uri())
    copied = Path(client.download_artifacts(summary["mlflow_run_id"], "report.md", str(tmp_path / "dl"))).read_text()
    turns = [traffic.parse_turn(obj) for obj in traffic.iter_objects(dataset)]
    with_pii = {turn.query for turn in turns if any(span.field == "query" for span in turn.pii_spans)}
    local = (tmp_path / "report.md").read_text()
    shown_locally = [query for query in set(dataset["query"]) if query in local]
    assert any(query in with_pii for query in shown_locally)
    assert not [query for query in with_pii if query in copied]
    assert WITHHELD in copied
    assert any(query in copied for query in shown_locally if query not in with_pii)


def summary_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text = [], ""

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text += data


def test_bootstrap_interval_contains_the_total_and_narrows_with_more_turns():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.01, 0.02, 200), rng.normal(0.01, 0.02, 5000)
    low, high = paired_bootstrap_interval(few)
    assert low < few.sum() < high
    low_many, high_many = paired_bootstrap_interval(many)
    # compare widths per turn: the mean's interval narrows as 1/sqrt(n)
    assert (high_many - low_many) / 5000 < (high - low) / 200


def test_sweep_calibrates_to_an_ensemble_share(tmp_path, small_log):
    dataset = traffic.load(small_log)
    summary = run_sweep(dataset, SEED, "complex_threshold", [0.3, 0.45, 0.6, 0.9], tmp_path, Pricing.from_yaml(),
                        target_ensemble_share=0.5, track=False)
    shares = [p["ensemble_share"] for p in summary["points"]]
    assert shares == sorted(shares, reverse=True)  # a higher threshold sends fewer turns to the ensemble
    assert shares[0] > shares[-1]
    calibrated = Policy.from_yaml(summary["calibrated"]["policy_file"])
    closest = min(summary["points"], key=lambda p: abs(p["ensemble_share"] - 0.5))
    assert calibrated.thresholds.complex == closest["value"]
    assert calibrated.classify_table(dataset)["provider"].to_pylist().count("ensemble") / len(dataset) == closest["ensemble_share"]
    assert (tmp_path / "figures" / "cost_quality_share.png").exists()


@pytest.mark.slow
def test_replay_from_the_command_line(tmp_path, small_log):
    result = CliRunner().invoke(app, ["replay", str(small_log), "--policy", str(SEED), "--vs", str(WORD),
                                      "--out", str(tmp_path), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    assert "A/B: same tier on" in result.output and (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_sweep_rejects_an_unknown_parameter(tmp_path, small_log):
    result = CliRunner().invoke(app, ["sweep", str(small_log), "--policy", str(SEED), "--param", "colour",
                                      "--values", "0.1:0.2:0.1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--param colour: expected one of" in result.output


def test_answer_similarity_is_one_when_every_turn_goes_to_the_ensemble(tmp_path, small_turns, engine):
    everything_complex = Policy.from_yaml(SEED).model_copy(update={"name": "all-ensemble"})
    everything_complex.thresholds.medium = everything_complex.thresholds.complex = -1.0
    everything_complex.overrides.tool_hits_to_medium = False
    policy_file = tmp_path / "all_ensemble.yaml"
    policy_file.write_text(json.dumps(everything_complex.model_dump()))
    table = traffic.turns_table(small_turns)
    summary = run_replay(table, [SEED, policy_file], tmp_path / "out", Pricing.from_yaml(), track=False,
                         engine=engine)
    seed = summary["policies"]["seed"]["answer_similarity_to_ensemble"]
    ensemble_only = summary["policies"]["all-ensemble"]["answer_similarity_to_ensemble"]
    assert ensemble_only["mean"] == pytest.approx(1.0)
    assert ensemble_only["turns_scored"] == ensemble_only["turns_with_an_ensemble_choice"] > 0
    # The seed router sends most of those turns to a single model, whose answers differ from the ensemble's.
    assert 0 < seed["mean"] < 1
    assert seed["turns_scored"] <= seed["turns_with_an_ensemble_choice"]


def write_queries_only_log(path: Path, turns: int) -> list[dict]:
    """A log as many real exports are: customer messages and their metadata, no responses, no usage."""
    rng = np.random.default_rng(3)
    words = ["what", "are", "your", "hours", "book", "a", "party", "for", "12", "cancel", "refund", "very",
             "disappointed", "price", "per", "adult", "facebook", "change", "date", "issue", "thanks"]
    objects = [{"conversation_id": f"c{i}", "turn_index": 0,
                "timestamp": f"2026-09-{1 + i % 28:02d}T{10 + i % 9}:00:00-07:00",
                "query": " ".join(rng.choice(words, size=rng.integers(2, 14))),
                "customer_sentiment": round(float(rng.random()), 2)} for i in range(turns)]
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects), encoding="utf-8")
    return objects


def test_a_queries_only_log_replays_and_says_why_answer_similarity_is_missing(tmp_path):
    log = tmp_path / "queries.jsonl"
    write_queries_only_log(log, 60)

    result = CliRunner().invoke(app, ["replay", str(log), "--policy", str(SEED), "--vs", str(WORD), "--out",
                                      str(tmp_path / "out"), "--no-mlflow"])

    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for policy in summary["policies"].values():
        assert policy["answer_similarity_to_ensemble"] == (
            "not computed: no logged answers of the ensemble members (gpt4o, claude, mistral)")
    assert "not computed: no logged answers" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_a_queries_only_log_of_20000_turns_replays_with_exact_decisions_and_flagged_estimated_costs(tmp_path):
    log = tmp_path / "queries.jsonl"
    turns = write_queries_only_log(log, 20_000)

    result = CliRunner().invoke(app, ["replay", str(log), "--policy", str(SEED), "--out", str(tmp_path / "out"),
                                      "--no-mlflow"])

    assert result.exit_code == 0, result.output
    decisions = pd.read_parquet(tmp_path / "out" / "decisions.parquet")
    seed = Policy.from_yaml(SEED)
    assert decisions["tier"].tolist() == [seed.classify(t["query"], sentiment=t["customer_sentiment"]).tier
                                          for t in turns]
    assert decisions["cost_estimated"].all() and (decisions["cost_usd"] > 0).all()
    policy = json.loads((tmp_path / "out" / "summary.json").read_text())["policies"]["seed"]
    assert policy["cost_estimated_turns"] == 20_000 and policy["total_cost_usd"] > 0
    assert 0 < policy["savings_vs_all_gpt4"] < 1
    assert 0 < policy["gpu_server_break_even_turns_per_month"] < float("inf")
    assert "150 tokens per answer (the stated default" in policy["cost_estimate_assumption"]
    assert "(estimated: 20,000 of 20,000 turns have no logged tokens" in policy["verdict_300_rule"]
    output = " ".join(result.output.split())
    assert "(estimated)" in output and "costs estimated where no tokens were logged" in output
    assert "inf" not in output.replace("information", "")
    assert "150 tokens per answer" in (tmp_path / "out" / "report.md").read_text()
