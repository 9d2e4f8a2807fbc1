"""The promotion gate against independent oracles (the rule-by-rule edges are in test_gate_decision.py).

Expected values come from outside the code under test: the Wilson bound by inverting the score test
with scipy's root finder (the code uses the closed form), the smallest passing gate split by hand,
and a student exactly at the similarity threshold (which floating point once failed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from hibachi_lab.evaluate import PromotionConfig, decide, wrong_rate_upper_bound

CONFIG = PromotionConfig()  # the shipped defaults: at most 2% wrong, 25% missing, 0.9 of the ceiling


def wilson_upper(rate: float, n: float) -> float:
    """The p above the observed rate where the one-sided 95% score test just rejects: (p - rate) / √(p(1-p)/n) = z."""
    z = norm.ppf(0.95)
    return brentq(lambda p: (p - rate) / math.sqrt(p * (1 - p) / n) - z, rate + 1e-12, 1 - 1e-12)


def student(n: int, wrong: int = 0, verdict: str = "wrong_fact", missing: int = 0, similarity: float = 0.9,
            ceiling: float = 1.0, intent: str = "faq", conversations: int | None = None) -> pd.DataFrame:
    """Gate scores of a student: ``wrong`` answers with ``verdict``, ``missing`` with a fact left out, the rest
    correct; each answer in its own conversation unless ``conversations`` says how many there are."""
    verdicts = [verdict] * wrong + ["missing_fact"] * missing + ["correct"] * (n - wrong - missing)
    return pd.DataFrame({
        "verdict": verdicts,
        "conversation_id": [f"c{i % (conversations or n)}" for i in range(n)],
        "similarity": [similarity] * n, "teacher_ceiling": [ceiling] * n, "ceiling_copies_dropped": [0] * n,
        "intent": [intent] * n,
    })


@pytest.mark.parametrize(("wrong", "n"), [(0, 199), (0, 100), (1, 400), (3, 250), (10, 199)])
def test_the_wrong_rate_bound_is_wilsons_for_independent_answers(wrong, n):
    flags = np.array([True] * wrong + [False] * (n - wrong))
    # Every answer its own conversation: the cluster variance with its k/(k-1) small-sample factor is
    # n/(n-1) times the binomial one, so the effective size is n - 1 (n when nothing is wrong).
    effective = n - 1 if wrong else n
    assert wrong_rate_upper_bound(flags, np.arange(n)) == pytest.approx(wilson_upper(wrong / n, effective), abs=1e-5)  # z = 1.645 there


def test_a_clean_student_needs_133_answers_to_pass_a_2_percent_gate():
    # With no wrong answer the bound is z²/(n + z²): 2.706/135.706 = 1.99% at 133, 2.01% at 132.
    config = CONFIG.model_copy(update={"min_gate_examples": 1})
    assert decide(student(133), config).passed
    failed = decide(student(132), config)
    assert not failed.passed and any("upper 95% bound" in reason for reason in failed.reasons)


def test_one_wrong_fact_in_400_passes_and_two_percent_wrong_fails():
    assert decide(student(400, wrong=1), CONFIG).passed  # bound 1.1%
    failed = decide(student(200, wrong=4), CONFIG)  # 2% observed, bound above it
    assert not failed.passed and "4 of 200 answers are wrong" in failed.reasons[0]


def test_similarity_fails_just_below_nine_tenths_of_the_ceiling():
    assert decide(student(200, similarity=0.72, ceiling=0.8), CONFIG).passed  # 0.72 / 0.8 = 0.900
    failed = decide(student(200, similarity=0.7192, ceiling=0.8), CONFIG)  # 0.899
    assert any("below the threshold 0.9" in reason for reason in failed.reasons)
