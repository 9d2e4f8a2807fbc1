"""The production router (SmartAIRouter) as a configurable policy.

``configs/router/seed.yaml`` reproduces production exactly; variants change keyword sets,
matching, weights, thresholds, overrides or the tier -> provider map.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hibachi_lab.config import load_yaml_config

Tier = Literal["simple", "medium", "complex"]


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

    def count_hits(self, query_lower: str, keywords: list[str]) -> int:
        if self.match == "substring":
            return sum(1 for keyword in keywords if keyword in query_lower)
        return sum(1 for keyword in keywords if re.search(rf"\b{re.escape(keyword)}\b", query_lower))

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
