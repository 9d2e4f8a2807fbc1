"""The leak gate: a second opinion on scrubbed text, built differently from the scrubber.

A gate made of the scrubber's own recognizers is blind exactly where the scrubber is. This one
uses other evidence, so it catches what the scrubber missed:

- Presidio's predefined recognizers (spaCy names at any score, ``phonenumbers`` for several
  regions, emails, cards, SSNs) at a low threshold;
- **residual digits**: any run of 7 or more digits, in any format, that is not a price, a date, a
  time, a ZIP+4 or a booking id;
- **name-like words**: a capitalised word mid-sentence that a name list holds and that is neither
  an English word, a place nor a business word;
- contact markers: an ``@handle``, a ``$cashtag`` or an email spelled with "at"/"dot".

It reports the record, the field and the rule that fired, never the value. ``build-dataset``
refuses to write, and replay/evaluation keep text out of MLflow, when it fires.
"""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import pyarrow as pa

from hibachi_lab import traffic
from hibachi_lab.errors import BadInput
from hibachi_lab.pii.detectors import OBFUSCATED_EMAIL, OfflineEmailRecognizer, RegexValueRecognizer
from hibachi_lab.pii.names import (
    COMMON_WORDS_THAT_ARE_NAMES,
    DAYS_AND_MONTHS,
    NOT_NAMES,
    STOPWORDS,
    TITLES,
    _zipf,
    big_places,
    in_place_context,
    is_place_or_thing,
    name_lexicon,
    places,
    words_of,
)
from hibachi_lab.pii.scrub import PLACEHOLDER, Detector, PiiConfig, _shared_nlp_engine, turn_slots

# The types Presidio's recognizers report that are PII here (its DATE_TIME, NRP or URL are not).
_PRESIDIO_TYPES = ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "US_PASSPORT",
                   "US_BANK_NUMBER"]
RESIDUAL_DIGITS = "RESIDUAL_DIGITS"
HOUSE_NUMBER = "HOUSE_NUMBER"
CODE_NEAR_CUE = "CODE_NEAR_CUE"
NAME_LIKE_WORD = "NAME_LIKE_WORD"
CONTACT_MARKER = "CONTACT_MARKER"
IDENTITY_NUMBER = "IDENTITY_NUMBER"

# 7+ digits with separators, not preceded by "$" or a booking prefix, not a date, time or ZIP+4.
_DIGITS = re.compile(r"(?<![\w$#/.:-])\+?\(?\d(?:[\s().\-/]{0,2}\d){6,}(?![\w])")
_LOOKALIKE_DIGIT = re.compile(r"(?<=\d)[OoIl]|[OoIl](?=\d)")
_NOT_PHONE_DIGITS = re.compile(
    r"\d{5}-\d{4}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|(?:19|20)\d\d[/.-]\d{1,2}[/.-]\d{1,2}|\d{1,3}(?:,\d{3})+(?:\.\d\d)?"
)
# Codes and numbers written digit by digit ("0 4 4 9", "7-3-1-9", "five three oh five"), and a house number
# before a capitalised word ("4418 Mandarin Way", "77 Lakeview").
_SPACED_DIGITS = re.compile(r"(?<![\w$])\d(?:[ *-]\d){3,}(?![\w])")
_SPELLED = re.compile(r"(?i)(?<![\w])(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
                      r"(?:[\s,-]+(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)){3,}(?![\w])")
# A house number, up to three words and a street word: "3321 Fair Oaks Blvd", "1 Broadway", "2844 S 2300 E".
_STREET_LINE = re.compile(
    # the number may carry a letter ("3417-A") or be spelled ("four twenty two Elm Street")
    r"(?<![\w$.,/:#-])(?:[NSEWnsew]?\d{1,6}(?:-\d{1,4}|-[A-Za-z]\b|\s+1/2)?|(?:(?:one|two|three|four|five|six|seven|eight|"
    r"nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|oh)[\s-]+){2,5})"
    r"(?:\s+|(?<=\s))(?:[A-Za-z0-9][\w'’.-]*\s+){0,3}(?:st|street|ave|avenue|rd|road|blvd|"
    r"boulevard|ln|lane|dr|drive|way|ct|court|pl|place|hwy|highway|pkwy|parkway|cir|circle|ter|terrace|trl|trail|loop|"
    r"broadway|county\s+(?:rd|road)\s+\w+|[NSEW])\b(?!\s*(?:am|pm)\b)", re.IGNORECASE)
# Someone addressed by name: "Welcome back, Bao!", "Congratulations to Dakota!", "Thanks CJ".
_RELATIVE = (r"(?:son|daughter|husband|hubby|wife|wifey|mom|dad|mother|father|sister|sis|brother|bro|cousin|cuz|aunt|"
             r"auntie|uncle|grandma|grandpa|boss|friend|partner|niece|nephew|kid|baby|fianc[eé]e?|bf|gf|boyfriend|"
             r"girlfriend|bestie)")
