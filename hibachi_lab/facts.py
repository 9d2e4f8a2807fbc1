"""Typed facts of an answer, each tied to what it is about: "$60 per adult" is the adult price.

Cosine barely moves when "$60" becomes "$65", "48 hours" becomes "48 minutes" or "we bring the
grill" becomes "you provide the grill", and comparing facts as sets of strings misses most of it
("5-7 days" still contains 7). So every number is read with its unit and normalised (sixty dollars
= $60.00, a week = 7 days = 168 hours, 6 pm = 18:00, Sept 12 = 9/12), and given a *role* from the
policy sheet's cue words in the same clause. Provision ("we bring X" / "you provide X"), yes/no
claims and polarity are read per clause, so a negation only reaches the words it governs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hibachi_lab.policy import BusinessPolicy

# --------------------------------------------------------------------------- numbers in words

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUE = {word: value for value, word in enumerate(_UNITS)} | {
    word: 20 + 10 * index for index, word in enumerate(_TENS)} | {"a": 1, "an": 1, "a couple of": 2, "a dozen": 12,
                                                                  "half an": 0.5, "half a": 0.5, "dozen": 12}
_SMALL = "|".join(sorted(_UNITS, key=len, reverse=True))
_TEN = "|".join(_TENS)
_WORDS = (rf"(?:(?:{_SMALL}|a|one)[ -]hundred(?:[ -](?:and[ -])?(?:(?:{_TEN})(?:[ -](?:{_SMALL}))?|{_SMALL}))?"
          rf"|(?:{_TEN})(?:[ -](?:{_SMALL}))?|{_SMALL}|a dozen|dozen)")
# Thousands separated by commas ("1,200"); a comma after a number ends it ("$5, lobster $10").
_DIGITS = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
NUMBER = rf"(?:(?:{_DIGITS})(?:\.\d+)?|{_WORDS})"


def number_value(text: str) -> float:
    """'1,200' → 1200, 'sixty' → 60, 'twenty-five' → 25, 'five hundred fifty' → 550, 'a' → 1."""
    text = text.lower().strip()
    if text[0].isdigit():
        return float(text.replace(",", ""))
    if text in _WORD_VALUE:
        return float(_WORD_VALUE[text])
    total, current = 0.0, 0.0
    for word in re.split(r"[ -]+", text):
        if word == "and":
            continue
        if word == "hundred":
            current = (current or 1) * 100
        elif word == "dozen":
            current = (current or 1) * 12
        else:
            current += _WORD_VALUE.get(word, 0)
    return total + current


# --------------------------------------------------------------------------- quantities

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sept?|oct|nov|dec)[a-z]*\.?"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY = r"\b(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?s?\b"
_HOUR_WORD = "|".join(_UNITS[1:13])
_DAYPART = r"(?:in the (?:morning|afternoon|evening)|at night|tonight)"

# (kind, pattern); earlier kinds claim their text first, so "$60 per adult" is money, not a count.
_PATTERNS: list[tuple[str, re.Pattern]] = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in [
    # How often, not how long ("seven days a week", "24 hours a day"): claimed so that neither number reads
    # as a duration, and not checked (the sheet has no frequencies).
    ("frequency", rf"\b(?:{NUMBER}|twice|once)\s+(?:(?:days?|hours?|times?)\s+)?(?:a|per|each|every)\s+(?:day|week|month|year)\b"),
    ("date", r"\b(?P<y>20\d\d)-(?P<m>\d\d)-(?P<d>\d\d)\b"),
    ("date", rf"\b(?P<mname>{_MONTH})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>20\d\d))?"),
    ("date", rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mname>{_MONTH})(?!\w)"),
    ("date", r"(?<![\d/$])(?P<m>1[0-2]|0?[1-9])/(?P<d>3[01]|[12]\d|0?[1-9])(?:/(?P<y>(?:20)?\d\d))?(?![\d/])"),
    ("weekday", _WEEKDAY),
    ("time", r"\b(?P<h>1[0-2]|0?\d)(?::(?P<min>[0-5]\d))?\s*(?P<half>[ap])\.?m\b\.?"),
    ("time", rf"\bhalf past (?:(?P<noon>noon|midday|midnight)|(?P<hw>{_HOUR_WORD}|1[0-2]|\d)(?:\s+(?P<part>{_DAYPART}))?)"),
    ("time", rf"\bquarter (?P<qdir>to|past|after) (?:(?P<noon>noon|midnight)|(?P<hw>{_HOUR_WORD}|1[0-2]|\d)(?:\s+(?P<part>{_DAYPART}))?)"),
    ("time", rf"\b(?P<hw>{_HOUR_WORD})(?:\s+o'?clock)?\s+(?P<part>{_DAYPART})"),
    ("time", r"\b(?P<noon>noon|midday|midnight)\b"),
    ("time", r"(?<![\d:$.])(?P<h>[01]?\d|2[0-3]):(?P<min>[0-5]\d)(?![\d:])(?:\s+(?P<part>" + _DAYPART + "))?"),
    ("time", rf"\b(?P<h>1[0-2]|[1-9])\s+(?P<part>{_DAYPART})"),
    ("money", rf"\$\s?(?P<n>(?:{_DIGITS})(?:\.\d\d)?)(?:\s?(?P<k>k)\b)?|\b(?P<w>{NUMBER})\s?(?:dollars?|bucks|usd)\b"),
    ("percent", rf"\b(?P<n>{NUMBER})\s?(?:%|percent\b|per cent\b)"),
    # "7+ days" and "7 or more days" are at least 7 days: the same notice as "7 days".
    ("duration", (rf"\b(?P<n>{NUMBER}|half an?|a couple of|an?)(?:\+|\s+or\s+more)?[\s-]+(?P<biz>business\s+)?"
                 r"(?P<unit>minute|min|hour|hr|day|week|month)s?\b")),
    ("duration", r"\b(?P<unit>fortnight|overnight)\b"),
    ("distance", rf"\b(?P<n>{NUMBER})[\s-]?(?P<unit>miles?|mi\b|km\b|kilometers?|kilometres?)"),
    ("age", rf"\b(?:under|below|younger than)\s+(?:the\s+)?(?:age\s+(?:of\s+)?)?(?P<n>{NUMBER})\b"),
    ("age", rf"\b(?:ages?\s+)?(?P<n>{NUMBER})\s?(?:\+|(?:years? old\s+)?(?:and|&|or)\s+(?:up|older|over|above)\b)"),
    # "12 and under" is "under 13": an age is stored as the first age that does not count ("under 12" → 12).
    ("age_through", rf"\b(?:ages?\s+)?(?P<n>{NUMBER})\s?(?:years? old\s+)?(?:and|&|or)\s+(?:under|younger|below)\b"),
    ("count", (rf"\b(?P<n>{NUMBER})\s+(?:of (?:our|my|the|your|their) )?(?:(?:more|extra|additional|total|hungry|adult|kid)\s+)?"
              r"(?P<noun>guests?|people|persons?|adults?|kids?|children|ppl|pax|heads?|chefs?|grills?)\b")),
    # "your party for 50", "a table for 12": the guests counted by what they make up. Times, money and
    # durations ("a party for 2 hours") are claimed by the patterns above first.
    ("count", (rf"\b(?:party|group|table|reservation|booking|event|gathering|dinner|lunch|brunch|meal|cookout|"
               rf"celebration|feast) (?:of|for) (?P<n>{NUMBER})\b(?!\s*(?:[ap]\.?m\b|:\d|o'clock))")),
]]
_DURATION_HOURS = {"minute": 1 / 60, "min": 1 / 60, "hour": 1, "hr": 1, "day": 24, "week": 168, "month": 720,
                   "fortnight": 336, "overnight": 12}
_COUNT_NOUN = {"guest": "guests", "people": "guests", "person": "guests", "ppl": "guests", "pax": "guests",
               "head": "guests", "adult": "adults", "kid": "kids", "children": "kids", "chef": "chefs", "grill": "grills"}
# What a price is per: right after it ("$60 a head", "$550 per-guest minimum"), or after up to two
# words with an unmistakable "per" ("$550 food minimum per party", "a $100 deposit for each guest").
_PER = re.compile(r"\s*(?:per|a|an|each|every|for each|/)[\s-]*(\w+)|(?:\s+[a-z]+){1,2}?\s+(?:per|for each|for every)[\s-]+(\w+)",
                  re.IGNORECASE)
_PER_UNIT = {"person": "person", "persons": "person", "guest": "person", "head": "person", "adult": "person",
             "people": "person", "plate": "person", "mile": "mile", "mi": "mile", "km": "km", "kilometer": "km",
             "kilometre": "km", "event": "event", "party": "event", "booking": "event", "hour": "hour", "day": "day",
             "kid": "child", "child": "child", "table": "table", "group": "event", "order": "event"}
_PART_PM = {"in the afternoon": True, "in the evening": True, "at night": True, "tonight": True, "in the morning": False}


@dataclass(frozen=True)
class Fact:
    """A typed value in an answer: kind, normalised value, role (what it is about) and where it was read."""

    kind: str
    value: float | str
    role: str
    text: str
    start: int = 0
    # A clock time written without am/pm ("arrive at 6:30") matches either half of the day.
    either_half: bool = False
    # What a price is per ("guest", "mile", "event"), when the answer says.
    per: str | None = None

    def same_value(self, other: Fact) -> bool:
        if self.kind != other.kind:
            return False
        if self.per and other.per and self.per != other.per:
            return False
        if self.kind == "time" and (self.either_half or other.either_half):
            return (float(self.value) - float(other.value)) % 720 == 0
        if self.kind == "duration" and isinstance(self.value, str) != isinstance(other.value, str):
            # "We'll call within one business day" and "within 24 hours" make the same promise to a customer;
            # more business days than one span a weekend: "7 business days" is not "7 days" (two
            # business-day spans still compare exactly, "5 business days" is not "7 business days").
            business = self.value if isinstance(self.value, str) else other.value
            return _hours(business) == 24 and abs(_hours(self.value) - _hours(other.value)) <= 1e-6
        if self.kind == "distance":
            # "roughly 48 km" is 30 miles: a converted distance is rounded
            return abs(float(self.value) - float(other.value)) <= 0.02 * max(1.0, abs(float(self.value)))
        if isinstance(self.value, float) and isinstance(other.value, float):
            return abs(self.value - other.value) <= 1e-6 * max(1.0, abs(self.value))
        return self.value == other.value

    def describe(self) -> str:
        return f"{self.role}={self.text!r}"


def _hours(duration: float | str) -> float:
    """A duration in hours; "2 business days" (as :func:`_value` writes it) counts 24 hours a day."""
    return float(duration.split()[0]) * 24 if isinstance(duration, str) else float(duration)


def _value(kind: str, match: re.Match) -> tuple[float | str, bool] | None:
    """Normalised value of a match and whether a time could be either half of the day."""
    groups = {key: value for key, value in match.groupdict().items() if value}
    if kind == "frequency":
        return match.group(0), False
    if kind == "date":
        month = int(groups["m"]) if "m" in groups else _month_number(groups["mname"])
        if month is None:
            return None
        return f"{month:02d}-{int(groups['d']):02d}", False
    if kind == "weekday":
        word = match.group(0).lower()
        return next(day for day in WEEKDAYS if day.startswith(word[:3])), False
    if kind == "time":
        return _time_value(groups)
    if kind == "money":
        amount = number_value(groups.get("n") or groups["w"])
        return amount * (1000 if groups.get("k") else 1), False
    if kind == "duration":
        unit = groups["unit"].lower()
        amount = 1.0 if unit in ("fortnight", "overnight") else number_value(groups["n"])
        hours = amount * _DURATION_HOURS[unit]
        return (f"{amount:g} business days" if groups.get("biz") else hours), False
    if kind == "distance":
        miles = number_value(groups["n"])
        return miles * (0.621371 if groups["unit"].lower().startswith("k") else 1), False
    if kind == "age_through":
        return number_value(groups["n"]) + 1, False
    return number_value(groups["n"]), False


def _month_number(name: str) -> int | None:
    name = name.lower().rstrip(".")
    return next((index + 1 for index, month in enumerate(MONTHS) if month.startswith(name[:3])), None)


def _time_value(groups: dict[str, str]) -> tuple[float, bool] | None:
    if "noon" in groups:
        return (0.0 if groups["noon"].lower() == "midnight" else 720.0) + int(groups.get("min", 0)), False
    hour = int(groups["h"]) if "h" in groups else int(number_value(groups["hw"]))
    minute = int(groups.get("min", 0))
    part = groups.get("part", "").lower()
    if "half" in groups:
        pm = groups["half"].lower() == "p"
    elif part:
        pm = _PART_PM[part]
    else:
        # 24-hour clock when the hour says so; otherwise either half (6:30 = 6:30 am or pm).
        return hour * 60.0 + minute, hour < 13 and hour != 0
    hour = hour % 12 + (12 if pm else 0)
    return hour * 60.0 + minute, False


def quantities(text: str) -> Iterator[tuple[str, float | str, bool, int, int]]:
    """(kind, value, either_half, start, end) for each typed quantity, earliest pattern winning overlaps."""
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < taken_end and taken_start < end for taken_start, taken_end in taken):
                continue
            words = match.group(0).lower()
            if kind == "time" and words.startswith(("half past", "quarter")):
                # minutes from the hour named: "half past six" +30, "quarter to seven" -15
                offset = 30 if words.startswith("half") else -15 if match.group("qdir").lower() == "to" else 15
                minutes, either_half = _time_value({k: v for k, v in match.groupdict().items() if v and k != "qdir"})
                value = ((minutes + offset) % 1440, either_half)
            else:
                value = _value(kind, match)
            if value is None:
                continue
            taken.append((start, end))
            if kind != "frequency":
                yield ("age" if kind == "age_through" else kind), value[0], value[1], start, end


# --------------------------------------------------------------------------- clauses and negation

_SENTENCE = re.compile(r"(?<!\d)[.!?](?!\d)|[;\n•]|(?:^|\s)[-*]\s|(?:^|\n)\s*\d+[.)]\s|\s+(?:but|however|though|although|whereas|"
                       r"while|except)\s+", re.IGNORECASE)
NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|cannot|can't|cant|don't|dont|doesn't|doesnt|won't|wont|isn't|isnt|aren't|"
    r"arent|wasn't|shouldn't|wouldn't|couldn't|unable|without|nor|neither)\b|n't\b|\bnon-|\bnon(?=\w)|"
    r"\boff the table\b|\bnot possible\b|\bunavailable\b|\bno longer\b|\bexcluded?\b|\bforfeit\w*",
    re.IGNORECASE)
# Phrases with a negation word that negate nothing the customer acts on.
_NOT_NEGATION = re.compile(
    r"\b(?:no problem|no worries|not a problem|no trouble|can't wait|cannot wait|don't hesitate|don't worry|"
    r"no later than|not only|no matter|not later than|no more than|nothing beats|no sweat|not at all)\b",
    re.IGNORECASE)
FREE = re.compile(r"\b(?:at no (?:extra |additional )?(?:charge|cost)|free of charge|no (?:extra |additional |other )?"
                   r"(?:\w+ )?(?:charge|cost|fee|surcharge)|complimentary|on the house)\b", re.IGNORECASE)


def clauses(text: str) -> list[tuple[int, str]]:
    """(offset, clause) pieces: sentences, list items, and contrast clauses ("..., but ...")."""
    pieces, start = [], 0
    for match in _SENTENCE.finditer(text):
        pieces.append((start, text[start : match.start()]))
        start = match.end()
    pieces.append((start, text[start:]))
    return [(offset, piece) for offset, piece in pieces if piece.strip()]


def negated(clause: str, free_is_positive: bool = True) -> bool:
    """Whether the clause negates something; "at no charge" reads as "free" unless told otherwise."""
    cleaned = _NOT_NEGATION.sub(" ", clause)
    if free_is_positive:
        cleaned = FREE.sub(" free ", cleaned)
    return bool(NEGATION.search(cleaned))


# --------------------------------------------------------------------------- facts of an answer


@dataclass
class AnswerFacts:
    """Everything checkable in one answer."""

    quantities: list[Fact] = field(default_factory=list)
    # item → who provides it ("us" / "customer"), as the answer says
    provision: dict[str, str] = field(default_factory=dict)
    # policy claim → what the answer claims (True / False)
    claims: dict[str, bool] = field(default_factory=dict)
    # yes / no / None: the answer's reply to a yes/no question
    polarity: str | None = None
    # "free", "no travel fee", "at no charge": what "$0" says in words
    says_free: bool = False

    def by_role(self) -> dict[str, list[Fact]]:
        roles: dict[str, list[Fact]] = {}
        for fact in self.quantities:
            roles.setdefault(fact.role, []).append(fact)
        return roles

    @property
    def empty(self) -> bool:
        return not (self.quantities or self.provision or self.claims)


_CLAUSE_BREAK_BUT_COLON = re.compile(r",|\band\b|\bor\b|\bthen\b|\(|\)", re.IGNORECASE)
CLAUSE_BREAK = re.compile(_CLAUSE_BREAK_BUT_COLON.pattern + "|:", re.IGNORECASE)
_CLAUSE_PENALTY = 25  # characters a comma or "and" counts for when tying a number to a cue across it
CUE_REACH = 60  # a cue further away says nothing about the number ("two weeks later" is no arrival time)


# What follows a notice period: it is counted back from the event ("7 days before", "48 hours' notice").
_COUNTED_BACK = re.compile(r"'?\s*(?:or (?:more|longer)\s+)?(?:before|ahead|prior|in advance|beforehand|out\b|away|notice)",
                           re.IGNORECASE)


# Two values joined like this make one range and share their cue: "start between 5pm and 8pm".
_RANGE = re.compile(r"\s*(?:-|–|to|and|through|or|until|till)\s*", re.IGNORECASE)


def _role(kind: str, start: int, end: int, clause: str, policy: BusinessPolicy, cue_reach: int,
          others: list[tuple[int, int]] = ()) -> str:
    """The policy role of the same kind whose cue is nearest the quantity in its clause, else the kind (at equal
    distance, the role listed first on the sheet). A cue with another value of the kind (``others``) between
    it and the quantity belongs to that value, unless the two make a range: in "$840 for food ($720 adults
    ...)" "adults" prices $720."""
    best, best_distance = kind, None
    counted_back = bool(_COUNTED_BACK.match(clause, end))
    for role, rule in policy.facts.items():
        if rule.kind != kind or (rule.counted_back and not counted_back):
            continue
        for cue in rule.cues:
            for match in re.finditer(cue, clause, re.IGNORECASE):
                if match.start() < end and start < match.end():
                    continue
                low, high = (match.end(), start) if match.end() <= start else (end, match.start())
                if any(low <= other_start < high and not _RANGE.fullmatch(clause[min(other_end, end):max(other_start, start)])
                       for other_start, other_end in others):
                    continue
                between = clause[low:high]
                distance = (high - low) + _CLAUSE_PENALTY * len(CLAUSE_BREAK.findall(between))
                if distance > cue_reach:
                    continue
                if best_distance is None or distance < best_distance:
                    best, best_distance = role, distance
    return best


