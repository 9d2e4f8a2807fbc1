"""Synthetic My Hibachi traffic, deterministic per seed, in the logged-turn format.

Conversations follow the business's real flows (FAQ, booking, changes, cancellations,
complaints, chit-chat) with varied phrasing, typos, casing and slang. PII (names, phones,
emails, street addresses, cards, gate codes) is placed in realistic spots and labelled
exactly in ``pii_spans``. Each turn is routed by the production router and carries the
responses production would have logged: the routed tier's answer and, for a share of
turns, shadow answers from all three ensemble providers.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from faker.providers.person.en_US import Provider as FakerNames
from pydantic import Field, model_validator

from hibachi_lab import CONFIGS
from hibachi_lab.config import StrictConfig, load_yaml_config
from hibachi_lab.progress import progress_bar
from hibachi_lab.router import Policy
from hibachi_lab.traffic import LoggedTurn, write_turns

CONFIG_DIR = CONFIGS
PII_SLOTS = {
    "name": "PERSON",
    "first": "PERSON",
    "phone": "PHONE_NUMBER",
    "email": "EMAIL_ADDRESS",
    "address": "STREET_ADDRESS",
    "card": "CREDIT_CARD",
    "code": "ACCESS_CODE",
}
INTENT_COMPLEXITY = {
    "faq_hours": "simple",
    "faq_menu": "simple",
    "faq_pricing": "simple",
    "faq_travel_fee": "simple",
    "faq_allergens": "medium",
    "faq_deposit": "simple",
    "booking_create": "medium",
    "booking_change": "medium",
    "cancellation_refund": "complex",
    "complaint": "complex",
    "chit_chat": "simple",
}
FAQ_INTENTS = ["faq_hours", "faq_menu", "faq_pricing", "faq_travel_fee", "faq_allergens", "faq_deposit"]
FACTS = {
    "adult_price": "60",
    "child_price": "30",
    "minimum": "550",
    "deposit": "100",
    "refund_days": "7",
    "free_miles": "30",
    "per_mile": "2",
    "filet_upcharge": "5",
    "lobster_upcharge": "10",
    "change_hours": "48",
    "open_time": "9am",
    "close_time": "9pm",
}
ROUTED_MODEL = {
    "mistral_small": "mistral-small",
    "mixtral_8x22b": "mixtral-8x22b",
    "mistral_large": "mistral-large-2",
}
ENSEMBLE_MODELS = {"gpt4o": "gpt-4o", "claude": "claude-3-5-sonnet", "mistral": "mistral-large-2"}
# (median latency in ms, spread) per model: a log-normal draw around the median.
LATENCY_MS = {
    "mistral-small": (600, 0.3),
    "mixtral-8x22b": (1100, 0.3),
    "mistral-large-2": (1600, 0.35),
    "gpt-4o": (1800, 0.35),
    "claude-3-5-sonnet": (2100, 0.35),
}
PROVIDER_ERRORS = ["timeout after 30000 ms", "rate_limited: 429 Too Many Requests", "upstream error: 503 Service Unavailable"]
SYSTEM_PROMPT_TOKENS = 180
TIMEZONE = ZoneInfo("America/Los_Angeles")


class SynthConfig(StrictConfig):
    """Knobs of the generator (``configs/synth.yaml``)."""

    start_date: str = "2026-08-01"
    days: int = Field(92, ge=1)
    shadow_share: float = Field(0.3, ge=0, le=1, description="share of non-ensemble turns with shadow answers")
    error_rate: float = Field(0.03, ge=0, le=1, description="share of provider calls that fail")
    disagree_rate: float = Field(0.12, ge=0, le=1, description="share of answers that state a different fact")
    typo_rate: float = Field(0.04, ge=0, le=1, description="chance per word of a typo in customer text")
    lowercase_share: float = Field(0.25, ge=0, le=1)
    long_message_share: float = Field(0.08, ge=0, le=1)
    null_sentiment_share: float = Field(0.08, ge=0, le=1)
    scenario_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "faq": 0.30,
            "booking": 0.25,
            "change": 0.13,
            "cancellation": 0.10,
            "complaint": 0.12,
            "chit_chat": 0.10,
        }
    )

    @model_validator(mode="after")
    def _known_scenarios(self) -> SynthConfig:
        unknown = set(self.scenario_weights) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s) {sorted(unknown)}; expected some of {sorted(SCENARIOS)}")
        if sum(self.scenario_weights.values()) <= 0:
            raise ValueError("scenario_weights must have a positive total")
        return self


# Each scenario is a list of steps; a step is an intent, optionally with "?" (may be skipped).
SCENARIOS: dict[str, list[str]] = {
    "faq": ["faq", "faq?", "faq?", "chit_chat?"],
    "booking": ["faq?", "booking_create", "booking_create", "booking_create?", "faq_deposit?", "chit_chat?"],
    "change": ["booking_change", "booking_change?", "chit_chat?"],
    "cancellation": ["cancellation_refund", "cancellation_refund?", "faq_deposit?"],
    "complaint": ["complaint", "complaint?", "complaint?", "cancellation_refund?"],
    "chit_chat": ["chit_chat", "faq?", "chit_chat?"],
}


@cache
def phrasebook() -> dict[str, Any]:
    return yaml.safe_load(resources.files("hibachi_lab").joinpath("synth_phrases.yaml").read_text(encoding="utf-8"))


@cache
def _names() -> tuple[list[str], list[str]]:
    return list(FakerNames.first_names), list(FakerNames.last_names)


# --------------------------------------------------------------------------- PII values


def luhn_check_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled, counting from the digit left of the check digit
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return len(digits) >= 12 and luhn_check_digit(digits[:-1]) == digits[-1]


@dataclass
class Customer:
    """One customer's PII, fixed for a conversation so repeated mentions are the same value."""

    first: str
    last: str
    phone: str
    email: str
    address: str
    card: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