# A romanised given name of two syllables: "Ji-woo", "Min-seo", "Xiao-mei" (not "Re-book", "Co-host").
_ROMANISED_GIVEN_NAME = re.compile(r"(?!(?:Co|Re|Pre|Non|Ex|De|Un|Up|In|On|By|Mid|Pro|Anti|Self)-)[A-Z][a-z]{1,3}-[a-z]{2,4}")
_ADDRESSED = re.compile(r"(?i:\b(?:hi|hello|hey|thanks|thank\s+you|welcome(?:\s+back)?|congratulations\s+to|congrats(?:\s+to)?|"
                        r"dear|happy\s+birthday(?:\s+to)?|sorry|bye|goodbye|calls\s+me|call\s+me|aloha|hola|bonjour|"
                        r"salut|ciao|howdy|shalom|namaste|good\s+(?:morning|afternoon|evening)|"
                        r"happy(?:\s+\d+(?:st|nd|rd|th))?(?:\s+(?:birthday|bday|anniversary|retirement))?(?:\s+to)?|"
                        r"happy(?:\s+[\w-]+){1,3}?\s+to),?\s+)"
                        # not a title: "Hi Mr. An" is Mr. An, read by the branch below; "Hi, Paris Nakamura-Lee here"
                        r"(?!(?:Mr|Mrs|Ms|Miss|Dr|Sr|Sra)\b)(?P<word>[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+)?(?:\s+(?:&|and)\s+[A-Z][\w'’-]+)?)"
                        r"(?=\s*[,.!?;:\"”]|\s*$|'s\b|\s+here\b)"
                        # a title or a relative before a capitalised word: "Mr. An", "my son Dakota's"
                        r"|(?:\b(?:Mr|Mrs|Ms|Miss|Dr|Sr|Sra)\.?\s+|(?i:\b(?:my|our|his|her|their)\s+" + _RELATIVE + r"(?:\s+is|,)?\s+)|"
                        # words that put a person's name next: "made out to Grant", "ask for Will"
                        r"(?i:\b(?:made\s+out\s+to|payable\s+to|addressed\s+to|ask\s+for|my\s+(?:buddy|bestie|coworker|neighbou?r)"
                        r")\s+))(?P<named>[A-Z][\w'’-]+)"
                        # a cue that names someone, whatever the word ("my name is Ginger Rice", "booked under Rice",
                        # "Tell Cash"), and a possessive only people have ("Will's birthday")
                        r"|(?i:\b(?:my\s+name\s+is|my\s+name'?s|name\s+on\s+the\s+\w+\s+is|under\s+the\s+name(?:\s+of)?|"
                        r"(?:put\s+it|booked|booking|reservation|party|it'?s)\s+under|name:?|tell|ask|"
                        r"(?:first|last|maiden|middle|full|family|sur)\s*name(?:\s+is|\?|:)?|named(?:\s+(?:him|her|them|it))?|"
                        r"(?:directed|produced|written|signed|sung|hosted)\s+by:?|change\s+it\s+to)\s+)(?P<called>[A-Z][\w'’-]+)"
                        # someone hailed at the end of a clause, even with a menu word's name ("Love it, Ginger!")
                        r"|,[ \t]+(?P<hailed>[A-Z][\w'’-]+)(?=!)"
                        # an honorific after a name ("Min-seo님", "Tanaka-san"), a name then its own script ("(박민서)")
                        r"|\b(?P<honoured>[A-Z][\w'’-]+)(?=\s?(?:님|씨|さん|様|くん|ちゃん)|-(?:san|sama|kun|chan|ji)\b)"
                        r"|\b(?P<scripted>[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+){0,2}\s*\([^\x00-\x7f()]{2,20}\))"
                        r"|\b(?P<owner>[A-Z][\w'’-]+)['’]s\s+(?=(?:[a-z]+\s+)?(?i:birthday|bday|wedding|graduation|retirement|address|phone|cell|"
                        r"number|email|husband|wife|mom|dad|son|daughter|kids|allergy|allergies|plate|order|house|place|"
                        r"family|friends|shower|quince|quinceañera|anniversary|reunion|surprise)\b)"
                        # a lower-case first name after a relative: "my bf marcus's 25th", "my mom is rosario"
                        r"|(?i:\b(?:my|our|his|her|their)\s+" + _RELATIVE + r"(?:\s+is|,)?\s+)(?P<lower>[a-z][\w'’-]+)")
_HOUSE_NUMBER = re.compile(r"(?<![\w$.,/:#-])\d{1,6}\s+(?:[NSEW]\.?\s+)?(?P<word>[A-Z][a-z][\w'’-]*)")
_NOT_AFTER_HOUSE_NUMBER = frozenset(
    ["am", "pm", "guests", "guest", "people", "adults", "adult", "kids", "children", "persons", "miles", "mile", "hours", "hour", "minutes", "dollars", "years", "days", "weeks", "months", "plates", "trays", "pounds", "lbs", "and", "or", "to", "in", "on", "at", "for", "from", "of", "with", "per"]
)
# A capitalised street name with a street word that is also an everyday word ("2739 Portage Bay E", "500 Capitol
# Mall"), a Spanish or Italian street ("7 Via Marina", "1250 Camino Alto") or a street line with its unit.
_CAPITALISED_STREET = re.compile(
    r"(?<![\w$.,/:#-])\d{1,6}\s+(?:(?:[A-Z][a-z][\w'’-]*\s+){1,3}(?:Mall|Plaza|Bay|Square|Row|Alley|Crossing|Cove|"
    r"Pike|Walk|Run|Path|Point|Ridge|Heights|Park|View|Vista|Gardens?|Village|Commons|Landing|Grove|Hills?|Creek|"
    r"Glen|Knoll|Meadows?|Oaks?|Pines|Bend|Harbor|Isle|Pass|Spur|Trace|Close)\b|(?:Via|Calle|Camino|Avenida|Paseo|Rue|"
    r"Corte|Vereda|Caminito)\s+(?:[A-Za-z][\w'’-]*)|(?:[A-Z][\w'’-]*\s+){1,3}[A-Za-z]*,?\s+(?i:ste|suite|apt|unit|"
    r"#)\.?\s*\w+)")