# Who is doing the providing: the party word nearest the item, with the chef counted as us ("your
# chef brings the grill"), and "your" alone counted as nobody ("your guests").
_BY_CUSTOMER = r"(?:provided|supplied|brought|covered|handled|arranged) by (?:you|the (?:host|customer))"
_CUSTOMER = re.compile(rf"\b(?:you|you'll|you'd|you're|yours|yourself|on your (?:side|end)|up to you|byo\w*|"
                       rf"bring your own|customers?|hosts?|please(?=(?: \w+){{0,2}}? (?:have|bring|provide|get|pick|set|grab|buy|make sure|arrange))|just|your (?:responsibility|job)|{_BY_CUSTOMER})\b", re.IGNORECASE)
_US = re.compile(rf"\b(?!{_BY_CUSTOMER})(?:we|we'll|we're|we've|us|our (?:side|end|team|kitchen)|chefs?|included|"
                 r"includes|comes? with|covers|covered|provided|supplied|on the house)\b", re.IGNORECASE)
# A party and an item make a provision claim only with a providing word between them (or a party word
# that is one): "the chef brings the grill" is one, "the chef will do their plates first" is not.
# "Set up on the patio" says where, not what is brought; "please have X ready" asks the customer for X;
# "arrives with" and "shows up with" bring.
_PROVIDING = re.compile(r"\b(?:bring\w*|brought|provid\w*|suppl\w*|handl\w*|take\w* care|tak\w+ care|come\w* with|"
                        r"cover\w*|arrang\w*|need\w*|rent\w*|set\w* up(?!\s+(?:on|in|under|at|near|by|outside|"
                        r"outdoors|inside|indoors)\b)|responsib\w*|include\w*|"
                        r"pack\w*|carr\w+|on (?:you|your side|your end|us|our side|our end|the (?:host|customer)s?)|"
                        r"up to you|yours|(?:arriv|show|roll)\w*(?: up)? with|please have|"
                        r"byo\w*|on the house|(?:is|are) (?:on|with) (?:you|us)|pick\w* up|buy\w*|bought|purchas\w*|grab\w*)\b",
                        re.IGNORECASE)