AREA_CODES = ["408", "415", "510", "650", "707", "916", "925", "209", "831", "559"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "comcast.net", "sbcglobal.net"]
STREETS = ["Oak", "Maple", "Elm", "Cedar", "Mission", "Valencia", "El Camino Real", "Sunset", "Lincoln", "Park",
           "Lakeview", "Hillcrest", "Almaden", "Stevens Creek", "Blossom Hill", "Monterey", "Alameda", "Willow",
           "Redwood", "Sierra Vista", "Foothill", "Meridian", "Bascom", "Saratoga", "Winchester"]
STREET_SUFFIXES = ["Street", "St", "Avenue", "Ave", "Boulevard", "Blvd", "Road", "Rd", "Drive", "Dr", "Lane", "Ln",
                   "Court", "Ct", "Way", "Place", "Pl", "Circle"]
UNITS = ["Apt {n}", "Apt. {n}{letter}", "Unit {n}", "Suite {n}", "#{n}", "apt {n}{letter}"]
CITIES = [("San Jose", "950"), ("Sacramento", "958"), ("Fremont", "945"), ("Oakland", "946"), ("Palo Alto", "943"),
          ("Sunnyvale", "940"), ("Stockton", "952"), ("Modesto", "953"), ("Santa Rosa", "954"), ("Fresno", "937"),
          ("Walnut Creek", "945"), ("Roseville", "956"), ("Livermore", "945"), ("San Mateo", "944")]


def _phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice(AREA_CODES), rng.randint(200, 989), rng.randint(0, 9999)
    formats = ["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "{a} {e} {l}", "{a}{e}{l}", "+1 {a} {e} {l}",
               "+1-{a}-{e}-{l}", "1-{a}-{e}-{l}", "+1 ({a}) {e}-{l}", "+1{a}{e}{l}"]
    return rng.choice(formats).format(a=area, e=exchange, l=f"{line:04d}")


