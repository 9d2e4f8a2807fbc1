"""Checkable facts of an answer, scored beside cosine: prices, numbers, times, dates, yes/no, service claims.

Embedding cosine barely moves when "$60" becomes "$45" or "we bring propane" becomes "we don't"
(see ``hibachi-lab similarity-probe``). For a caterer those are the costliest errors, so the gate
also asks: does the student state the teacher's facts?
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONEY = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)|\b(\d[\d,]*(?:\.\d{1,2})?)\s?(?:dollars|usd)\b", re.IGNORECASE)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?(a\.?m\.?|p\.?m\.?)(?![a-z])", re.IGNORECASE)
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
_DATE = re.compile(r"\b(" + "|".join(m[:3] + m[3:].join("()") + "?" for m in _MONTHS) + r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b",
                   re.IGNORECASE)
_WEEKDAY = re.compile(r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w$.:])(\d+(?:\.\d+)?)(?![\w:]|\.\d)")
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100}
_NEGATION = re.compile(r"\b(?:not|no|don't|dont|doesn't|doesnt|can't|cant|cannot|won't|wont|never|isn't|aren't|"
                       r"non-?refundable|unable|unfortunately|without)\b", re.IGNORECASE)
# What a customer acts on: whether we bring, allow, refund, travel, cook indoors, cater a diet.
SERVICE_TERMS = ("grill", "propane", "chef", "tables", "chairs", "plates", "utensils", "refund", "refundable",
                 "deposit", "travel", "alcohol", "drinks", "indoors", "indoor", "rain", "gluten", "vegetarian",
                 "vegan", "allerg", "shellfish", "soy", "sesame", "tip", "gratuity", "clean", "cancel", "change",
                 "confirm", "booked", "available")
_YES = re.compile(r"^\W*(yes|yep|yeah|absolutely|of course|sure)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|nope|unfortunately|sorry, (?:we|i) (?:can't|cannot|don't))\b", re.IGNORECASE)


@dataclass(frozen=True)
class Facts:
    money: frozenset[str]
    times: frozenset[str]
    dates: frozenset[str]
    numbers: frozenset[str]
    polarity: str | None
    claims: frozenset[tuple[str, bool]]  # (service term, negated)

    def items(self) -> set[tuple[str, object]]:
        """Every fact as (kind, value); claims count once per term."""
        found: set[tuple[str, object]] = set()
        for kind in ("money", "times", "dates", "numbers"):
            found |= {(kind, value) for value in getattr(self, kind)}
        if self.polarity:
            found.add(("polarity", self.polarity))
        found |= {("claim", claim) for claim in self.claims}
        return found


def extract(text: str) -> Facts:
    text = text or ""
    money = {_amount(a or b) for a, b in _MONEY.findall(text)}
    times = {_time(hour, minute, half) for hour, minute, half in _TIME.findall(text)}
    dates = {f"{month[:3].lower()} {int(day)}" for month, *_, day in _DATE.findall(text)}
    dates |= {day.lower() for day in _WEEKDAY.findall(text)}
    stripped = _TIME.sub(" ", _MONEY.sub(" ", _DATE.sub(" ", text)))
    numbers = {_amount(value) for value in _NUMBER.findall(stripped)}
    numbers |= {str(_WORD_NUMBERS[word.lower()]) for word in re.findall(r"\b[a-z]+\b", stripped, re.IGNORECASE)
                if word.lower() in _WORD_NUMBERS and word.lower() != "one"}
    polarity = "yes" if _YES.search(text) else "no" if _NO.search(text) else None
    claims = set()
    for sentence in re.split(r"(?<=[.!?;])\s+|\n", text):
        negated = bool(_NEGATION.search(sentence))
        lower = sentence.lower()
        claims |= {(term, negated) for term in SERVICE_TERMS if term in lower}
    return Facts(frozenset(money), frozenset(times), frozenset(dates), frozenset(numbers), polarity,
                 frozenset(claims))


def _amount(value: str) -> str:
    number = float(value.replace(",", ""))
    return f"{number:g}"


def _time(hour: str, minute: str, half: str) -> str:
    return f"{int(hour)}:{minute or '00'}{'pm' if half.lower().startswith('p') else 'am'}"


def agreement(teacher: str, student: str) -> float | None:
    """Share of the teacher's facts the student states (None when the teacher states none)."""
    expected = extract(teacher).items()
    if not expected:
        return None
    return len(expected & extract(student).items()) / len(expected)