# A new clause with its own subject: "the chef brings the grill, so propane is on you" ties the
# propane to "you", not to "the chef".
_NEW_CLAUSE = re.compile(r",\s*so\b|\bso that\b", re.IGNORECASE)


# "You" as the one spoken to, not the one who provides: "just so you know, the sauces contain soy".
_ADDRESSED = re.compile(r"\b(?:(?:just )?so you know|let you know|thank you|see you|help you|tell you|remind you)\b",
                        re.IGNORECASE)


def _parties(text: str) -> list[tuple[int, int, str]]:
    spoken_to = [m.span() for m in _ADDRESSED.finditer(text)]
    customer = [m for m in _CUSTOMER.finditer(text) if not any(s <= m.start() < e for s, e in spoken_to)]
    return sorted([(m.start(), m.end(), "customer") for m in customer] +
                  [(m.start(), m.end(), "us") for m in _US.finditer(text)])


def _next_word(text: str, at: int) -> str:
    found = re.match(r"\s*\S+", text[at:])
    return found.group(0) if found else ""


def _parties_before(clause: str, parties: list[tuple[int, int, str]], at: int) -> list[tuple[int, str, str]]:
    """(start, party, words up to the item) for the party words before an item, nearest first.

    The walk back stops at a party of the other side ("our chef shows up with the grill, and you'll
    want tables ready": the tables are not the chef's) and at a new clause ("..., so ...")."""
    found: list[tuple[int, str, str]] = []
    for start, _, party in reversed(parties):
        if start >= at:
            continue
        if (found and party != found[0][1]) or _NEW_CLAUSE.search(clause[start:at]):
            break
        found.append((start, party, clause[start:at]))
    return found


