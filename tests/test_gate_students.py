"""The promotion gate on students built from the sample's real gate split (193 examples).

Each test makes a student out of the gate split itself (the teacher's answers, reworded, swapped
for another teacher's, or with a known number of planted errors) and checks the shipped gate
(configs/promotion.yaml, unscaled) decides as a caterer would: honest students pass, a student
with 2% wrong facts, one unsafe answer, 10% non-answers or 5% wrong booking calls fails.

The paraphraser below is written by hand from what the sample's answers look like; it never calls
the gate's fact reader, so a fact the gate misreads in a rewording shows up as a failed test.
"""

from __future__ import annotations

import json
import math
import random
import re

import datasets
import pytest

from hibachi_lab import dataset, evaluate, pii, traffic
from hibachi_lab.cli import DEFAULT_DATASET, DEFAULT_PII, DEFAULT_PROMOTION, SAMPLE_TRAFFIC
from hibachi_lab.synth import phrasebook

from .conftest import MEMBERS
from .test_evaluate import teacher_answers

pytestmark = pytest.mark.slow

Answers = dict[str, evaluate.StudentAnswer]


@pytest.fixture(scope="module")
def sample_gate(tmp_path_factory, engine) -> list[dict]:
    """The bundled sample scrubbed and built as the demo does; its gate split: 193 examples (204 before
    build-dataset left out the references that contradict the policy sheet)."""
    folder = tmp_path_factory.mktemp("sample")
    pii_config = pii.PiiConfig.from_yaml(DEFAULT_PII)
    pii.scrub_file([SAMPLE_TRAFFIC], folder / "scrubbed.jsonl", pii_config)
    dataset.build(traffic.load(folder / "scrubbed.jsonl"), folder / "dataset",
                  dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine, MEMBERS, pii_config, track=False)
    examples = list(datasets.load_from_disk(str(folder / "dataset" / "hf"))["gate"])
    # A clean student passes a 2% gate only from 133 answers on (the bound with none wrong is z²/(n+z²)).
    assert len(examples) >= 150, "too small a gate split for a 2% maximum to be tested"
    return examples


@pytest.fixture(scope="module")
def shipped_gate() -> evaluate.PromotionConfig:
    return evaluate.PromotionConfig.from_yaml(DEFAULT_PROMOTION)


def decide(examples: list[dict], answers: Answers, engine, config: evaluate.PromotionConfig) -> evaluate.GateDecision:
    scores = evaluate.score(examples, answers, engine)
    decision = evaluate.decide(scores, config)
    # What each wrong answer was called, for the assertion message when a test fails.
    decision.metrics["not_correct"] = [f"{row.verdict}/{row.rule}: {row.evidence} | teacher: {row.teacher} | "
                                       f"student: {row.student}" for row in scores.itertuples()
                                       if row.verdict != "correct"]
    return decision


def wrong_answers(decision: evaluate.GateDecision) -> list[str]:
    return [line for line in decision.metrics["not_correct"] if not line.startswith("missing_fact/")]


# --------------------------------------------------------------------------- paraphrases

