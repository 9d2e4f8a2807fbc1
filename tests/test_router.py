"""The production router, exactly: quirks kept, and the table path equal to the per-query path."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hibachi_lab import router, traffic
from hibachi_lab.router import Policy

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "router"


@pytest.fixture(scope="module")
def seed() -> Policy:
    return Policy.from_yaml(CONFIGS / "seed.yaml")


# --------------------------------------------------------------------------- the reference
# Production's routing rule, written out by hand from the README ("Router policy keys") and the
# comments of configs/router/seed.yaml, not from router.py: what a turn should get, one query at a time.

SIMPLE_WORDS = ("hours", "open", "close", "location", "address", "phone", "website", "menu", "price", "cost",
                "how much", "what is", "do you", "can you", "available")
COMPLEX_WORDS = ("complaint", "frustrated", "angry", "problem", "issue", "cancel", "refund", "change", "reschedule",
                 "manager", "supervisor", "lawyer", "attorney", "dispute", "disappointed")
TOOL_WORDS = ("book", "schedule", "reserve", "create", "update", "modify", "change date", "change time", "add guest",
              "remove guest")
ASCII_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _occurs(keyword: str, text: str, whole_words: bool) -> bool:
    """Is the keyword in the lower-cased text (as a substring, or standing alone between non-word characters)?"""
    if not whole_words:
        return keyword in text
    start = text.find(keyword)
    while start != -1:
        end = start + len(keyword)
        # a word edge on each side: the keyword's first/last character and its neighbour differ in wordness
        left_ok = (start == 0 or text[start - 1] not in ASCII_WORD) != (keyword[0] not in ASCII_WORD)
        right_ok = (end == len(text) or text[end] not in ASCII_WORD) != (keyword[-1] not in ASCII_WORD)
        if left_ok and right_ok:
            return True
        start = text.find(keyword, start + 1)
    return False


def reference(query: str, history_depth: int = 0, sentiment: float | None = None,
              whole_words: bool = False) -> dict:
    """What production's SmartAIRouter does with one customer message.

    Each keyword counts once however often it occurs; the score is
    min(words/50, 1)*0.15 + complex/5*0.30 + tool/3*0.20 + (1 - sentiment)*0.20 + min(history/10, 1)*0.15,
    uncapped; below 0.3 simple (mistral_small), below 0.6 medium (mixtral_8x22b), else complex (ensemble).
    Any tool keyword then sends the turn to mistral_large on the medium tier; two or more complex keywords, or a
    sentiment strictly below 0.3, send it to the ensemble whatever came before. No sentiment logged means 0.5.
    """
    text = query.lower()
    hits = {name: len([k for k in words if _occurs(k, text, whole_words)])
            for name, words in (("simple", SIMPLE_WORDS), ("complex", COMPLEX_WORDS), ("tool", TOOL_WORDS))}
    mood = 0.5 if sentiment is None else sentiment
    # each part is (signal / its scale) * its weight, added up in the README's order
    score = (min(len(query.split()) / 50, 1) * 0.15 + hits["complex"] / 5 * 0.30 + hits["tool"] / 3 * 0.20
             + (1 - mood) * 0.20 + min(history_depth / 10, 1) * 0.15)
    if score < 0.3:
        tier, provider = "simple", "mistral_small"
    elif score < 0.6:
        tier, provider = "medium", "mixtral_8x22b"
    else:
        tier, provider = "complex", "ensemble"
    if hits["tool"]:
        tier, provider = "medium", "mistral_large"
    if hits["complex"] >= 2 or mood < 0.3:
        tier, provider = "complex", "ensemble"
    return {"tier": tier, "provider": provider, "score": score, "simple_hits": hits["simple"],
            "complex_hits": hits["complex"], "tool_hits": hits["tool"]}


def production(query: str, history_depth: int = 0, sentiment: float | None = None) -> tuple[str, str, float]:
    want = reference(query, history_depth, sentiment)
    return want["tier"], want["provider"], want["score"]


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


def exact(seed: Policy, medium: float, complex_: float) -> Policy:
    """Only the mood counts (weight 0.5, so sentiment 0 scores exactly 0.5); no override."""
    return seed.model_copy(update={
        "weights": router.Weights(length=0.0, complex=0.0, tool=0.0, sentiment=0.5, history=0.0),
        "thresholds": router.Thresholds(medium=medium, complex=complex_),
        "overrides": router.Overrides(tool_hits_to_medium=False, escalate_complex_hits=None,
                                      escalate_sentiment_below=None)})


@pytest.mark.parametrize("medium, complex_, tier", [
    (0.75, 1.0, "simple"), (0.5, 0.75, "medium"), (0.25, 0.5, "complex"), (0.25, 0.45, "complex")])
def test_a_score_exactly_on_a_threshold_takes_the_tier_above_it(seed, medium, complex_, tier):
    policy = exact(seed, medium, complex_)
    provider = getattr(policy.providers, tier)
    decision = policy.classify("book a refund", sentiment=0.0)
    assert decision.score == 0.5
    assert (decision.tier, decision.provider) == (tier, provider)
    table = pa.table({"query": ["book a refund"], "history": [[]], "customer_sentiment": pa.array([0.0], pa.float64())})
    row = policy.classify_table(table).to_pylist()[0]
    assert (row["tier"], row["provider"], row["score"]) == (tier, provider, 0.5)


def test_a_turn_without_history_or_mood_in_the_table_counts_no_history_and_the_default_mood(seed):
    # 4 words 0.012 + default mood 0.5 -> 0.1, no history: 0.112 (a null read as one message would add 0.015)
    table = pa.table({"query": ["what are your hours"], "history": pa.array([None], pa.list_(pa.string())),
                      "customer_sentiment": pa.array([None], pa.float64())})
    row = seed.classify_table(table).to_pylist()[0]
    assert row["score"] == pytest.approx(0.112)
    assert row["score"] == seed.classify("what are your hours").score


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


@settings(max_examples=150, deadline=None)
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


# Hand-written turns and what each should get, worked out by hand from the formula in reference()'s docstring:
# (query, history messages, sentiment, seed (tier, provider), score).
HAND_WRITTEN = [
    # 4 words: 0.012 + neutral mood 0.1
    ("what are your hours", 0, None, ("simple", "mistral_small"), 0.112),
    # 8 words 0.024 + 1 tool hit 0.0667 + mood 0.8 -> 0.04 + 4 messages 0.06 = 0.19: simple by score, tool override
    ("I need to book a chef for Saturday", 4, 0.8, ("medium", "mistral_large"), 0.024 + 0.2 / 3 + 0.04 + 0.06),
    # two complex words escalate a simple score (9 words 0.027 + 0.12 + 0.08 = 0.227)
    ("This is a complaint, the manager never called back", 0, 0.6, ("complex", "ensemble"), 0.227),
    # sentiment strictly below 0.3 escalates; 0.3 itself does not
    ("hi", 0, 0.29, ("complex", "ensemble"), 0.003 + 0.142),
    ("hi", 0, 0.3, ("simple", "mistral_small"), 0.003 + 0.14),
    # the length part stops at 50 words and the history part at 10 messages: 0.15 + 0.14 + 0.15
    ("please " * 60, 12, 0.3, ("medium", "mixtral_8x22b"), 0.44),
    # either side of the medium threshold: 4 words give 0.302, 3 words 0.299
    ("are you open tomorrow", 10, 0.3, ("medium", "mixtral_8x22b"), 0.302),
    ("are you open", 10, 0.3, ("simple", "mistral_small"), 0.299),
    # a keyword counts once however often it is written: one complex hit, no escalation
    ("Please cancel. cancel it now, CANCEL!", 0, None, ("simple", "mistral_small"), 0.018 + 0.06 + 0.1),
    # "cost" inside "costco" and "how much": simple hits change nothing in the score
    ("Saw your truck at costco, how much for 20 people?", 0, None, ("simple", "mistral_small"), 0.13),
    # "reschedule" is complex and holds the tool word "schedule": 2 complex hits beat the tool override
    ("I'm frustrated, we need to reschedule", 2, None, ("complex", "ensemble"), 0.018 + 0.12 + 0.2 / 3 + 0.1 + 0.03),
]


@pytest.mark.parametrize("query, depth, sentiment, expected, score", HAND_WRITTEN)
def test_hand_written_turns_route_as_worked_out_by_hand(seed, query, depth, sentiment, expected, score):
    want = reference(query, depth, sentiment)
    assert (want["tier"], want["provider"]) == expected and want["score"] == pytest.approx(score)  # the reference
    history = [{"role": "user", "content": "earlier"}] * depth
    got = seed.classify(query, history, sentiment)
    assert (got.tier, got.provider) == expected
    assert got.score == pytest.approx(score)
    table = traffic.turns_table([_turn(0, query, depth, sentiment)])
    assert seed.classify_table(table).to_pylist()[0] == want


def test_the_word_boundary_variant_routes_hand_written_turns_as_worked_out_by_hand():
    variant = Policy.from_yaml(CONFIGS / "word_boundary.yaml")
    # no "book" in "facebook" any more; "can you" still counts: 8 words 0.024 + 0.1 -> simple
    for query, expected in [("Saw you on facebook, can you do 20?", ("simple", "mistral_small")),
                            ("is the deposit refundable, we must cancel", ("simple", "mistral_small")),
                            # "book" in "rebook" and "schedule" in "reschedule" are gone; "reschedule" alone is complex
                            ("can we rebook, or reschedule?", ("simple", "mistral_small"))]:
        want = reference(query, whole_words=True)
        got = variant.classify(query)
        assert (want["tier"], want["provider"]) == (got.tier, got.provider) == expected, query


def _turn(number: int, query: str, depth: int, sentiment: float | None) -> traffic.LoggedTurn:
    return traffic.parse_turn({
        "conversation_id": f"h{number}", "turn_index": 0, "timestamp": "2026-09-01T10:00:00-07:00", "query": query,
        "history": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(depth)],
        "customer_sentiment": sentiment,
    })


# Customer messages made of keywords (also inside other words and in capitals), ordinary words, digits,
# punctuation and random text, with odd separators.
_PIECES = st.one_of(
    st.sampled_from([*SIMPLE_WORDS, *COMPLEX_WORDS, *TOOL_WORDS]),
    st.sampled_from([*SIMPLE_WORDS, *COMPLEX_WORDS, *TOOL_WORDS]).map(str.upper),
    st.sampled_from(["facebook", "tissue", "costco", "reopened", "refundable", "rebooked", "changed", "bookings",
                     "cancelled", "disclose", "priceless", "what isn't", "do your", "add guests", "change-date",
                     "Change Time", "updates", "chef", "Saturday", "20", "guests", "please", "$60", "we", "the", "a"]),
    st.text(max_size=5),
)
_SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", ", ", ". ", "", "\t", "_", "-"])
queries = st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=30).map(lambda parts: "".join(p + s for p, s in parts))
moods = st.one_of(st.none(), st.sampled_from([0.0, 0.29, 0.2999999, 0.3, 0.5, 1.0]), st.floats(0, 1))


@settings(max_examples=100, deadline=None)
@given(turns=st.lists(st.tuples(queries, st.integers(0, 14), moods), min_size=1, max_size=20),
       policy_file=st.sampled_from(["seed.yaml", "word_boundary.yaml"]))
def test_every_generated_turn_routes_as_the_reference_says(turns, policy_file):
    """Turns hypothesis makes up (not synth's, which the router itself labelled) against the hand reference,
    through both the per-query and the table path that replay uses."""
    policy = Policy.from_yaml(CONFIGS / policy_file)
    whole_words = policy_file == "word_boundary.yaml"
    logged = [_turn(i, query, depth, mood) for i, (query, depth, mood) in enumerate(turns)]
    table = policy.classify_table(traffic.turns_table(logged)).to_pylist()
    for (query, depth, mood), row in zip(turns, table, strict=True):
        want = reference(query, depth, mood, whole_words)
        got = policy.classify(query, [{}] * depth, mood)
        assert {"tier": got.tier, "provider": got.provider, "score": got.score, "simple_hits": got.simple_hits,
                "complex_hits": got.complex_hits, "tool_hits": got.tool_hits} == want, query
        assert row == want, query


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
