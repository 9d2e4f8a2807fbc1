"""Instruction datasets from scrubbed traffic: the teachers' answers become the students' targets.

:func:`build` turns logged turns into chat examples (``messages``: system prompt, recent history,
the customer's message, the teacher's answer), drops what should not be learned (provider
errors, the fallback apology, low-agreement turns...), removes exact and near duplicates, caps
repeated FAQs, splits by conversation into ``train`` / ``eval`` / ``gate``, measures token
lengths, runs the PII leak gate on everything, and only then writes. Every turn in is an
example out or counted under one reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
from datasets.table import InMemoryTable
from pydantic import Field, model_validator

from hibachi_lab import ensemble, registry, traffic
from hibachi_lab.config import StrictConfig
from hibachi_lab.errors import BadInput
from hibachi_lab.files import atomic_dir, json_default, shareable_path, shareable_paths
from hibachi_lab.pii import LeakChecker, PiiConfig, describe_leaks
from hibachi_lab.report import Report
from hibachi_lab.similarity import STAND_IN_TOKENIZER, SimilarityEngine, stand_in_tokenizer

log = logging.getLogger(__name__)
datasets.disable_progress_bars()  # our own reports say what was written

SPLITS = ("train", "eval", "gate")
DROP_REASONS = ("excluded_intent", "provider_error", "fallback_apology", "empty_answer", "low_agreement",
                "no_teacher_answer", "tool_call_turn", "too_long")
REMOVED_REASONS = ("exact_duplicate", "near_duplicate", "intent_cap", "off_policy_reference", "repeated_gate_prompt")
DEFAULT_SYSTEM_PROMPT = (
    "You are the friendly assistant of My Hibachi, a hibachi catering business that brings a chef, grill and "
    "propane to the customer's home. Answer briefly and warmly, state prices and policies exactly, and book, "
    "change or cancel events with the tools when asked."
)


class DedupeConfig(StrictConfig):
    exact: bool = True
    near_threshold: float | None = Field(0.97, ge=0, le=1, description="similarity of prompt+answer; null: off")
    per_intent_cap: int | None = Field(None, ge=1, description="at most this many examples per intent")


class SplitConfig(StrictConfig):
    train: float = Field(0.8, ge=0, le=1)
    eval: float = Field(0.1, ge=0, le=1)
    gate: float = Field(0.1, ge=0, le=1)
    seed: int = 2026

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        if not math.isclose(self.train + self.eval + self.gate, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + eval + gate must be 1, got {self.train + self.eval + self.gate:g}")
        return self


class DatasetConfig(StrictConfig):
    """configs/dataset.yaml: where targets come from and what the examples look like."""

    teacher_sources: list[str] = Field(
        default_factory=lambda: ["consensus", "final_response"],
        description="tried in order per turn: consensus, final_response, or a provider name (e.g. gpt4o)",
    )
    min_agreement: float | None = Field(0.7, description="drop consensus answers below this agreement; null: keep")
    exclude_intents: list[str] = Field(default_factory=list)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_turns: int = Field(3, ge=0, description="previous exchanges (user + assistant) kept before the message")
    tool_calls: Literal["include", "exclude"] = "include"
    tools: list[dict[str, Any]] = Field(default_factory=list, description="tool schemas for tool-call examples")
    dedupe: DedupeConfig = DedupeConfig()
    split: SplitConfig = SplitConfig()
    tokenizer: str | None = Field(None, description="target model tokenizer (folder or hub id); null: a local one")
    max_tokens: int = Field(2048, ge=16)
    overlong: Literal["truncate_history", "drop"] = "truncate_history"
    kaggle_id: str = Field("your-kaggle-username/my-hibachi-sft", description="owner/slug for kaggle datasets create")
    policy_sheet: str | None = Field(None, description="the business policy sheet teacher answers are checked "
                                                       "against; null: the bundled configs/business.yaml")



@dataclass
class _Teacher:
    answer: str
    provider: str
    agreement: float | None
    tool_calls: list | None
    field: str  # where the answer sits in the turn, for surrogate-aware leak checking
    # The other teachers' valid answers on the turn (field, text): the promotion gate's ceiling.
    alternatives: list[tuple[str, str]] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------- teacher answers


def teacher_answers(turns: list[dict], table: pa.Table, config: DatasetConfig,
                    engine: SimilarityEngine | None, members: list[str]) -> tuple[list[_Teacher | None], list[str | None]]:
    """Per turn, the teacher answer or the reason it has none."""
    consensus_rows: dict[int, Any] = {}
    if "consensus" in config.teacher_sources:
        if engine is None:
            raise BadInput("teacher source 'consensus' needs the similarity engine")
        replay = ensemble.consensus(table, engine, members)
        consensus_rows = {row.turn: row for row in replay.turns.itertuples()}
    teachers: list[_Teacher | None] = []
    reasons: list[str | None] = []
    for index, turn in enumerate(turns):
        intent = (turn.get("labels") or {}).get("intent")
        if intent in config.exclude_intents:
            teachers.append(None)
            reasons.append("excluded_intent")
            continue
        teacher, reason = None, "no_teacher_answer"
        for source in config.teacher_sources:
            teacher, reason, final = _from_source(source, turn, consensus_rows.get(index), config)
            if teacher is not None or final:
                break
        if teacher is not None:
            reason = _unusable(teacher.answer)
            teacher = teacher if reason is None else None
        teachers.append(teacher)
        reasons.append(reason)
    return teachers, reasons


def _from_source(source: str, turn: dict, consensus_row: Any, config: DatasetConfig) -> tuple[_Teacher | None, str, bool]:
    """(teacher, reason if none, whether the reason is final rather than "try the next source")."""
    responses = turn.get("responses") or []
    if source == "consensus":
        if consensus_row is None:
            return None, "no_teacher_answer", False
        if consensus_row.fallback:
            return None, "provider_error", True
        agreement = None if pd.isna(consensus_row.agreement_score) else float(consensus_row.agreement_score)
        if agreement is not None and config.min_agreement is not None and agreement < config.min_agreement:
            return None, "low_agreement", True
        position = int(consensus_row.best_position)
        response = responses[position]
        alternatives = [(f"responses/{i}/content", r["content"]) for i, r in enumerate(responses)
                        if i != position and r["provider"] in consensus_row.votes and not r.get("error")
                        and (r.get("content") or "").strip()]
        return (_Teacher(response["content"], consensus_row.best_provider, agreement, response.get("tool_calls"),
                         f"responses/{position}/content", alternatives), "", True)
    if source == "final_response":
        answer = turn.get("final_response")
        if not answer or not answer.strip():
            return None, "empty_answer", False
        routed = next((i for i, r in enumerate(responses) if r["provider"] == turn.get("routed_provider")), None)
        tool_calls = responses[routed].get("tool_calls") if routed is not None else None
        return _Teacher(answer, turn.get("routed_provider") or "logged", None, tool_calls, "final_response"), "", True
    position = next((i for i, r in enumerate(responses) if r["provider"] == source), None)
    if position is None:
        return None, "no_teacher_answer", False
    response = responses[position]
    if response.get("error"):
        return None, "provider_error", True
    return (_Teacher(response.get("content") or "", source, None, response.get("tool_calls"),
                     f"responses/{position}/content"), "", True)


def _unusable(answer: str | None) -> str | None:
    if not answer or not answer.strip():
        return "empty_answer"
    if answer.strip() == ensemble.FALLBACK_RESPONSE:
        return "fallback_apology"
    return None


# --------------------------------------------------------------------------- examples


def _messages(turn: dict, teacher: _Teacher, config: DatasetConfig) -> tuple[list[dict], list[str]]:
    """Chat messages and, per message, the turn field its text came from."""
    history = (turn.get("history") or [])[-2 * config.history_turns :] if config.history_turns else []
    offset = len(turn.get("history") or []) - len(history)
    messages = [{"role": "system", "content": config.system_prompt, "tool_calls": None}]
    sources = ["system"]
    for index, message in enumerate(history):
        messages.append({"role": message["role"], "content": message["content"], "tool_calls": None})
        sources.append(f"history/{offset + index}/content")
    messages.append({"role": "user", "content": turn["query"], "tool_calls": None})
    sources.append("query")
    calls = None
    if teacher.tool_calls:
        calls = [{"type": "function", "function": {"name": call["function"]["name"],
                                                   "arguments": _json_text(call["function"].get("arguments"))}}
                 for call in teacher.tool_calls]
    messages.append({"role": "assistant", "content": teacher.answer, "tool_calls": calls})
    sources.append(teacher.field)
    return messages, sources


def _json_text(arguments: Any) -> str:
    # Chat templates render a string as is: one Arrow type for every tool's arguments.
    return arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def prompt_id(messages: list[dict]) -> str:
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    return hashlib.sha256(json.dumps(prompt, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- dedupe, caps, split


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def dedupe(examples: pd.DataFrame, config: DedupeConfig, engine: SimilarityEngine | None) -> tuple[pd.DataFrame, Counter]:
    """Exact then near duplicates of (customer message, answer), within each intent; then per-intent caps."""
    removed: Counter = Counter()
    keys = examples["messages"].apply(lambda m: _normalised(m[-2]["content"]) + "\n" + _normalised(m[-1]["content"]))
    if config.exact:
        duplicate = keys.duplicated(keep="first")
        removed["exact_duplicate"] = int(duplicate.sum())
        examples, keys = examples[~duplicate], keys[~duplicate]
    if config.near_threshold is not None and len(examples):
        if engine is None:
            raise BadInput("near-duplicate removal needs the similarity engine (or dedupe.near_threshold: null)")
        vectors = engine.embed(keys.tolist(), description="embedding examples for near-duplicate removal")
        near = np.zeros(len(examples), dtype=bool)
        for positions in examples.reset_index(drop=True).groupby("intent").indices.values():
            near[positions] = _near_duplicates(vectors[positions], config.near_threshold)
        removed["near_duplicate"] = int(near.sum())
        examples = examples[~near]
    if config.per_intent_cap is not None:
        # A fixed order (by prompt hash) so the cap keeps the same examples on every run.
        order = examples.assign(_key=examples["prompt_id"]).sort_values("_key", kind="stable")
        kept = order.groupby("intent", sort=False).head(config.per_intent_cap).index
        removed["intent_cap"] = int(len(examples) - len(kept))
        examples = examples.loc[examples.index.isin(kept)]
    return examples, removed


def _near_duplicates(vectors: np.ndarray, threshold: float, block: int = 1024) -> np.ndarray:
    """True for each row at least ``threshold`` similar to an earlier row that is kept."""
    duplicate = np.zeros(len(vectors), dtype=bool)
    kept: list[int] = []
    for start in range(0, len(vectors), block):
        chunk = vectors[start : start + block]
        if kept:
            duplicate[start : start + len(chunk)] = (chunk @ vectors[kept].T).max(axis=1) >= threshold
        for offset in range(len(chunk)):
            row = start + offset
            if duplicate[row]:
                continue
            later = chunk[offset + 1 :] @ chunk[offset]
            duplicate[row + 1 : start + len(chunk)] |= later >= threshold
            kept.append(row)
    return duplicate


_GOLDEN = (math.sqrt(5) - 1) / 2


def assign_splits(examples: pd.DataFrame, config: SplitConfig) -> pd.Series:
    """A split per example, by conversation: no conversation in two splits.

    Conversations are grouped by the intent and tier of their first example, shuffled within each
    group by a seeded hash, and given splits along a golden-ratio sequence, so every group is split
    close to the configured shares and the same input gives the same splits.
    """
    first = examples.sort_values(["conversation_id", "turn_index"]).groupby("conversation_id").first()
    first["_order"] = [hashlib.sha256(f"{config.seed}:{cid}".encode()).hexdigest() for cid in first.index]
    ordered = first.sort_values(["intent", "tier", "_order"])
    split_of: dict[str, str] = {}
    for position, conversation_id in enumerate(ordered.index):
        u = (position * _GOLDEN) % 1.0
        split_of[conversation_id] = "gate" if u < config.gate else "eval" if u < config.gate + config.eval else "train"
    return examples["conversation_id"].map(split_of)


# --------------------------------------------------------------------------- token lengths


class TokenCounter:
    """Token lengths with the target model's tokenizer (its chat template when it has one), or a local one."""

    def __init__(self, name: str | None):
        from transformers import AutoTokenizer

        # The name goes on the card: a local folder by its shareable path, the stand-in by its model name.
        self.name = (shareable_path(name) if os.path.isabs(name) else name) if name else \
            f"{STAND_IN_TOKENIZER} (local stand-in)"
        self.tokenizer = AutoTokenizer.from_pretrained(name) if name else stand_in_tokenizer()
        self.templated = name is not None and bool(getattr(self.tokenizer, "chat_template", None))

    def count(self, messages: list[dict], tools: list[dict] | None) -> int:
        """The example rendered with a chat template, tool schemas and tool calls included: the tokenizer's own
        template, else (the stand-in) a ChatML one like the smoke models'. An estimate for the card; ``train``
        and ``plan --dataset`` measure again with the recipe's tokenizer and template."""
        from hibachi_lab.smoke import CHATML_TEMPLATE

        rendered = [{k: v for k, v in m.items() if v is not None} for m in messages]
        encoded = self.tokenizer.apply_chat_template(
            rendered, tools=tools or None, tokenize=True, return_dict=True,
            chat_template=None if self.templated else CHATML_TEMPLATE)
        return len(encoded["input_ids"])