def _email(rng: random.Random, first: str, last: str) -> str:
    styles = ["{f}.{l}", "{f}{l}", "{f0}{l}", "{f}_{l}{n}", "{f}{n}", "{l}.{f}"]
    local = rng.choice(styles).format(f=first.lower(), l=last.lower(), f0=first[0].lower(), n=rng.randint(1, 99))
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def _address(rng: random.Random) -> str:
    street = f"{rng.randint(1, 19999)} {rng.choice(STREETS)} {rng.choice(STREET_SUFFIXES)}"
    if rng.random() < 0.35:
        unit = rng.choice(UNITS).format(n=rng.randint(1, 450), letter=rng.choice("ABCDEF"))
        street += rng.choice([" ", ", "]) + unit
    if rng.random() < 0.6:
        city, zip_prefix = rng.choice(CITIES)
        state_zip = f"CA {zip_prefix}{rng.randint(0, 99):02d}"
        street += rng.choice([f", {city}, {state_zip}", f" {city} {state_zip}", f", {city} CA"])
    return street


def _card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice(
        [("4", 16, (4, 4, 4, 4)), ("5" + str(rng.randint(1, 5)), 16, (4, 4, 4, 4)),
         ("3" + rng.choice("47"), 15, (4, 6, 5)), ("6011", 16, (4, 4, 4, 4))]
    )
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    digits = body + luhn_check_digit(body)
    separator = rng.choice([" ", "-", ""])
    parts, position = [], 0
    for size in groups:
        parts.append(digits[position : position + size])
        position += size
    return separator.join(parts)


def _customer(rng: random.Random) -> Customer:
    firsts, lasts = _names()
    first, last = rng.choice(firsts), rng.choice(lasts)
    code = str(rng.randint(0, 99999)).zfill(rng.choice([4, 4, 5, 6]))
    return Customer(first, last, _phone(rng), _email(rng, first, last), _address(rng), _card(rng), code)


# --------------------------------------------------------------------------- text rendering


@dataclass
class Text:
    """A rendered text and the PII it contains, as (start, end, entity_type) spans."""

    content: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)


SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, values: dict[str, str], typo: Callable[[str], str] | None = None) -> Text:
    """Fill ``{slots}``; PII slots are labelled, literal text may get typos (never PII)."""
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []
    position = 0
    cursor = 0
    for match in SLOT.finditer(template):
        literal = template[cursor : match.start()]
        if typo is not None:
            literal = typo(literal)
        pieces.append(literal)
        position += len(literal)
        slot = match.group(1)
        value = values[slot]
        if slot in PII_SLOTS:
            spans.append((position, position + len(value), PII_SLOTS[slot]))
        pieces.append(value)
        position += len(value)
        cursor = match.end()
    tail = template[cursor:]
    pieces.append(typo(tail) if typo is not None else tail)
    return Text("".join(pieces), spans)


def join(*texts: Text) -> Text:
    """Join texts with single spaces, shifting their spans."""
    content, spans = "", []
    for text in texts:
        if not text.content:
            continue
        if content:
            content += " "
        spans.extend((start + len(content), end + len(content), kind) for start, end, kind in text.spans)
        content += text.content
    return Text(content, spans)


