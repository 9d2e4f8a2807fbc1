"""The production router, exactly: quirks kept, and the table path equal to the per-query path."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hibachi_lab import router
from hibachi_lab.router import Policy

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "router"


@pytest.fixture(scope="module")
def seed() -> Policy:
    return Policy.from_yaml(CONFIGS / "seed.yaml")


def production(query: str, history_depth: int = 0, sentiment: float | None = None) -> tuple[str, str, float]:
    """The production SmartAIRouter rule, written out independently as the oracle."""
    q = query.lower()
    simple = ["hours", "open", "close", "location", "address", "phone", "website", "menu", "price", "cost",
              "how much", "what is", "do you", "can you", "available"]
    complex_ = ["complaint", "frustrated", "angry", "problem", "issue", "cancel", "refund", "change", "reschedule",
                "manager", "supervisor", "lawyer", "attorney", "dispute", "disappointed"]
    tool = ["book", "schedule", "reserve", "create", "update", "modify", "change date", "change time", "add guest",
            "remove guest"]
    complex_hits = sum(1 for k in complex_ if k in q)
    tool_hits = sum(1 for k in tool if k in q)
    _ = sum(1 for k in simple if k in q)
    s = 0.5 if sentiment is None else sentiment
    score = (min(len(query.split()) / 50, 1) * 0.15 + (complex_hits / 5) * 0.30 + (tool_hits / 3) * 0.20
             + (1 - s) * 0.20 + min(history_depth / 10, 1) * 0.15)
    tier, provider = ("simple", "mistral_small") if score < 0.3 else ("medium", "mixtral_8x22b") if score < 0.6 else ("complex", "ensemble")
    if tool_hits > 0:
        tier, provider = "medium", "mistral_large"
    if complex_hits >= 2 or s < 0.3:
        tier, provider = "complex", "ensemble"
    return tier, provider, score


QUIRKS = [
    # "change" is COMPLEX and again inside "change date": 1 complex + 1 tool hit, the tool override wins
    ("Can I change date to Oct 5?", {"complex_hits": 1, "tool_hits": 1, "tier": "medium", "provider": "mistral_large"}),
    # "reschedule" contains "schedule" (tool) and is itself complex; "change time" adds change+tool
    ("reschedule and change time please", {"complex_hits": 2, "tool_hits": 2, "tier": "complex", "provider": "ensemble"}),
    # substring hits: "book" in "facebook", "open" in "reopened", "cost" in "costco", "issue" in "tissue"
    ("saw you on facebook", {"tool_hits": 1, "provider": "mistral_large"}),
    ("the store reopened", {"simple_hits": 1, "tier": "simple"}),
    ("got supplies at costco", {"simple_hits": 1}),
    ("bring tissue paper", {"complex_hits": 1}),
]


@pytest.mark.parametrize("query,expected", QUIRKS)
def test_quirk_cases_give_the_production_decision(seed, query, expected):
    decision = seed.classify(query)
    for key, value in expected.items():
        assert getattr(decision, key) == value, key
    tier, provider, score = production(query)
    assert (decision.tier, decision.provider, decision.score) == (tier, provider, score)


def test_scores_above_one_are_possible_and_kept(seed):
    angry = "complaint frustrated angry problem issue cancel refund change reschedule manager " * 3
    decision = seed.classify(angry, history=[{}] * 12, sentiment=0.0)
    assert decision.score > 1
    assert decision.score == production(angry, 12, 0.0)[2]


@pytest.mark.parametrize("sentiment,tier", [(0.29, "complex"), (0.3, "simple"), (None, "simple")])
def test_low_sentiment_escalates_strictly_below_0_3(seed, sentiment, tier):
    assert seed.classify("what are your hours", sentiment=sentiment).tier == tier


def test_threshold_edges_are_half_open(seed):
    # (1 - s) * 0.20 alone: s = 0 gives 0.2; add history to land on the edges exactly
    policy = seed.model_copy(update={"overrides": seed.overrides.model_copy(update={"escalate_sentiment_below": None})})
    assert policy.classify("x", sentiment=0.0).tier == "simple"
    on_edge = policy.model_copy(update={"thresholds": policy.thresholds.model_copy(update={"medium": 0.2 + 0.15 / 50})})
    assert on_edge.classify("x", sentiment=0.0).score == pytest.approx(0.2 + 0.15 / 50)


def test_word_boundary_variant_drops_the_substring_hits():
    variant = Policy.from_yaml(CONFIGS / "word_boundary.yaml")
    assert variant.classify("saw you on facebook").tool_hits == 0
    assert variant.classify("bring tissue paper").complex_hits == 0
    assert variant.classify("I want to book").tool_hits == 1


# Random text mixed with keywords, odd whitespace and letters whose lower case is special.
texts = st.lists(
    st.one_of(
        st.text(max_size=6),
        st.sampled_from(["book ", "change date", " issue", "CANCEL", "how much", "\x1c", "\u3000", "İssue", "\u212aook"]),
    ),
    max_size=12,
).map("".join)
sentiments = st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.6, 1.0]), st.floats(0, 1))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(texts, st.integers(0, 15), sentiments), min_size=1, max_size=25),
       policy_file=st.sampled_from(["seed.yaml", "word_boundary.yaml"]), on_every_core=st.booleans())
def test_classify_table_equals_classify_on_every_input(rows, policy_file, on_every_core):
    policy = Policy.from_yaml(CONFIGS / policy_file)
    table = pa.table({
        "query": [q for q, _, _ in rows],
        "history": [[{"role": "user", "content": "x"}] * depth for _, depth, _ in rows],
        "customer_sentiment": pa.array([s for _, _, s in rows], pa.float64()),
    })
    # Big logs are scanned on every core, small ones on one: both scans must give the same decisions.
    with mock.patch.object(router, "_PARALLEL_FROM_BYTES", 0 if on_every_core else 2**62):
        out = policy.classify_table(table).to_pylist()
    for (query, depth, sentiment), got in zip(rows, out):
        want = policy.classify(query, [None] * depth, sentiment)
        assert got == {"tier": want.tier, "score": want.score, "provider": want.provider,
                       "simple_hits": want.simple_hits, "complex_hits": want.complex_hits, "tool_hits": want.tool_hits}


def test_production_env_file_sets_the_complex_threshold(tmp_path, seed):
    env = tmp_path / ".env"
    env.write_text("# production\nAI_ROUTER_COMPLEX_THRESHOLD=0.45\nexport AI_ROUTER_ENSEMBLE_THRESHOLD='0.8'\n")
    policy = Policy.from_yaml(CONFIGS / "seed.yaml", env_file=env)
    assert policy.thresholds.complex == 0.45 and policy.thresholds.medium == seed.thresholds.medium


def test_a_bad_env_value_is_bad_input(tmp_path):
    from hibachi_lab.errors import BadInput

    env = tmp_path / ".env"
    env.write_text("AI_ROUTER_COMPLEX_THRESHOLD=high\n")
    with pytest.raises(BadInput, match=r"AI_ROUTER_COMPLEX_THRESHOLD: expected a number between 0 and 1, got 'high'"):
        Policy.from_yaml(CONFIGS / "seed.yaml", env_file=env)


def test_empty_keywords_are_rejected_with_the_key_named(tmp_path):
    from hibachi_lab.errors import BadInput

    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nkeywords: {simple: [''], complex: [], tool: []}\n")
    with pytest.raises(BadInput, match=r"keywords.simple.0: String should have at least 1 character"):
        Policy.from_yaml(bad)


def test_classify_table_on_a_slice_of_a_log(small_turns, seed):
    from hibachi_lab import traffic

    table = traffic.turns_table(small_turns).slice(7, 40)  # arrays with a non-zero offset
    out = seed.classify_table(table).to_pylist()
    for turn, got in zip(small_turns[7:47], out):
        want = seed.classify(turn.query, turn.history, turn.customer_sentiment)
        assert (got["tier"], got["score"], got["provider"], got["tool_hits"]) == (
            want.tier, want.score, want.provider, want.tool_hits)
    assert len(out) == 40


def test_a_log_read_in_many_small_chunks_is_scanned_in_few_large_passes(seed, monkeypatch):
    # Logs are read 5,000 rows to a chunk; a scan per chunk made start-up costs dominate on a busy machine.
    queries = [f"can I cancel order {i}, or change date?" if i % 3 else "what are your hours" for i in range(300)]
    chunks = [pa.array(queries[start:start + 30]) for start in range(0, 300, 30)]
    table = pa.table({"query": pa.chunked_array(chunks), "history": pa.nulls(300, pa.list_(pa.string())),
                      "customer_sentiment": pa.nulls(300, pa.float64())})
    scans = []
    original = router._KeywordMatcher.scan
    monkeypatch.setattr(router._KeywordMatcher, "scan", lambda self, query: scans.append(len(query)) or original(self, query))
    monkeypatch.setattr(router, "_ROWS_PER_PASS", 120)

    out = seed.classify_table(table)

    assert scans == [120, 120, 60]
    assert out["tier"].to_pylist() == [seed.classify(query).tier for query in queries]
