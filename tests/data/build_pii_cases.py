#!/usr/bin/env python3
"""Build pii_catering_cases.jsonl from the hand-labelled pii_catering_source.txt.

Standalone, stdlib only.

Source format (one message per line):
    %% comment
    === <conversation id> <patterns, comma separated>
    C: customer message with [[TYPE|pii value]] and {{keep word}} markup
    A: assistant message ...

Output: one JSON object per message
    {"conversation": id, "patterns": [..], "turn": n, "role": "customer"|"assistant",
     "text": plain text, "spans": [{"start", "end", "entity_type", "text"}],
     "keep": [{"start", "end", "text"}]}
Offsets are Python str (code point) offsets into "text", end exclusive.

Usage:
    python build_pii_cases.py            # (re)write the jsonl and print statistics
    python build_pii_cases.py --check    # fail if the jsonl on disk is not what the source builds to
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "pii_catering_source.txt"
OUTPUT = HERE / "pii_catering_cases.jsonl"

ENTITY_TYPES = (
    "PERSON",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "CREDIT_CARD",
    "STREET_ADDRESS",
    "ACCESS_CODE",
    "PAYMENT_HANDLE",
    "DATE_OF_BIRTH",
    "DRIVER_LICENSE",
)
ROLES = {"C": "customer", "A": "assistant"}
REQUIRED_PATTERNS = range(1, 9)  # patterns 1-8 need >= 20 messages each
MIN_PER_PATTERN = 20
MIN_MESSAGES = 240
MARKERS = ("[[", "]]", "{{", "}}")


class SourceError(ValueError):
    pass


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def parse_message(raw: str, where: str):
    """Strip the markup from one message; return (text, spans, keep)."""
    out: list[str] = []
    pos = 0  # length of plain text produced so far
    spans, keep = [], []
    i = 0
    while i < len(raw):
        if raw.startswith("[[", i):
            close = raw.find("]]", i + 2)
            if close < 0:
                raise SourceError(f"{where}: unclosed [[")
            inner = raw[i + 2 : close]
            if "|" not in inner:
                raise SourceError(f"{where}: [[...]] without '|': {inner!r}")
            etype, value = inner.split("|", 1)
            if etype not in ENTITY_TYPES:
                raise SourceError(f"{where}: unknown entity type {etype!r}")
            if "|" in value or any(m in value for m in MARKERS):
                raise SourceError(f"{where}: nested markup in {inner!r}")
            if not value or value != value.strip():
                raise SourceError(f"{where}: empty value or surrounding whitespace in {inner!r}")
            spans.append({"start": pos, "end": pos + len(value), "entity_type": etype, "text": value})
            out.append(value)
            pos += len(value)
            i = close + 2
        elif raw.startswith("{{", i):
            close = raw.find("}}", i + 2)
            if close < 0:
                raise SourceError(f"{where}: unclosed {{{{")
            value = raw[i + 2 : close]
            if any(m in value for m in MARKERS) or "|" in value:
                raise SourceError(f"{where}: nested markup in keep {value!r}")
            if not value or value != value.strip():
                raise SourceError(f"{where}: empty keep or surrounding whitespace {value!r}")
            keep.append({"start": pos, "end": pos + len(value), "text": value})
            out.append(value)
            pos += len(value)
            i = close + 2
        elif raw.startswith("]]", i) or raw.startswith("}}", i):
            raise SourceError(f"{where}: stray closing marker at column {i}")
        else:
            out.append(raw[i])
            pos += 1
            i += 1
    text = "".join(out)

    # --- consistency checks -------------------------------------------------
    for s in spans:
        assert text[s["start"] : s["end"]] == s["text"], (where, s)
    for k in keep:
        assert text[k["start"] : k["end"]] == k["text"], (where, k)
    marked = sorted([(s["start"], s["end"]) for s in spans] + [(k["start"], k["end"]) for k in keep])
    for (a0, a1), (b0, b1) in itertools.pairwise(marked):
        if b0 < a1:
            raise SourceError(f"{where}: overlapping marks {text[a0:a1]!r} / {text[b0:b1]!r}")
    for s in spans:
        if s["entity_type"] == "CREDIT_CARD":
            digits = re.sub(r"\D", "", s["text"])
            if not (13 <= len(digits) <= 19 and luhn_ok(digits)):
                raise SourceError(f"{where}: card {s['text']!r} is not a Luhn-valid 13-19 digit number")
    return text, spans, keep


def find_unlabelled_echoes(conv_id: str, messages: list[dict]) -> list[str]:
    """Every occurrence of a labelled value inside a conversation must itself be
    labelled (or be an explicit keep word, e.g. the word "hope" next to a person
    called Hope).  Returns a list of problems."""
    problems = []
    values = {s["text"] for m in messages for s in m["spans"]}
    # also every single token of a labelled person name ("Mensah" of "Kwame Mensah")
    values |= {
        tok
        for m in messages
        for s in m["spans"]
        if s["entity_type"] == "PERSON"
        for tok in re.findall(r"[\w'-]+", s["text"])
        if len(tok) >= 2
    }
    for value in sorted(values):
        pat = re.compile(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])", re.IGNORECASE)
        for m in messages:
            covered = [(s["start"], s["end"]) for s in m["spans"]] + [(k["start"], k["end"]) for k in m["keep"]]
            for hit in pat.finditer(m["text"]):
                if not any(a <= hit.start() and hit.end() <= b for a, b in covered):
                    problems.append(
                        f"{conv_id} turn {m['turn']}: unlabelled occurrence of {value!r} in {m['text']!r}"
                    )
    return problems


def build(source_text: str) -> list[dict]:
    records: list[dict] = []
    conv_id = None
    patterns: list[int] = []
    turn = 0
    seen_ids = set()
    conv_messages: dict[str, list[dict]] = collections.OrderedDict()
    for lineno, line in enumerate(source_text.splitlines(), 1):
        where = f"line {lineno}"
        if not line.strip() or line.startswith("%%"):
            continue
        if line.startswith("=== "):
            parts = line[4:].split()
            if len(parts) != 2:
                raise SourceError(f"{where}: header must be '=== <id> <patterns>'")
            conv_id = parts[0]
            if conv_id in seen_ids:
                raise SourceError(f"{where}: duplicate conversation id {conv_id}")
            seen_ids.add(conv_id)
            patterns = sorted({int(p) for p in parts[1].split(",")})
            turn = 0
            conv_messages[conv_id] = []
            continue
        m = re.match(r"^([CA]): (.+)$", line)
        if not m:
            raise SourceError(f"{where}: expected 'C: ' or 'A: ' message line, got {line!r}")
        if conv_id is None:
            raise SourceError(f"{where}: message before the first conversation header")
        text, spans, keep = parse_message(m.group(2), where)
        turn += 1
        rec = {
            "conversation": conv_id,
            "patterns": patterns,
            "turn": turn,
            "role": ROLES[m.group(1)],
            "text": text,
            "spans": spans,
            "keep": keep,
        }
        records.append(rec)
        conv_messages[conv_id].append(rec)

    problems = []
    for cid, msgs in conv_messages.items():
        if not 1 <= len(msgs) <= 4:
            problems.append(f"{cid}: has {len(msgs)} messages (want 1-4)")
        problems.extend(find_unlabelled_echoes(cid, msgs))
    if problems:
        raise SourceError("\n".join(problems))
    return records


def serialise(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)


def stats(records: list[dict]) -> str:
    convs = collections.OrderedDict()
    for r in records:
        convs.setdefault(r["conversation"], r["patterns"])
    by_type = collections.Counter(s["entity_type"] for r in records for s in r["spans"])
    by_role = collections.Counter(r["role"] for r in records)
    msgs_per_pattern = collections.Counter(p for r in records for p in r["patterns"])
    convs_per_pattern = collections.Counter(p for ps in convs.values() for p in ps)
    n_keep = sum(len(r["keep"]) for r in records)
    n_clean = sum(1 for r in records if not r["spans"])
    lines = [
        f"messages:       {len(records)} ({by_role['customer']} customer, {by_role['assistant']} assistant)",
        f"conversations:  {len(convs)}",
        f"messages without any PII span: {n_clean}",
        f"spans total:    {sum(by_type.values())}",
    ]
    for t in ENTITY_TYPES:
        lines.append(f"  {t:<15} {by_type.get(t, 0)}")
    lines.append(f"keep entries:   {n_keep}")
    lines.append("per pattern:    messages / conversations")
    for p in sorted(msgs_per_pattern):
        lines.append(f"  pattern {p}:    {msgs_per_pattern[p]:>3} / {convs_per_pattern[p]}")
    return "\n".join(lines)


def check_coverage(records: list[dict]) -> None:
    msgs_per_pattern = collections.Counter(p for r in records for p in r["patterns"])
    assert len(records) >= MIN_MESSAGES, f"only {len(records)} messages"
    for p in REQUIRED_PATTERNS:
        assert msgs_per_pattern[p] >= MIN_PER_PATTERN, f"pattern {p}: only {msgs_per_pattern[p]} messages"
    for t in ENTITY_TYPES:
        assert any(s["entity_type"] == t for r in records for s in r["spans"]), f"no {t} span"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--output", type=Path, default=OUTPUT)
    ap.add_argument("--check", action="store_true", help="do not write; fail if the output file is stale")
    args = ap.parse_args(argv)

    source_text = args.source.read_text(encoding="utf-8")
    try:
        records = build(source_text)
    except SourceError as exc:
        print(f"source error:\n{exc}", file=sys.stderr)
        return 1
    payload = serialise(records)
    # determinism: a second independent build must give byte-identical output
    assert serialise(build(source_text)) == payload, "build is not deterministic"
    # round trip: what we write parses back to the same records
    assert [json.loads(line) for line in payload.splitlines()] == records
    check_coverage(records)

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != payload:
            print(f"{args.output} is stale; rerun {Path(__file__).name}", file=sys.stderr)
            return 1
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(payload)
    print(stats(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