# The rest of an address a scrubber split: a unit or box line ("Apt. 367", "P.O. Box 63", "PSC 2322, Box 6025",
# "APO AE 94451") and a house number left beside a street or a street name taken for a person ("893 <PERSON_1> 83").
_ADDRESS_REST = re.compile(
    r"(?i:\bp\.?\s?o\.?\s*box\s+\d+|\b(?:rr|psc|rural\s+route|hc)\s*\d+,?\s+box\s+\d+)"
    r"|\b[AFD]PO\s+A[AEP]\s+\d{5}\b"
    r"|(?<![\w$.,/:#-])\d{1,6}(?=\s+<STREET_ADDRESS_\d+>|\s+(?:\w{1,4}\.\s+)?<PERSON_\d+>\s+\d{1,5}\b)")
# A unit is part of an address only where the scrubber found one, or took a street's name for a person
# ("<STREET_ADDRESS_1> | Apt. 367", "625 ul. <PERSON_2> 82 | Suite 527"); "unit 4417" alone locates nobody.
_UNIT = re.compile(r"(?i)\b(?:apt|apartment|suite|ste|unit)\.?\s*#?\s*\d{1,5}[A-Za-z]?\b")
_ADDRESS_OR_PERSON_FOUND = re.compile(r"<(?:STREET_ADDRESS|PERSON)_\d+>")
# A word beside what the scrubber already took for a person or a contact: one item of a list of people
# ("<PERSON_5>, Jun, and <PERSON_7>"), the rest of a name ("<PERSON_1> Makana", "Kealoha–<PERSON_2>"), whose
# phone it is ("Carolina at <PHONE_NUMBER_1>", "<PHONE_NUMBER_2> for Jean-Robert") or the name in another
# script ("<PERSON_1> (박민서)").
_PERSON = r"<PERSON_\d+>"
_CONTACT = r"<(?:PHONE_NUMBER|EMAIL_ADDRESS)_\d+>"
_NAME_WORD = r"[A-Z][\w'’]+(?:-[A-Z][\w'’]+)?"
_PERSON_AT = re.compile(_PERSON)
_BESIDE_FOUND = re.compile(
    rf"(?P<before>{_NAME_WORD})(?=(?:\s*(?:,|&|\band\b)\s*|[–-]){_PERSON}|\s+(?:at|@|:|-|–|=)?\s*{_CONTACT})"
    rf"|(?:{_PERSON}(?:\s*(?:,|&|[–-])\s*(?:and\s+)?|\s+and\s+|[ \t]+)|{_CONTACT}\s+(?:for|is)\s+)(?P<after>{_NAME_WORD})"
    rf"|{_PERSON}\s*\((?P<script>[^\x00-\x7f()]{{2,40}})\)")
# A list that holds a person: its other items are people too ("Waters, Parrish and <PERSON_1>").
_LIST_ITEM = r"(?:[A-Z][\w'’-]+|<PERSON_\d+>)"
_PEOPLE_LIST = re.compile(rf"{_LIST_ITEM}(?:(?:\s*,\s*(?:(?:and|&)\s+)?|\s+(?:and|&)\s+){_LIST_ITEM}){{1,12}}")
# A common first name before a word English hardly uses: "Alexandra Dalgety", "Sue Hague |", "By: Leah Torpy".
_FIRST_THEN_SURNAME = re.compile(r"(?<![\w'’-])(?P<first>[A-Z][a-z]+)\s+(?P<last>[A-Z][\w'’-]+)(?![\w'’-])")
# A street written name-then-number in any script ("Þverbraut 71", "Πεντέλης 210"), where the text says an
# address or a place to go follows.
_ADDRESS_TALK = re.compile(r"(?i)\b(?:address|lives?|living|located|station|meet|corner|stop|deliver|ship|mail|"
                           r"is\s+on|side\s+of)\b")
_WORD_THEN_NUMBER = re.compile(r"(?<![\w'’-])(?P<word>[^\W\d_]{3,})\s+\d{1,5}(?![\w:.,/]\d|\s*(?:am|pm|%|guests|people|"
                               r"adults|kids|ppl|pax))(?!\w)")
# A roster: lines, cells or comma items that mostly open with a person ("| <PERSON_1> - chicken | Chase - filet");
# a capitalised word opening another item is one more person, whatever else the word means.
_ROSTER_ITEM = re.compile(r"(?:^|(?<=[\n|,;:]))[^\S\n]*(?P<opening><PERSON_\d+>|[A-Z][\w'’-]+)(?=[^\S\n]*(?:[-–:]|\s[a-z]))")
# The speaker of a pasted chat or a script: "Chloe: what time?", "| Arya: see you".
_SPEAKER = re.compile(r"(?m)(?:^|\|)[^\w\n|<]*(?P<speaker>[A-Z][\w'’-]+)(?=:\s)")
# A capitalised word before a verb a person does: a name as a sentence's subject.
_PERSON_VERBS = frozenset(["is from", "was from", "had given", "lives", "lived", "shouted", "said", "says", "asked",
                           "wants", "loves", "began", "listed", "told", "called", "texted", "emailed", "turns", "turned",
                           "married", "gave", "wrote", "thinks", "knows", "feels", "needs", "prefers", "booked", "paid"])