SLANG = [(r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\bplease\b", "pls"), (r"\bthanks\b", "thx"),
         (r"\bpeople\b", "ppl"), (r"\bare\b", "r")]


def _typo_maker(rng: random.Random, rate: float, slang: bool) -> Callable[[str], str]:
    def typo(literal: str) -> str:
        if slang:
            for pattern, short in SLANG:
                literal = re.sub(pattern, short, literal)
        words = literal.split(" ")
        for index, word in enumerate(words):
            if len(word) > 3 and word.isalpha() and rng.random() < rate:
                cut = rng.randrange(1, len(word) - 1)
                words[index] = rng.choice(
                    [word[:cut] + word[cut + 1 :], word[:cut] + word[cut + 1] + word[cut] + word[cut + 2 :],
                     word[:cut] + word[cut] + word[cut:]]
                )
        return " ".join(words)

    return typo


# --------------------------------------------------------------------------- conversations


@dataclass
class _Conversation:
    rng: random.Random
    config: SynthConfig
    family: str
    customer: Customer
    name_known: bool = False
    history: list[tuple[str, Text]] = field(default_factory=list)  # (role, text)


def _event_values(rng: random.Random, customer: Customer) -> dict[str, str]:
    months = ["Sept", "October", "Oct", "November", "Nov", "December", "Dec"]
    weekdays = ["Saturday", "Sunday", "Friday"]
    date_formats = [
        lambda: f"{rng.choice(months)} {rng.randint(1, 28)}",
        lambda: f"{rng.choice(weekdays)}, {rng.choice(months)} {rng.randint(1, 28)}th",
        lambda: f"{rng.randint(9, 12)}/{rng.randint(1, 28)}",
        lambda: f"next {rng.choice(weekdays)}",
    ]
    proteins = ["chicken", "steak", "shrimp", "salmon", "scallops", "tofu"]
    values = {
        "guests": str(rng.choice([8, 10, 12, 15, 18, 20, 25, 30, 40, 50])),
        "kids": str(rng.randint(1, 6)),
        "date": rng.choice(date_formats)(),
        "date2": rng.choice(date_formats)(),
        "time": rng.choice(["5pm", "6pm", "6:30 PM", "7", "5:30", "7pm", "noon", "4 pm"]),
        "city": rng.choice(CITIES)[0],
        "protein": rng.choice(proteins),
        "protein2": rng.choice(proteins),
        "upgrade": rng.choice(["filet mignon", "lobster tail"]),
        "name": customer.name,
        "first": customer.first,
        "phone": customer.phone,
        "email": customer.email,
        "address": customer.address,
        "card": customer.card,
        "code": customer.code,
    }
    return values | FACTS


def _customer_message(conversation: _Conversation, intent: str, values: dict[str, str]) -> Text:
    rng, config, book = conversation.rng, conversation.config, phrasebook()
    family = conversation.family
    typo = _typo_maker(rng, config.typo_rate, slang=rng.random() < 0.15)
    parts = []
    if rng.random() < 0.25:
        parts.append(render(rng.choice(book["openers"][family]), values))
    if rng.random() < config.long_message_share:
        parts.append(Text(rng.choice(book["long_context"])))
    parts.append(render(rng.choice(book["customer"][intent][family]), values, typo))
    if rng.random() < 0.15:
        parts.append(render(rng.choice(book["closers"][family]), values))
    text = join(*parts)
    if rng.random() < config.lowercase_share:
        text = Text(text.content.lower(), text.spans)  # ASCII lower-casing keeps every offset
    if any(kind == "PERSON" for _, _, kind in text.spans):
        conversation.name_known = True
    return text


def _answer(conversation: _Conversation, intent: str, values: dict[str, str], disagree: bool) -> Text:
    rng = conversation.rng
    options = phrasebook()["answers"][intent]["disagree" if disagree else "agree"]
    template = rng.choice(options)
    if not conversation.name_known:
        # Without a name the greeting drops it: "Thanks {first}!" -> "Thanks!"
        template = re.sub(r",? ?\{first\}", "", template)
    return render(template, values)


def _sentiment(rng: random.Random, intent: str, config: SynthConfig) -> float | None:
    if rng.random() < config.null_sentiment_share:
        return None
    low, high = {"complaint": (0.03, 0.38), "cancellation_refund": (0.2, 0.6)}.get(intent, (0.45, 0.95))
    return round(rng.uniform(low, high), 3)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _response(
    rng: random.Random, config: SynthConfig, provider: str, model: str, answer: Text, input_tokens: int,
    tool_calls: list | None,
) -> dict[str, Any]:
    median, spread = LATENCY_MS[model]
    if rng.random() < config.error_rate:
        error = rng.choice(PROVIDER_ERRORS)
        latency = 30000.0 if error.startswith("timeout") else round(rng.uniform(80, 400), 1)
        return {"provider": provider, "model": model, "content": None, "input_tokens": input_tokens,
                "output_tokens": 0, "latency_ms": latency, "error": error, "tool_calls": None}
    output_tokens = max(1, round(_tokens(answer.content) * rng.uniform(0.9, 1.15)))
    latency = round(median * math.exp(rng.gauss(0, spread)) + output_tokens * 8, 1)
    return {"provider": provider, "model": model, "content": answer.content, "input_tokens": input_tokens,
            "output_tokens": output_tokens, "latency_ms": latency, "error": None, "tool_calls": tool_calls}


def _tool_calls(intent: str, values: dict[str, str], message: Text) -> list | None:
    """Bookings carry the tool call production's booking tools would receive."""
    if intent not in ("booking_create", "booking_change"):
        return None
    arguments = {"event_date": values["date"], "event_time": values["time"], "guest_count": int(values["guests"])}
    mentioned = {kind for _, _, kind in message.spans}
    if "PERSON" in mentioned:
        arguments["customer_name"] = values["name"]
    if "PHONE_NUMBER" in mentioned:
        arguments["phone"] = values["phone"]
    if "STREET_ADDRESS" in mentioned:
        arguments["address"] = values["address"]
    name = "create_booking" if intent == "booking_create" else "update_booking"
    return [{"type": "function", "function": {"name": name, "arguments": arguments}}]


def _turn(conversation: _Conversation, conversation_id: str, turn_index: int, intent: str,
          when: datetime, policy: Policy) -> LoggedTurn:
    rng, config = conversation.rng, conversation.config
    values = _event_values(rng, conversation.customer)
    message = _customer_message(conversation, intent, values)
    sentiment = _sentiment(rng, intent, config)
    history = conversation.history
    decision = policy.classify(message.content, [None] * len(history), sentiment)

    input_tokens = SYSTEM_PROMPT_TOKENS + sum(_tokens(t.content) for _, t in history) + _tokens(message.content)
    tool_calls = _tool_calls(intent, values, message)
    answers: list[Text] = []
    disagrees: list[bool] = []
    responses: list[dict[str, Any]] = []

    def add(provider: str, model: str, shadow: bool) -> None:
        disagree = rng.random() < config.disagree_rate
        answer = _answer(conversation, intent, values, disagree)
        response = _response(rng, config, provider, model, answer, input_tokens, tool_calls)
        if shadow:
            response["shadow"] = True
        answers.append(answer if response["content"] is not None else Text(""))
        disagrees.append(disagree)
        responses.append(response)

    routed = decision.provider
    if routed == "ensemble":
        for provider, model in ENSEMBLE_MODELS.items():
            add(provider, model, shadow=False)
        final_index, consensus = _pick_consensus(rng, responses, disagrees)
    else:
        add(routed, ROUTED_MODEL[routed], shadow=False)
        if rng.random() < config.shadow_share:
            for provider, model in ENSEMBLE_MODELS.items():
                add(provider, model, shadow=True)
        final_index = 0 if responses[0]["content"] is not None else None
        consensus = None
    fallback = phrasebook()["fallback"]
    final = answers[final_index] if final_index is not None else Text(fallback)

    spans = [{"field": "query", "start": s, "end": e, "entity_type": k} for s, e, k in message.spans]
    for index, (_, text) in enumerate(history):
        spans += [{"field": f"history/{index}/content", "start": s, "end": e, "entity_type": k} for s, e, k in text.spans]
    for index, text in enumerate(answers):
        spans += [{"field": f"responses/{index}/content", "start": s, "end": e, "entity_type": k} for s, e, k in text.spans]
    spans += [{"field": "final_response", "start": s, "end": e, "entity_type": k} for s, e, k in final.spans]

    turn = LoggedTurn.model_validate(
        {
            "conversation_id": conversation_id,
            "turn_index": turn_index,
            "timestamp": when.isoformat(timespec="seconds"),
            "query": message.content,
            "history": [{"role": role, "content": text.content} for role, text in history],
            "customer_sentiment": sentiment,
            "routed_provider": routed,
            "responses": responses,
            "final_response": final.content,
            "consensus_score": consensus,
            "labels": {"intent": intent, "complexity": INTENT_COMPLEXITY[intent]},
            "pii_spans": spans,
            "synth": {"template_family": conversation.family},
        }
    )
    history.append(("user", message))
    history.append(("assistant", final))
    return turn


def _pick_consensus(
    rng: random.Random, responses: list[dict], disagrees: list[bool]
) -> tuple[int | None, float | None]:
    """Production's pick, approximately: an agreeing answer wins (its logged score came from
    another embedding model, so here it is only loosely tied to the texts)."""
    valid = [i for i, r in enumerate(responses) if r["content"]]
    if not valid:
        return None, None
    if len(valid) == 1:
        return valid[0], None
    agreeing = [i for i in valid if not disagrees[i]]
    if len(agreeing) == len(valid):
        return rng.choice(agreeing), round(rng.uniform(0.84, 0.96), 4)
    return rng.choice(agreeing or valid), round(rng.uniform(0.6, 0.84), 4)


def _conversation_start(rng: random.Random, config: SynthConfig) -> datetime:
    start = datetime.fromisoformat(config.start_date).replace(tzinfo=TIMEZONE)
    day = start + timedelta(days=rng.randrange(config.days))
    minute = rng.randint(8 * 60, 22 * 60)  # people write from breakfast to late evening
    local = day.replace(hour=minute // 60, minute=minute % 60, second=rng.randint(0, 59))
    return local.astimezone(TIMEZONE)  # normalises the UTC offset across DST changes


def _steps(rng: random.Random, scenario: str) -> list[str]:
    intents = []
    for step in SCENARIOS[scenario]:
        optional = step.endswith("?")
        step = step.rstrip("?")
        if optional and rng.random() < 0.5:
            continue
        intents.append(rng.choice(FAQ_INTENTS) if step == "faq" else step)
    return intents


def generate(conversations: int, seed: int = 0, config: SynthConfig | None = None,
             policy: Policy | None = None) -> Iterator[LoggedTurn]:
    """Yield ``LoggedTurn`` objects for ``conversations`` conversations, deterministic per ``seed``."""
    config = config or SynthConfig()
    policy = policy or Policy.from_yaml(CONFIG_DIR / "router" / "seed.yaml")
    scenarios = list(config.scenario_weights)
    weights = [config.scenario_weights[s] for s in scenarios]
    for number in range(conversations):
        # One generator per conversation: conversation k is the same whatever N is.
        rng = random.Random(f"{seed}:{number}")
        family = "A" if rng.random() < 0.5 else "B"
        conversation = _Conversation(rng, config, family, _customer(rng))
        scenario = rng.choices(scenarios, weights)[0]
        when = _conversation_start(rng, config)
        conversation_id = f"conv-{seed}-{number:07d}"
        for turn_index, intent in enumerate(_steps(rng, scenario)):
            yield _turn(conversation, conversation_id, turn_index, intent, when, policy)
            when = (when + timedelta(seconds=rng.randint(20, 600))).astimezone(TIMEZONE)


def load_config(path: str | Path) -> SynthConfig:
    return load_yaml_config(path, SynthConfig)


def write_synthetic(path: str | Path, conversations: int, seed: int = 0, config: SynthConfig | None = None) -> int:
    """Generate and write a synthetic log (atomically, streaming); returns the number of turns."""
    turns = generate(conversations, seed, config)
    with progress_bar("Generating traffic", conversations * 3) as advance:
        return write_turns((advance(1) or turn for turn in turns), path)
