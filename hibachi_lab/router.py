"""The production router (SmartAIRouter) as a configurable policy.

``configs/router/seed.yaml`` reproduces production exactly; variants change keyword sets,
matching, weights, thresholds, overrides or the tier -> provider map.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from hibachi_lab.config import load_yaml_config

Tier = Literal["simple", "medium", "complex"]


def _python_whitespace_class() -> str:
    """An RE2 class of exactly the characters ``str.split()`` splits on, for this Python's Unicode."""
    codes = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    ranges, start = [], codes[0]
    for previous, code in zip(codes, codes[1:] + [None]):
        if code != previous + 1:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{previous:x}}}" if previous != start else ""))
            start = code
    return "".join(ranges)


# A word is a maximal run of non-whitespace, so counting runs equals len(query.split()).
_WORD = f"[^{_python_whitespace_class()}]+"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Keywords(_Strict):
    simple: list[str]
    complex: list[str]
    tool: list[str]


class Weights(_Strict):
    length: float = 0.15
    complex: float = 0.30
    tool: float = 0.20
    sentiment: float = 0.20
    history: float = 0.15


class Scales(_Strict):
    length_words: float = Field(50, gt=0)
    complex_hits: float = Field(5, gt=0)
    tool_hits: float = Field(3, gt=0)
    history_depth: float = Field(10, gt=0)


class Thresholds(_Strict):
    medium: float = 0.3  # score below this: simple
    complex: float = 0.6  # score below this: medium; otherwise complex


class Overrides(_Strict):
    tool_hits_to_medium: bool = True
    # null switches an escalation off
    escalate_complex_hits: int | None = 2
    escalate_sentiment_below: float | None = 0.3


class Providers(_Strict):
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


class Policy(_Strict):
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
    def from_yaml(cls, path: str | os.PathLike) -> Policy:
        return load_yaml_config(path, cls)

    def _boundary_pattern(self, keyword: str) -> str:
        # \b on both sides when the keyword starts/ends with a word character, as a person means it
        return rf"\b{re.escape(keyword)}\b"

    def count_hits(self, query_lower: str, keywords: list[str]) -> int:
        if self.match == "substring":
            return sum(1 for keyword in keywords if keyword in query_lower)
        return sum(1 for keyword in keywords if re.search(self._boundary_pattern(keyword), query_lower, re.ASCII))

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

        arrow = arrow_table(table)
        query = arrow["query"].combine_chunks()
        lowered = _lower_like_python(query)
        simple_hits = self._hits_column(lowered, self.keywords.simple)
        complex_hits = self._hits_column(lowered, self.keywords.complex)
        tool_hits = self._hits_column(lowered, self.keywords.tool)
        word_count = pc.count_substring_regex(query, pattern=_WORD).to_numpy(zero_copy_only=False)
        history_depth = pc.fill_null(pc.list_value_length(arrow["history"]), 0).to_numpy(zero_copy_only=False)
        sentiment = pc.fill_null(arrow["customer_sentiment"], self.default_sentiment).to_numpy(zero_copy_only=False)

        weights, scales = self.weights, self.scales
        # Same operations in the same order as classify(): the scores are equal bit for bit.
        score = (
            np.minimum(word_count / scales.length_words, 1) * weights.length
            + (complex_hits / scales.complex_hits) * weights.complex
            + (tool_hits / scales.tool_hits) * weights.tool
            + (1 - sentiment) * weights.sentiment
            + np.minimum(history_depth / scales.history_depth, 1) * weights.history
        )
        tier = np.where(score < self.thresholds.medium, "simple", np.where(score < self.thresholds.complex, "medium", "complex"))
        provider = np.where(
            tier == "simple", self.providers.simple, np.where(tier == "medium", self.providers.medium, self.providers.complex)
        ).astype(object)
        overrides = self.overrides
        if overrides.tool_hits_to_medium:
            to_tool = tool_hits > 0
            tier = np.where(to_tool, "medium", tier)
            provider = np.where(to_tool, self.providers.tool, provider)
        escalate = np.zeros(len(score), dtype=bool)
        if overrides.escalate_complex_hits is not None:
            escalate |= complex_hits >= overrides.escalate_complex_hits
        if overrides.escalate_sentiment_below is not None:
            escalate |= sentiment < overrides.escalate_sentiment_below
        tier = np.where(escalate, "complex", tier)
        provider = np.where(escalate, self.providers.complex, provider)
        return pa.table(
            {
                "tier": pa.array(tier.astype(str)),
                "score": pa.array(score, pa.float64()),
                "provider": pa.array(provider.astype(str)),
                "simple_hits": pa.array(simple_hits, pa.int64()),
                "complex_hits": pa.array(complex_hits, pa.int64()),
                "tool_hits": pa.array(tool_hits, pa.int64()),
            }
        )

    def _hits_column(self, lowered: pa.Array, keywords: list[str]) -> np.ndarray:
        hits = np.zeros(len(lowered), dtype=np.int64)
        for keyword in keywords:
            if self.match == "substring":
                found = pc.match_substring(lowered, keyword)
            else:
                found = pc.match_substring_regex(lowered, self._boundary_pattern(keyword))
            hits += found.to_numpy(zero_copy_only=False).astype(np.int64)
        return hits


def _lower_like_python(strings: pa.Array) -> pa.Array:
    """``str.lower()`` for a whole column: Arrow for ASCII rows, Python for the rare others
    (Python applies Unicode's full case mappings, e.g. "İ" -> "i̇", which Arrow does not)."""
    lowered = pc.ascii_lower(strings)
    non_ascii = pc.invert(pc.string_is_ascii(strings))
    if not pc.any(non_ascii).as_py():
        return lowered
    exceptions = pc.filter(strings, non_ascii).to_pylist()
    return pc.replace_with_mask(lowered, non_ascii, pa.array([s.lower() for s in exceptions], pa.string()))