def _provision(clause: str, policy: BusinessPolicy, header_party: str | None = None) -> dict[str, str]:
    """Who provides each item the clause names.

    The nearest party word before the item (else after it: "drinks are on you"), flipped by a
    negation between the two ("we don't bring tents"), so "no" elsewhere in the clause does not count.
    """
    found = {}
    parties = _parties(clause)
    for item in policy.provision:
        for match in re.finditer(rf"\b{re.escape(item)}\b", clause, re.IGNORECASE):
            # The nearest party word with a providing word between it and the item: in "we bring the
            # chef, grill and plates" it is "we", not the "chef" listed in between.
            before = _parties_before(clause, parties, match.start())
            after = [(end, party, clause[match.end() : end] + _next_word(clause, end))
                     for _, end, party in parties if end > match.end()][:1]
            chosen = next(((party, governed) for _, party, governed in before + after if _PROVIDING.search(governed)),
                          None)
            if chosen is None and header_party:
                chosen = header_party, clause[: match.start()]
            if chosen is None:
                continue
            party, governed = chosen
            if negated(governed):
                party = "customer" if party == "us" else "us"
            found[item] = party
    return found


_GREETING = re.compile(r"^\W*(?:hi|hello|hey|thanks?(?: you)?(?: so much)?(?: for \w+(?: \w+)?)?|great question|"
                       r"good (?:morning|afternoon|evening))(?: there)?\b[^.!?,]*[.!?,]\s*", re.IGNORECASE)
