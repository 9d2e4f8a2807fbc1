"""The production router (SmartAIRouter) as a configurable policy.

``configs/router/seed.yaml`` reproduces production exactly; variants change keyword sets,
matching, weights, thresholds, overrides or the tier -> provider map.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import datasets
import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from hibachi_lab.config import StrictConfig, load_yaml_config
from hibachi_lab.errors import BadInput

log = logging.getLogger(__name__)

Tier = Literal["simple", "medium", "complex"]


Keyword = Annotated[str, Field(min_length=1)]


class Keywords(StrictConfig):
    simple: list[Keyword]
    complex: list[Keyword]
    tool: list[Keyword]


class Weights(StrictConfig):
    length: float = 0.15
    complex: float = 0.30
    tool: float = 0.20
    sentiment: float = 0.20
    history: float = 0.15


class Scales(StrictConfig):
    length_words: float = Field(50, gt=0)
    complex_hits: float = Field(5, gt=0)
    tool_hits: float = Field(3, gt=0)
    history_depth: float = Field(10, gt=0)


class Thresholds(StrictConfig):
    medium: float = 0.3  # score below this: simple
    complex: float = 0.6  # score below this: medium; otherwise complex


class Overrides(StrictConfig):
    tool_hits_to_medium: bool = True
    # null switches an escalation off
    escalate_complex_hits: int | None = 2
    escalate_sentiment_below: float | None = 0.3


class Providers(StrictConfig):
    simple: str = "mistral_small"
    medium: str = "mixtral_8x22b"
    complex: str = "ensemble"
    tool: str = "mistral_large"


@dataclass(frozen=True)
class Decision:
    tier: Tier
    score: float
    provider: str
    simple_hits: int
    complex_hits: int
    tool_hits: int


class Policy(StrictConfig):
    name: str
    description: str = ""
    match: Literal["substring", "word_boundary"] = "substring"
    keywords: Keywords
    weights: Weights = Weights()
    scales: Scales = Scales()
    default_sentiment: float = Field(0.5, ge=0, le=1)
    thresholds: Thresholds = Thresholds()
    overrides: Overrides = Overrides()
    providers: Providers = Providers()

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, env_file: str | os.PathLike | None = None) -> Policy:
        """Load a policy; ``env_file`` (production's ``.env``) may override its complex threshold."""
        policy = load_yaml_config(path, cls)
        return policy.with_env_file(env_file) if env_file is not None else policy

    def with_env_file(self, path: str | os.PathLike) -> Policy:
        """Apply ``AI_ROUTER_COMPLEX_THRESHOLD`` from a production env file (``KEY=VALUE`` lines).

        ``AI_ROUTER_ENSEMBLE_THRESHOLD`` is read and checked but changes nothing: the production
        router code sends every complex-tier turn to the ensemble and never consults it.
        """
        settings = _read_env_file(path)
        policy = self
        if "AI_ROUTER_COMPLEX_THRESHOLD" in settings:
            value = _env_float(path, settings, "AI_ROUTER_COMPLEX_THRESHOLD")
            policy = policy.model_copy(update={"thresholds": policy.thresholds.model_copy(update={"complex": value})})
        if "AI_ROUTER_ENSEMBLE_THRESHOLD" in settings:
            _env_float(path, settings, "AI_ROUTER_ENSEMBLE_THRESHOLD")
            log.warning("%s: AI_ROUTER_ENSEMBLE_THRESHOLD is not used by the production router code; ignored", path)
        return policy

    def _boundary_pattern(self, keyword: str) -> str:
        # Python's \b on both sides (used with re.ASCII): the keyword must stand as its own word
        return rf"\b{re.escape(keyword)}\b"

    def count_hits(self, query_lower: str, keywords: list[str]) -> int:
        return len(self.matching(query_lower, keywords))

    def matching(self, query_lower: str, keywords: list[str]) -> list[str]:
        """The keywords that count as hits in a lower-cased query (a keyword listed twice, twice)."""
        if self.match == "substring":
            return [keyword for keyword in keywords if keyword in query_lower]
        return [keyword for keyword in keywords if re.search(self._boundary_pattern(keyword), query_lower, re.ASCII)]

    def classify(self, query: str, history: list | None = None, sentiment: float | None = None) -> Decision:
        """Route one message the way production does (the order of operations matters for exactness)."""
        query_lower = query.lower()
        simple_hits = self.count_hits(query_lower, self.keywords.simple)
        complex_hits = self.count_hits(query_lower, self.keywords.complex)
        tool_hits = self.count_hits(query_lower, self.keywords.tool)
        word_count = len(query.split())
        history_depth = len(history) if history else 0
        sentiment = self.default_sentiment if sentiment is None else sentiment

        weights, scales = self.weights, self.scales
        score = (
            min(word_count / scales.length_words, 1) * weights.length
            + (complex_hits / scales.complex_hits) * weights.complex
            + (tool_hits / scales.tool_hits) * weights.tool
            + (1 - sentiment) * weights.sentiment
            + min(history_depth / scales.history_depth, 1) * weights.history
        )
        if score < self.thresholds.medium:
            tier, provider = "simple", self.providers.simple
        elif score < self.thresholds.complex:
            tier, provider = "medium", self.providers.medium
        else:
            tier, provider = "complex", self.providers.complex
        overrides = self.overrides
        if overrides.tool_hits_to_medium and tool_hits > 0:
            tier, provider = "medium", self.providers.tool
        escalate_hits = overrides.escalate_complex_hits is not None and complex_hits >= overrides.escalate_complex_hits
        escalate_mood = overrides.escalate_sentiment_below is not None and sentiment < overrides.escalate_sentiment_below
        if escalate_hits or escalate_mood:
            tier, provider = "complex", self.providers.complex
        return Decision(tier, score, provider, simple_hits, complex_hits, tool_hits)

    def classify_table(self, table: datasets.Dataset | pa.Table) -> pa.Table:
        """Route every turn of a log at once; equal to :meth:`classify` on every row.

        Takes a table with ``query``, ``history`` and ``customer_sentiment`` columns and returns
        ``tier``, ``score``, ``provider`` and the three hit counts, one row per input row.
        """
        from hibachi_lab.traffic import arrow_table

        arrow = arrow_table(table).select(["query", "history", "customer_sentiment"])
        matcher = _matcher(self.match, tuple(tuple(getattr(self.keywords, name)) for name in _KEYWORD_SETS))
        # Passes of up to _ROWS_PER_PASS rows, whatever the chunks the log was read in (often 5,000 rows).
        parts = [self._classify_rows(matcher, arrow.slice(start, _ROWS_PER_PASS))
                 for start in range(0, arrow.num_rows, _ROWS_PER_PASS)]
        return pa.concat_tables(parts) if parts else self._classify_rows(matcher, arrow)

    def _classify_rows(self, matcher: _KeywordMatcher, rows: pa.Table) -> pa.Table:
        query = rows["query"]
        if query.num_chunks != 1:
            # 64-bit offsets where one pass holds more than 2 GB of text.
            big = sum(chunk.buffers()[2].size for chunk in query.chunks if chunk.buffers()[2]) >= 2**31
            query = (query.cast(pa.large_string()) if big else query).combine_chunks()
        else:
            query = query.chunk(0)
        simple_hits, complex_hits, tool_hits, word_count = matcher.scan(query)
        history_depth = pc.fill_null(pc.list_value_length(rows["history"]), 0).to_numpy(zero_copy_only=False)
        sentiment = pc.fill_null(rows["customer_sentiment"], self.default_sentiment).to_numpy(zero_copy_only=False)

        weights, scales = self.weights, self.scales
        # Same operations in the same order as classify(): the scores are equal bit for bit.
        score = (
            np.minimum(word_count / scales.length_words, 1) * weights.length
            + (complex_hits / scales.complex_hits) * weights.complex
            + (tool_hits / scales.tool_hits) * weights.tool
            + (1 - sentiment) * weights.sentiment
            + np.minimum(history_depth / scales.history_depth, 1) * weights.history
        )
        # Tiers as codes 0/1/2 (simple/medium/complex); "tool" is the medium tier with the tool provider.
        tier = np.where(score < self.thresholds.medium, 0, np.where(score < self.thresholds.complex, 1, 2))
        tool_route = np.zeros(len(score), dtype=bool)
        if self.overrides.tool_hits_to_medium:
            tool_route = tool_hits > 0
            tier = np.where(tool_route, 1, tier)
        escalate = np.zeros(len(score), dtype=bool)
        if self.overrides.escalate_complex_hits is not None:
            escalate |= complex_hits >= self.overrides.escalate_complex_hits
        if self.overrides.escalate_sentiment_below is not None:
            escalate |= sentiment < self.overrides.escalate_sentiment_below
        tier = np.where(escalate, 2, tier)
        tool_route &= ~escalate
        providers = [self.providers.simple, self.providers.medium, self.providers.complex, self.providers.tool]
        provider_code = np.where(tool_route, 3, tier)
        return pa.table(
            {
                "tier": pa.DictionaryArray.from_arrays(pa.array(tier, pa.int8()), pa.array(TIERS)).cast(pa.string()),
                "score": pa.array(score, pa.float64()),
                "provider": pa.DictionaryArray.from_arrays(pa.array(provider_code, pa.int8()), pa.array(providers))
                .cast(pa.string()),
                "simple_hits": pa.array(simple_hits, pa.int64()),
                "complex_hits": pa.array(complex_hits, pa.int64()),
                "tool_hits": pa.array(tool_hits, pa.int64()),
            }
        )


def _read_env_file(path: str | os.PathLike) -> dict[str, str]:
    settings = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"{path}: env file not found") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        settings[key.strip()] = value.strip().strip("'\"")
    return settings