# The person verbs first, longest first ("is from" before "is"), in a fixed order; then what things do too.
_SUBJECT = re.compile(r"(?<![\w'’-])(?P<word>[A-Z][a-z][\w'’-]*)\s+(?P<verb>"
                      + "|".join(verb.replace(" ", r"\s+") for verb in sorted(_PERSON_VERBS, key=lambda v: (-len(v), v)))
                      + r"|is|was|has|had|will|would|can|could)\b")
# Initials or a name signing off a line ("Thx, -JT", "— Beto") and initials greeted ("Hi J.T.,").
_INITIALS_OR_SIGNOFF = re.compile(r"(?m)(?:^|\s)[-–—~][ \t]*(?P<signed>[A-Z][\w.'’]*(?:[ \t]+[A-Z][\w.'’]*)?)[ \t]*$"
                                  r"|(?i:\b(?:hi|hello|hey|thanks|dear|congrats|congratulations\s+to),?\s+)"
                                  r"(?P<initials>[A-Z]\.?[A-Z]\.?)(?=[\s,!?]|\.?$)")
# A bare 3-8 digit number in a text that talks about a gate, a door or a code: what a missed code looks like.
_CODE_TALK = re.compile(r"(?i)\b(?:codes?|gate|door|lockbox|lock\s+box|keypad|alarm|combo|garage|buzzer|call\s?box|"
                        r"intercom|padlock|pin|passcode|entry|c[oó]digo|port[oó]n|puerta|cochera|clave)\b")
_BARE_NUMBER = re.compile(r"(?<![\w$/:.,#-])(?:[#*]?\d{3,8}[#*]?|\d{1,3}(?:-\d{1,3}){2,})(?![\w/:]|[.,]\d|\s*(?:am|pm|"
                          r"guests|people|adults|kids|miles|minutes|mins|hours|%|dollars|bucks))")
_NOT_A_CODE_BEFORE = re.compile(r"(?i)(?:\b(?:al|ak|az|ar|ca|co|ct|de|fl|ga|hi|id|il|in|ia|ks|ky|la|me|md|ma|mi|mn|"
                                r"ms|mo|mt|ne|nv|nh|nj|nm|ny|nc|nd|oh|ok|or|pa|ri|sc|sd|tn|tx|ut|vt|va|wa|wv|wi|wy|dc)\.?,?|"
                                r"\b(?:california|texas|nevada|oregon|arizona|washington|florida|new\s+york),?|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
                                r"|\bzip(?:\s+code)?(?:\s+is)?|\bunit|\bapt|\bsuite|\bbox|\broom|\bin|\bsince|\bof|\byear|\bfrom|"
                r"\buntil|\bby|\bclass\s+of|<STREET_ADDRESS_\d+>,?)\s*$")
# A whole date (day, month and year) 13 or more years back, in a text that talks about birth, age or ID, is
# someone's birth date even when the cue word itself was scrubbed ("my <PERSON_1> is 03/14/1988 ... its my
# bday"); an event is booked for this year or next, and a timestamp has its time after it.
_BIRTH_TALK = re.compile(r"(?i)\b(?:dob|d\.o\.b|birth\w*|born|b-?day|bday|age|aged|\d{1,3}(?:st|nd|rd|th)|id|"
                         r"licen[cs]e|dl|passport|ssn|21\+)(?!\w)")
_FULL_DATE = re.compile(
    r"(?i)(?<![\w/.-])(?:\d{1,2}[/.-]\d{1,2}[/.-](?P<year>\d{4}|\d{2})|(?P<iso>\d{4})-\d{1,2}-\d{1,2}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?P<named>\d{4})|"
    r"\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(?P<named2>\d{4}))"
    r"(?![\w/-]|\s+\d{1,2}:\d\d)")
# Letters then six or more digits, or digits and letters mixed, as one word: a licence, passport or ID number
# ("D1234567", "yo0047868", "WDL7H2K9P3XQ"); a booking reference is written with a "#" or a hyphen.
_ID_WORD = re.compile(r"(?<![\w#/@.-])(?:(?=[A-Za-z0-9]{7,15}(?![\w-]))(?=[A-Za-z0-9]*[A-Za-z])(?:[A-Za-z]{1,4}\d{6,14}|"
                      r"[A-Za-z0-9]*\d[A-Za-z]+\d[A-Za-z0-9]*)|[A-Za-z]\d{2,4}(?:-\d{1,4}){2,5})(?![\w-])")
_MARKERS = re.compile(r"(?<![\w@.])@[A-Za-z][\w.-]{2,}|(?<![\w$])\$[A-Za-z][\w-]{2,}|" + OBFUSCATED_EMAIL
                      # a payment or messaging profile link: "paypal.me/jdoe88", "venmo.com/u/Kofi", "wa.me/1555..."
                      + r"|\b(?:paypal\.me|venmo\.com|cash\.app|cash\.me|wa\.me|t\.me|m\.me|linktr\.ee)/[\w.$/-]*\w"
                      # any handle-shaped word after a payment app's name: "venmo: Thu-Trang-Pham-3", "zelle kofi_b"
                      r"|(?<=>)/[\w.$-]*\w"  # the path left after a scrubbed link: "<EMAIL_ADDRESS_1>/PaddyOSull"
                      r"|(?<=venmo|zelle)(?:\s+(?:is|to|at|me|handle|username|name))*\s*[:=-]?\s*[A-Za-z][\w.]*[-_\d][\w.-]*",
                      re.IGNORECASE)