def fit_length(messages: list[dict], sources: list[str], tools: list[dict] | None, counter: TokenCounter,
               config: DatasetConfig) -> tuple[list[dict], list[str], int] | None:
    """Drop the oldest history exchanges until the example fits; None if it cannot (or overlong: drop)."""
    tokens = counter.count(messages, tools)
    while tokens > config.max_tokens:
        history = len(messages) - 3  # system, ..., user, assistant
        if config.overlong == "drop" or history <= 0:
            return None
        cut = 2 if history >= 2 else 1
        messages, sources = [messages[0], *messages[1 + cut :]], [sources[0], *sources[1 + cut :]]
        tokens = counter.count(messages, tools)
    return messages, sources, tokens


# --------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    summary: dict[str, Any]
    splits: dict[str, pd.DataFrame]


def build(
    table: datasets.Dataset | pa.Table,
    out: str | os.PathLike,
    config: DatasetConfig,
    engine: SimilarityEngine | None,
    members: list[str],
    pii_config: PiiConfig | None = None,
    source: str = "",
    track: bool = True,
) -> BuildResult:
    """Build, check for leaks, then write DIR atomically (datasets, JSONL, card, Kaggle bundle, MLflow run)."""
    arrow = traffic.arrow_table(table)
    turns = list(traffic.iter_objects(arrow))
    teachers, reasons = teacher_answers(turns, arrow, config, engine, members)
    # JSON text (TRL parses it): tool schemas differ in their keys, which one Arrow type cannot hold.
    tools_json = json.dumps(config.tools, sort_keys=True) if config.tools else None
    counter = TokenCounter(config.tokenizer)
    dropped: Counter = Counter()
    rows = []
    for turn, teacher, reason in zip(turns, teachers, reasons, strict=True):
        if teacher is not None and teacher.tool_calls and config.tool_calls == "exclude":
            teacher, reason = None, "tool_call_turn"
        if teacher is None:
            dropped[reason] += 1
            continue
        messages, sources = _messages(turn, teacher, config)
        tools = config.tools if teacher.tool_calls else None
        fitted = fit_length(messages, sources, tools, counter, config)
        if fitted is None:
            dropped["too_long"] += 1
            continue
        messages, sources, tokens = fitted
        rows.append({
            "messages": messages, "tools": tools_json if teacher.tool_calls else None, "prompt_id": prompt_id(messages),
            "conversation_id": turn["conversation_id"], "turn_index": turn["turn_index"],
            "intent": (turn.get("labels") or {}).get("intent") or "unlabelled", "tier": ensemble.TIER_OF_ROUTED_PROVIDER.get(turn.get("routed_provider"), "unknown"),
            "teacher_provider": teacher.provider, "agreement_score": teacher.agreement, "tokens": tokens,
            "other_teacher_answers": [text for _, text in teacher.alternatives],
            "other_teacher_fields": [field for field, _ in teacher.alternatives],
            "message_sources": sources, "surrogate_spans": _surrogate_spans(turn),
        })
    examples = pd.DataFrame(rows)
    if examples.empty:
        raise BadInput(f"{source or 'input'}: no turn gave a usable example (dropped: {dict(dropped)})")
    examples = examples.sort_values(["conversation_id", "turn_index"], kind="stable").reset_index(drop=True)
    examples, removed = dedupe(examples, config.dedupe, engine)
    examples = examples.assign(split=assign_splits(examples, config.split))
    examples, removed["off_policy_reference"] = check_against_sheet(examples, config.policy_sheet)
    examples, removed["repeated_gate_prompt"] = one_example_per_gate_prompt(examples)

    report = LeakChecker(pii_config).check(_texts_to_check(examples))
    if not report.passed:
        raise BadInput(f"{source or 'input'}: PII leak check failed, nothing written: {describe_leaks(report)}")

    internal = ["split", "message_sources", "surrogate_spans", "other_teacher_fields"]
    splits = {name: examples[examples["split"] == name].drop(columns=internal)
              .reset_index(drop=True) for name in SPLITS}
    summary = _summary(len(turns), dropped, removed, splits, config, counter, source)
    _write(Path(out), splits, summary, config, track)
    return BuildResult(summary, splits)


