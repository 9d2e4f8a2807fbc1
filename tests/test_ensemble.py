"""Production's consensus rule replayed: who wins, what is excluded, fallbacks, reports and cache."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from hibachi_lab import ensemble, registry, traffic
from hibachi_lab.cli import DEFAULT_PRICING, app
from hibachi_lab.cost import Pricing
from hibachi_lab.errors import BadInput

MEMBERS = ["gpt4o", "claude", "mistral"]
MODELS = {"gpt4o": "gpt-4o", "claude": "claude-3-5-sonnet", "mistral": "mistral-large-2"}
runner = CliRunner()


def turn(number: int, answers: dict[str, str | None], errors: dict[str, str] | None = None, **extra) -> dict:
    errors = errors or {}
    return {
        "conversation_id": f"conv-{number}",
        "turn_index": 0,
        "timestamp": "2026-10-01T18:00:00-07:00",
        "query": "How much is it per adult and do you bring the grill?",
        "routed_provider": "ensemble",
        "responses": [
            {"provider": provider, "model": MODELS[provider], "content": content, "input_tokens": 100,
             "output_tokens": 40, "error": errors.get(provider)}
            for provider, content in answers.items()
        ],
        "labels": {"intent": "faq_pricing"},
        **extra,
    }


def replay(engine, *turns: dict, min_agreement: float = 0.7) -> pd.DataFrame:
    table = traffic.turns_table([traffic.LoggedTurn.model_validate(t) for t in turns])
    return ensemble.consensus(table, engine, MEMBERS, min_agreement).turns


AGREE_1 = "It's $60 per adult, and our chef brings the grill and propane."
AGREE_2 = "Adults are $60 each; the chef arrives with the grill and the propane."
ODD_ONE = "Sure! Our hours are 9am to 9pm every day of the week."


def test_two_agreeing_answers_beat_the_odd_one_out(engine):
    for order in (["gpt4o", "claude", "mistral"], ["mistral", "gpt4o", "claude"]):
        answers = dict(zip(order, [ODD_ONE, AGREE_1, AGREE_2]))
        row = replay(engine, turn(1, answers)).iloc[0]
        assert answers[row.best_provider] in (AGREE_1, AGREE_2)
        assert row.votes[-1] == order[0]  # the odd one out gets the lowest mean
        assert row.valid_responses == 3 and not row.fallback


class HandEmbeddings:
    """A stand-in for the similarity engine whose vectors are chosen by hand, so that every cosine is known."""

    def __init__(self, vectors: dict[str, tuple[float, ...]]):
        self.vectors = {text: np.asarray(v, dtype=np.float64) for text, v in vectors.items()}
        for vector in self.vectors.values():
            assert abs(float(vector @ vector) - 1) < 1e-12  # unit length: the dot product is the cosine

    def embed(self, texts, description=""):
        return np.stack([self.vectors[text] for text in texts])


# Unit vectors with cosines A.B = 0.8, A.C = 0.6, B.C = 0.48, so each answer's mean similarity to the other two
# is A: (0.8 + 0.6) / 2 = 0.70, B: (0.8 + 0.48) / 2 = 0.64, C: (0.6 + 0.48) / 2 = 0.54.
HAND = HandEmbeddings({"A": (1.0, 0.0, 0.0), "B": (0.8, 0.6, 0.0), "C": (0.6, 0.0, 0.8),
                       # cosines D.E = -0.6, D.F = 0.0, E.F = 0.8: means D -0.3, E 0.1, F 0.4
                       "D": (1.0, 0.0, 0.0), "E": (-0.6, 0.8, 0.0), "F": (0.0, 1.0, 0.0)})


@pytest.mark.parametrize("answers, errors, best, agreement, votes, means", [
    # three valid answers: the highest mean wins and that mean is the agreement score
    ({"gpt4o": "C", "claude": "A", "mistral": "B"}, {}, "claude", 0.70, ["claude", "mistral", "gpt4o"],
     {"gpt4o": 0.54, "claude": 0.70, "mistral": 0.64}),
    # negative cosines are averaged as they are
    ({"gpt4o": "D", "claude": "E", "mistral": "F"}, {}, "mistral", 0.40, ["mistral", "claude", "gpt4o"],
     {"gpt4o": -0.30, "claude": 0.10, "mistral": 0.40}),
    # two answers: both means are their one cosine 0.8, and the first logged wins
    ({"mistral": "B", "gpt4o": "A"}, {}, "mistral", 0.80, ["mistral", "gpt4o"], {"mistral": 0.80, "gpt4o": 0.80}),
    # an answer that failed is left out: A and C alone agree at 0.6
    ({"gpt4o": "A", "claude": "B", "mistral": "C"}, {"claude": "timeout"}, "gpt4o", 0.60, ["gpt4o", "mistral"],
     {"gpt4o": 0.60, "mistral": 0.60}),
], ids=["three answers", "negative cosines", "two answers", "one failed"])
def test_the_agreement_score_is_the_winners_mean_cosine_worked_out_by_hand(answers, errors, best, agreement, votes,
                                                                           means):
    row = replay(HAND, turn(1, answers, errors=errors)).iloc[0]
    assert row.best_provider == best
    assert row.agreement_score == pytest.approx(agreement, abs=1e-12)
    assert row.votes == votes
    assert row.member_means == pytest.approx(means, abs=1e-12)
    assert row.low_agreement == (agreement < 0.7)


def test_the_winners_logged_position_is_kept_for_its_answer_text():
    # A (mean 0.70) is logged third: the dataset takes the teacher answer from that position.
    row = replay(HAND, turn(1, {"gpt4o": "C", "claude": "B", "mistral": "A"})).iloc[0]
    assert (row.best_provider, row.best_position) == ("mistral", 2)
    row = replay(HAND, turn(1, {"gpt4o": "B", "claude": "A", "mistral": "C"}, errors={"gpt4o": "timeout"})).iloc[0]
    assert (row.best_provider, row.best_position) == ("claude", 1)


def test_an_agreement_exactly_at_the_minimum_is_not_low():
    answers = turn(1, {"gpt4o": "C", "claude": "A", "mistral": "B"})
    score = replay(HAND, answers).iloc[0].agreement_score  # 0.70 up to rounding
    assert not replay(HAND, answers, min_agreement=score).iloc[0].low_agreement
    assert replay(HAND, answers, min_agreement=float(np.nextafter(score, 1.0))).iloc[0].low_agreement


def test_the_agreement_score_on_real_answers_is_the_mean_of_the_winners_two_cosines(engine):
    answers = {"gpt4o": AGREE_1, "claude": ODD_ONE, "mistral": AGREE_2}
    row = replay(engine, turn(1, answers)).iloc[0]
    cos = {frozenset(pair): float(engine.cosine([answers[pair[0]]], [answers[pair[1]]])[0])
           for pair in [("gpt4o", "claude"), ("gpt4o", "mistral"), ("claude", "mistral")]}
    mean = {p: sum(value for pair, value in cos.items() if p in pair) / 2 for p in answers}
    assert row.best_provider == max(mean, key=mean.get)
    assert row.agreement_score == pytest.approx(mean[row.best_provider], abs=1e-6)
    assert row.member_means == pytest.approx(mean, abs=1e-6)


def test_errors_and_empty_answers_are_excluded(engine):
    # The two agreeing answers failed or are blank, so they cannot win however similar they are.
    answers = {"gpt4o": AGREE_1, "claude": "   ", "mistral": ODD_ONE}
    row = replay(engine, turn(1, answers, errors={"gpt4o": "timeout after 30000 ms"})).iloc[0]
    assert row.best_provider == "mistral"
    assert row.valid_responses == 1
    assert pd.isna(row.agreement_score) and not row.low_agreement and not row.fallback


def test_no_valid_answer_falls_back_to_the_apology(engine):
    answers = {"gpt4o": None, "claude": "", "mistral": AGREE_1}
    row = replay(engine, turn(1, answers, errors={"mistral": "rate_limited: 429"})).iloc[0]
    assert row.best_provider == ensemble.FALLBACK_PROVIDER
    assert row.fallback and row.valid_responses == 0 and row.votes == []


def test_low_agreement_is_flagged_against_the_threshold(engine):
    answers = {"gpt4o": AGREE_1, "claude": ODD_ONE, "mistral": "The capital of France is Paris."}
    strict = replay(engine, turn(1, answers), min_agreement=0.99).iloc[0]
    lenient = replay(engine, turn(1, answers), min_agreement=-1.0).iloc[0]
    assert strict.low_agreement and not lenient.low_agreement
    assert strict.agreement_score == pytest.approx(lenient.agreement_score)


def test_with_two_answers_the_first_logged_wins(engine):
    row = replay(engine, turn(1, {"claude": AGREE_1, "gpt4o": ODD_ONE})).iloc[0]
    assert row.best_provider == "claude"


def test_turns_without_member_answers_are_counted_not_scored(engine):
    routed = turn(2, {})
    routed["responses"] = [{"provider": "mistral_small", "model": "mistral-small", "content": "Hi!",
                            "input_tokens": 5, "output_tokens": 2}]
    table = traffic.turns_table([traffic.LoggedTurn.model_validate(t) for t in (turn(1, {"gpt4o": AGREE_1}), routed)])
    result = ensemble.consensus(table, engine, MEMBERS)
    assert len(result.turns) == 1 and result.skipped_turns == 1


def test_the_noisiest_provider_gets_the_largest_smoothie_spread(engine):
    paraphrases = [AGREE_1, AGREE_2, "Pricing is $60 for every adult and we bring our own grill with propane."]
    noise = ["The capital of France is Paris.", "Whales sing.", "My car needs new brakes.", "Cats nap a lot."]
    turns = [turn(i, {"gpt4o": paraphrases[i % 3], "claude": paraphrases[(i + 1) % 3], "mistral": noise[i % 4]})
             for i in range(12)]
    table = traffic.turns_table([traffic.LoggedTurn.model_validate(t) for t in turns])
    result = ensemble.smoothie(ensemble.consensus(table, engine, MEMBERS), engine)
    spreads = result["spread_global"]
    assert max(spreads, key=spreads.get) == "mistral"
    assert set(result["picks"]) <= {"gpt4o", "claude"}


@pytest.mark.slow
def test_consensus_command_writes_its_outputs_and_reuses_the_cache(small_log, tmp_path, isolated_cache):
    out = tmp_path / "consensus"
    first = runner.invoke(app, ["consensus", str(small_log), "--out", str(out)])
    assert first.exit_code == 0, first.output
    frame = pd.read_parquet(out / "consensus.parquet")
    for column in ("conversation_id", "turn_index", "best_provider", "agreement_score", "low_agreement", "fallback",
                   "votes"):
        assert column in frame.columns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["turns_in"] == summary["turns_with_ensemble_answers"] + summary["turns_without_ensemble_answers"]
    assert summary["newly_embedded_texts"] > 0
    assert sum(summary["win_rates"].values()) == pytest.approx(1.0)
    assert (out / "report.html").read_text().count("data:image/png;base64") >= 3

    second = runner.invoke(app, ["consensus", str(small_log), "--out", str(tmp_path / "again")])
    assert second.exit_code == 0, second.output
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["newly_embedded_texts"] == 0

    client = MlflowClient(registry.tracking_uri())
    experiment = client.get_experiment_by_name("ensemble-consensus")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    assert runs[0].data.metrics["contested_turns"] == summary["contested_turns"]


def test_pairs_cost_less_than_the_full_ensemble(engine, small_turns):
    table = traffic.turns_table(small_turns)
    result = ensemble.consensus(table, engine, MEMBERS)
    from hibachi_lab.cost import price_responses

    costs, _ = price_responses(result.answers, Pricing.from_yaml(DEFAULT_PRICING))
    pairs = ensemble.pair_what_ifs(result, costs)
    assert len(pairs) == 3
    for pair in pairs:
        assert 0 < pair["cost_share_of_full_ensemble"] < 1
        assert 0 <= pair["same_pick_as_full_ensemble"] <= 1


def test_a_log_without_member_answers_gives_an_empty_replay_and_the_command_refuses_it(engine, tmp_path):
    single_model = turn(1, {}, routed_provider="mistral_small") | {
        "responses": [{"provider": "mistral_small", "model": "mistral-small", "content": "We open at 10.",
                       "input_tokens": 90, "output_tokens": 8}]}
    table = traffic.turns_table([traffic.LoggedTurn.model_validate(t) for t in (single_model, turn(2, {}))])

    replayed = ensemble.consensus(table, engine, MEMBERS)  # what build-dataset asks for a teacher answer
    assert replayed.turns.empty and replayed.skipped_turns == 2

    with pytest.raises(BadInput, match=r"log.jsonl: the consensus replay needs logged answers of gpt4o, claude, "
                                       r"mistral, and none of its 2 turns has one"):
        ensemble.run_consensus(table, tmp_path, engine, Pricing.from_yaml(DEFAULT_PRICING), track=False,
                               logs_description="log.jsonl")
    assert not (tmp_path / "summary.json").exists()