_YES = re.compile(r"^\W*(?:yes|yep|yeah|yup|absolutely|of course|sure|definitely|certainly|totally|indeed|you bet|"
                  r"correct|we (?:sure |definitely |absolutely )?(?:do|can|will|are|have)\b(?!\s*(?:not|n't)))",
                  re.IGNORECASE)
_NO = re.compile(r"^\W*(?:no\b(?!\s+(?:problem|worries|need))|nope|unfortunately|sorry|i'm afraid|afraid not|"
                 r"(?:i'm|i am|we're|we are) (?:so |very )?sorry,? but|"
                 r"we (?:do not|don't|can't|cannot|won't|aren't|are not)\b)", re.IGNORECASE)


def polarity(text: str) -> str | None:
    body = _GREETING.sub("", text.strip(), count=1)
    return "yes" if _YES.search(body) else "no" if _NO.search(body) else None


_TIMES_BEFORE = re.compile(r"\d\s*(?:x|×|\*)\s*$", re.IGNORECASE)
_TIMES_AFTER = re.compile(r"\s*(?:x|×|\*)\s*\d", re.IGNORECASE)
_CAPACITY = re.compile(r"\s+(?:can|could|cooks?|handles?|serves?|covers?|tops|maxes|takes?)\b", re.IGNORECASE)
_FREE_WORD = re.compile(r"\bfree\b", re.IGNORECASE)