def _env_float(path: str | os.PathLike, settings: dict[str, str], key: str) -> float:
    try:
        value = float(settings[key])
    except ValueError:
        raise BadInput(f"{path}: {key}: expected a number between 0 and 1, got {settings[key]!r}") from None
    if not 0 <= value <= 1:
        raise BadInput(f"{path}: {key}: expected a number between 0 and 1, got {value}")
    return value


TIERS = ["simple", "medium", "complex"]
_KEYWORD_SETS = ("simple", "complex", "tool")


@functools.lru_cache(maxsize=32)
def _matcher(match: str, keyword_sets: tuple[tuple[str, ...], ...]) -> _KeywordMatcher:
    """One automaton per keyword configuration: a sweep replays the same keywords many times."""
    return _KeywordMatcher(match, keyword_sets)


class _KeywordMatcher:
    """All keyword sets matched in one compiled Aho-Corasick pass over a column's UTF-8 bytes.

    Matching bytes is matching characters (UTF-8 is self-synchronising), and each row restarts the
    automaton, so a keyword never spans two rows. A keyword counts once per row, as in classify().
    """

    def __init__(self, match: str, keyword_sets: tuple[tuple[str, ...], ...]):
        self.word_boundary = match == "word_boundary"
        keywords: dict[str, np.ndarray] = {}
        for set_index, keyword_set in enumerate(keyword_sets):
            for keyword in keyword_set:
                # A keyword listed twice in a set counts twice, as in classify().
                keywords.setdefault(keyword, np.zeros(len(_KEYWORD_SETS), dtype=np.int64))[set_index] += 1
        self.counts = np.array(list(keywords.values()), dtype=np.int64).reshape(-1, len(_KEYWORD_SETS))
        encoded = [keyword.encode("utf-8") for keyword in keywords]
        self.lengths = np.array([len(b) for b in encoded], dtype=np.int64)
        self.first_is_word = np.array([_is_ascii_word(b[0]) for b in encoded], dtype=np.bool_)
        self.last_is_word = np.array([_is_ascii_word(b[-1]) for b in encoded], dtype=np.bool_)
        transitions, self.output_starts, self.output_ids = _automaton(encoded)
        self.byte_code, self.table, self.classes = _compact(transitions, self.output_starts)

    def scan(self, query: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Simple, complex and tool hits of the lower-cased query, and its word count, per row.

        ASCII rows are scanned as they are (upper-case letters share their lower-case letter's class);
        the rare others are lower-cased by Python, which applies Unicode's full case mappings (e.g. "İ"
        -> "i̇"), and scanned again.
        """
        totals, words = self._scan_bytes(*_offsets_and_bytes(query))
        non_ascii = np.flatnonzero(~pc.string_is_ascii(query).to_numpy(zero_copy_only=False))
        if len(non_ascii):
            texts = pc.take(query, pa.array(non_ascii)).to_pylist()
            totals[non_ascii], _ = self._scan_bytes(*_offsets_and_bytes(pa.array([t.lower() for t in texts],
                                                                                 pa.large_string())))
            words[non_ascii] = [len(text.split()) for text in texts]  # whitespace beyond ASCII, too
        return totals[:, 0], totals[:, 1], totals[:, 2], words

    def _scan_bytes(self, row_offsets: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parallel = len(raw) >= _PARALLEL_FROM_BYTES and numba.get_num_threads() > 1
        return (_scan_parallel if parallel else _scan_serial)(
            raw, row_offsets.astype(np.int64, copy=False), self.byte_code, self.table, self.classes,
            self.output_starts, self.output_ids, self.lengths, self.first_is_word, self.last_is_word,
            self.word_boundary, _ASCII_WORD, self.counts)


def _automaton(keywords: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aho-Corasick as a byte DFA: a transition table and, per state, the keywords that end there."""
    goto: list[dict[int, int]] = [{}]
    ends: list[list[int]] = [[]]
    for index, keyword in enumerate(keywords):
        state = 0
        for byte in keyword:
            if byte not in goto[state]:
                goto.append({})
                ends.append([])
                goto[state][byte] = len(goto) - 1
            state = goto[state][byte]
        ends[state].append(index)
    transitions = np.zeros((len(goto), 256), dtype=np.int32)
    fail = [0] * len(goto)
    queue = []
    for byte, child in goto[0].items():
        transitions[0, byte] = child
        queue.append(child)
    while queue:  # breadth first: a state's fail link is settled before its children need it
        state = queue.pop(0)
        ends[state] = ends[state] + ends[fail[state]]
        for byte in range(256):
            child = goto[state].get(byte)
            if child is None:
                transitions[state, byte] = transitions[fail[state], byte]
            else:
                fail[child] = transitions[fail[state], byte]
                transitions[state, byte] = child
                queue.append(child)
    starts = np.zeros(len(goto) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(found) for found in ends])
    ids = np.array([index for found in ends for index in found], dtype=np.int64)
    return transitions, starts, ids


