"""Measuring a scrubber on labelled text: what it leaves, what it destroys, and who found what.

Per entity type: span-level precision, recall and F2 (presidio-research's convention: a gold span
is found when a detection of its type overlaps it), **values left** (the share of gold values whose
text, or for phones, cards and codes whose digits in any format, is still in the scrubbed text) and
**needed words destroyed** (keep entries, such as the event city or a price, no longer in the text).
Plain Presidio (all predefined recognizers, same spaCy pipeline) is scored beside ours on the same texts.

Labelled text comes as logs with ``pii_spans`` or as JSONL of ``{text, spans, keep?, conversation?}``;
:func:`presidio_evaluator_examples` writes such a set from presidio-evaluator's generator, which
this project did not write.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hibachi_lab import traffic
from hibachi_lab.errors import BadInput
from hibachi_lab.pii.detectors import (
    ACCESS_CODE,
    DATE_OF_BIRTH,
    DRIVER_LICENSE,
    PAYMENT_HANDLE,
    STREET_ADDRESS,
)
from hibachi_lab.pii.scrub import (
    Detector,
    PiiConfig,
    Pseudonyms,
    Span,
    _replace,
    _without_overlaps,
    build_analyzer,
    build_default_analyzer,
    conversation_spans,
    turn_slots,
)


class LabelledSpan(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    entity_type: str


class KeepSpan(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str


class LabelledText(BaseModel):
    """One line of the simple evaluation format: a text, its gold spans, the words that must survive, and
    optionally the conversation it belongs to (texts of one conversation share pseudonyms and propagation)."""

    model_config = ConfigDict(extra="ignore")
    text: str
    spans: list[LabelledSpan] = Field(default_factory=list)
    keep: list[KeepSpan] = Field(default_factory=list)
    conversation: str | None = None


@dataclass
class Example:
    group: str
    text: str
    gold: list[LabelledSpan]
    keep: list[str] = field(default_factory=list)


def labelled_examples(path: str | os.PathLike, only: dict[str, str] | None = None) -> list[Example]:
    """Labelled texts from logs with ``pii_spans`` or from ``{text, spans}`` JSONL (told apart by the first line)."""
    path = Path(path)
    first = _first_object(path)
    if first is not None and "text" in first and "conversation_id" not in first:
        from hibachi_lab.records import read_jsonl

        return as_examples(read_jsonl(path, LabelledText))
    examples = []
    for turn in traffic.iter_objects(traffic.load(path, strict=True)):
        if only and any(_lookup(turn, key) != value for key, value in only.items()):
            continue
        gold: dict[str, list[LabelledSpan]] = defaultdict(list)
        for span in turn.get("pii_spans") or []:
            gold[span["field"]].append(LabelledSpan(start=span["start"], end=span["end"], entity_type=span["entity_type"]))
        for slot in turn_slots(turn):
            if slot.path.count("/") <= 2 and slot.text:
                examples.append(Example(turn["conversation_id"], slot.text, gold.get(slot.path, [])))
    return examples


def as_examples(records: list[LabelledText | dict]) -> list[Example]:
    """Examples from records of the simple format (validated models or plain dicts)."""
    records = [LabelledText.model_validate(record) for record in records]
    return [Example(record.conversation or str(i), record.text, record.spans, [k.text for k in record.keep])
            for i, record in enumerate(records)]


def _first_object(path: Path) -> dict | None:
    if path.suffix != ".jsonl":
        return None
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    raise BadInput(f"{path}:1: not valid JSON") from None
                return value if isinstance(value, dict) else None
    return None


def _lookup(obj: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# --------------------------------------------------------------------------- a set nobody here wrote

# presidio-evaluator's entity names -> ours; what it labels as places, dates and ages must survive.
_EVALUATOR_TYPES = {"PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS",
                    "CREDIT_CARD": "CREDIT_CARD", "STREET_ADDRESS": STREET_ADDRESS, "US_SSN": "US_SSN",
                    "US_DRIVER_LICENSE": DRIVER_LICENSE}
_EVALUATOR_KEEP = ("GPE", "DATE_TIME", "AGE")


def presidio_evaluator_examples(samples: int, seed: int) -> list[dict[str, Any]]:
    """Labelled sentences from presidio-evaluator's generator (its templates and multi-country names).

    Its STREET_ADDRESS also covers a bare postal code after the country ("Czech Republic 45098"); a
    caterer keeps the ZIP (travel fees depend on it), so those are neither PII nor keep here. It has no
    date-of-birth type: a DATE_TIME right after "born" or "date of birth" ("She was born on 4/18/1960")
    is a birth date, a value to remove (DATE_OF_BIRTH), not a date the caterer needs.
    """
    try:
        from presidio_evaluator.data_generator import PresidioSentenceFaker
    except ImportError:
        raise BadInput("presidio-evaluator is not installed; run `pip install presidio-evaluator`") from None
    import logging
    import random

    import numpy

    logging.getLogger("presidio-evaluator").setLevel(logging.ERROR)
    # The generator builds its people (middle initials among them) with the global random generators before
    # it seeds them: seed them first, or the same --seed gives another set each run. Restored afterwards.
    saved = random.getstate(), numpy.random.get_state()
    random.seed(seed)
    numpy.random.seed(seed)
    try:
        faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=seed)
        samples_made = list(faker.generate_new_fake_sentences(num_samples=samples))
    finally:
        random.setstate(saved[0])
        numpy.random.set_state(saved[1])
    records = []
    for index, sample in enumerate(samples_made):
        text, offset = _unescaped_newlines(sample.full_text)
        spans, keep = [], []
        for span in sorted(sample.spans, key=lambda s: s.start_position):
            start, end = offset(span.start_position), offset(span.end_position)
            value = text[start:end]
            if span.entity_type in _EVALUATOR_TYPES and not re.fullmatch(r"\d{4,6}", value):
                spans.append({"start": start, "end": end, "entity_type": _EVALUATOR_TYPES[span.entity_type]})
            elif span.entity_type == "DATE_TIME" and _BIRTH_CUE.search(text[max(0, start - 30) : start]):
                spans.append({"start": start, "end": end, "entity_type": DATE_OF_BIRTH})
            elif span.entity_type in _EVALUATOR_KEEP:
                keep.append({"start": start, "end": end, "text": value})
        records.append({"conversation": f"pe-{index}", "text": text, "spans": spans, "keep": keep,
                        "template_id": sample.template_id})
    return records


_BIRTH_CUE = re.compile(r"(?i:\b(?:born|birth\s?date|date\s+of\s+birth|dob)\b)[^\d]{0,12}$")


def _unescaped_newlines(text: str):
    """The generator's templates write line breaks as a backslash and an 'n'; real text has line breaks.
    Returns the text with real ones and a function mapping old offsets to new."""
    removed = [match.start() for match in re.finditer(r"\\n", text)]
    return text.replace("\\n", "\n"), lambda position: position - sum(1 for at in removed if at < position)


# --------------------------------------------------------------------------- scoring

EVALUATED_TYPES = ("PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", STREET_ADDRESS, ACCESS_CODE,
                   PAYMENT_HANDLE, DATE_OF_BIRTH, DRIVER_LICENSE, "US_SSN")
_DIGIT_TYPES = ("PHONE_NUMBER", "CREDIT_CARD", ACCESS_CODE, "US_SSN")
# Presidio's own names for what we call a street address, a licence and a handle.
_DEFAULT_TYPE_MAP = {"LOCATION": STREET_ADDRESS, "US_DRIVER_LICENSE": DRIVER_LICENSE, "URL": PAYMENT_HANDLE}
# Targets of the PII issue: the most of each type's values that may be left in scrubbed text.
MAX_LEFT = {"overall": 0.02, "PERSON": 0.03, STREET_ADDRESS: 0.03, "PHONE_NUMBER": 0.005, "EMAIL_ADDRESS": 0.005,
            "CREDIT_CARD": 0.005, ACCESS_CODE: 0.005}
MAX_DESTROYED = 0.03


def evaluate(examples: list[Example], config: PiiConfig | None = None, baseline: bool = True,
             without: tuple[str, ...] = ()) -> dict[str, Any]:
    """Scores per entity type, ours (and Presidio's default) side by side, and what each recognizer found."""
    config = config or PiiConfig()
    ours = Detector(build_analyzer(config, without), config.entities, config.score_threshold, config.keep_words,
                    config.batch_size)
    texts = [example.text for example in examples]
    our_spans, our_texts = scrubbed_examples(examples, ours, config.propagate_within_conversation)
    result = {
        "examples": len(examples),
        "gold_spans": sum(len(example.gold) for example in examples),
        "keep_entries": sum(len(example.keep) for example in examples),
        "ours": _scores(examples, our_spans, our_texts),
        "by_recognizer": _by_recognizer(examples, [ours.spans(text) for text in texts]),
    }
    if baseline:
        default = Detector(build_default_analyzer(config), None, 0.0, [], config.batch_size)
        default.detect(texts, "Presidio default")
        default_spans = [[s._replace(entity_type=_DEFAULT_TYPE_MAP.get(s.entity_type, s.entity_type))
                          for s in _without_overlaps(default.spans(text))] for text in texts]
        result["presidio_default"] = _scores(examples, default_spans,
                                             [_redact(text, spans) for text, spans in zip(texts, default_spans)])
    return result


def scrubbed_examples(examples: list[Example], detector: Detector, propagate: bool = True
                      ) -> tuple[list[list[Span]], list[str]]:
    """The spans found in each example and its text with placeholders, conversation by conversation."""
    texts = [example.text for example in examples]
    detector.detect(texts, "scrubbing labelled texts")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        groups[example.group].append(index)
    spans_of: list[list[Span]] = [[] for _ in examples]
    scrubbed = list(texts)
    for group, indices in groups.items():
        found = conversation_spans([texts[i] for i in indices], detector, propagate)
        persons = [texts[i][s.start : s.end] for i, spans in zip(indices, found) for s in spans
                   if s.entity_type == "PERSON"]
        pseudonyms = Pseudonyms(group, "placeholder", persons)
        for i, spans in zip(indices, found, strict=True):
            spans_of[i] = spans
            scrubbed[i] = _replace(texts[i], spans, pseudonyms)[0]
    return spans_of, scrubbed


def values_left(example: Example, scrubbed: str) -> list[LabelledSpan]:
    """The example's labelled values still in its scrubbed text (a keep entry holding the same string aside)."""
    left = []
    for gold in example.gold:
        value, by_digits = example.text[gold.start : gold.end], gold.entity_type in _DIGIT_TYPES
        allowed = sum(occurrences(value, keep, by_digits) for keep in example.keep)
        if occurrences(value, scrubbed, by_digits) > allowed:
            left.append(gold)
    return left


def _redact(text: str, spans: list[Span]) -> str:
    for span in sorted(spans, reverse=True):
        text = text[: span.start] + f"<{span.entity_type}>" + text[span.end :]
    return text


def occurrences(value: str, text: str, by_digits: bool) -> int:
    """How often a value is in a text: as written, or (phones, cards, codes) as the same digits in any format."""
    exact = text.count(value)
    digits = re.sub(r"\D", "", value) if by_digits else ""
    if not digits:
        return exact
    return max(exact, len(re.findall(r"(?<!\d)" + r"\D{0,3}".join(digits) + r"(?!\d)", text)))


def _scores(examples: list[Example], predicted: list[list[Span]], scrubbed: list[str]) -> dict[str, Any]:
    counts = {entity: Counter() for entity in EVALUATED_TYPES}
    other_predictions = Counter()
    destroyed = kept_total = 0
    for example, spans, after in zip(examples, predicted, scrubbed, strict=True):
        for gold in example.gold:
            row = counts.setdefault(gold.entity_type, Counter())
            row["gold"] += 1
            if any(s.entity_type == gold.entity_type and s.start < gold.end and gold.start < s.end for s in spans):
                row["found"] += 1
        for gold in values_left(example, after):
            counts[gold.entity_type]["left"] += 1
        for span in spans:
            correct = any(g.entity_type == span.entity_type and span.start < g.end and g.start < span.end
                          for g in example.gold)
            row = counts.get(span.entity_type, other_predictions)
            row["predicted"] += 1
            row["correct"] += correct
        for keep in set(example.keep):
            needed = example.keep.count(keep)
            kept_total += needed
            destroyed += max(0, needed - after.count(keep))
    table = {entity: _prf(row) for entity, row in counts.items()}
    # Overall precision is over the evaluated types (presidio-research's convention); predictions of
    # other types (Presidio's DATE_TIME, NRP...) are counted beside it.
    table["overall"] = _prf(sum(counts.values(), Counter()))
    table["overall"]["predictions_of_other_types"] = other_predictions["predicted"]
    table["overall"]["keep_entries"] = kept_total
    table["overall"]["destroyed"] = destroyed
    table["overall"]["destroyed_share"] = destroyed / kept_total if kept_total else None
    return table


def _prf(row: Counter) -> dict[str, Any]:
    row = {key: row[key] for key in ("gold", "found", "predicted", "correct", "left")}
    precision = row["correct"] / row["predicted"] if row["predicted"] else None
    recall = row["found"] / row["gold"] if row["gold"] else None
    f2 = (5 * precision * recall / (4 * precision + recall)
          if precision is not None and recall is not None and (precision or recall) else None)
    left = row["left"] / row["gold"] if row["gold"] else None
    return {**row, "precision": precision, "recall": recall, "f2": f2, "left_share": left}


def _by_recognizer(examples: list[Example], detected: list[list[Span]]) -> dict[str, dict[str, int]]:
    """Per recognizer: gold spans it found (of each type), and those no other recognizer found."""
    found: dict[str, Counter] = defaultdict(Counter)
    alone: dict[str, Counter] = defaultdict(Counter)
    for example, spans in zip(examples, detected, strict=True):
        for gold in example.gold:
            sources = {s.source for s in spans if s.start < gold.end and gold.start < s.end}
            for source in sources:
                found[source][gold.entity_type] += 1
                if len(sources) == 1:
                    alone[source][gold.entity_type] += 1
    return {source: {"found": sum(found[source].values()), "only_it_found": sum(alone[source].values()),
                     **dict(found[source])} for source in sorted(found)}


def targets_missed(result: dict[str, Any]) -> list[str]:
    """The PII issue's targets that the evaluation misses (empty: all met)."""
    ours = result["ours"]
    misses = [f"{entity}: {ours[entity]['left_share']:.1%} of values left > {limit:.1%}"
              for entity, limit in MAX_LEFT.items()
              if entity in ours and ours[entity]["gold"] and ours[entity]["left_share"] > limit]
    share = ours["overall"]["destroyed_share"]
    if share is not None and share > MAX_DESTROYED:
        misses.append(f"needed words destroyed {share:.1%} > {MAX_DESTROYED:.0%}")
    return misses