def extract(text: str, policy: BusinessPolicy, cue_reach: int = CUE_REACH) -> AnswerFacts:
    """The facts of an answer; ``cue_reach``: how far (in characters) a role's cue word may stand from its value."""
    text = text or ""
    facts = AnswerFacts(polarity=polarity(text), says_free=bool(FREE.search(text) or _FREE_WORD.search(text)))
    header_party = header_per = None
    for offset, clause in clauses(text):
        # "Upgrades, priced per person:" says what the prices in the list items under it are per.
        in_list = header_per and (_LIST_ITEM_START.match(clause) or _LIST_ITEM_END.search(text, 0, offset))
        list_per = header_per if in_list else None
        found = list(quantities(clause))
        for kind, value, either_half, start, end in found:
            per = _PER.match(clause, end) if kind == "money" else None
            word = (per.group(1) or per.group(2)).lower() if per else ""
            unit = _per_unit(word) if per else list_per if kind == "money" else None
            if per and unit is None and _EXPLICIT_PER.search(per.group(0)):
                unit = word.rstrip("s")  # "$550 per chef": a unit the table does not know is still a unit
            others = [(s, e) for k, *_, s, e in found if k == kind and s != start]
            role = _role(kind, start, end, clause, policy, cue_reach, others) \
                if kind not in ("date", "weekday", "count") else kind
            if kind == "money" and role == kind and (_TIMES_BEFORE.search(clause[:start]) or _TIMES_AFTER.match(clause, end)):
                # A factor in a product ("10 x $60") with no cue word: the sheet's price of that amount, if any.
                role = next((name for name, rule in policy.facts.items()
                             if rule.kind == "money" and rule.value == value), role)
            if kind == "count" and value == 1 and _CAPACITY.match(clause, end):
                continue  # "one chef can cook for 20" states a capacity, not how many come
            if kind == "count":
                noun = re.search(r"(\w+)\s*$", clause[start:end]).group(1).lower()
                if re.match(rf"{NUMBER}$", noun, re.IGNORECASE):
                    noun = "guests"  # "a party for 50": the number ends the phrase, and it counts guests
                role = "count:" + _COUNT_NOUN.get(noun.rstrip("s"), _COUNT_NOUN.get(noun, noun))
            facts.quantities.append(Fact(kind, value, role, clause[start:end], offset + start, either_half, unit))
        facts.quantities += _free_items(clause, offset, policy)
        provided = _provision(clause, policy, header_party)
        facts.provision |= provided
        # "We bring:" / "You provide:" heads the list items that follow it.
        parties = _parties(clause)
        if clause.rstrip().endswith(":"):
            header_party = parties[-1][2] if parties else header_party
            header_per = _per_unit(per_word.group(1)) if (per_word := _PER_WORD.search(clause)) else None
        elif parties and _PROVIDING.search(clause):
            header_party = None  # a clause with its own provision ends the list ("- Chef" under "We bring:" does not)
        for name, claim in policy.claims.items():
            match = re.search(claim.pattern, clause, re.IGNORECASE)
            if match:
                # The negation must govern the claim: "gratuity is included, so there's nothing extra"
                # is no negation of "included".
                reach = clause[max(0, match.start() - _CLAIM_REACH) : match.start()]
                # ... and stand in the same part of the clause: "gratuity isn't included, and travel is free".
                reach = CLAUSE_BREAK.split(reach)[-1]
                # A negation may follow in the same part, too: "shellfish-free isn't something we offer",
                # or after a list label: "Nut-free kitchen: we can't guarantee it".
                after = _CLAUSE_BREAK_BUT_COLON.split(clause[match.end() : match.end() + _CLAIM_REACH])[0]
                facts.claims[name] = not negated(reach + clause[match.start() : match.end()] + after)
    return facts


