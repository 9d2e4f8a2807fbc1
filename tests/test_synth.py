"""Synthetic traffic: deterministic per seed, exact PII labels, realistic coverage."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from hypothesis import given
from hypothesis import strategies as st

from hibachi_lab import synth, traffic
from hibachi_lab.synth import Text, join, luhn_valid, render

PATTERNS = {
    "PHONE_NUMBER": re.compile(r"^(\+?1[ -]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}$"),
    "EMAIL_ADDRESS": re.compile(r"^[\w.+-]+@[\w-]+\.[a-z]{2,}$", re.IGNORECASE),
    "STREET_ADDRESS": re.compile(r"^\d+ [A-Za-z]", re.IGNORECASE),
    "ACCESS_CODE": re.compile(r"^\d{4,6}$"),
    "PERSON": re.compile(r"^[A-Za-z][A-Za-z'-]+( [A-Za-z][A-Za-z'-]+)?$"),
}


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    first, again, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    synth.write_synthetic(first, 60, seed=5)
    synth.write_synthetic(again, 60, seed=5)
    synth.write_synthetic(other, 60, seed=6)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_conversation_k_does_not_depend_on_how_many_are_generated():
    few = [t for t in synth.generate(5, seed=3)]
    many = [t for t in synth.generate(20, seed=3) if t.conversation_id in {f.conversation_id for f in few}]
    assert few == many


def test_every_span_slices_exactly_a_value_of_its_type():
    turns = list(synth.generate(300, seed=21))
    checked = Counter()
    for turn in turns:
        for span in turn.pii_spans:
            value = turn.text_of(span.field)[span.start : span.end]
            assert value == value.strip() and value, (turn.conversation_id, span)
            if span.entity_type == "CREDIT_CARD":
                assert luhn_valid(value), value
            else:
                assert PATTERNS[span.entity_type].match(value), (span.entity_type, value)
            checked[span.entity_type] += 1
    assert set(checked) == set(traffic.ENTITY_TYPES)


def test_a_customer_is_one_person_across_the_conversation():
    turns = list(synth.generate(200, seed=4))
    values = defaultdict(set)
    for turn in turns:
        for span in turn.pii_spans:
            if span.entity_type in ("PHONE_NUMBER", "CREDIT_CARD"):
                values[(turn.conversation_id, span.entity_type)].add(turn.text_of(span.field)[span.start : span.end])
    assert values and all(len(found) == 1 for found in values.values())


def test_traffic_covers_the_business_and_production_behaviour():
    turns = list(synth.generate(600, seed=1))
    intents = Counter(t.labels.intent for t in turns)
    assert set(intents) == set(synth.INTENT_COMPLEXITY)
    assert {t.routed_provider for t in turns} >= {"mistral_small", "mistral_large", "ensemble"}
    assert any(len(t.history) >= 4 for t in turns), "multi-turn conversations"
    responses = [r for t in turns for r in t.responses]
    assert any(r.error for r in responses) and any(r.tool_calls for r in responses)
    shadowed = [t for t in turns if t.routed_provider != "ensemble" and len(t.responses) == 4]
    assert 0.15 < len(shadowed) / sum(t.routed_provider != "ensemble" for t in turns) < 0.45
    families = Counter(t.model_extra["synth"]["template_family"] for t in turns)
    assert families["A"] > 100 and families["B"] > 100
    assert any(t.query == t.query.lower() and any(c.isalpha() for c in t.query) for t in turns)


def test_template_families_do_not_share_customer_templates():
    book = synth.phrasebook()["customer"]
    for intent, families in book.items():
        assert not set(families["A"]) & set(families["B"]), intent


slot_values = st.text(alphabet=st.characters(codec="ascii", exclude_characters="{}"), min_size=1, max_size=12)


@given(
    literals=st.lists(st.text(alphabet=st.characters(codec="ascii", exclude_characters="{}"), max_size=8), min_size=4, max_size=4),
    name=slot_values,
    phone=slot_values,
    guests=slot_values,
)
def test_render_and_join_label_exactly_the_pii_values(literals, name, phone, guests):
    template = f"{literals[0]}{{name}}{literals[1]}{{guests}}{literals[2]}{{phone}}{literals[3]}"
    values = {"name": name, "phone": phone, "guests": guests}
    first = render(template, values)
    joined = join(Text("prefix"), first, render("x {phone}", values))
    assert [joined.content[s:e] for s, e, _ in joined.spans] == [name, phone, phone]
    assert [kind for _, _, kind in joined.spans] == ["PERSON", "PHONE_NUMBER", "PHONE_NUMBER"]


def test_the_committed_sample_is_what_the_readme_command_makes(tmp_path):
    from typer.testing import CliRunner

    from hibachi_lab.cli import REPO_ROOT, app

    out = tmp_path / "sample.jsonl"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "-n", "2000", "--seed", "2026",
                                      "--config", str(REPO_ROOT / "configs" / "synth.yaml")])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (REPO_ROOT / "data" / "sample_traffic.jsonl").read_bytes()
