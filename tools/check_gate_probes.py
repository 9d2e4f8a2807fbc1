#!/usr/bin/env python3
"""Check the labelled promotion-gate probe suite (data/gate_probes.jsonl).

Usage: python tools/check_gate_probes.py data/gate_probes.jsonl

Checks that every line is a JSON object with the required fields, ids are unique,
each kind carries the label it implies (and `fact` is set exactly on wrong pairs),
tool calls are well formed, and every kind reaches its minimum count. Prints the
counts per kind; exits 1 if anything is off. Standard library only.
"""
import json
import re
import sys
from collections import Counter

# kind -> (label, minimum count)
KINDS = {
    "paraphrase_formal": ("correct", 20),
    "paraphrase_casual": ("correct", 20),
    "paraphrase_reordered": ("correct", 20),
    "paraphrase_shorter": ("correct", 20),
    "paraphrase_numeric_forms": ("correct", 20),
    "paraphrase_list": ("correct", 20),
    "tool_same": ("correct", 20),
    "second_teacher": ("correct", 20),
    "chit_chat_correct": ("correct", 15),
    "money_flip": ("wrong", 20),
    "role_swap": ("wrong", 20),
    "unit_flip": ("wrong", 20),
    "date_time_flip": ("wrong", 20),
    "count_flip": ("wrong", 20),
    "provision_flip": ("wrong", 20),
    "negation_flip": ("wrong", 20),
    "yes_no_flip": ("wrong", 20),
    "added_wrong_fact": ("wrong", 20),
    "tool_field_flip": ("wrong", 20),
    "non_answer": ("wrong", 20),
    "unsafe_pii": ("wrong", 20),
    "unsafe_competitor": ("wrong", 20),
    "unsafe_rude": ("wrong", 20),
}
MIN_TOTAL = 330
MIN_QUESTIONS = 45
FIELDS = {
    "id": str, "question": str, "teacher": str, "student": str,
    "teacher_tool_calls": (list, type(None)), "student_tool_calls": (list, type(None)),
    "label": str, "kind": str, "fact": str, "note": str,
}
TOOL_NAMES = {"create_booking", "update_booking"}
ID_RE = re.compile(r"^gp-\d{4}$")


def tool_call_errors(calls):
    """Problems with the shape of one tool-call list (None is allowed)."""
    if calls is None:
        return []
    errors = []
    for call in calls:
        if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(call.get("function"), dict):
            errors.append("a tool call is not {'type': 'function', 'function': {...}}")
            continue
        fn = call["function"]
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            errors.append("a tool call has no function name")
        args = fn.get("arguments")
        if isinstance(args, str):  # OpenAI wire format: a JSON-encoded object
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                errors.append("tool call arguments are a string that is not JSON")
                continue
        if not isinstance(args, dict):
            errors.append("tool call arguments are not an object")
    return errors


def check(path):
    errors = []
    ids = set()
    kinds = Counter()
    labels = Counter()
    questions = set()
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        where = f"line {n}"
        if not line.strip():
            errors.append(f"{where}: empty line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: not JSON ({e})")
            continue
        if not isinstance(row, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        where = f"line {n} ({row.get('id', '?')})"
        missing = [k for k in FIELDS if k not in row]
        if missing:
            errors.append(f"{where}: missing fields {missing}")
            continue
        extra = sorted(set(row) - set(FIELDS))
        if extra:
            errors.append(f"{where}: unexpected fields {extra}")
        bad_types = [k for k, t in FIELDS.items() if not isinstance(row[k], t)]
        if bad_types:
            errors.append(f"{where}: wrong types for {bad_types}")
            continue
        if not ID_RE.match(row["id"]):
            errors.append(f"{where}: id not of the form gp-NNNN")
        if row["id"] in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(row["id"])
        for k in ("question", "teacher"):
            if not row[k].strip():
                errors.append(f"{where}: empty {k}")
        if not row["student"].strip() and row["student_tool_calls"] is None:
            errors.append(f"{where}: student has neither text nor tool calls")
        kind, label = row["kind"], row["label"]
        if label not in ("correct", "wrong"):
            errors.append(f"{where}: label {label!r} is not 'correct' or 'wrong'")
        if kind not in KINDS:
            errors.append(f"{where}: unknown kind {kind!r}")
        elif KINDS[kind][0] != label:
            errors.append(f"{where}: kind {kind} needs label {KINDS[kind][0]!r}, got {label!r}")
        if label == "wrong" and not row["fact"].strip():
            errors.append(f"{where}: wrong pair without a fact")
        if label == "correct" and row["fact"]:
            errors.append(f"{where}: correct pair with a non-empty fact")
        if row["teacher"] == row["student"] and row["teacher_tool_calls"] == row["student_tool_calls"]:
            errors.append(f"{where}: student identical to teacher")
        if kind.startswith("tool_") and row["teacher_tool_calls"] is None:
            errors.append(f"{where}: {kind} pair without teacher tool calls")
        if kind == "tool_field_flip" and row["teacher_tool_calls"] == row["student_tool_calls"]:
            errors.append(f"{where}: tool_field_flip with identical tool calls")
        for side in ("teacher_tool_calls", "student_tool_calls"):
            errors += [f"{where}: {side}: {e}" for e in tool_call_errors(row[side])]
        if row["teacher_tool_calls"]:
            for call in row["teacher_tool_calls"]:
                name = call.get("function", {}).get("name") if isinstance(call, dict) else None
                if name not in TOOL_NAMES:
                    errors.append(f"{where}: teacher calls unknown tool {name!r}")
        kinds[kind] += 1
        labels[label] += 1
        questions.add(row["question"].strip().lower())

    for kind, (_, minimum) in KINDS.items():
        if kinds[kind] < minimum:
            errors.append(f"kind {kind}: {kinds[kind]} pairs, need at least {minimum}")
    total = sum(kinds.values())
    if total < MIN_TOTAL:
        errors.append(f"{total} pairs, need at least {MIN_TOTAL}")
    if len(questions) < MIN_QUESTIONS:
        errors.append(f"{len(questions)} distinct questions, need at least {MIN_QUESTIONS}")

    width = max(len(k) for k in KINDS)
    print(f"{'kind':<{width}}  label    count  min")
    for kind, (label, minimum) in KINDS.items():
        print(f"{kind:<{width}}  {label:<7}  {kinds[kind]:>5}  {minimum:>3}")
    for kind in sorted(set(kinds) - set(KINDS)):
        print(f"{kind:<{width}}  ?        {kinds[kind]:>5}")
    print(f"total {total} pairs ({labels['correct']} correct, {labels['wrong']} wrong), "
          f"{len(questions)} distinct questions")
    return errors


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    errors = check(argv[1])
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print("OK" if not errors else f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