# Words that are never a name in any rule below: function words, titles, days and months.
_EVERYDAY = STOPWORDS | TITLES | DAYS_AND_MONTHS
_MONTHS = frozenset(["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                     "november", "december"])
# Words a caterer's chat uses that no dictionary of English words holds.
_BUSINESS = frozenset(
    ["hibachi", "teppanyaki", "teriyaki", "yakitori", "gyoza", "edamame", "yum", "sake", "miso", "wasabi", "shishito", "habachi", "mahalo", "venmo", "zelle", "cashapp", "paypal", "costco", "chase", "amex", "visa", "mastercard", "discover", "stripe", "square", "kaggle", "colab", "ok", "okay", "hiya", "thx", "pls", "plz", "bbq", "hmu", "lol", "omg", "tbh", "btw", "asap", "rsvp", "fyi"]
)


def leak_recognizers():
    """Presidio's predefined recognizers for the types above, phonenumbers reading several regions."""
    import logging

    from presidio_analyzer import RecognizerRegistry

    # Presidio warns about each recognizer of another language it skips: a screenful per run.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    registry.remove_recognizer("EmailRecognizer")
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    registry.add_recognizer(PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "IN", "MX", "CA", "AU")))
    registry.add_recognizer(RegexValueRecognizer(CONTACT_MARKER, [("(?P<value>(?:" + _MARKERS.pattern + "))", 0.5)],
                                                 "ContactMarkerRecognizer", flags=re.IGNORECASE))
    return registry


@dataclass
class LeakReport:
    records_checked: int
    texts_checked: int
    leaks: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return not self.leaks

    def by_record(self) -> dict[str, list[str]]:
        """Record id -> the rules that fired in it (never the values)."""
        found: dict[str, set[str]] = defaultdict(set)
        for leak in self.leaks:
            found[leak["record"]].add(leak["entity_type"])
        return {record: sorted(types) for record, types in found.items()}


