"""Presidio recognizers for what Presidio lacks in a hibachi caterer's customer chat.

Presidio has no street-address or gate-code recognizer, finds names only through spaCy's NER
(which misses lower-case names and tags some as NRP), and its email check downloads the public
suffix list. These recognizers fill the gaps; :mod:`hibachi_lab.pii` wires them into an analyzer.
Each finds a ``value`` group, so the cue words around it ("gate code is") stay in the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

STREET_ADDRESS = "STREET_ADDRESS"
ACCESS_CODE = "ACCESS_CODE"
PAYMENT_HANDLE = "PAYMENT_HANDLE"

# Words that are first names in some list but far more often ordinary words in this chat.
COMMON_WORDS = frozenset(["a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "april", "are", "art", "as", "at", "august", "autumn", "be", "bell", "best", "bill", "black", "blue", "bonnie", "brook", "brown", "but", "by", "can", "chase", "cherry", "chef", "christian", "city", "cook", "court", "crystal", "day", "dawn", "dean", "do", "dusty", "early", "faith", "for", "forest", "friday", "from", "frank", "gale", "ginger", "glen", "golden", "grace", "grant", "green", "hall", "happy", "harmony", "have", "he", "her", "here", "hi", "hibachi", "hill", "holly", "honey", "hope", "hunter", "i", "if", "in", "is", "it", "its", "ivy", "jack", "jade", "jan", "jewel", "joy", "june", "just", "king", "lake", "lane", "lee", "less", "long", "love", "lucky", "mark", "marsh", "may", "me", "melody", "miles", "mister", "monday", "more", "most", "much", "my", "new", "no", "north", "not", "of", "on", "one", "or", "our", "page", "park", "pat", "patience", "pearl", "penny", "price", "queen", "ray", "reed", "rich", "river", "robin", "rock", "rose", "ruby", "sage", "saturday", "say", "see", "she", "shelby", "sky", "so", "sterling", "stone", "story", "summer", "sunday", "sunny", "sweet", "tan", "that", "the", "their", "them", "there", "they", "this", "thursday", "to", "tuesday", "unity", "us", "violet", "wade", "walker", "wednesday", "well", "west", "white", "will", "wish", "with", "wood", "worth", "yes", "you", "young", "your"])
DAYS_AND_MONTHS = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "today", "tomorrow", "tonight"])


class RegexValueRecognizer(EntityRecognizer):
    """Regular expressions whose ``value`` group is the entity; an optional check may reject a match."""

    def __init__(
        self,
        entity: str,
        patterns: Iterable[tuple[str, float]],
        name: str,
        check: Callable[[str], bool] | None = None,
        flags: int = 0,
    ):
        self.patterns = [(re.compile(pattern, flags), score) for pattern, score in patterns]
        self.check = check
        super().__init__(supported_entities=[entity], name=name, supported_language="en")

    def load(self) -> None:  # patterns are compiled in __init__
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        if entities and entity not in entities:
            return []
        results = []
        for pattern, score in self.patterns:
            for match in pattern.finditer(text):
                start, end = match.span("value")
                value = match.group("value")
                if start == end or (self.check is not None and not self.check(value)):
                    continue
                results.append(RecognizerResult(entity, start, end, score))
        return results


# --------------------------------------------------------------------------- street addresses

_SUFFIXES = (
    "street|st|avenue|ave|av|boulevard|blvd|road|rd|drive|dr|lane|ln|court|ct|way|wy|place|pl|circle|cir|terrace|"
    "ter|parkway|pkwy|highway|hwy|trail|trl|square|sq|loop|alley|aly|plaza|plz|crescent|cres|row|run|path|pike|"
    "expressway|expy|freeway|fwy|real|alameda|center|ctr|point|pt|crossing|xing|commons|landing|ridge|heights|hts"
)
_UNIT = r"(?:,?\s*(?:apt\.?|apartment|unit|suite|ste\.?|bldg\.?|building|fl\.?|floor|room|rm\.?|#)\s*#?\s*[a-z0-9-]{1,6})"
_STATES = (
    "al|ak|az|ar|ca|co|ct|de|fl|ga|hi|id|il|in|ia|ks|ky|la|me|md|ma|mi|mn|ms|mo|mt|ne|nv|nh|nj|nm|ny|nc|nd|oh|ok|"
    "or|pa|ri|sc|sd|tn|tx|ut|vt|va|wa|wv|wi|wy|dc|california|nevada|oregon|arizona|texas|washington"
)
# number, optional direction, 1-4 name words, a street suffix, optional unit. Case-insensitive.
_STREET = (
    r"(?<![\w$.])\d{1,6}[a-z]?\s+(?:(?:n|s|e|w|ne|nw|se|sw|north|south|east|west)\.?\s+)?"
    r"(?:[a-z][a-z'.-]*\s+){0,3}?[a-z][a-z'.-]*\s+(?:" + _SUFFIXES + r")\b\.?" + _UNIT + r"?"
)
_LOCALITY = r"(?:,?\s+(?:[a-z][a-z.'-]*\s+){0,2}?[a-z][a-z.'-]*,?\s+(?:" + _STATES + r")\b(?:\s+\d{5}(?:-\d{4})?)?)"


def street_address_recognizer(include_locality: bool) -> RegexValueRecognizer:
    """US street addresses; the city, state and ZIP after them only when ``include_locality``."""
    pattern = "(?P<value>" + _STREET + (_LOCALITY + "?" if include_locality else "") + ")"
    # "El Camino Real" and "The Alameda" have no suffix word after a name.
    named = r"(?P<value>(?<![\w$.])\d{1,6}\s+(?:el\s+camino\s+real|the\s+alameda|broadway)\b" + _UNIT + "?)"
    return RegexValueRecognizer(
        STREET_ADDRESS, [(pattern, 0.7), (named, 0.7)], "StreetAddressRecognizer", _looks_like_street, re.IGNORECASE
    )


# Words that never sit between a house number and a street suffix ("12 more guests way before").
_NOT_STREET_WORDS = frozenset(["guests", "guest", "people", "adults", "adult", "kids", "children", "persons", "miles", "mile", "hours", "hour", "minutes", "dollars", "bucks", "more", "less", "of", "us", "we", "you", "i", "my", "our", "your", "and", "or", "to", "for", "at", "on", "in", "by", "with", "from", "is", "are", "was", "be", "it", "pm", "am", "plates", "trays", "pounds", "lbs", "min"])


def _looks_like_street(value: str) -> bool:
    words = [word.lower().strip(".,") for word in value.split()]
    return len(words) > 2 and not any(word in _NOT_STREET_WORDS for word in words[1:-1])


# --------------------------------------------------------------------------- gate, door and alarm codes

_CODE_CUES = (
    r"(?:gate|door|front\s+door|back\s+door|garage|lock\s?box|alarm|entry|access|keypad|building|buzzer|call\s?box|"
    r"community|complex|side\s+gate)"
)
_CODE = r"(?P<value>[#*]?\d{3,8}[#*]?|[a-z]?\d{3,6}[a-z]?)(?![\d/:.,]\d)"


def access_code_recognizer() -> RegexValueRecognizer:
    patterns = [
        # "gate code is 1234", "lockbox code: 5678", "the alarm pin 2468#", "gate 4321" (cue + code word optional)
        (_CODE_CUES + r"(?:\s+(?:code|pin|combo|combination|passcode|number|#|c[a-z]{1,4}))?\s*(?:is|was|will\s+be|=|:|-)?\s*"
         + _CODE, 0.8),
        # "code to the gate is 1234", "the code for the lockbox: 5678"
        (r"(?:code|pin|combo|combination|passcode)\s+(?:to|for|of)\s+(?:the\s+)?" + _CODE_CUES
         + r"\s*(?:is|was|=|:|-)?\s*" + _CODE, 0.8),
        # "code is 1234" / "the code 1234" with no cue: still a code to a home in this business
        (r"(?<!zip\s)(?<!postal\s)(?<!area\s)(?<!promo\s)(?<!coupon\s)\b(?:code|pin|passcode)\s*(?:is|was|=|:|-)?\s*"
         + _CODE, 0.6),
    ]
    return RegexValueRecognizer(ACCESS_CODE, patterns, "AccessCodeRecognizer", flags=re.IGNORECASE)


# --------------------------------------------------------------------------- phones, payment handles, email

_PHONE = (
    r"(?<![\w+])(?P<value>(?:\+?1[\s.-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[\s.-]?[2-9]\d{2}[\s.-]?\d{4})(?![\d-])"
)


def us_phone_recognizer() -> RegexValueRecognizer:
    """US numbers in every common format: dots, spaces, dashes, +1, parentheses, no separators."""
    return RegexValueRecognizer("PHONE_NUMBER", [(_PHONE, 0.7)], "UsPhoneFormatsRecognizer", _not_a_card_fragment)


def _not_a_card_fragment(value: str) -> bool:
    return sum(char.isdigit() for char in value) in (10, 11)


def payment_handle_recognizer() -> RegexValueRecognizer:
    patterns = [
        # "venmo @maria-lopez-7", "my venmo is maria_lopez", "cash app $MariaL", "zelle to maria lopez" is a name
        (r"(?i:venmo|paypal\.me/|paypal)\s*(?i:is|:|at|me at|handle)?\s*(?P<value>@?[A-Za-z][\w-]{2,29})", 0.6),
        (r"(?i:cash\s?app|cashapp)\s*(?i:is|:|at|me at|tag)?\s*(?P<value>\$[A-Za-z][\w]{1,19})", 0.7),
        (r"(?<![\w$])(?P<value>\$[A-Za-z][A-Za-z0-9_]{2,19})\b", 0.5),  # a cashtag: $ then a letter, never a price
        (r"(?<![\w@.])(?P<value>@[A-Za-z][\w-]{3,29})\b", 0.4),
    ]
    return RegexValueRecognizer(PAYMENT_HANDLE, patterns, "PaymentHandleRecognizer", _handle_not_a_word)


def _handle_not_a_word(value: str) -> bool:
    """A handle starts with @ or $, or carries a digit, _ or - ('venmo is fine' names no handle)."""
    bare = value.lstrip("@$")
    marked = value[0] in "@$" or any(char.isdigit() or char in "_-" for char in bare)
    return marked and bare.lower() not in COMMON_WORDS | {"venmo", "zelle", "cashapp", "paypal", "me"}


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, checking domains against tldextract's bundled suffix list.

    The stock one lets tldextract fetch the public suffix list on first use, which logs a long
    traceback offline before falling back to the same snapshot.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return _offline_tld_extractor()(pattern_text).fqdn != ""


@functools.cache
def _offline_tld_extractor():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


# --------------------------------------------------------------------------- names


class NameLists:
    """First and last names from several Faker locales: a dictionary for names spaCy misses."""

    LOCALES = ("en_US", "en_GB", "en_IN", "es_MX", "hi_IN", "vi_VN", "fil_PH", "fr_FR", "de_DE", "it_IT", "pt_BR",
               "ko_KR", "ja_JP")

    def __init__(self) -> None:
        import importlib

        firsts: set[str] = set()
        lasts: set[str] = set()
        for locale in self.LOCALES:
            try:
                provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
            except ImportError:
                continue
            for attribute in ("first_names", "first_names_male", "first_names_female"):
                firsts.update(_latin_names(getattr(provider, attribute, ())))
            lasts.update(_latin_names(getattr(provider, "last_names", ())))
        self.first = frozenset(name.lower() for name in firsts)
        self.last = frozenset(name.lower() for name in lasts)

    def is_first(self, word: str) -> bool:
        return word.lower() in self.first

    def is_last(self, word: str) -> bool:
        return word.lower() in self.last


def _latin_names(names: Iterable[str]) -> list[str]:
    return [name for name in names if name and name.isascii() and name.replace("-", "").replace("'", "").isalpha()]


@functools.cache
def name_lists() -> NameLists:
    return NameLists()


_CAPITALIZED = r"[A-Z][a-zA-Z'’-]+"
_NAME = rf"{_CAPITALIZED}(?:\s+{_CAPITALIZED}){{0,2}}"
_LOWER_NAME = r"[a-z][a-z'’-]+(?:\s+[a-z][a-z'’-]+)?"
_ANY_NAME = rf"(?P<value>{_NAME}|{_LOWER_NAME})"
# Cues that introduce a name for sure ("my name is X") and cues that often do ("I'm X", "under X").
_STRONG_CUES = (
    r"(?i:this\s+is|my\s+name\s+is|my\s+name'?s|name\s+is|name'?s|names\s+is|ask\s+for|speak\s+(?:to|with)|"
    r"talk\s+to|under\s+the\s+name(?:\s+of)?|booked\s+under|booking\s+under|reservation\s+under|party\s+under|"
    r"signed|regards,?|best,?|sincerely,?|cheers,?|thanks,|thank\s+you,|thx,|ty,|contact(?:\s+person)?(?:\s+is)?:?|"
    r"my\s+(?:husband|wife|partner|fianc[eé]e?|son|daughter|mom|mother|dad|father|sister|brother|friend|boss|"
    r"coworker|neighbou?r|assistant))"
)
_WEAK_CUES = r"(?i:under|call\s+me|i\s+am|i'?m|it'?s|hi,?\s+it'?s)"
# Words after which a capitalised first name followed by punctuation addresses someone ("Thanks Maria!").
_VOCATIVE_CUES = (
    r"(?:,|(?i:thanks|thank\s+you|hi|hello|hey|dear|sorry|great|welcome|bye|congrats|congratulations|"
    r"got\s+it|sure|okay|ok|perfect|done|understood|apologies))"
)


class NameRecognizer(EntityRecognizer):
    """Names spaCy misses: after cues ("this is X", "ask for X", "thanks, X", a "- X" sign-off, "X here"),
    addressed by the assistant ("Great, Maria!"), and known first + last name pairs, in any case."""

    def __init__(self, keep_words: frozenset[str]):
        self.names = name_lists()
        self.keep_words = keep_words
        self.strong = re.compile(rf"(?<![\w]){_STRONG_CUES}\s+{_ANY_NAME}")
        self.weak = re.compile(rf"(?<![\w]){_WEAK_CUES}\s+{_ANY_NAME}")
        self.here = re.compile(rf"{_ANY_NAME}\s+(?i:here)\b")
        self.signoff = re.compile(rf"(?:^|(?<=\s))[-–—~]\s*{_ANY_NAME}")
        self.vocative = re.compile(rf"{_VOCATIVE_CUES}\s+(?P<value>{_CAPITALIZED})(?=\s*[,.!?:;]|\s*$)")
        # A lookahead, so every two neighbouring words are tried ("husband Dominic" and "Dominic Reyes").
        self.pair = re.compile(r"(?<![\w@.])(?=(?P<value>[A-Za-z][a-zA-Z'’-]+\s+[A-Za-z][a-zA-Z'’-]+)(?![\w@]))")
        super().__init__(supported_entities=["PERSON"], name="NameCueAndDictionaryRecognizer", supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        if entities and "PERSON" not in entities:
            return []
        results = []
        for pattern, score, strong in ((self.strong, 0.75, True), (self.weak, 0.6, False), (self.here, 0.6, True),
                                       (self.signoff, 0.7, True)):
            for match in pattern.finditer(text):
                span = self._name_span(text, match.start("value"), match.end("value"), strong,
                                       skip_leading=pattern is self.here,
                                       dictionary_only=pattern is self.signoff and text[match.end():].strip() != "")
                if span is not None:
                    results.append(RecognizerResult("PERSON", *span, score))
        for match in self.vocative.finditer(text):
            word = match.group("value")
            if (self.names.is_first(word) and word.lower() not in self.keep_words | DAYS_AND_MONTHS
                    and not _before_state(text, match.end("value"))):
                results.append(RecognizerResult("PERSON", match.start("value"), match.end("value"), 0.6))
        for match in self.pair.finditer(text):
            first, last = match.group("value").split()
            if self.names.is_first(first) and self.names.is_last(last) and not self._ordinary(first, last):
                results.append(RecognizerResult("PERSON", match.start("value"), match.end("value"), 0.7))
        return results

    def _name_span(self, text: str, start: int, end: int, strong: bool, skip_leading: bool,
                   dictionary_only: bool) -> tuple[int, int] | None:
        """The span of the words from ``start`` that look like a name, or None."""
        words = [(start + m.start(), start + m.end(), m.group().strip("'’-")) for m in re.finditer(r"\S+", text[start:end])]
        if skip_leading:
            # "Hey there, Chase here" -> "Chase": drop greetings, not a capitalised known name.
            while words and words[0][2].lower() in COMMON_WORDS | self.keep_words and not (
                words[0][2][:1].isupper() and self.names.is_first(words[0][2])
            ):
                words.pop(0)
        kept: list[tuple[int, int]] = []
        for word_start, word_end, bare in words:
            if not self._name_word(bare, not kept, strong, dictionary_only):
                break
            kept.append((word_start, word_end))
        return (kept[0][0], kept[-1][1]) if kept else None

    def _name_word(self, word: str, first: bool, strong: bool, dictionary_only: bool) -> bool:
        """Whether a word continues a name.

        Known names always do, except ordinary words in lower case ("will", "grace"). A capitalised
        unknown word does after a strong cue ("booking under Oluwaseun Adeyemi"); a sign-off in the
        middle of a text takes known names only, so "- Jo Appreciate it" stops at "Jo".
        """
        lower = word.lower()
        if lower in self.keep_words or lower in DAYS_AND_MONTHS:
            return False
        known = self.names.is_first(word) if first else self.names.is_last(word) or self.names.is_first(word)
        capitalized = word[:1].isupper()
        if dictionary_only or not capitalized or not strong or lower in COMMON_WORDS:
            return known and (capitalized or lower not in COMMON_WORDS)
        return True

    def _ordinary(self, first: str, last: str) -> bool:
        """'may park', 'Will Hunter', 'Maxwell oconnell': a known pair that is still not a name."""
        if first.lower() in self.keep_words or last.lower() in self.keep_words:
            return True
        if first[:1].isupper() != last[:1].isupper():
            return True
        return first.lower() in COMMON_WORDS and last.lower() in COMMON_WORDS

    def first_known_name(self, text: str, start: int, end: int) -> int:
        """Where the first known name among the words of text[start:end] begins (start if none)."""
        for match in re.finditer(r"\S+", text[start:end]):
            word = match.group().strip("'’-.,")
            if self.names.is_first(word) or self.names.is_last(word):
                return start + match.start()
        return start

    def is_plausible(self, value: str) -> bool:
        """Whether a name spaCy found is one: a known name among its capitalised words, no digits, no
        trailing state ("Stockton CA"), no ordinary words only ("Guest", "Sorry", "Email")."""
        if any(char.isdigit() for char in value) or re.search(r"\b(?:" + _STATES + r")\.?$", value, re.IGNORECASE):
            return False
        words = [word.strip("'’-.,") for word in value.split()]
        return any(word[:1].isupper() and word.lower() not in COMMON_WORDS | self.keep_words
                   and (self.names.is_first(word) or self.names.is_last(word)) for word in words)


class CheckedSpacyRecognizer(SpacyRecognizer):
    """spaCy's names with a second opinion: the small model calls "Guest", "Email" or "Stockton CA" a person.

    Filtering here, before Presidio merges overlapping results, keeps a weaker but right detection
    of the same words by another recognizer from being swallowed by a rejected spaCy one.
    """

    def __init__(self, names: NameRecognizer):
        self.names = names
        super().__init__(supported_entities=["PERSON"])

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        checked = []
        for result in super().analyze(text, entities, nlp_artifacts):
            if result.entity_type == "PERSON":
                # "Sorry David" -> "David": the name starts at its first known name.
                result.start = self.names.first_known_name(text, result.start, result.end)
                value = text[result.start : result.end]
                if not self.names.is_plausible(value) or _before_state(text, result.end):
                    continue
            checked.append(result)
        return checked


def _before_state(text: str, end: int) -> bool:
    """'Modesto, CA': a place, whatever a name list says."""
    return _STATE_AFTER.match(text, end) is not None


_STATE_AFTER = re.compile(r",?\s+(?:[A-Z]{2}|" + "|".join(w.title() for w in _STATES.split("|") if len(w) > 2) + r")\b")