# Rewordings of the words around the facts, each with its alternatives; a seed picks one per answer.
# Facts (prices, dates, times, counts, who brings what, yes/no) are never inside a pattern.
REWORDINGS: list[tuple[str, list[str]]] = [
    (r"^Thanks (<PERSON_\d+>|\w+)!", [r"Thank you, \1!", r"Thanks so much, \1!"]),
    (r"^Thanks!", ["Thank you!", "Many thanks!"]),
    (r"^Great, ", ["Wonderful, ", "Perfect, "]),
    (r"^Got it, ", ["Understood, ", "All right, "]),
    (r"^No problem, ", ["Happy to, ", "Of course, "]),
    (r"^Done, ", ["All set, ", "That's done, "]),
    (r"^Sure thing, ", ["Absolutely, ", "Certainly, "]),
    (r"^Understood, ", ["Got it, ", "Okay, "]),
    (r"is penciled in", ["is on the calendar", "is pencilled in"]),
    (r"I've noted", ["I've written down", "I have noted"]),
    (r"A (\$\d+) deposit confirms it", [r"It's confirmed with a \1 deposit", r"A \1 deposit locks it in"]),
    (r"We'll need a (\$\d+) deposit to confirm", [r"A \1 deposit is needed to confirm",
                                                 r"To confirm, we'll need a \1 deposit"]),
    (r"Please have tables and chairs ready", ["Please have your tables and chairs set up",
                                              "Just have tables and chairs ready"]),
    (r"seven days a week", ["every day of the week", "all week long"]),
    (r"every day, weekends included", ["daily, weekends too", "every day including weekends"]),
    (r"I'm so sorry", ["I'm really sorry", "I'm truly sorry"]),
    (r"I'm very sorry", ["I'm truly sorry", "I'm really sorry"]),
    (r"I apologize", ["My apologies", "I'm sorry"]),
    (r"I understand your frustration", ["I understand how frustrating this is", "I get why you're upset"]),
    (r"That's not the experience we want for anyone", ["Nobody should have an experience like that",
                                                       "That's not the kind of party we want to give"]),
    (r"you'll get a confirmation by email", ["a confirmation email is on its way", "we'll email you a confirmation"]),
    (r"A confirmation is on its way", ["You'll get a confirmation shortly", "We'll send a confirmation"]),
    (r"I've started that for you", ["I've already started it", "That's under way"]),
    (r"You're welcome!", ["Our pleasure!", "Any time, glad we could help!"]),
    (r"Happy to help!", ["Glad to help!", "Happy we could help!"]),
    (r"Enjoy your party\.", ["Have a wonderful party.", "Have a great party."]),
    (r"Let us know if there's anything else we can help with", ["Tell us if you need anything else",
                                                                 "Reach out any time you need anything else"]),
    (r"We can't wait to cook for you", ["We're excited to cook for you", "We look forward to cooking for you"]),
    (r"we'll quote it before you book", ["you get a quote before booking", "we'll give you a quote first"]),
    (r"Heads up that", ["Note that", "Just so you know,"]),
    (r"let us know in advance", ["tell us ahead of time", "please let us know beforehand"]),
]
# Numbers spelled as a person might write them; the amounts stay the same.
NUMBER_WORDS = {"2": "two", "5": "five", "7": "seven", "10": "ten", "12": "twelve", "15": "fifteen", "20": "twenty",
                "24": "twenty-four", "30": "thirty", "48": "forty-eight", "50": "fifty", "60": "sixty"}
SPELLINGS: list[tuple[str, list[str]]] = [
    (r"\$(\d+) per (adult|child|kid|mile|person)", [r"\1 dollars per \2", r"$\1.00 per \2"]),
    (r"\$(\d+) minimum", [r"\1 dollar minimum", r"$\1.00 minimum"]),
    (r"\b(\d+) (guests|hours|days|miles)\b", [lambda m: f"{NUMBER_WORDS.get(m[1], m[1])} {m[2]}", r"\1 \2"]),
    (r"\bunder 12\b", ["under twelve", "under the age of 12"]),
    (r"\b(\d{1,2})(am|pm)\b", [r"\1 \2", lambda m: f"{m[1]} {m[2][0]}.m."]),
]
# Sentences that stand on their own, so moving them does not change what they refer to.
MOVABLE = re.compile(r"^(?:Please|We bring|Our chef|A \$|We'll need|Gratuity|Heads up|Our sauces|We cover|We do travel)")


def paraphrase(text: str, rng: random.Random) -> str:
    """A rewording of ``text`` with every fact kept: openers, closers and filler words swapped,
    some numbers spelled out, and a free-standing sentence moved to the end."""
    for pattern, choices in REWORDINGS + SPELLINGS:
        choice = rng.choice(choices)
        text = re.sub(pattern, choice, text)
    sentences = re.split(r"(?<=[.!])\s+", text)
    movable = [index for index, sentence in enumerate(sentences[1:-1], 1) if MOVABLE.match(sentence)]
    if movable and rng.random() < 0.5:
        sentences.append(sentences.pop(rng.choice(movable)))
    return " ".join(sentences)


def paraphrased(examples: list[dict], seed: int) -> Answers:
    rng = random.Random(seed)
    return {pid: reply.model_copy(update={"answer": paraphrase(reply.answer, rng)})
            for pid, reply in teacher_answers(examples).items()}


def test_the_paraphraser_keeps_the_facts_and_changes_the_words():
    rng = random.Random(0)
    text = ("Thanks <PERSON_1>! I've noted 20 guests on Friday, December 12th at 6:30 PM. We'll need a $100 deposit to "
            "confirm; we bring the grill, propane and the chef, you provide tables and chairs.")
    reworded = {paraphrase(text, rng) for _ in range(6)}
    assert text not in reworded and len(reworded) > 2
    for version in reworded:
        assert "Friday, December 12th at 6:30 PM" in version and "$100 deposit" in version
        assert re.search(r"\b(?:20|twenty) guests", version)
        assert "we bring the grill, propane and the chef, you provide tables and chairs" in version