def check_against_sheet(examples: pd.DataFrame, policy_sheet: str | None) -> tuple[pd.DataFrame, int]:
    """Flag teacher answers that contradict the policy sheet (column ``off_policy``: the rule and the
    words, empty when none) and leave them out of the gate split: a reference that quotes the wrong
    price would reward the student for copying it. Train and eval keep them, flagged, for a person
    to correct or drop."""
    from hibachi_lab.policy import load_policy
    from hibachi_lab.verdicts import Judge

    judge = Judge(load_policy(policy_sheet), check_pii=False)
    found = [judge.against_sheet(messages[-1]["content"] or "") for messages in examples["messages"]]
    examples = examples.assign(off_policy=[f"{v.rule}: {v.evidence}" if v else "" for v in found])
    reference = (examples["split"] == "gate") & (examples["off_policy"] != "")
    return examples[~reference].reset_index(drop=True), int(reference.sum())


def one_example_per_gate_prompt(examples: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A student answers each prompt once, so a gate prompt asked in two conversations (the same scrubbed
    question with the same history) keeps its first example: two references would hold one answer to both."""
    gate = examples["split"] == "gate"
    repeated = gate & examples["prompt_id"].where(gate).duplicated(keep="first")
    return examples[~repeated].reset_index(drop=True), int(repeated.sum())


def _surrogate_spans(turn: dict) -> dict[str, list[tuple[int, int]]]:
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for item in (turn.get("scrub") or {}).get("surrogates", []):
        spans[item["field"]].append((item["start"], item["end"]))
    return dict(spans)


def _texts_to_check(examples: pd.DataFrame):
    for row in examples.itertuples():
        record = f"{row.conversation_id}/{row.turn_index}"
        for text, source in zip(row.other_teacher_answers, row.other_teacher_fields, strict=True):
            yield record, source, text, row.surrogate_spans.get(source, [])
        for message, source in zip(row.messages, row.message_sources, strict=True):
            if source != "system":
                yield record, source, message["content"] or "", row.surrogate_spans.get(source, [])
            for call in message.get("tool_calls") or []:
                yield record, f"{source}/tool_calls", call["function"]["arguments"], []


def _summary(turns_in: int, dropped: Counter, removed: Counter, splits: dict[str, pd.DataFrame],
             config: DatasetConfig, counter: TokenCounter, source: str) -> dict[str, Any]:
    examples = pd.concat(splits.values(), ignore_index=True)
    summary = {
        "source": shareable_paths(source),  # the card and summary go out with the Kaggle bundle
        "turns_in": turns_in,
        "examples_out": len(examples),
        "dropped": {reason: int(dropped.get(reason, 0)) for reason in DROP_REASONS},
        "removed": {reason: int(removed.get(reason, 0)) for reason in REMOVED_REASONS},
        "per_split": {name: len(frame) for name, frame in splits.items()},
        "conversations_per_split": {name: int(frame["conversation_id"].nunique()) for name, frame in splits.items()},
        "per_intent": {name: {s: int((f["intent"] == name).sum()) for s, f in splits.items()}
                       for name in sorted(examples["intent"].unique())},
        "per_tier": {name: {s: int((f["tier"] == name).sum()) for s, f in splits.items()}
                     for name in sorted(examples["tier"].unique())},
        "teacher_providers": examples["teacher_provider"].value_counts().sort_index().to_dict(),
        "tool_call_examples": int(examples["tools"].notna().sum()),
        "teacher_answers_off_policy": {name: int((frame["off_policy"] != "").sum()) for name, frame in splits.items()},
        "off_policy_rules": examples.loc[examples["off_policy"] != "", "off_policy"].str.split(": ").str[0]
        .value_counts().sort_index().to_dict(),
        "tokens": {"tokenizer": counter.name, "max": int(examples["tokens"].max()),
                   "median": float(examples["tokens"].median()), "total": int(examples["tokens"].sum())},
        "config_sha256": hashlib.sha256(config.model_dump_json().encode()).hexdigest(),
    }
    accounted = summary["examples_out"] + sum(summary["dropped"].values()) + sum(summary["removed"].values())
    if accounted != turns_in:  # a bug, not bad input: every turn must be accounted for
        raise AssertionError(f"turns in {turns_in} != examples {summary['examples_out']} + dropped + removed")
    return summary


def _write(out: Path, splits: dict[str, pd.DataFrame], summary: dict[str, Any], config: DatasetConfig,
           track: bool) -> None:
    """Everything into a temporary folder beside ``out``, then swapped in: a failed build leaves no half output."""
    with atomic_dir(out) as staging:
        for name, frame in splits.items():
            (staging / f"{name}.jsonl").write_text(_jsonl(frame), encoding="utf-8")
        digest = hashlib.sha256(b"".join((staging / f"{name}.jsonl").read_bytes() for name in SPLITS)).hexdigest()
        summary["digest"] = digest
        dataset_dict = datasets.DatasetDict({
            name: datasets.Dataset(InMemoryTable(pa.Table.from_pandas(frame, preserve_index=False)),
                                   fingerprint=hashlib.sha256(f"{digest}:{name}".encode()).hexdigest()[:16])
            for name, frame in splits.items()
        })
        dataset_dict.save_to_disk(str(staging / "hf"))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
        _card(summary, splits).write(staging, stem="README")
        kaggle = staging / "kaggle"
        kaggle.mkdir()
        for name in [*(f"{split}.jsonl" for split in SPLITS), "README.md", "summary.json"]:
            shutil.copyfile(staging / name, kaggle / name)
        shutil.copytree(staging / "figures", kaggle / "figures")  # the card shows them
        (kaggle / "dataset-metadata.json").write_text(json.dumps({
            "title": "My Hibachi assistant SFT (scrubbed)", "id": config.kaggle_id,
            "licenses": [{"name": "other"}],
        }, indent=2), encoding="utf-8")
    if track:
        summary["mlflow_run_id"] = _track(out, splits, summary)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")


def _jsonl(frame: pd.DataFrame) -> str:
    records = frame.to_dict(orient="records")
    lines = []
    for record in records:
        # pandas holds a missing value as NaN, which is not JSON.
        record = {key: None if _missing(value) else value for key, value in record.items()}
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True, default=json_default))
    return "".join(line + "\n" for line in lines)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _card(summary: dict[str, Any], splits: dict[str, pd.DataFrame]) -> Report:
    report = Report("My Hibachi assistant: instruction dataset")
    report.paragraph(
        f"Built from {summary['source'] or 'scrubbed traffic'}: {summary['turns_in']:,} turns in, "
        f"{summary['examples_out']:,} examples out. Every text passed the PII leak check. Dataset digest "
        f"{summary['digest'][:16]}."
    )
    report.heading("Splits (by conversation; gate is reserved for the promotion decision)")
    report.table(["split", "examples", "conversations"],
                 [[name, summary["per_split"][name], summary["conversations_per_split"][name]] for name in SPLITS])
    report.heading("Where the other turns went")
    report.table(["reason", "turns"], [[reason, count] for reason, count in
                                      {**summary["dropped"], **summary["removed"]}.items()])
    report.heading("Per intent")
    report.table(["intent", *SPLITS], [[name, *counts.values()] for name, counts in summary["per_intent"].items()])
    report.heading("Per tier")
    report.table(["tier", *SPLITS], [[name, *counts.values()] for name, counts in summary["per_tier"].items()])
    report.heading("Teacher sources")
    report.table(["teacher", "examples"], [[name, count] for name, count in summary["teacher_providers"].items()])
    report.paragraph(f"Examples with tool calls: {summary['tool_call_examples']:,}.")
    flagged = summary["teacher_answers_off_policy"]
    report.heading("Teacher answers that contradict the policy sheet")
    report.paragraph(
        f"{summary['removed']['off_policy_reference']:,} left out of the gate split (a wrong reference would reward "
        f"copying it); {flagged['train']:,} in train and {flagged['eval']:,} in eval kept and flagged in the "
        "`off_policy` column, for a person to correct or drop before training.")
    report.table(["rule", "answers"], [[rule, count] for rule, count in summary["off_policy_rules"].items()])
    report.paragraph(
        f"Token lengths are counted with {summary['tokens']['tokenizer']}, each example rendered with a chat template "
        "including its tool schemas and tool calls: an estimate unless that is the student's tokenizer. Before "
        "training, `hibachi-lab plan --dataset` and `train` measure every example with the recipe's tokenizer and "
        "template, report how many exceed its max_seq_length, and refuse to train rather than cut answers off."
    )
    fig, axis = plt.subplots(figsize=(7, 3.2))
    axis.hist([frame["tokens"] for frame in splits.values()], bins=30, label=list(splits), stacked=True)
    axis.set_xlabel(f"tokens per example ({summary['tokens']['tokenizer']})")
    axis.set_ylabel("examples")
    axis.legend()
    report.figure(fig, "token_lengths", f"Token lengths (median {summary['tokens']['median']:.0f}, "
                                        f"max {summary['tokens']['max']})")
    return report


def _track(out: Path, splits: dict[str, pd.DataFrame], summary: dict[str, Any]) -> str:
    import mlflow.data

    flat = splits["train"].assign(messages=splits["train"]["messages"].apply(json.dumps))
    with registry.quiet_mlflow():  # its schema hint is about model inputs, not a logged dataset
        train_input = mlflow.data.from_pandas(flat, source=shareable_path(out / "train.jsonl"), name="train",
                                              digest=summary["digest"][:16])
    metrics = {"examples_out": summary["examples_out"], "turns_in": summary["turns_in"],
               **{f"examples_{name}": count for name, count in summary["per_split"].items()},
               **{f"dropped_{reason}": count for reason, count in summary["dropped"].items()},
               **{f"removed_{reason}": count for reason, count in summary["removed"].items()}}
    with tempfile.TemporaryDirectory() as artifacts:
        for name in ("README.md", "summary.json"):
            shutil.copyfile(out / name, Path(artifacts) / name)
        shutil.copytree(out / "figures", Path(artifacts) / "figures")
        return registry.log_run("datasets", out.name, {"source": summary["source"], "digest": summary["digest"],
                                                      "config_sha256": summary["config_sha256"],
                                                      "tokenizer": summary["tokens"]["tokenizer"]},
                                metrics, artifacts, inputs=[(train_input, "training")])


def load_built(folder: str | os.PathLike) -> tuple[datasets.DatasetDict, dict[str, Any]]:
    """A built dataset: its ``hf/`` DatasetDict, or the JSONL splits alone (a Kaggle bundle); and its summary."""
    folder = Path(folder)
    if not (folder / "summary.json").exists():
        raise BadInput(f"{folder}: not a dataset written by build-dataset (no summary.json)")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if (folder / "hf" / "dataset_dict.json").exists():
        return datasets.load_from_disk(str(folder / "hf")), summary
    missing = [name for name in SPLITS if not (folder / f"{name}.jsonl").exists()]
    if missing:
        raise BadInput(f"{folder}: no hf/ folder and no {missing[0]}.jsonl")
    # Arrow's JSON reader infers one type per column from all rows (tool calls present or not).
    return datasets.DatasetDict({name: datasets.Dataset.from_json(str(folder / f"{name}.jsonl")) for name in SPLITS}), summary