def _compact(transitions: np.ndarray, output_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The DFA with bytes that behave alike merged into classes, so its table stays in the fastest cache.

    Bytes in no keyword all go back to the root from every state, so they share a class (two: ASCII
    whitespace and the rest) and the table is ~10x smaller than by byte. An upper-case ASCII letter
    behaves as its lower-case letter, so ASCII text is scanned without lower-casing it first.

    Returns each byte's code (its class times two, plus one for ASCII whitespace), the table flattened
    by state (an entry is the next state's offset, the state times the number of classes, bitwise
    inverted when a keyword ends there) and the number of classes.
    """
    transitions = transitions.copy()
    upper = np.arange(ord("A"), ord("Z") + 1)
    transitions[:, upper] = transitions[:, upper + 32]
    behaviour = np.vstack([transitions, _ASCII_SPACE[np.newaxis, :].astype(transitions.dtype)])
    columns, byte_class = np.unique(behaviour.T, axis=0, return_inverse=True)
    classes = len(columns)
    ends_here = np.diff(output_starts) > 0
    next_state = columns[:, :-1].T  # [state, class]
    entries = next_state.astype(np.int64) * classes
    table = np.where(ends_here[next_state], ~entries, entries).astype(np.int32).ravel()
    byte_code = byte_class.ravel() * 2 + _ASCII_SPACE
    return byte_code.astype(np.int32), table, classes


# A pass over a bounded number of rows keeps memory flat on logs of millions of turns; a pass is one scan,
# since each scan over the cores has a start-up cost (large when other jobs hold the cores).
_ROWS_PER_PASS = 500_000
# Below this many bytes one core scans faster than several start: a parallel scan costs a wake-up per core.
_PARALLEL_FROM_BYTES = 4_000_000
_SCAN_CHUNKS = 64  # a parallel scan splits rows in this many chunks, spread over the cores


@numba.njit(cache=True, inline="always")
def _add_hits(state, position, row, row_start, row_end, raw, output_starts, output_ids, lengths, first_is_word,
              last_is_word, word_boundary, is_word, counts, totals, seen_in_row):  # pragma: no cover - compiled
    """The keywords that end at ``position`` (the automaton is in ``state``), each counted once per row."""
    for k in range(output_starts[state], output_starts[state + 1]):
        keyword = output_ids[k]
        if word_boundary:
            # Python's \b under re.ASCII: a word/non-word change at both ends (row edges are non-word).
            start = position + 1 - lengths[keyword]
            before = is_word[raw[start - 1]] if start > row_start else False
            after = is_word[raw[position + 1]] if position + 1 < row_end else False
            if before == first_is_word[keyword] or after == last_is_word[keyword]:
                continue
        if seen_in_row[keyword] != row:
            seen_in_row[keyword] = row
            for column in range(counts.shape[1]):
                totals[row, column] += counts[keyword, column]


@numba.njit(cache=True)
def _scan_lane(row, position, base, after_space, row_words, last_row, raw, row_offsets, byte_code, table, classes,
               output_starts, output_ids, lengths, first_is_word, last_is_word, word_boundary, is_word, counts,
               totals, words, seen_in_row):  # pragma: no cover - compiled; tested through classify_table
    """Finish ``row`` from ``position`` (the automaton at ``base``, ``row_words`` counted so far), then the rows up to
    ``last_row`` (excluded), one byte after the other.

    A byte's code is its class times two, plus one for whitespace: words are counted as ``str.split()``
    does for ASCII text, as runs of non-whitespace.
    """
    while row < last_row:
        row_start, row_end = row_offsets[row], row_offsets[row + 1]
        for at in range(position, row_end):
            code = byte_code[raw[np.uint64(at)]]
            space = code & 1
            row_words += after_space & (1 - space)
            after_space = space
            entry = table[np.uint64(base + (code >> 1))]
            if entry >= 0:
                base = entry
            else:
                base = ~entry
                _add_hits(base // classes, at, row, row_start, row_end, raw, output_starts, output_ids, lengths,
                          first_is_word, last_is_word, word_boundary, is_word, counts, totals, seen_in_row)
        words[row] = row_words
        row += 1
        if row < last_row:
            position, base, after_space, row_words = row_offsets[row], 0, 1, 0


@numba.njit(cache=True)
def _scan_rows(first_row, last_row, raw, row_offsets, byte_code, table, classes, output_starts, output_ids, lengths,
               first_is_word, last_is_word, word_boundary, is_word, counts, totals,
               words):  # pragma: no cover - compiled; tested through classify_table
    """Rows ``first_row`` to ``last_row`` (excluded): the hits of each keyword set (each keyword found adds its
    counts once) and the words.

    Two lanes, one per half of the rows, step through their bytes together: each automaton step waits on the
    table lookup before it, and two independent lanes let the processor overlap those waits. Indices are
    unsigned where it matters: Numba checks signed ones for negative (from the end) indexing.
    """
    if first_row >= last_row:
        return
    middle = (first_row + last_row) // 2
    seen_a = np.full(len(lengths), -1, dtype=np.int64)  # the last row each keyword was counted in
    seen_b = np.full(len(lengths), -1, dtype=np.int64)
    row_a, row_b = first_row, middle
    at_a, at_b = row_offsets[row_a], row_offsets[row_b]
    base_a = base_b = 0
    after_a = after_b = 1
    words_a = words_b = 0
    while row_a < middle and row_b < last_row:
        start_a, end_a = row_offsets[row_a], row_offsets[row_a + 1]
        start_b, end_b = row_offsets[row_b], row_offsets[row_b + 1]
        steps = min(end_a - at_a, end_b - at_b)
        for step in range(steps):
            code_a = byte_code[raw[np.uint64(at_a + step)]]
            code_b = byte_code[raw[np.uint64(at_b + step)]]
            space_a = code_a & 1
            space_b = code_b & 1
            words_a += after_a & (1 - space_a)
            words_b += after_b & (1 - space_b)
            after_a = space_a
            after_b = space_b
            entry_a = table[np.uint64(base_a + (code_a >> 1))]
            entry_b = table[np.uint64(base_b + (code_b >> 1))]
            if entry_a >= 0:
                base_a = entry_a
            else:
                base_a = ~entry_a
                _add_hits(base_a // classes, at_a + step, row_a, start_a, end_a, raw, output_starts, output_ids,
                          lengths, first_is_word, last_is_word, word_boundary, is_word, counts, totals, seen_a)
            if entry_b >= 0:
                base_b = entry_b
            else:
                base_b = ~entry_b
                _add_hits(base_b // classes, at_b + step, row_b, start_b, end_b, raw, output_starts, output_ids,
                          lengths, first_is_word, last_is_word, word_boundary, is_word, counts, totals, seen_b)
        at_a += steps
        at_b += steps
        if at_a == end_a:
            words[row_a] = words_a
            row_a += 1
            at_a, base_a, after_a, words_a = end_a, 0, 1, 0
        if at_b == end_b:
            words[row_b] = words_b
            row_b += 1
            at_b, base_b, after_b, words_b = end_b, 0, 1, 0
    # One lane is done; the other finishes alone, from where it stands.
    _scan_lane(row_a, at_a, base_a, after_a, words_a, middle, raw, row_offsets, byte_code, table, classes,
               output_starts, output_ids, lengths, first_is_word, last_is_word, word_boundary, is_word, counts, totals,
               words, seen_a)
    _scan_lane(row_b, at_b, base_b, after_b, words_b, last_row, raw, row_offsets, byte_code, table, classes,
               output_starts, output_ids, lengths, first_is_word, last_is_word, word_boundary, is_word, counts, totals,
               words, seen_b)


@numba.njit(cache=True)
def _scan_serial(raw, row_offsets, byte_code, table, classes, output_starts, output_ids, lengths, first_is_word,
                 last_is_word, word_boundary, is_word, counts):  # pragma: no cover - compiled
    """Per row, the hits of each keyword set and the word count, on one core."""
    rows = len(row_offsets) - 1
    totals = np.zeros((rows, counts.shape[1]), dtype=np.int64)
    words = np.zeros(rows, dtype=np.int64)
    _scan_rows(0, rows, raw, row_offsets, byte_code, table, classes, output_starts, output_ids, lengths,
               first_is_word, last_is_word, word_boundary, is_word, counts, totals, words)
    return totals, words


@numba.njit(cache=True, parallel=True)
def _scan_parallel(raw, row_offsets, byte_code, table, classes, output_starts, output_ids, lengths, first_is_word,
                   last_is_word, word_boundary, is_word, counts):  # pragma: no cover - compiled
    """The same as :func:`_scan_serial`, with the rows split in chunks over the cores."""
    rows = len(row_offsets) - 1
    totals = np.zeros((rows, counts.shape[1]), dtype=np.int64)
    words = np.zeros(rows, dtype=np.int64)
    step = (rows + _SCAN_CHUNKS - 1) // _SCAN_CHUNKS
    for chunk in numba.prange(_SCAN_CHUNKS):
        _scan_rows(chunk * step, min(rows, (chunk + 1) * step), raw, row_offsets, byte_code, table, classes,
                   output_starts, output_ids, lengths, first_is_word, last_is_word, word_boundary, is_word, counts,
                   totals, words)
    return totals, words


def _offsets_and_bytes(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's row offsets, rebased to start at 0, and a view (no copy) of its UTF-8 bytes."""
    rows = len(strings)
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=width)[strings.offset : strings.offset + rows + 1]
    data = strings.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], raw


_ASCII_WORD = np.zeros(256, dtype=bool)
for _byte in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _ASCII_WORD[_byte] = True


def _is_ascii_word(byte: int) -> bool:
    return bool(_ASCII_WORD[byte])


# Python's whitespace among ASCII bytes: str.split() splits on these (and on some non-ASCII ones).
_ASCII_SPACE = np.zeros(256, dtype=bool)
for _byte in b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ":
    _ASCII_SPACE[_byte] = True