# --------------------------------------------------------------------------- the second teacher


def _template(text: str) -> re.Pattern:
    """A synth answer template as a pattern: its {placeholders} match any text."""
    # "Sorry {first}, ..." is written "Sorry, ..." when the customer gave no name.
    return re.compile(re.sub(r"(?:,?\\ )?\\\{\w+\\\}", ".*?", re.escape(text)) + "$", re.DOTALL)


# The sample's traffic generator writes some ensemble answers from `disagree` templates: a weaker
# model stating a fact against the policy sheet ("$75 per adult", "you provide the propane").
AGAINST_THE_SHEET = [_template(text) for answers in phrasebook()["answers"].values() for text in answers.get("disagree", [])]


def breaks_the_sheet(text: str) -> bool:
    return any(pattern.match(text) for pattern in AGAINST_THE_SHEET)


def second_teacher(examples: list[dict]) -> tuple[Answers, int]:
    """Another ensemble member's answer to the same prompt where the dataset keeps a distinct one that
    keeps to the policy sheet, and the reference does too; the teacher's answer elsewhere.

    The dataset keeps only the other members' text, not their tool calls: booking calls stay the
    teacher's. Where the reference itself breaks the sheet (a consensus that picked a `disagree`
    answer), a right answer cannot agree with it, so the teacher's answer stays there as well.
    Returns the answers and how many came from the second teacher.
    """
    answers, swapped = teacher_answers(examples), 0
    for example in examples:
        reference = example["messages"][-1]["content"]
        others = [text for text in example["other_teacher_answers"] or []
                  if not evaluate._is_copy(text, reference) and not breaks_the_sheet(text)]
        if others and not breaks_the_sheet(reference):
            answers[example["prompt_id"]] = answers[example["prompt_id"]].model_copy(update={"answer": others[0]})
            swapped += 1
    return answers, swapped


# --------------------------------------------------------------------------- honest students pass


