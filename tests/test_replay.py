"""Router replay as a user runs it: A/B on a small log, reports that parse, sweeps that calibrate."""

from __future__ import annotations

import json
import re
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
    assert "most consequential disagreements" in parser.text
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
    # Beside sweep.json; named relative to the working folder, or by file name when outside it (as here).
    assert summary["calibrated"]["policy_file"] == "calibrated_policy.yaml"
    calibrated = Policy.from_yaml(tmp_path / summary["calibrated"]["policy_file"])
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


def _log(rows: list[tuple[str, str, float | None]]) -> traffic.pa.Table:
    """A log of one-turn conversations: (query, intent, customer sentiment)."""
    return traffic.turns_table([
        traffic.parse_turn({"conversation_id": f"c{i}", "turn_index": 0, "timestamp": "2026-09-01T10:00:00-07:00",
                            "query": query, "customer_sentiment": sentiment, "labels": {"intent": intent}})
        for i, (query, intent, sentiment) in enumerate(rows)
    ])


def _variant(tmp_path: Path, name: str, **changes) -> Path:
    """The seed policy with some sections changed, written as a policy file."""
    policy = Policy.from_yaml(SEED).model_dump()
    policy["name"] = name
    for section, values in changes.items():
        policy[section] = policy[section] | values if isinstance(values, dict) else values
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(policy))
    return path


CANCELLATIONS = [
    ("We cancelled the party, is a refund possible?", "cancellation_refund", 0.5),
    ("my husband cancelled our party by mistake, refund the deposit", "cancellation_refund", 0.55),
    ("Event got cancelled due to rain. Refund?", "cancellation_refund", 0.45),
    ("what are your hours on sunday", "faq_hours", 0.8),
    ("how much per adult for 20 guests", "faq_pricing", 0.7),
    ("saw you on facebook, do you travel to stockton", "faq_area", 0.9),
]


def test_a_variant_that_stops_matching_a_keyword_needs_review_with_the_keyword_named(tmp_path):
    # The case: "cancel" as a whole word no longer hits "cancelled", so refunds leave the complex tier;
    # the customers are not upset and no complaint is labelled, so the escalation count stays +0.
    summary = run_replay(_log(CANCELLATIONS), [SEED, WORD], tmp_path, Pricing.from_yaml(), track=False)

    ab = summary["ab"]
    assert ab["escalation_miss_delta"] == 0 and ab["cost_delta_usd"] < 0
    assert ab["verdict"]["decision"] == "needs review"
    assert ab["tier_down_from_complex_turns"] == 3
    refunds = ab["tier_down_by_intent"][0]
    assert refunds["intent"] == "cancellation_refund" and refunds["from_complex"] == 3
    assert refunds["keywords_no_longer_matching"] == {"cancel": 3}
    assert "'cancel' on 3 turns" in ab["verdict"]["reasons"][0] and "cancellation_refund" in ab["verdict"]["reasons"][0]

    markdown = (tmp_path / "report.md").read_text()
    lines = markdown.splitlines()
    assert lines[2] == "## Verdict: needs review (seed is A, word_boundary is B)"
    assert "## Turns B sends to a cheaper tier, by intent" in markdown
    assert "'cancel' in 'cancelled'" in markdown
    table = markdown.split("most consequential disagreements")[1]
    rows = [line for line in table.splitlines() if re.match(r"\| c\d+ \|", line)]
    assert len(rows) == 4  # the three refunds and the facebook turn
    risks = [row.rstrip(" |").rsplit(" | ", 1)[1] for row in rows]
    assert all(risks) and risks[0].startswith("cheaper tier complex -> simple (cancellation_refund): 'cancel' no longer")
    assert "'book' no longer matches" in " ".join(risks)


def test_a_pure_cost_saving_with_no_tier_drops_is_adopted(tmp_path, small_log):
    # Bookings and changes (the medium tier's tool turns) go to Mixtral instead of Mistral Large; no tier moves.
    cheaper = _variant(tmp_path, "cheap-tools", providers={"tool": "mixtral_8x22b"})
    summary = run_replay(traffic.load(small_log), [SEED, cheaper], tmp_path / "out", Pricing.from_yaml(), track=False)

    ab = summary["ab"]
    assert ab["tier_agreement"] == 1.0 and ab["tier_down_turns"] == 0 and ab["cost_delta_95ci_usd"][1] < 0
    assert ab["verdict"]["decision"] == "adopt B"
    assert "a saving" in " ".join(ab["verdict"]["reasons"])
    assert "## Verdict: adopt B" in (tmp_path / "out" / "report.md").read_text()