def _per_unit(word: str) -> str | None:
    word = word.lower()
    return _PER_UNIT.get(word.rstrip("s"), _PER_UNIT.get(word))


_EXPLICIT_PER = re.compile(r"(?:\bper|/)[\s-]*\w", re.IGNORECASE)
_PER_WORD = re.compile(r"\bper[\s-]+(\w+)", re.IGNORECASE)
# Text that ends where a list item begins: "\n- ", "• ", "\n2. ".
_LIST_ITEM_END = re.compile(r"(?:^|\n)\s*(?:[-*•]|\d+[.)])\s*$|•\s*$")
_LIST_ITEM_START = re.compile(r"\s*(?:[-*•]|\d+[.)])\s")


def _free_items(clause: str, offset: int, policy: BusinessPolicy) -> list[Fact]:
    """A priced item said to be free is a price of $0: "a free filet upgrade", "lobster is on the house".
    Per-mile fees are left out: "free within 30 miles" is the free radius, not a fee of $0."""
    found = []
    for match in _FREE_ITEM.finditer(clause):
        item = match.group("after") or match.group("before")
        for role, rule in policy.facts.items():
            if rule.kind == "money" and rule.per != "mile" and any(re.search(cue, item, re.IGNORECASE)
                                                                   for cue in rule.cues):
                found.append(Fact("money", 0.0, role, match.group(0), offset + match.start()))
                break
    return found


# "free" right before the item (two words between at most), or the item right before "is free".
_FREE_ITEM = re.compile(r"\b(?:free|complimentary)\s+(?P<after>(?:[\w-]+\s+){0,2}[\w-]+)"
                        r"|(?P<before>[\w-]+(?:\s+[\w-]+){0,2})\s+(?:is|are|comes?)\s+(?:free|complimentary|on the house)\b",
                        re.IGNORECASE)
_CLAIM_REACH = 30  # characters before a claim that a negation may stand in ("we don't use peanuts")
