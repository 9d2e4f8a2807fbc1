"""The business policy sheet (``configs/business.yaml``): what a correct answer may say.

The gate compares a student with its teacher, but teachers are sometimes wrong (an old price, a
service area that changed). The sheet is the ground truth both are checked against: a claim that
contradicts it is ``off_policy`` even when the teacher made it too.

Each checkable fact has a *role* (what it prices or measures), a kind, a value and the cue words
that tie a number in an answer to that role ("$60 per adult": the cue "adult" makes $60 the
adult price). Claims are yes/no facts ("gratuity is included": false) found by a pattern whose
polarity comes from negation in the same clause.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator

from hibachi_lab.config import StrictConfig

FactKind = Literal["money", "percent", "duration", "distance", "time", "age", "count"]


class PolicyFact(StrictConfig):
    """One checkable number of the business: a price, a notice period, a radius, an opening hour."""

    kind: FactKind
    value: float = Field(description="in the kind's unit: dollars, percent, hours, miles, minutes after midnight, "
                                      "years, or a count")
    per: str | None = Field(None, description="what a price is per (person, child, event, mile); a student "
                                              "price per something else is off policy")
    cues: list[str] = Field(min_length=1, description="regular expressions; the nearest one in a clause names the role")
    up_to: float | None = Field(None, description="a window: any value from `value` to `up_to` keeps to the sheet "
                                                  "(\"parties can start any time from 11am to 9pm\"; a usual 5pm "
                                                  "start is inside it)")
    counted_back: bool = Field(False, description="a notice period, counted back from the event: only a duration "
                                                   "followed by 'before', 'ahead', 'prior', 'in advance', 'out', "
                                                   "'away' or 'notice' takes the role (\"we'll call within 24 hours about a "
                                                   "refund\" is no refund notice)")
    note: str = ""

    @field_validator("cues")
    @classmethod
    def _compiles(cls, cues: list[str]) -> list[str]:
        for cue in cues:
            try:
                re.compile(cue)
            except re.error as exc:
                raise ValueError(f"cue {cue!r} is not a regular expression: {exc}") from None
        return cues

    def allows(self, value: float) -> bool:
        """Whether a value of this role's kind keeps to the sheet: the value itself, or inside the window."""
        if self.up_to is None:
            return abs(value - self.value) <= 1e-6 * max(1.0, abs(self.value))
        return self.value - 1e-6 <= value <= self.up_to + 1e-6


class PolicyClaim(StrictConfig):
    """A yes/no fact: ``pattern`` found in a clause claims that the fact holds unless the clause negates it."""

    pattern: str
    holds: bool


class BusinessPolicy(StrictConfig):
    business: str
    facts: dict[str, PolicyFact] = Field(default_factory=dict)
    # Who brings what: an answer that moves an item to the other side is wrong.
    we_bring: list[str] = Field(default_factory=list)
    customer_provides: list[str] = Field(default_factory=list)
    claims: dict[str, PolicyClaim] = Field(default_factory=dict)
    competitors: list[str] = Field(default_factory=list, description="names an answer must never recommend")
    rude_phrases: list[str] = Field(default_factory=list, description="regular expressions of dismissive or rude tone")
    non_answer_phrases: list[str] = Field(default_factory=list,
                                          description="regular expressions of generic replies that answer nothing")

    @cached_property
    def provision(self) -> dict[str, str]:
        """Item → who provides it ("us" or "customer")."""
        return {item.lower(): "us" for item in self.we_bring} | {item.lower(): "customer"
                                                                  for item in self.customer_provides}


def load_policy(path: str | os.PathLike | None = None) -> BusinessPolicy:
    from hibachi_lab import CONFIGS

    return BusinessPolicy.from_yaml(path or CONFIGS / "business.yaml")
