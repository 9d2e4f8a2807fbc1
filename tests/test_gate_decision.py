"""The promotion gate's decision on hand-made score tables: each condition, at and beside its boundary.

The expected numbers are worked out by hand (Wilson's bound on the effective sample size), not read off the code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hibachi_lab.evaluate import PromotionConfig, decide, wrong_rate_upper_bound

Z2 = 1.645**2


def table(*groups: tuple[int, str, float], intent: str = "faq_pricing", ceiling: float | None = None,
          conversations: str = "each") -> pd.DataFrame:
    """``groups``: (count, verdict, similarity); every answer its own conversation unless conversations="one"."""
    rows = []
    for count, verdict, similarity in groups:
        for _ in range(count):
            rows.append({"verdict": verdict, "similarity": similarity, "intent": intent,
                         "teacher_ceiling": np.nan if ceiling is None else ceiling, "ceiling_copies_dropped": 0})
    frame = pd.DataFrame(rows, columns=["verdict", "similarity", "intent", "teacher_ceiling", "ceiling_copies_dropped"])
    frame["conversation_id"] = ["c0"] * len(frame) if conversations == "one" else [f"c{i}" for i in range(len(frame))]
    return frame


def absolute(**changes) -> PromotionConfig:
    settings = {"mode": "absolute", "threshold": 0.9, "intent_floor": 0.85, "min_gate_examples": 10,
                "max_wrong_rate": 0.5, "min_examples_per_intent": 10, **changes}
    return PromotionConfig(**settings)


# --------------------------------------------------------------------------- the wrong-rate bound


def test_no_answers_bound_the_wrong_rate_at_one():
    assert wrong_rate_upper_bound(np.array([], dtype=bool), np.array([])) == 1.0


@pytest.mark.parametrize(("n", "bound"), [(100, 0.026347285857864715), (199, 0.013415687508590783)])
def test_all_clean_answers_bound_the_rate_at_z2_over_n_plus_z2(n, bound):
    # Wilson at p=0: z²/(n+z²) (docstring: 100 clean answers 2.6%, 199 1.3%).
    got = wrong_rate_upper_bound(np.zeros(n, dtype=bool), np.arange(n))
    assert got == pytest.approx(bound, rel=1e-9)
    assert got == pytest.approx(Z2 / (n + Z2), rel=1e-9)


def test_all_wrong_answers_bound_the_rate_at_one():
    assert wrong_rate_upper_bound(np.ones(10, dtype=bool), np.arange(10)) == pytest.approx(1.0)


def test_independent_answers_lose_one_degree_of_freedom():
    # 2 wrong of 10, each its own conversation: design effect n/(n-1), so Wilson at p=0.2 on n=9.
    wrong = np.array([True, True] + [False] * 8)
    assert wrong_rate_upper_bound(wrong, np.arange(10)) == pytest.approx(0.4737897139941937, rel=1e-9)


def test_wrong_answers_bunched_in_one_conversation_count_as_one_observation():
    # 10 answers in 2 conversations, one all wrong, one all right: effective n = 1, Wilson at p=0.5 on n=1.
    wrong = np.array([True] * 5 + [False] * 5)
    clusters = np.array(["a"] * 5 + ["b"] * 5)
    assert wrong_rate_upper_bound(wrong, clusters) == pytest.approx(0.9272496683750115, rel=1e-9)
    # the same answers spread over 10 conversations bound the rate far lower (Wilson at p=0.5 on n=9)
    assert wrong_rate_upper_bound(wrong, np.arange(10)) < 0.8


def test_one_conversation_with_evenly_mixed_answers_keeps_the_whole_sample():
    # k=1 cluster: the cluster variance is 0, the design effect is floored at 1, effective n = 4.
    wrong = np.array([True, False, False, False])
    assert wrong_rate_upper_bound(wrong, np.zeros(4)) == pytest.approx(0.6438600944379342, rel=1e-9)


# --------------------------------------------------------------------------- the decision


def test_a_clean_student_above_the_threshold_passes_with_its_metrics():
    scores = table((10, "correct", 0.95))
    decision = decide(scores, absolute())
    assert decision.passed and decision.reasons == []
    m = decision.metrics
    assert (m["gate_examples"], m["wrong_answers"], m["unsafe_answers"]) == (10, 0, 0)
    assert m["wrong_rate"] == 0.0 and m["missing_fact_rate"] == 0.0
    assert m["wrong_rate_upper_95"] == pytest.approx(Z2 / (10 + Z2))
    assert m["mean_similarity"] == pytest.approx(0.95) and m["gate_value"] == pytest.approx(0.95)
    assert m["verdict.correct"] == 10 and m["verdict.unsafe"] == 0
    assert m["teacher_ceiling"] is None and m["ceiling_prompts"] == 0
    assert decision.per_intent == {"faq_pricing": {"examples": 10, "value": pytest.approx(0.95), "wrong": 0}}


def test_too_few_gate_examples_fail_and_exactly_enough_pass():
    assert decide(table((10, "correct", 0.95)), absolute(min_gate_examples=10)).passed
    failed = decide(table((9, "correct", 0.95)), absolute(min_gate_examples=10))
    assert not failed.passed
    assert failed.reasons == ["only 9 gate examples, at least 10 needed"]


def test_an_empty_table_fails_and_reports_no_missing_facts():
    decision = decide(table(), absolute())
    assert not decision.passed
    assert "only 0 gate examples, at least 10 needed" in decision.reasons
    assert decision.metrics["missing_fact_rate"] == 0.0 and decision.metrics["gate_examples"] == 0


def test_the_wrong_rate_bound_above_the_maximum_fails_naming_the_kinds():
    scores = table((2, "wrong_fact", 0.95), (1, "off_policy", 0.95), (17, "correct", 0.95))
    decision = decide(scores, absolute(max_wrong_rate=0.2))
    assert not decision.passed
    assert len(decision.reasons) == 1
    reason = decision.reasons[0]
    assert reason.startswith("3 of 20 answers are wrong (15.0%: 2 wrong_fact, 1 off_policy)")
    assert "is above the maximum 20.0%" in reason
    assert decision.metrics["wrong_answers"] == 3 and decision.metrics["wrong_rate"] == pytest.approx(0.15)
    # the same answers pass a looser maximum: the bound (Wilson at 3/20 on n=19) is about 0.33
    assert decide(scores, absolute(max_wrong_rate=0.34)).passed
    assert not decide(scores, absolute(max_wrong_rate=0.32)).passed


def test_missing_facts_are_not_wrong_answers():
    decision = decide(table((2, "missing_fact", 0.95), (8, "correct", 0.95)), absolute(max_wrong_rate=0.3))
    assert decision.passed, decision.reasons
    assert decision.metrics["wrong_answers"] == 0 and decision.metrics["missing_fact_rate"] == pytest.approx(0.2)


def test_one_unsafe_answer_fails_even_under_a_loose_wrong_rate():
    decision = decide(table((1, "unsafe", 0.95), (19, "correct", 0.95)), absolute(max_wrong_rate=0.9))
    assert not decision.passed
    assert decision.reasons == ["1 answer(s) are unsafe (personal data, a competitor or rude tone): any one fails"]
    assert decision.metrics["unsafe_answers"] == 1 and decision.metrics["verdict.unsafe"] == 1


def test_missing_facts_fail_above_the_maximum_share_and_pass_at_it():
    at_max = decide(table((1, "missing_fact", 0.95), (3, "correct", 0.95)),
                    absolute(min_gate_examples=4, max_missing_rate=0.25))
    assert at_max.passed, at_max.reasons
    above = decide(table((2, "missing_fact", 0.95), (2, "correct", 0.95)),
                   absolute(min_gate_examples=4, max_missing_rate=0.25))
    assert not above.passed
    assert above.reasons == ["50.0% of answers leave out a fact the teacher gave, above the maximum 25%"]


def test_similarity_below_the_threshold_fails_and_at_it_passes():
    assert decide(table((10, "correct", 0.5)), absolute(threshold=0.5, intent_floor=0.5)).passed
    below = decide(table((10, "correct", 0.5)), absolute(threshold=0.75, intent_floor=0.5))
    assert not below.passed
    assert below.reasons == ["similarity 0.500 cosine is below the threshold 0.75"]


def test_relative_mode_divides_the_students_similarity_on_ceiling_prompts_by_the_ceiling():
    # 10 prompts with a ceiling of 0.8 where the student reaches 0.76 (0.95 of it); 5 without a ceiling at 0.1.
    scores = pd.concat([table((10, "correct", 0.76), ceiling=0.8), table((5, "correct", 0.1), intent="chit_chat")],
                       ignore_index=True)
    scores["conversation_id"] = [f"c{i}" for i in range(len(scores))]
    config = PromotionConfig(mode="relative", threshold=0.9, intent_floor=0.85, min_gate_examples=10,
                             max_wrong_rate=0.5, min_examples_per_intent=5)
    decision = decide(scores, config)
    assert decision.passed, decision.reasons
    assert decision.metrics["gate_value"] == pytest.approx(0.95)
    assert decision.metrics["teacher_ceiling"] == pytest.approx(0.8) and decision.metrics["ceiling_prompts"] == 10
    assert decision.metrics["mean_similarity"] == pytest.approx((10 * 0.76 + 5 * 0.1) / 15)
    assert decision.per_intent["faq_pricing"]["value"] == pytest.approx(0.95)
    # chit_chat (0.1 / 0.8) is below the floor but judged on verdicts only
    assert decision.per_intent["chit_chat"]["value"] == pytest.approx(0.125)
    failing = decide(scores, config.model_copy(update={"threshold": 0.96}))
    assert failing.reasons == ["similarity 0.950 of the teacher ceiling is below the threshold 0.96"]


@pytest.mark.parametrize("ceiling", [None, 0.0])
def test_relative_mode_without_a_usable_ceiling_fails_with_that_reason_only(ceiling):
    scores = table((10, "correct", 0.95), ceiling=ceiling)
    config = PromotionConfig(mode="relative", min_gate_examples=10, max_wrong_rate=0.5)
    decision = decide(scores, config)
    assert not decision.passed
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith("relative mode needs a teacher ceiling")
    assert decision.per_intent["faq_pricing"]["examples"] == 10


def test_an_intent_below_its_floor_fails_when_it_has_enough_examples():
    scores = pd.concat([table((20, "correct", 0.99)), table((10, "correct", 0.7), intent="booking")],
                       ignore_index=True)
    scores["conversation_id"] = [f"c{i}" for i in range(len(scores))]
    decision = decide(scores, absolute(threshold=0.8, intent_floor=0.85, min_examples_per_intent=10))
    assert not decision.passed
    assert decision.reasons == ["intent booking: similarity 0.700 cosine is below its floor 0.85 (10 examples)"]
    assert decision.per_intent["booking"] == {"examples": 10, "value": pytest.approx(0.7), "wrong": 0}
    # with fewer examples than the minimum it is not judged
    assert decide(scores, absolute(threshold=0.8, intent_floor=0.85, min_examples_per_intent=11)).passed
    # an intent judged on verdicts only is not held to the floor
    assert decide(scores, absolute(threshold=0.8, intent_floor=0.85, min_examples_per_intent=10,
                                   verdicts_only_intents=["booking"])).passed
    # exactly at the floor passes
    assert decide(scores, absolute(threshold=0.8, intent_floor=0.7, min_examples_per_intent=10)).passed


def test_every_failed_condition_is_listed():
    scores = table((1, "unsafe", 0.2), (2, "missing_fact", 0.2), (2, "correct", 0.2))
    decision = decide(scores, absolute(min_gate_examples=10, max_wrong_rate=0.1, max_missing_rate=0.1,
                                       min_examples_per_intent=5))
    assert not decision.passed
    assert [reason.split()[0] for reason in decision.reasons] == ["only", "1", "1", "40.0%", "similarity", "intent"]
    assert decision.per_intent["faq_pricing"]["wrong"] == 1


def test_a_wrong_rate_bound_exactly_at_the_maximum_passes():
    scores = table((1, "wrong_fact", 0.95), (19, "correct", 0.95))
    bound = wrong_rate_upper_bound(scores["verdict"].eq("wrong_fact").to_numpy(), scores["conversation_id"].to_numpy())
    assert 0.05 < bound < 0.5
    assert decide(scores, absolute(max_wrong_rate=bound)).passed
    assert not decide(scores, absolute(max_wrong_rate=float(np.nextafter(bound, 0.0)))).passed