class LeakChecker:
    """Finds what scrubbed text still holds; a hit inside a placeholder or a recorded surrogate is not a leak."""

    def __init__(self, config: PiiConfig | None = None):
        from presidio_analyzer import AnalyzerEngine

        config = config or PiiConfig()
        self.keep = frozenset(word.lower() for word in config.keep_words) | _BUSINESS
        self.never_names = self.keep | _EVERYDAY  # built once: the rules below ask for every word they weigh
        analyzer = AnalyzerEngine(registry=leak_recognizers(), nlp_engine=_shared_nlp_engine(config.spacy_model),
                                  supported_languages=["en"])
        self.detector = Detector(analyzer, [*_PRESIDIO_TYPES, CONTACT_MARKER], config.leak_check.score_threshold,
                                 config.keep_words, config.batch_size)

    def findings(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, rule) of everything in one analysed text that looks like PII."""
        lexicon = name_lexicon()
        found = [(s.start, s.end, s.entity_type) for s in self.detector.spans(text)
                 if not (s.entity_type == "PERSON" and self._ordinary(text, s.start, s.end))]
        # Letters typed for digits beside digits ("606-436-22O9", "4l5 555 0123") count as those digits.
        digits_read = _LOOKALIKE_DIGIT.sub(lambda letter: "0" if letter.group() in "Oo" else "1", text)
        for match in _DIGITS.finditer(digits_read):
            value = match.group().strip()
            # a timestamp: a date, then the hour of "14:05"
            if digits_read.startswith(":", match.end()) and _NOT_PHONE_DIGITS.fullmatch(value.rsplit(" ", 1)[0]):
                continue
            if not _NOT_PHONE_DIGITS.fullmatch(value):
                found.append((match.start(), match.end(), RESIDUAL_DIGITS))
        for match in _FULL_DATE.finditer(text) if _BIRTH_TALK.search(text) else ():
            if _years_ago(match) >= 13:
                found.append((match.start(), match.end(), IDENTITY_NUMBER))
        found += [(match.start(), match.end(), IDENTITY_NUMBER) for match in _ID_WORD.finditer(text)]
        for pattern in (_SPACED_DIGITS, _SPELLED):
            found += [(match.start(), match.end(), RESIDUAL_DIGITS) for match in pattern.finditer(text)]
        if _CODE_TALK.search(text):
            for match in _BARE_NUMBER.finditer(text):
                if not _NOT_A_CODE_BEFORE.search(text[max(0, match.start() - 16) : match.start()]):
                    found.append((match.start(), match.end(), CODE_NEAR_CUE))
        found += [(match.start(), match.end(), HOUSE_NUMBER) for match in _STREET_LINE.finditer(text)
                  if not re.search(r"(?i)\b(?:guests?|people|adults?|kids|miles?|hours?|minutes?)\b", match.group())]
        found += [(match.start(), match.end(), HOUSE_NUMBER) for match in _CAPITALISED_STREET.finditer(text)]
        found += [(match.start(), match.end(), HOUSE_NUMBER) for match in _ADDRESS_REST.finditer(text)]
        if _ADDRESS_OR_PERSON_FOUND.search(text):
            found += [(match.start(), match.end(), HOUSE_NUMBER) for match in _UNIT.finditer(text)]
        for match in _HOUSE_NUMBER.finditer(text):
            word = match.group("word").lower()
            # "429 Too Many Requests": a common English word after a number is no street name.
            if (word not in _NOT_AFTER_HOUSE_NUMBER and word not in DAYS_AND_MONTHS and word not in self.keep
                    and _zipf(word) < 4.0):
                found.append((match.start(), match.end(), HOUSE_NUMBER))
        for start, end, word in words_of(text):
            if self._name_like(text, start, word):
                found.append((start, end, NAME_LIKE_WORD))
        for match in _BESIDE_FOUND.finditer(text):
            group = next(name for name in ("before", "after", "script") if match.group(name))
            if group == "script" or self._a_name_word(text, match.start(group), match.group(group),
                                                      rare_is_enough=_PERSON_AT.search(match.group()) is not None):
                found.append((match.start(group), match.end(group), NAME_LIKE_WORD))
        for match in _PEOPLE_LIST.finditer(text):
            # two items and no "and" may be a greeting: "Talofa, <PERSON_4>!"
            items = len(re.findall(_LIST_ITEM, match.group()))
            if _PERSON_AT.search(match.group()) and (items > 2 or re.search(r"\b(?:and|&)\s", match.group())):
                for item in re.finditer(r"[A-Z][\w'’-]+", match.group()):
                    start = match.start() + item.start()
                    if text[start - 1 : start] != "<" and self._a_name_word(text, start, item.group(), rare_is_enough=True):
                        found.append((start, start + len(item.group()), NAME_LIKE_WORD))
        openings = [(match.start("opening"), match.group("opening")) for match in _ROSTER_ITEM.finditer(text)]
        if sum(opening.startswith("<PERSON_") for _, opening in openings) >= 2:
            for start, opening in openings:
                lower = opening.lower()
                if not opening.startswith("<") and lower not in self.never_names and lower not in NOT_NAMES \
                        and not re.fullmatch(_RELATIVE, lower) and lower not in places() - lexicon.top:
                    found.append((start, start + len(opening), NAME_LIKE_WORD))
        for match in _SPEAKER.finditer(text):
            word = match.group("speaker").lower()
            if ((word in lexicon.top or lexicon.is_name(word) and _zipf(word) < 3.0)
                    and word not in self.never_names and word not in COMMON_WORDS_THAT_ARE_NAMES
                    and word not in NOT_NAMES and len(word) > 2):
                found.append((*match.span("speaker"), NAME_LIKE_WORD))
        for match in _FIRST_THEN_SURNAME.finditer(text):
            if self._first_then_surname(text, match):
                found.append((*match.span(), NAME_LIKE_WORD))
        if _ADDRESS_TALK.search(text):
            for match in _WORD_THEN_NUMBER.finditer(text):
                word = match.group("word")
                if ((word[0].isupper() or not word.isascii()) and word.lower() not in self.never_names
                        and word.lower() not in _NOT_AFTER_HOUSE_NUMBER and _zipf(word) < 3.0
                        and word.lower() not in places() and not re.fullmatch(r"\d{4}", match.group().split()[-1])):
                    found.append((*match.span(), HOUSE_NUMBER))
        for match in _SUBJECT.finditer(text):
            verb = " ".join(match.group("verb").lower().split())
            if self._named_subject(text, match.start("word"), match.group("word"), verb):
                found.append((*match.span("word"), NAME_LIKE_WORD))
        for match in _INITIALS_OR_SIGNOFF.finditer(text):
            group = "signed" if match.group("signed") else "initials"
            words = match.group(group).replace(".", " ").split()
            if not any(word.lower() in self.never_names for word in words):
                found.append((match.start(group), match.end(group), NAME_LIKE_WORD))
        for match in _ADDRESSED.finditer(text):
            group = next(name for name in ("word", "named", "called", "owner", "hailed", "lower", "honoured", "scripted")
                         if match.group(name))
            word = match.group(group)
            last = word.split()[-1]
            if (group in ("honoured", "scripted") and word.split()[0].lower() not in self.never_names
                    or group in ("hailed", "word") and self._rare_word_hailed(text, *match.span(group))):
                found.append((*match.span(group), NAME_LIKE_WORD))
            elif group == "hailed":
                if lexicon.is_name(word) and _zipf(word) < 5.0:
                    found.append((*match.span(group), NAME_LIKE_WORD))
            elif group == "lower":
                lower = word.split("'")[0].split("’")[0]
                if lower in lexicon.top and _zipf(lower) < 4.5 and lower not in self.never_names and lower not in NOT_NAMES:
                    found.append((*match.span(group), NAME_LIKE_WORD))
            elif group in ("called", "owner"):
                relative = group == "owner" and re.fullmatch(_RELATIVE + "|mommy|daddy|mama|papa|nana|abuela|lola",
                                                              word.lower())
                if not relative and word.lower() not in _EVERYDAY and word.lower() not in _BUSINESS and not in_place_context(
                        text, *match.span(group)) and (group == "called" or word.lower() not in self.keep):
                    found.append((*match.span(group), NAME_LIKE_WORD))
            elif group == "named" and word.lower() not in self.keep | TITLES or (
                    (lexicon.is_name(last, allow_ordinary=True) or last.isupper()) and last.lower() not in self.keep
                    and (_zipf(last) < 4.5 or last.lower() in lexicon.top)
                    and last.lower() not in _EVERYDAY) or group == "word" and word.lower() in _MONTHS:
                # (nobody greets a month: "Hi June!" is someone)
                found.append((match.start(group), match.end(group), NAME_LIKE_WORD))
        return list(dict.fromkeys(found))  # one finding per span and rule, however many rules saw it

    def _rare_word_hailed(self, text: str, start: int, end: int) -> bool:
        """Greeted, thanked or hailed, a word English hardly uses is a name, on a name list or not
        ("Hi Ji-woo,", "Mālō e lelei, Sione!"), unless it is a place or a business word."""
        if _ROMANISED_GIVEN_NAME.fullmatch(text[start:end]):
            return True
        parts = [part.lower() for part in re.split(r"[\s'’-]+", text[start:end]) if part]
        return (_zipf(text[start:end]) < 3.0 and not any(part in self.never_names for part in parts)
                and not all(part in places() for part in parts) and not is_place_or_thing(text, start, end))

    def _ordinary(self, text: str, start: int, end: int) -> bool:
        """A spaCy person made of words English, places or the business explain ("Perfect", "Sounds
        Good"); a common first name is no such word ("James", "Stephanie": frequent, yet only names),
        unless the words around make the span a place or a thing ("Dixon CA", "Apple Pay")."""
        words = [word for _, _, word in words_of(PLACEHOLDER.sub(" ", text[start:end]))]
        top_names = name_lexicon().top
        only_a_name = (lambda word: len(word) > 2 and word.lower() in top_names
                       and word.lower() not in COMMON_WORDS_THAT_ARE_NAMES and word.lower() not in NOT_NAMES)
        if any(only_a_name(word) for word in words) and is_place_or_thing(text, start, end):
            return True
        return not words or all(word.lower() in self.keep or word.lower() in places() or _a_typo(word)
                                or _zipf(word) >= 3.5 and not only_a_name(word) for word in words)

    def _a_name_word(self, text: str, start: int, word: str, rare_is_enough: bool) -> bool:
        """Beside a person or a contact, a word is a name if a name list has it (or, beside a person, English
        lacks it), and no place or everyday word explains it ("Rod", "Makana", "Jean-Robert"; not "Sunday",
        "Fresno", "Thanks", nor a typo before a phone: "Phne")."""
        parts = word.lower().split("-")
        if any(part in self.never_names for part in parts) or word.isupper():
            return False
        lexicon = name_lexicon()
        if _part_of_a_place(text, start, word) or in_place_context(text, start, start + len(word)) or (
                word.lower() in places() and word.lower() not in lexicon.top):
            return False
        return all(part in lexicon.top or (lexicon.is_name(part) and _zipf(part) < 4.5)
                   or (rare_is_enough and _zipf(part) < 3.0) for part in parts)

    def _first_then_surname(self, text: str, match: re.Match) -> bool:
        first, last = match.group("first").lower(), match.group("last").lower()
        if first in NOT_NAMES or first in self.never_names or len(first) < 3:
            return False
        # "Sierra Whitfield", "Park Min-jun": a first name that is also a word needs a surname English never uses
        if first in COMMON_WORDS_THAT_ARE_NAMES or first not in name_lexicon().top:
            return (first in COMMON_WORDS_THAT_ARE_NAMES and (_zipf(last) < 2.5 and last not in places()
                                                              or _ROMANISED_GIVEN_NAME.fullmatch(match.group("last"))))
        # a surname may be a village somewhere ("Abakumova", "Ulvik"); only a known city rules it out
        return (_zipf(last) < 3.0 and last not in self.never_names and last not in big_places()
                and not is_place_or_thing(text, *match.span()) and not _part_of_a_place(text, match.start(), match.group("first")))

    def _named_subject(self, text: str, start: int, word: str, verb: str) -> bool:
        """A name doing something: "Marcel shouted at", "Miki lives on", "We hope Will has a great 50th".
        At a sentence's start the word must be a rare-in-English name; mid-sentence a name that is also a
        word ("Will", "Hope") counts too, unless an article or a preposition makes it a thing or a place."""
        lower = word.lower()
        if lower in self.keep or lower in _EVERYDAY or len(word) < 3:
            return False
        # Only people live, shout or turn 90: "Florence turns 90", "Musliyevich lives at", whatever lists hold.
        person_verb = verb in _PERSON_VERBS
        lexicon = name_lexicon()
        if not (lower in lexicon.top or lexicon.is_name(word, allow_ordinary=True) or person_verb and _zipf(word) < 2.5):
            return False
        if (lower in places() or lower in big_places()) and not person_verb or _part_of_a_place(text, start, word):
            return False
        if _opens_sentence(text, start):
            return _zipf(word) < 4.0 and lower not in COMMON_WORDS_THAT_ARE_NAMES and lower not in NOT_NAMES
        # "St. Patrick's Day is", "San Jose has": the word ends a longer proper name
        return not re.search(r"(?i:\b(?:the|a|an|this|that|our|your|my|his|her|their|its|in|at|to|from|of|on|"
                             r"near|by))\s+$" + ("" if person_verb else r"|[A-Z][\w'’.]*\s+$"), text[:start])

    def _name_like(self, text: str, start: int, word: str) -> bool:
        """A capitalised word mid-sentence that no English, place or business list explains."""
        if not word[:1].isupper() or len(word) < 3 or word.isupper():
            return False
        if _opens_sentence(text, start):
            return False
        lower = word.lower()
        if lower in self.keep or lower in DAYS_AND_MONTHS or lower in NOT_NAMES or lower in TITLES:
            return False
        # A typo ("Plase") is no leak: the word must be someone's name somewhere. A country's top-300
        # name ("Tanya", a small town too) is a name mid-sentence however often it is written, unless it is a
        # city ("Paris", "Austin") or the words around it make it a town ("in Tracy", "Tracy, CA").
        lexicon = name_lexicon()
        if _part_of_a_place(text, start, word):
            return False
        if lower in lexicon.top:
            return lower not in big_places() and not in_place_context(text, start, start + len(word))
        return lower not in places() and _zipf(word) < 3.0 and lexicon.is_name(word)

    def check(self, records: Iterable[tuple[str, str, str, list[tuple[int, int]]]]) -> LeakReport:
        """``records``: (record id, field, text, spans known to be surrogates) per text."""
        records = list(records)
        self.detector.detect((text for _, _, text, _ in records), description="checking for leaks")
        leaks = []
        for record, field_path, text, surrogates in records:
            protected = surrogates + [match.span() for match in PLACEHOLDER.finditer(text)]
            for start, end, rule in self.findings(text):
                if any(start < s_end and s_start < end for s_start, s_end in protected):
                    continue
                leaks.append({"record": record, "field": field_path, "entity_type": rule})
        return LeakReport(len({record for record, *_ in records}), len(records), leaks)

    def check_turns(self, table: datasets.Dataset | pa.Table) -> LeakReport:
        return self.check(_turn_texts(table))


_TRAILING_SYMBOLS = re.compile(r"(?:\s|[\u2190-\u2bff\u2600-\u27bf\ufe0f\u200d\U0001f000-\U0001faff])*$")


def _opens_sentence(text: str, start: int) -> bool:
    # An emoji after a sentence's end does not hide it: "Morning! ☀️ How can I help?"
    before = _TRAILING_SYMBOLS.sub("", text[:start])
    return not before or before[-1] in ".!?:;\n\"“(<>-–—*•|" or before.endswith(("_", "\\n"))


def _years_ago(date: re.Match) -> int:
    """How many years before this one a date of ``_FULL_DATE`` lies ("7-2-91": 1991)."""
    this_year = datetime.date.today().year
    year = int(next(group for group in date.group("year", "iso", "named", "named2") if group))
    if year < 100:
        year += 2000 if year <= this_year % 100 else 1900
    return this_year - year


def _a_typo(word: str) -> bool:
    """A lower-case word one slip away from a very common one ("pohne", "phonne", "plese"): spaCy
    tags such typos as people, most often beside a value, and a customer's name is rarely written
    so. Common first names are never typos ("jon" is not "join")."""
    if not word.islower() or len(word) < 4 or word in name_lexicon().top:
        return False
    letters = "abcdefghijklmnopqrstuvwxyz"
    slips = {word[:i] + word[i + 1:] for i in range(len(word))}
    slips |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)}
    slips |= {word[:i] + letter + word[i:] for i in range(len(word) + 1) for letter in letters}
    return any(_zipf(slip) >= 5.0 for slip in slips - {word})


def _part_of_a_place(text: str, start: int, word: str) -> bool:
    """"San" and "Jose" of "San Jose", "Los" and "Gatos" of "Los Gatos"."""
    previous = re.search(r"([^\W\d_]+)\s+$", text[:start])
    following = re.match(r"\s+([^\W\d_]+)", text[start + len(word) :])
    return bool(previous and f"{previous.group(1)} {word}".lower() in places()
                or following and f"{word} {following.group(1)}".lower() in places())


def _turn_texts(table: datasets.Dataset | pa.Table) -> Iterator[tuple[str, str, str, list[tuple[int, int]]]]:
    for turn in traffic.iter_objects(table):
        record = f"{turn['conversation_id']}/{turn['turn_index']}"
        surrogates = defaultdict(list)
        for item in (turn.get("scrub") or {}).get("surrogates", []):
            surrogates[item["field"]].append((item["start"], item["end"]))
        for slot in turn_slots(turn):
            if slot.text and slot.path != "scrub" and not slot.path.startswith("scrub/"):
                yield record, slot.path, slot.text, surrogates.get(slot.path, [])


def leak_gate(table: datasets.Dataset | pa.Table, what: str, config: PiiConfig | None = None) -> LeakReport:
    """Raise :class:`BadInput` naming records and rules if anything is left; used before any write."""
    report = LeakChecker(config).check_turns(table)
    if not report.passed:
        raise BadInput(f"{what}: PII leak check failed, nothing written: {describe_leaks(report)}")
    return report


def describe_leaks(report: LeakReport, limit: int = 10) -> str:
    records = report.by_record()
    listed = "; ".join(f"{record}: {', '.join(types)}" for record, types in list(records.items())[:limit])
    more = f" (and {len(records) - limit} more)" if len(records) > limit else ""
    return f"{len(report.leaks)} finding(s) in {len(records)} record(s): {listed}{more}"