def test_a_copy_of_the_teacher_passes(sample_gate, engine, shipped_gate):
    decision = decide(sample_gate, teacher_answers(sample_gate), engine, shipped_gate)
    assert decision.passed, (decision.reasons, wrong_answers(decision))
    assert decision.metrics["wrong_answers"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_student_that_rewords_every_answer_passes(sample_gate, engine, shipped_gate, seed):
    answers = paraphrased(sample_gate, seed)
    # keyed by prompt: two gate examples may share one (the same scrubbed question in two conversations)
    changed = sum(answers[example["prompt_id"]].answer != example["messages"][-1]["content"]
                  for example in sample_gate)
    assert changed > len(sample_gate) * 0.6
    decision = decide(sample_gate, answers, engine, shipped_gate)
    assert decision.passed, (decision.reasons, wrong_answers(decision))


def test_a_second_teacher_that_keeps_to_the_sheet_passes(sample_gate, engine, shipped_gate):
    """Another ensemble member's distinct answer where the dataset has one (and neither it nor the
    reference breaks the policy sheet); the teacher's answer elsewhere, booking calls always the
    teacher's (see :func:`second_teacher`)."""
    answers, swapped = second_teacher(sample_gate)
    assert swapped >= 0.1 * len(sample_gate)  # a real second teacher, not the teacher's copy with a few swaps
    decision = decide(sample_gate, answers, engine, shipped_gate)
    assert decision.passed, (decision.reasons, wrong_answers(decision))


# --------------------------------------------------------------------------- planted errors fail


def _spread(candidates: list[str], count: int) -> list[str]:
    """``count`` of the candidates, spread evenly over them."""
    step = len(candidates) / count
    return [candidates[int(index * step)] for index in range(count)]


# A price, a guest count or a time as the teacher wrote it, and the same fact made wrong.
FACT_CHANGES = [
    (re.compile(r"\$(\d+)"), lambda m: f"${int(m[1]) + 15}"),
    (re.compile(r"\b(\d+) guests\b"), lambda m: f"{int(m[1]) + 6} guests"),
    (re.compile(r"\b(\d{1,2})(am|pm)\b"), lambda m: f"{int(m[1]) % 12 + 1}{m[2]}"),
]


def test_wrong_facts_in_two_percent_of_answers_fail(sample_gate, engine, shipped_gate):
    answers = teacher_answers(sample_gate)
    with_a_fact = [pid for pid, reply in answers.items() if any(p.search(reply.answer) for p, _ in FACT_CHANGES)]
    victims = _spread(with_a_fact, round(0.02 * len(answers)))
    assert len(victims) == 4
    for pid in victims:
        pattern, change = next((p, c) for p, c in FACT_CHANGES if p.search(answers[pid].answer))
        answers[pid] = answers[pid].model_copy(update={"answer": pattern.sub(change, answers[pid].answer, count=1)})
    decision = decide(sample_gate, answers, engine, shipped_gate)
    assert not decision.passed
    assert decision.metrics["wrong_answers"] == 4, wrong_answers(decision)
    assert any("answers are wrong" in reason for reason in decision.reasons)


@pytest.mark.parametrize("addition", [
    "Text me directly at 408-555-0199 if anything changes.",
    "If we're booked, Benihana does home parties too.",
    "Honestly, it's all on the website, so maybe read it next time.",
], ids=["phone number", "competitor", "rude"])
def test_one_unsafe_answer_fails(sample_gate, engine, shipped_gate, addition):
    answers = teacher_answers(sample_gate)
    pid = next(iter(answers))
    answers[pid] = answers[pid].model_copy(update={"answer": f"{answers[pid].answer} {addition}"})
    decision = decide(sample_gate, answers, engine, shipped_gate)
    assert not decision.passed
    assert decision.metrics["unsafe_answers"] == 1, wrong_answers(decision)
    assert any("unsafe" in reason for reason in decision.reasons)


def test_ten_percent_non_answers_fail(sample_gate, engine, shipped_gate):
    """Every planted non-answer is wrong where the teacher said something a customer needed: not after
    chit-chat ("thanks!" has nothing to leave out), and not where the teacher itself broke the sheet
    with nothing the judge reads as a fact ("deposits are non-refundable once paid")."""
    answers = teacher_answers(sample_gate)
    victims = _spread(list(answers), round(0.10 * len(answers)))
    for pid in victims:
        answers[pid] = answers[pid].model_copy(update={"answer": "Please contact us for more information."})
    scores = evaluate.score(sample_gate, answers, engine)
    decision = evaluate.decide(scores, shipped_gate)
    assert not decision.passed
    assert any("answers are wrong" in reason for reason in decision.reasons)
    by_prompt = {example["prompt_id"]: example for example in sample_gate}
    needed = {pid for pid in victims if by_prompt[pid]["intent"] != "chit_chat"
              and not breaks_the_sheet(by_prompt[pid]["messages"][-1]["content"])}
    non_answers = set(scores.loc[scores["verdict"] == "non_answer", "prompt_id"])
    assert needed <= non_answers <= set(victims), scores[scores["prompt_id"].isin(victims)][["intent", "verdict"]]
    assert len(needed) >= 0.6 * len(victims)


# A booking field as the teacher's call has it, and the same field made wrong.
FIELD_CHANGES = {
    "event_date": lambda value: re.sub(r"\d+", lambda m: str(int(m[0]) % 27 + 1), value, count=1),
    "event_time": lambda value: re.sub(r"\d+", lambda m: str(int(m[0]) % 12 + 1), value, count=1),
    "guest_count": lambda value: int(value) + 5,
}


def test_a_wrong_booking_field_in_five_percent_of_booking_turns_fails(sample_gate, engine, shipped_gate):
    answers = teacher_answers(sample_gate)
    bookings = [pid for pid, reply in answers.items() if reply.tool_calls]
    victims = _spread(bookings, math.ceil(0.05 * len(bookings)))  # 5% of the booking turns, rounded up
    assert len(victims) >= 3, f"only {len(bookings)} booking turns in the gate split"
    changed = []
    for turn, pid in enumerate(victims):
        call = answers[pid].tool_calls[0]
        arguments = json.loads(call["function"]["arguments"])
        fields = [key for key in FIELD_CHANGES if re.search(r"\d", str(arguments.get(key, "")))]
        name = fields[turn % len(fields)]
        arguments[name] = FIELD_CHANGES[name](arguments[name])
        changed.append(name)
        wrong_call = {**call, "function": {**call["function"], "arguments": json.dumps(arguments)}}
        answers[pid] = answers[pid].model_copy(update={"tool_calls": [wrong_call]})
    decision = decide(sample_gate, answers, engine, shipped_gate)
    assert not decision.passed
    assert decision.metrics["verdict.bad_tool_call"] == len(victims), (changed, wrong_answers(decision))
