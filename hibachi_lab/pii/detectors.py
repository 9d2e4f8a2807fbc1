"""Presidio recognizers for the structured PII in a hibachi caterer's customer chat.

Presidio has no street-address, gate-code, payment-handle, date-of-birth or licence recognizer,
matches cards only in a few shapes and phones only through ``phonenumbers`` for the regions it is
told. These recognizers fill the gaps; :mod:`hibachi_lab.pii.scrub` wires them (and the name
recognizers of :mod:`hibachi_lab.pii.names`) into one analyzer. Each pattern finds a ``value``
group, so the cue words around it ("gate code is") stay in the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer

STREET_ADDRESS = "STREET_ADDRESS"
ACCESS_CODE = "ACCESS_CODE"
PAYMENT_HANDLE = "PAYMENT_HANDLE"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
DRIVER_LICENSE = "DRIVER_LICENSE"


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
    "street|st|avenue|ave|av|boulevard|blvd|road|rd|drive|dr|lane|ln|court|ct|way|wy|place|pl|circle|cir|terrace|bay|"
    "ter|parkway|pkwy|highway|hwy|trail|trl|tr|square|sq|loop|alley|aly|plaza|plz|crescent|cres|row|run|path|pike|"
    "expressway|expy|freeway|fwy|real|alameda|center|ctr|point|pt|crossing|xing|commons|landing|ridge|heights|hts|"
    "close|cove|cv|glen|grove|grv|hollow|holw|knoll|meadow|meadows|mews|oval|park|pass|pointe|ramp|spur|summit|"
    "trace|trce|turnpike|tpke|view|vista|walk|bend|bluff|brook|creek|crest|estates|farm|field|fields|forest|garden|"
    "gardens|gate|harbor|hill|hills|island|isle|junction|jct|lake|lakes|manor|mill|mount|mountain|orchard|pines|"
    "port|prairie|ranch|shore|shores|spring|springs|station|terr|valley|village|woods|broadway"
)
_UNIT = r"(?:,?\s*(?:apt\.?|apartment|unit|suite|ste\.?|bldg\.?|building|fl\.?|floor|room|rm\.?|lot|space|spc|#)\s*#?\s*[a-z0-9-]{1,6}\b)"
_DIRECTION = r"(?:n|s|e|w|ne|nw|se|sw|north|south|east|west|northeast|northwest|southeast|southwest)\.?"
# A house number: "88", "108-15" (Queens), "1806 1/2", "W5630" (Wisconsin rural), "12b".
_SPELLED_NUMBER = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|"
                   r"seventy|eighty|ninety|hundred)")
# spelled ("four twenty two Elm Street", voice-to-text) or with a letter ("3417-A").
_NUMBER = (r"(?<![\w$.,/:-])(?:[nsew]\d{2,6}|\d{1,6}(?:-\d{1,4})?(?:-?[a-z])?(?:\s+1/2)?|"
           + _SPELLED_NUMBER + r"(?:[\s-]+" + _SPELLED_NUMBER + r"){0,3})")
_NAME_WORD = r"(?:\d{1,4}(?:st|nd|rd|th)|[^\W\d_][\w'’.-]*)"
_STREET = (
    r"(?:\d{1,6}\s+)?" + _NUMBER + r"\s+(?:" + _DIRECTION + r"\s+)?(?:" + _NAME_WORD + r"\s+){0,3}" + _NAME_WORD + r"\s+(?:" + _SUFFIXES
    + r")\b\.?(?:\s+" + _DIRECTION + r"(?![\w]))?" + _UNIT + r"?"
)
# Roads named by number or letter: "16020 Hwy 49", "W5630 County Rd K", "1200 FM 1960", "2844 S 2300 E".
_NUMBERED_ROAD = (
    _NUMBER + r"\s+(?:(?:us|u\.s\.|state|county|co\.?|farm\s+to\s+market|fm|ranch\s+road|rr|cr|sr|hwy|highway|"
    r"route|rte|road|rd|old|interstate)\s*)+(?:[a-z]{1,2}\b|\d{1,4}[a-z]?\b)" + _UNIT + r"?"
)
_GRID = _NUMBER + r"\s+" + _DIRECTION + r"\s+\d{1,5}\s+" + _DIRECTION + r"(?![\w])" + _UNIT + r"?"
_BOXES = (
    r"(?<![\w])(?:\d{1,6}[ \t]+)?(?:p\.?\s?o\.?\s*box|post\s+office\s+box|(?:rr|rural\s+route|hc|psc|unit|cmr)\s*\d{1,5},?\s+box"
    r")\s*#?\s*\d{1,6}"
)
# Street names that come before or without a suffix: "4410 Calle Del Sol", "3317 Vista Verde", "Via Roma 12".
_FOREIGN_STREET_WORDS = r"(?:calle|camino|avenida|via|vía|viale|paseo|rua|rue|vista|placita|corte|entrada|strada|corso|piazza|carrer|ulica|ul\.|plaza|circulo|calzada|allee|chemin)"
_NUMBER_FIRST_FOREIGN = _NUMBER + r"\s+" + _FOREIGN_STREET_WORDS + r"(?:\s+(?:de|del|la|las|los|el|di|da|do|dos)?\s*[^\W\d_][\w'’.-]*){1,3}" + _UNIT + r"?"
# Europe and Latin America put the number after the name: "324 Helmstok 174", "on Brekkustíg 80", "Rua Arapiraca 1943".
_NAME_THEN_NUMBER = (  # within one line
    r"(?:(?<![\w$.,/:-])\d{1,6}[ \t]+|(?<=\bon\s)|(?<=\bat\s)|(?<=\bof\s)|(?<=address:\s)|(?<=address\s)|(?<=^)|(?<=\n))"
    r"(?:[^\W\d_][\w'’.-]*[ \t]+){0,2}[^\W\d_a-z][\w'’.-]{3,}[ \t]+\d{1,5}[a-z]?(?![\w/:.,]\d|\w)"
)
_NAME_FIRST_FOREIGN = (
    r"(?<![\w])(?:" + _FOREIGN_STREET_WORDS + r"(?:\s+(?:de|del|la|las|los|el|di|da|do|dos|della|delle))?"
    r"(?:\s+[^\W\d_][\w'’.-]*){1,3}|[^\W\d_]+(?:straße|strasse|gasse|weg|vej|gade|gatan|vägen|veien|laan|straat|"
    r"plein|gracht|ská|ová|ského|utca|katu|tie|ulица))\s+\d{1,4}[a-z]?\b" + _UNIT + r"?"
)
_STATES = (
    "al|ak|az|ar|ca|co|ct|de|fl|ga|hi|id|il|in|ia|ks|ky|la|me|md|ma|mi|mn|ms|mo|mt|ne|nv|nh|nj|nm|ny|nc|nd|oh|ok|"
    "or|pa|ri|sc|sd|tn|tx|ut|vt|va|wa|wv|wi|wy|dc|california|nevada|oregon|arizona|texas|washington"
)
_LOCALITY = r"(?:,?\s+(?:[a-z][a-z.'-]*\s+){0,2}?[a-z][a-z.'-]*,?\s+(?:" + _STATES + r")\b(?:\s+\d{5}(?:-\d{4})?)?)"
# After "I live at", "address is", "deliver to": a number and capitalised words are an address even
# without a suffix ("77 Lakeview", "One Kearny Plaza").
_ADDRESS_CUE = r"(?i:address(?:\s+is)?:?|live\s+at|lives\s+at|living\s+at|located\s+at|house\s+is\s+at|home\s+is\s+at|deliver(?:y)?\s+to|come\s+to|send\s+(?:it|the\s+chef)\s+to|we'?re\s+at|i'?m\s+at|it'?s\s+at|party\s+(?:is\s+)?at|event\s+(?:is\s+)?at|at\s+our\s+place,?|our\s+place\s+(?:is\s+)?at|ship\s+to)"
_NUMBER_WORDS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|hundred)"
_CUED_STREET = (
    _ADDRESS_CUE + r"\s+(?P<value>(?:\d{1,6}(?:-\d{1,4})?[A-Za-z]?(?:\s+1/2)?|(?i:" + _NUMBER_WORDS + r"))"
    # up to three name words (no state code, no street word), then at most one street word: "77 Lakeview",
    # "7170 Lincoln Dr" (not "7170 Lincoln Dr Modesto CA")
    r"(?:\s+(?!(?i:" + _SUFFIXES + r")\b)(?![A-Z]{2}\b)(?:[NSEW]\.?|[A-Z][\w'’.-]*|\d{1,4}(?:st|nd|rd|th)|de|del|la|las|los|el)){1,3}"
    r"(?:\s+(?i:" + _SUFFIXES + r")\b\.?)?" + _UNIT + r"?)"
)
# Words that never sit between a house number and a street suffix ("12 more guests way before").
_NOT_STREET_WORDS = frozenset(
    ["guests", "guest", "people", "adults", "adult", "kids", "children", "persons", "miles", "mile", "hours", "hour", "minutes", "mins", "dollars", "bucks", "more", "less", "of", "us", "we", "you", "i", "my", "our", "your", "and", "or", "to", "for", "at", "on", "in", "by", "with", "from", "is", "are", "was", "be", "it", "pm", "am", "plates", "trays", "pounds", "lbs", "min", "years", "year", "days", "day", "weeks", "week", "months", "month", "times", "people's", "tables", "chairs", "percent", "per", "ppl", "pax", "folks", "kids'", "adults'"]
)


# Street-type words that other languages write in lower case after the name: "Luige tee 56", "Vidkuns gate 71".
_LOWER_STREET_TYPES = (r"(?:tee|põik|puiestee|kapu|utca|út|útja|tér|köz|gate|gata|gatan|vei|veien|veg|vegen|vej|gade|väg|vägen|"
                       r"tie|katu|polku|kuja|weg|straße|strasse|gasse|laan|straat|steeg|plein|ulica|cesta|iela|gatve|"
                       r"sokak|sokağı|caddesi|utcа|rua|rue|calle|via|avenida)")
_PARTICLE = r"(?:t|'t|à|a|de|del|la|le|las|los|da|do|das|dos|di|van|von|der|den|ter|aan|op|am|an|im|in|'s)"
_CAP = r"[^\W\d_a-z][\w'’.-]*"
# A name, then a house number, within one line, with an optional number before ("994 Csabai kapu 60", "021 Kase põik 91").
_FOREIGN_NAME_NUMBER = (
    r"(?<![\w$.,/:-])(?:\d{1,6}[ \t]+)?" + _CAP + r"(?:[ \t]+(?:" + _CAP + r"|" + _PARTICLE + r"))*?[ \t]+"
    + _LOWER_STREET_TYPES + r"[ \t]+\d{1,5}[a-z]?(?![\w/:.,]\d|\w)"
)
# A street named without a number is no address ("we live off Grant Line Rd": the caterer needs it for the
# travel fee), except at a corner, which pins a home down: "the corner of Kessler Ave and Ridge Rd".
# Capitalised, case-sensitive; the street word is capitalised too.
_STREET_WORD = (
    r"(?:Street|St\.|Avenue|Ave\.?|Road|Rd\.?|Drive|Dr\.|Boulevard|Blvd\.?|Lane|Ln\.?|Court|Ct\.?|Place|Pl\.|"
    r"Terrace|Parkway|Pkwy\.?|Highway|Hwy\.?|Circle|Cir\.?|Crescent|Square|Plaza|Causeway|Alley|Row|Trail|Pike|Way)"
)
_UNNUMBERED = r"(?:" + _CAP + r"[ \t]+){1,3}" + _STREET_WORD + r"(?![\w])"
_CORNER = r"(?i:corner\s+of|intersection\s+of|cross\s+streets?\s+(?:are|is)?:?)\s+(?:the\s+)?"
_CORNER_STREETS = [_CORNER + r"(?P<value>" + _UNNUMBERED + r")",
                   _CORNER + r"[^\n]{3,60}?\s(?:and|&)\s+(?P<value>" + _UNNUMBERED + r")"]
# Ships and military post: "USNS Comfort\nFPO AE 09599", "USS Nimitz".
_MILITARY = (r"(?P<value>(?:USNS|USNV|USS|USCGC)[ \t]+" + _CAP + r"(?:[ \t]*\n?[ \t]*(?:FPO|APO|DPO)[ \t]+(?:AA|AE|AP)"
             r"(?:[ \t]+\d{5})?)?|(?<![\w])(?:FPO|APO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+\d{5})")
# "Grazer Ring 10 street": a name and a number that a lower-case "street" follows.
_NAME_NUMBER_STREET = r"(?P<value>(?:" + _CAP + r"[ \t]+){1,3}\d{1,5}[a-z]?)(?=[ \t]+(?:street|st\.?|road|avenue)\b)"


def street_address_recognizer(include_locality: bool) -> RegexValueRecognizer:
    """US street lines in their many shapes (and foreign ones); the city, state and ZIP only when asked."""
    locality = _LOCALITY + "?" if include_locality else ""
    patterns = [
        ("(?P<value>" + _STREET + locality + ")", 0.7),
        ("(?P<value>" + _NUMBERED_ROAD + ")", 0.7),
        ("(?P<value>" + _GRID + ")", 0.7),
        ("(?P<value>" + _BOXES + ")", 0.7),
        ("(?P<value>" + _NUMBER_FIRST_FOREIGN + ")", 0.65),
        ("(?P<value>" + _NAME_FIRST_FOREIGN + ")", 0.6),
        (r"(?P<value>" + _NUMBER + r"\s+(?:el\s+camino\s+real|the\s+alameda|broadway|the\s+strand)\b" + _UNIT + "?)", 0.7),
        (r"(?<![\w])(?P<value>(?:apt\.?|apartment|suite|ste\.?|unit)\s*#?\s*\d[\w-]{0,5})\b", 0.5),
    ]
    recognizer = RegexValueRecognizer(STREET_ADDRESS, patterns, "StreetAddressRecognizer", _looks_like_street,
                                      re.IGNORECASE)
    # The cued pattern reads capitalisation, so it is compiled without IGNORECASE; so do the others below.
    recognizer.patterns.append((re.compile(_CUED_STREET), 0.6))
    recognizer.patterns += [(re.compile("(?P<value>" + _FOREIGN_NAME_NUMBER + ")"), 0.6),
                            *((re.compile(pattern), 0.55) for pattern in _CORNER_STREETS), (re.compile(_MILITARY), 0.7),
                            (re.compile(_NAME_NUMBER_STREET), 0.55)]
    return recognizer


def name_then_number_street_recognizer() -> RegexValueRecognizer:
    """Streets written name first, number after ("Brekkustíg 80", "324 Helmstok 174"): capitalised, case-sensitive."""
    return RegexValueRecognizer(STREET_ADDRESS, [("(?P<value>" + _NAME_THEN_NUMBER + ")", 0.55)],
                                "NameThenNumberStreetRecognizer", _street_name_then_number)


def _street_name_then_number(value: str) -> bool:
    """"Order 4111" or "Table 12" is no street: the name before the number must be no English word."""
    from hibachi_lab.pii.names import _zipf

    words = [word.strip(".,") for word in value.split()]
    return _looks_like_street(value) and all(_zipf(word.replace("’", "'")) < 3.5 for word in words[:-1]
                                             if not word.isdigit() and not re.fullmatch(_PARTICLE, word))


def _looks_like_street(value: str) -> bool:
    words = [word.lower().strip(".,") for word in value.split()]
    if len(words) < 2:
        return False
    from hibachi_lab.pii.names import DAYS_AND_MONTHS, STOPWORDS

    if any(word in _NOT_STREET_WORDS or word in DAYS_AND_MONTHS for word in words[1:-1]):
        return False
    return words[-1] not in ("pm", "am") and words[0] not in STOPWORDS | DAYS_AND_MONTHS


# --------------------------------------------------------------------------- gate, door and alarm codes

_CODE_CUES = (
    r"(?<![\w-])(?:gate|door|front\s+door|back\s+door|side\s+door|garage(?:\s+door)?|lock\s?box|key\s?box|alarm|entry|access|"
    r"keypad|key\s+pad|building|buzzer|call\s?box|intercom|elevator|padlock|lock|combo|combination|community|complex|"
    r"side\s+gate|pool\s+gate|gate\s+pw|wifi|wi-fi|security|disarm|arm|buzz|c[oó]digo|port[oó]n|puerta|cochera|clave)\b"
)
_SPELLED_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
# 3 to 8 digits, with separators ("7-3-1-9", "0 4 4 2", "22-18-07", "7*7*2*1"), '#'/'*' as part of the code, or spelled out.
_CODE = (
    r"(?P<value>(?:(?:star|pound|hash)\s+)?[#*]?\d(?:[ *-]?\d){2,7}(?:\s?[#*]|\s+(?:star|pound))?(?![\d*#])|[#*]\d{3,8}[#*]?|"
    r"\d{1,4}[*#]\d{1,4}[*#]?|[a-z]?\d{3,6}[a-z]?(?![\w])|"
    + _SPELLED_DIGIT + r"(?:[\s,-]+" + _SPELLED_DIGIT + r"){2,7})(?![\d/:.,]\d)"
    r"(?!\s*(?:am|pm|a\.m|p\.m|%))"
)
_CODE_VERBS = r"(?:is|was|will\s+be|should\s+be|is\s+set\s+to|=|:|-|,|reads|of|es|y\s+el\s+de\s+la\s+\w+)"


def access_code_recognizer() -> RegexValueRecognizer:
    patterns = [
        # "gate code is 1234", "lockbox: four one one six", "the alarm pin 2468#", "gate 4321", "combo 22-18-07"
        (_CODE_CUES + r"(?:\s+(?:code|pin|combo|combination|passcode|password|pw|number|no\.?|#|c[a-z]{1,4}))?\s*"
         + _CODE_VERBS + r"?\s*\(?\s*" + _CODE, 0.8),
        # "code to the gate is 1234", "the code for the lockbox: 5678"
        (r"(?:code|pin|combo|combination|passcode|password)\s+(?:to|for|of|on)\s+(?:the\s+)?(?:\w+\s+)?" + _CODE_CUES
         + r"\s*" + _CODE_VERBS + r"?\s*\(?\s*" + _CODE, 0.8),
        # "code is 1234" / "the code 1234" / "pin: 5530" with no place named: still a code to a home here
        (r"(?<!zip\s)(?<!postal\s)(?<!area\s)(?<!promo\s)(?<!coupon\s)(?<!discount\s)(?<!confirmation\s)\b"
         r"(?:code|pin|passcode|password|combo)\s*" + _CODE_VERBS + r"?\s*\(?\s*" + _CODE, 0.6),
        # no cue word: "punch 7719 into the keypad", "key in 5150 and hold #", "enter 0317 at the gate"
        (r"\b(?:punch(?:\s+in)?|key\s+in|type\s+in|enter|dial|press|hit)\s+" + _CODE
         + r"(?=\s+(?:into|on|at|in|and|then|to|for)\b|\s*[,.;!)]|$)", 0.6),
        # a code in brackets after a place word earlier in the sentence: "the lockbox by the door (0317)"
        (_CODE_CUES + r"\b[^.!?\n\d]{0,40}\(\s*" + _CODE + r"\s*\)", 0.6),
        # a number later in a sentence about codes: "they changed the codes. old one was 1234, new one is 5 6 7 8 #"
        (r"\b(?:codes?|combos?|pins?|passcodes?)\b[^!?\n]{0,60}?\b(?:old|new|current|updated|now|one)\s+(?:one\s+)?"
         + _CODE_VERBS + r"?\s*" + _CODE, 0.55),
        # digits keyed one by one ("0 4 4 9", "7-3-1-9"): a code, whatever the sentence says
        (r"(?<![\w$.,/:-])(?P<value>[#*]?\d(?:[ -]\d){3,7}(?:\s?[#*])?)(?![\w]|[ -]\d)", 0.55),
    ]
    return RegexValueRecognizer(ACCESS_CODE, patterns, "AccessCodeRecognizer", _not_a_time_or_price, flags=re.IGNORECASE)


def _not_a_time_or_price(value: str) -> bool:
    return not re.fullmatch(r"(?:19|20)\d\d-\d\d(?:-\d\d)?", value)


# --------------------------------------------------------------------------- phones

# US numbers in every common format: dots, spaces, dashes, slashes, +1 / 1- / 1., parentheses, extensions.
_US_PHONE = (
    r"(?<![\w+])(?P<value>(?:\+?1[\s.-]?)?(?:\(\s*[2-9]\d{2}\s*\)|[2-9]\d{2})(?:[ \t]?[./-][ \t]?|[ \t]{1,2}|)[2-9]\d{2}"
    r"(?:[ \t]?[.-][ \t]?|[ \t]|)\d{4}"
    r"(?:\s*(?:x|ext\.?|extension|#)\s*\d{1,5})?)(?!\d|-\d)"
)
# International: "+234 803 555 0142", "+86 138-0013-8000", "+44 (0)20 7946 0958", "0044 20 7946 0958".
_INTERNATIONAL_PHONE = (
    r"(?<![\w+])(?P<value>(?:\+|00)\s?[1-9]\d{0,2}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?:\s*(?:x|ext\.?)\s*\d{1,5})?)(?![\d])"
)
# Any other run of 7 to 15 digits written like a phone ("06-82237745", "730 064 218", "(07700)553419").
# (within one line: a postal code above a phone is no part of it)
# (a period then a space ends a sentence: "Long Beach 90802. 50 ppl" is a ZIP and a count)
_DIGIT_RUN = r"(?<![\w+.$/:,-])(?P<value>\(?\d{2,5}\)?(?:(?:[ \t]?-[ \t]?|[ \t]{1,2}|\.|-{2}|)\d{2,5}){1,4})(?![\w/:]|[.,]\d)"
_SPELLED_PHONE = (
    r"(?i)(?<![\w])(?P<value>(?:\d{3}[\s.-]+)?" + _SPELLED_DIGIT + r"(?:[\s,.-]+(?:" + _SPELLED_DIGIT
    + r"|double\s+" + _SPELLED_DIGIT + r")){3,12})(?![\w])"
)


# Six digits in pairs are a short local number (some countries' landlines) only beside a phone word:
# "call 48 21 07", "52 90 33 office".
_SHORT_PHONES = [
    (r"\b(?:call|text|ring|reach|phone|tel|mobile|cell|number|registered)\b[^\d\n]{0,20}?"
     r"(?P<value>\d{2}[ .-]\d{2}[ .-]\d{2})(?![\w/:]|[.,-]\d)"),
    r"(?<![\w+.$/:,-])(?P<value>\d{2}[ .-]\d{2}[ .-]\d{2})(?=[ \t]*[-(]?(?:office|mobile|cell|fax|home|work|landline)\b)",
]


def phone_recognizer() -> RegexValueRecognizer:
    return RegexValueRecognizer(
        "PHONE_NUMBER",
        [(_US_PHONE, 0.7), (_INTERNATIONAL_PHONE, 0.7), (_DIGIT_RUN, 0.5), (_SPELLED_PHONE, 0.6)],
        "PhoneFormatsRecognizer", _phone_shaped, flags=re.IGNORECASE,
    )


def short_phone_recognizer() -> RegexValueRecognizer:
    return RegexValueRecognizer("PHONE_NUMBER", [(pattern, 0.6) for pattern in _SHORT_PHONES],
                                "ShortPhoneRecognizer", flags=re.IGNORECASE)


def _phone_shaped(value: str) -> bool:
    """7-15 digits that are not a date, a money amount, a ZIP+4, a card or a year range."""
    digits = re.sub(r"\D", "", value.split("x")[0].split("ext")[0])
    if not 7 <= len(digits) <= 15 and not re.search(r"[a-z]{3}", value, re.IGNORECASE):
        return False
    if re.fullmatch(r"\d{5}-\d{4}|\d{3}-\d{2}-\d{4}", value.strip()) or re.fullmatch(r"(?:19|20)\d\d\s*-\s*(?:19|20)\d\d", value.strip()):
        return False
    if re.fullmatch(r"\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{4}[-./]\d{1,2}[-./]\d{1,2}", value.strip()):
        return False
    return not (len(digits) >= 12 and luhn_valid(digits))


# --------------------------------------------------------------------------- cards


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


_CARD = r"(?<![\w.-])(?P<value>\d(?:[ \t.-]?\n?\s?\d){11,18})(?![\w]|[.-]\d)"


def card_recognizer() -> RegexValueRecognizer:
    """12-19 digits (Maestro to 19-digit Visa), any separators, a line break included, Luhn-valid."""
    return RegexValueRecognizer("CREDIT_CARD", [(_CARD, 0.9)], "LuhnCardRecognizer",
                                lambda value: 12 <= len(re.sub(r"\D", "", value)) <= 19
                                and luhn_valid(re.sub(r"\D", "", value)))


# --------------------------------------------------------------------------- emails and payment handles

_DOT = r"(?:\s*\.\s*|\s+dot\s+|\s*[\[(<{]\s*dot\s*[\])>}]\s*)"
_AT = r"(?:\s*@\s*|\s+at\s+|\s*[\[(<{]\s*at\s*[\])>}]\s*)"
_TLD = r"(?:com|net|org|edu|gov|io|co|us|me|info|biz|uk|ca|de|fr|ng|in|kr|cn|mx|au|ie|il|ph|sa|ua|app|dev|ai)"
OBFUSCATED_EMAIL = (
    r"(?<![\w.+-])[\w+-]+(?:" + _DOT + r"[\w+-]+){0,3}" + _AT + r"[\w-]+(?:" + _DOT + r"[\w-]+){0,2}" + _DOT + _TLD
    + r"(?![\w/])"  # "$100 at paypal.me/PaddyO" is a link, not an email
)


def obfuscated_email_recognizer() -> RegexValueRecognizer:
    """"maria dot lopez at gmail dot com", "jdoe [at] yahoo [dot] com", "j.doe @ gmail.com"."""
    return RegexValueRecognizer("EMAIL_ADDRESS", [("(?P<value>" + OBFUSCATED_EMAIL + ")", 0.7)],
                                "ObfuscatedEmailRecognizer", flags=re.IGNORECASE)


def payment_handle_recognizer() -> RegexValueRecognizer:
    patterns = [
        # "venmo @maria-lopez-7", "my venmo is maria_lopez", "venmo: Kofi-Boateng"
        (r"(?i:venmo)(?:\s+(?i:handle|username|user|name|id))?\s*(?i:is|:|at|me\s+at|to|->)?\s*(?P<value>@?[A-Za-z][\w-]{2,29})", 0.6),
        (r"(?P<value>(?i:(?:https?://)?(?:www\.)?(?:venmo\.com/(?:u/)?|paypal\.me/|paypal\.com/paypalme/|cash\.app/|cash\.me/))\$?[\w.-]{2,40}[\w])", 0.8),
        (r"(?i:cash\s?app|cashapp|\$cashtag|cashtag)(?:\s+(?i:tag|handle|name))?\s*(?i:is|:|at|me\s+at|to)?\s*(?P<value>\$[A-Za-z][\w-]{1,19})", 0.7),
        (r"(?<![\w$])(?P<value>\$[A-Za-z][A-Za-z0-9_-]{2,19})\b", 0.5),  # a cashtag: $ then a letter, never a price
        (r"(?<![\w@.])(?P<value>@[A-Za-z][\w.-]{2,29}[\w])(?![\w@])", 0.5),
    ]
    return RegexValueRecognizer(PAYMENT_HANDLE, patterns, "PaymentHandleRecognizer", _handle_not_a_word)


_HANDLE_WORDS = frozenset(
    ["venmo", "zelle", "cashapp", "paypal", "me", "is", "fine", "ok", "okay", "good", "works", "the", "a", "my", "your", "it", "that", "this", "please", "instead", "too", "also", "only", "just", "accepted", "accept", "works?", "handle", "username", "name", "account"]
)


def _handle_not_a_word(value: str) -> bool:
    """A handle starts with @ or $, or carries a digit, '_', '-' or '.' ('venmo is fine' names no handle)."""
    bare = value.lstrip("@$").lower()
    marked = value[0] in "@$" or any(char.isdigit() or char in "_-." for char in bare)
    return marked and bare not in _HANDLE_WORDS


# --------------------------------------------------------------------------- dates of birth and licences

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|" + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|"
    r"\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r",?\s+\d{4})"
)


def date_of_birth_recognizer() -> RegexValueRecognizer:
    cue = r"(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s?date|birthday|born(?:\s+on)?|b-day|bday|(?<![\w])b\.)"
    # also a question and its answer: "your date of birth? 4/24/1960", "date of birth. It's 4/24/1960"
    answer = r"(?:[?.!]\s*(?:it'?s|it\s+is|mine\s+is|that'?s)?:?\s*)"
    return RegexValueRecognizer(DATE_OF_BIRTH, [(cue + r"\s*(?:is|was|:|-)?\s*(?P<value>" + _DATE + r")", 0.8),
                                                (cue + r"\s*" + answer + r"(?P<value>" + _DATE + r")", 0.75)],
                                "DateOfBirthRecognizer", _a_birth_year, flags=re.IGNORECASE)


def _a_birth_year(value: str) -> bool:
    """'birthday 14/03/1988' is a date of birth; 'birthday party 10/10/2026' is the event."""
    year = re.search(r"(\d{2,4})\D*$", value)
    return bool(year) and not (len(year.group(1)) == 4 and int(year.group(1)) >= 2020)


def driver_license_recognizer() -> RegexValueRecognizer:
    cue = (r"(?:driver'?s?\s+licen[cs]e|driving\s+licen[cs]e|licen[cs]e|lic\.?|\bdl\b|d\.l\.|dln)"
           r"(?:\s+(?:number|no\.?|num|#|id))?")
    state = r"(?:(?:[A-Z]{2}|[A-Z][a-z]+)\s+(?:DL|dl|license|licence)?\s*)?"
    value = r"(?P<value>[A-Z]{0,2}\d[\d -]{4,17}\d|[A-Z]{1,2}\d{3,}[A-Z0-9-]*|\d{3,}[A-Z][A-Z0-9-]*)"
    # After the cue a licence number is any 7-15 letters and digits, in either case, with digits among them
    # ("yx0047862", "WDL7H2K9P3XQ", "K524-3318-7702").
    cued_value = r"(?P<value>(?i:[a-z]{0,4}\d[a-z0-9]*(?:-[a-z0-9]+){0,3}))(?![\w-])"
    return RegexValueRecognizer(
        DRIVER_LICENSE,
        [(r"(?i:" + cue + r")\s*(?:is|:|#|-)?\s*(?:" + state + r")?(?:is|:|#)?\s*" + value, 0.75),
         (r"\b(?:[A-Z]{2})\s+(?:DL|D\.L\.)\s*#?\s*" + value, 0.8),
         (r"(?i:" + cue + r")\s*(?:is|:|#|-|\?)?\s*(?:" + state + r")?(?:is|:|#)?\s*" + cued_value, 0.7),
         (r"\b(?:[A-Z]{2})\s+(?:DL|D\.L\.)\s*#?\s*" + cued_value, 0.75)],
        "DriverLicenseRecognizer", _licence_number,
    )


def _licence_number(value: str) -> bool:
    """Five digits or more; or 7-15 letters and digits with at least two digits ("WDL7H2K9P3XQ")."""
    digits = sum(char.isdigit() for char in value)
    return digits >= 5 or (digits >= 2 and 7 <= len(value.replace("-", "")) <= 15)


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