def test_a_variant_that_misses_escalations_is_kept_out(tmp_path):
    no_mood = _variant(tmp_path, "no-mood", overrides={"escalate_sentiment_below": None})
    upset = [("this is the worst service, where is my chef", "complaint", 0.05), *CANCELLATIONS[3:]]
    summary = run_replay(_log(upset), [SEED, no_mood], tmp_path / "out", Pricing.from_yaml(), track=False)

    verdict = summary["ab"]["verdict"]
    assert verdict["decision"] == "keep A"
    assert verdict["reasons"][0].startswith("escalations") and "B misses 1 that A catches" in verdict["reasons"][0]


def test_the_local_report_warns_when_it_quotes_personal_data_and_the_mlflow_copy_does_not(tmp_path, small_log):
    summary = run_replay(traffic.load(small_log), [SEED, WORD], tmp_path, Pricing.from_yaml())

    assert summary["customer_messages_shown"]["with_personal_data"] > 0
    local = (tmp_path / "report.md").read_text()
    assert local.splitlines()[2].startswith("> **Unscrubbed customer text: this report quotes")
    copied = Path(MlflowClient(registry.tracking_uri()).download_artifacts(
        summary["mlflow_run_id"], "report.md", str(tmp_path / "dl"))).read_text()
    assert "Unscrubbed customer text" not in copied and WITHHELD in copied

    clean = run_replay(_log(CANCELLATIONS), [SEED, WORD], tmp_path / "clean", Pricing.from_yaml(), track=False)
    assert clean["customer_messages_shown"]["with_personal_data"] == 0
    assert "Unscrubbed" not in (tmp_path / "clean" / "report.md").read_text()


def test_a_flat_stretch_of_a_sweep_is_explained_in_words_and_labelled_once(tmp_path, small_log):
    values = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    summary = run_sweep(traffic.load(small_log), SEED, "complex_threshold", values, tmp_path, Pricing.from_yaml(),
                        track=False)

    same = [region for region in summary["flat_regions"] if region["kind"] == "same routing"]
    assert same and same[-1]["to"] == 0.9
    low = same[-1]["from"]
    shares = {p["value"]: p["ensemble_share"] for p in summary["points"]}
    assert len({shares[v] for v in values if v >= low}) == 1
    assert f"complex_threshold from {low:g} to 0.9 routes every turn the same way" in same[-1]["why"]
    assert "none scores from" in same[-1]["why"] and "do not depend on the threshold" in same[-1]["why"]
    assert f"Flat stretch: {same[-1]['why']}." in (tmp_path / "report.md").read_text()


def test_sweep_points_on_one_spot_share_a_label_and_no_two_labels_overlap():
    import matplotlib.pyplot as plt

    from hibachi_lab.replay import label_points, point_labels

    labels = point_labels([0.10, 0.10, 0.10, 0.1001, 0.1002, 0.2], [0.5, 0.5, 0.5, 0.5001, 0.5, 0.9],
                          [0.3, 0.35, 0.4, 0.45, 0.5, 0.55])
    assert [text for _, _, text in labels] == ["0.3\u20130.4", "0.45", "0.5", "0.55"]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot([x for x, _, _ in labels], [y for _, y, _ in labels], marker="o")
    placed = label_points(axis, labels)
    renderer = figure.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in placed]
    assert len(placed) == 4
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(figure)


ABSOLUTE_PATH = re.compile(r"(?:^|[\s\"'(`=])/(?!/)[\w.-]+/")


def test_nothing_a_replay_can_share_names_an_absolute_path(tmp_path, small_log, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = Path("logs") / "turns.jsonl"
    local.parent.mkdir()
    local.write_bytes(small_log.read_bytes())
    summary = run_replay(traffic.load(local), [SEED, WORD], tmp_path / "out", Pricing.from_yaml(),
                         logs_description=f"{local.resolve()}, {SEED}")

    assert summary["logs"] == "logs/turns.jsonl, seed.yaml"
    assert summary["policies"]["seed"]["policy_file"] == "seed.yaml"
    client = MlflowClient(registry.tracking_uri())
    for name in ("report.md", "report.html", "summary.json"):
        copied = Path(client.download_artifacts(summary["mlflow_run_id"], name, str(tmp_path / "dl"))).read_text()
        assert not ABSOLUTE_PATH.search(copied), name
    params = client.get_run(summary["mlflow_run_id"]).data.params
    assert not [value for value in params.values() if ABSOLUTE_PATH.search(" " + value)]
