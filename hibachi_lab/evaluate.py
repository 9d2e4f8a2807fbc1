"""Student vs teacher on the gate split, and the promotion decision.

Student answers come from an adapter (transformers, batched greedy), an Ollama model, or a file
of answers made elsewhere (Kaggle). Each answer gets a verdict (:mod:`hibachi_lab.verdicts`:
correct, wrong_fact, off_policy, bad_tool_call, unsafe, non_answer, missing_fact) against the
teacher and the policy sheet, and a cosine to the teacher. The gate in ``configs/promotion.yaml``
passes a student only when the upper 95% bound of its wrong-answer rate is below the maximum,
no answer is unsafe, and its similarity reaches the teacher ceiling's share; every failed
condition is listed as a reason.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pydantic import Field

from hibachi_lab.config import StrictConfig
from hibachi_lab.errors import BadInput
from hibachi_lab.files import json_default, shareable_path, write_text_atomic
from hibachi_lab.policy import load_policy
from hibachi_lab.report import Report
from hibachi_lab.similarity import PROBE_KINDS, ProbePair, SimilarityEngine
from hibachi_lab.verdicts import VERDICTS, WRONG, Judge

BOOTSTRAP_REPLICATES = 2000


class PromotionConfig(StrictConfig):
    """configs/promotion.yaml: the production rule "90%+ similarity -> promote", made precise."""

    max_wrong_rate: float = Field(0.02, gt=0, lt=1, description="upper 95% bound of the share of wrong answers "
                                                                "(wrong_fact, off_policy, bad_tool_call, unsafe, "
                                                                "non_answer), clustered by conversation")
    max_missing_rate: float = Field(0.25, ge=0, le=1, description="share of answers that leave out a teacher fact")
    policy: str | None = Field(None, description="business policy sheet (default configs/business.yaml)")
    mode: Literal["absolute", "relative"] = "relative"
    threshold: float = Field(0.90, gt=0, description="absolute: mean cosine; relative: share of the teacher ceiling")
    intent_floor: float = Field(0.85, description="every intent's mean, same units as threshold")
    min_examples_per_intent: int = Field(10, ge=1, description="intents with fewer gate examples are not judged")
    # Short replies ("You're welcome!") share few words with any other reply: judged on verdicts only.
    verdicts_only_intents: list[str] = Field(default_factory=lambda: ["chit_chat"])
    min_gate_examples: int = Field(50, ge=1)


class StudentAnswer(StrictConfig):
    """One line of an answers file: ``{"prompt_id": ..., "answer": ..., "tool_calls": [...]}``."""

    prompt_id: str
    answer: str
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    batch_size: int = 8
    temperature: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size,
                "temperature": self.temperature, "decoding": "greedy" if self.temperature == 0 else "sampling"}


# --------------------------------------------------------------------------- student answers


def prompt_messages(example: dict) -> list[dict]:
    return [{k: v for k, v in m.items() if v is not None} for m in example["messages"][:-1]]


def answers_from_file(path: str | os.PathLike) -> dict[str, StudentAnswer]:
    from hibachi_lab.records import read_jsonl

    return {record.prompt_id: record for record in read_jsonl(path, StudentAnswer)}


_TOOL_CALL_TEXT = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def reply_from_text(prompt_id: str, text: str) -> StudentAnswer:
    """A generated reply: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks (Qwen's and
    Hermes' format) become tool calls, the rest is the answer."""
    calls = []
    for block in _TOOL_CALL_TEXT.findall(text):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            continue
        if isinstance(call, dict):
            calls.append({"type": "function", "function": {"name": call.get("name"),
                                                           "arguments": call.get("arguments")}})
    return StudentAnswer(prompt_id=prompt_id, answer=_TOOL_CALL_TEXT.sub("", text).strip(), tool_calls=calls or None)


def answers_from_adapter(adapter: str | os.PathLike, examples: list[dict],
                         settings: GenerationSettings) -> dict[str, StudentAnswer]:
    """Batched greedy generation with base + adapter (base: the smoke model saved beside it, or the hub id)."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from hibachi_lab.chat_templates import strip_think
    from hibachi_lab.students import adapter_recipe, base_model, load_base

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise BadInput(f"{adapter}: no adapter_config.json; pass the adapter folder written by train (OUT/adapter)")
    # Generation may use the base the adapter names, Unsloth's 4-bit one included; on a GPU when there is one.
    base = base_model(adapter, sixteen_bit=False)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    tokenizer.padding_side = "left"
    model = PeftModel.from_pretrained(load_base(base), adapter).eval()
    # The template settings the student was trained with (Qwen3: thinking off, so the empty think block is
    # prefilled as in training); think blocks never count as part of an answer.
    recipe = adapter_recipe(adapter)
    template_kwargs = ({"enable_thinking": recipe.chat_template.enable_thinking}
                       if recipe and recipe.chat_template.enable_thinking is not None else {})
    answers = {}
    for start in range(0, len(examples), settings.batch_size):
        batch = examples[start : start + settings.batch_size]
        prompts = [tokenizer.apply_chat_template(prompt_messages(example), tools=_tools(example), tokenize=False,
                                                 add_generation_prompt=True, **template_kwargs) for example in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=settings.max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        for example, row in zip(batch, generated[:, encoded["input_ids"].shape[1] :], strict=True):
            prompt_id = example["prompt_id"]
            text = strip_think(tokenizer.decode(row, skip_special_tokens=True))
            answers[prompt_id] = reply_from_text(prompt_id, text)
    return answers


def answers_from_ollama(model: str, examples: list[dict], settings: GenerationSettings) -> dict[str, StudentAnswer]:
    """Ask a model served by Ollama (host from OLLAMA_HOST, as the official client reads it)."""
    from hibachi_lab.ollama import connected

    answers = {}
    with connected() as ollama:
        for example in examples:
            response = ollama.chat(model=model, messages=prompt_messages(example),
                                   options={"temperature": settings.temperature, "num_predict": settings.max_new_tokens})
            prompt_id = example["prompt_id"]
            reply = reply_from_text(prompt_id, response.message.content or "")
            calls = [{"type": "function", "function": {"name": call.function.name,
                                                       "arguments": dict(call.function.arguments or {})}}
                     for call in (response.message.tool_calls or [])]
            answers[prompt_id] = reply.model_copy(update={"tool_calls": calls}) if calls else reply
    return answers


def _tools(example: dict) -> list | None:
    """Tool schemas: JSON text in hf/, already decoded when datasets reads the JSONL bundle."""
    tools = example.get("tools")
    return json.loads(tools) if isinstance(tools, str) else tools or None


# --------------------------------------------------------------------------- scoring


def clustered_bootstrap(values: np.ndarray, clusters: np.ndarray, replicates: int = BOOTSTRAP_REPLICATES,
                        seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean, resampling whole conversations (examples of one conversation move together)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    codes, groups = pd.factorize(pd.Series(clusters))
    sums = np.bincount(codes, weights=values, minlength=len(groups))
    counts = np.bincount(codes, minlength=len(groups))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(replicates, len(groups)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def wrong_rate_upper_bound(wrong: np.ndarray, clusters: np.ndarray, z: float = 1.645) -> float:
    """One-sided 95% upper bound of the wrong-answer rate, allowing for answers of one conversation
    being alike: a Wilson bound on the effective sample size (n / design effect, Miller 2024).

    With no wrong answer it is z²/(n+z²): 199 clean answers bound the rate at 1.3%, 100 at 2.6%.
    """
    n = len(wrong)
    if n == 0:
        return 1.0
    rate = float(np.mean(wrong))
    effective = float(n)
    if 0 < rate < 1:
        codes, groups = pd.factorize(pd.Series(clusters))
        wrong_per = np.bincount(codes, weights=wrong.astype(float), minlength=len(groups))
        size_per = np.bincount(codes, minlength=len(groups))
        k = len(groups)
        clustered = k / max(k - 1, 1) * float(np.sum((wrong_per - rate * size_per) ** 2)) / n**2
        effective = n / max(1.0, clustered / (rate * (1 - rate) / n))
    spread = z * math.sqrt(rate * (1 - rate) / effective + z**2 / (4 * effective**2))
    return min(1.0, (rate + z**2 / (2 * effective) + spread) / (1 + z**2 / effective))


def _student(reply: StudentAnswer | str, prompt_id: str) -> StudentAnswer:
    return reply if isinstance(reply, StudentAnswer) else StudentAnswer(prompt_id=prompt_id, answer=reply)


def _is_copy(text: str, reference: str) -> bool:
    """A verbatim or near-verbatim copy (case, spacing, punctuation aside) of the reference."""
    def words(value: str) -> str:
        return " ".join(re.findall(r"\w+", value.lower()))
    return words(text) == words(reference)


def score(examples: list[dict], answers: dict[str, StudentAnswer | str], engine: SimilarityEngine,
          judge: Judge | None = None) -> pd.DataFrame:
    """Per example: the verdict, similarity to the teacher, and the teacher ceiling on the same prompt."""
    missing = [example["prompt_id"] for example in examples if example["prompt_id"] not in answers]
    if missing:
        raise BadInput(f"no student answer for {len(missing)} gate prompt(s), e.g. prompt_id {missing[0]}")
    judge = judge or Judge(load_policy())
    replies = [_student(answers[example["prompt_id"]], example["prompt_id"]) for example in examples]
    teacher = [example["messages"][-1]["content"] or "" for example in examples]
    student = [reply.answer for reply in replies]
    verdicts = judge.judge_all({
        "question": example["messages"][-2]["content"] or "", "teacher": reference, "student": reply.answer,
        "teacher_tool_calls": teacher_tool_calls(example["messages"][-1]), "student_tool_calls": reply.tool_calls,
    } for example, reference, reply in zip(examples, teacher, replies, strict=True))
    similarity = engine.cosine(student, teacher)
    # The ceiling: how close a *different* strong teacher comes. Copies of the reference (the
    # consensus pick is often one of the teachers) would make it 1.0 and are left out.
    ceiling, ceiling_answers, copies = [], [], []
    for example, reference in zip(examples, teacher, strict=True):
        others = list(example.get("other_teacher_answers") or [])
        distinct = [text for text in others if not _is_copy(text, reference)]
        copies.append(len(others) - len(distinct))
        ceiling_answers.append(len(distinct))
        ceiling.append(float(np.mean(engine.cosine(distinct, [reference] * len(distinct)))) if distinct else np.nan)
    return pd.DataFrame({
        "prompt_id": [e["prompt_id"] for e in examples],
        "conversation_id": [e["conversation_id"] for e in examples],
        "intent": [e["intent"] for e in examples],
        "tier": [e["tier"] for e in examples],
        "prompt": [e["messages"][-2]["content"] for e in examples],
        "teacher": teacher,
        "student": student,
        "verdict": [v.verdict for v in verdicts],
        "rule": [v.rule for v in verdicts],
        "evidence": [v.evidence for v in verdicts],
        "similarity": similarity.astype(float),
        "teacher_ceiling": ceiling,
        "ceiling_answers": ceiling_answers,
        "ceiling_copies_dropped": copies,
    })


def teacher_answer(example: dict) -> StudentAnswer:
    """The gate example's reference answer as a student would give it, booking calls included."""
    reference = example["messages"][-1]
    return StudentAnswer(prompt_id=example["prompt_id"], answer=reference["content"] or "",
                         tool_calls=teacher_tool_calls(reference))


def second_teacher_answers(examples: list[dict], judge: Judge) -> tuple[dict[str, StudentAnswer], int]:
    """A student made of another ensemble member's answers, for showing a promotion (the demo).

    On each prompt where the dataset keeps a distinct answer of another member that the verdicts
    accept against the reference (same facts, on the policy sheet, nothing unsafe), that answer;
    the reference elsewhere. Ensemble members sometimes state a wrong fact, which no honest
    student would copy. Booking calls stay the reference's: the dataset keeps only the other
    members' text. Returns the answers and how many came from the second teacher.
    """
    answers = {example["prompt_id"]: teacher_answer(example) for example in examples}
    candidates = []  # (example, the other member's answer)
    for example in examples:
        reference = answers[example["prompt_id"]]
        distinct = [text for text in example.get("other_teacher_answers") or [] if not _is_copy(text, reference.answer)]
        if distinct:
            candidates.append((example, reference.model_copy(update={"answer": distinct[0]})))
    verdicts = judge.judge_all({
        "question": example["messages"][-2]["content"] or "", "teacher": answers[reply.prompt_id].answer,
        "student": reply.answer, "teacher_tool_calls": reply.tool_calls, "student_tool_calls": reply.tool_calls,
    } for example, reply in candidates)
    accepted = [reply for (_, reply), verdict in zip(candidates, verdicts, strict=True) if not verdict.wrong]
    answers |= {reply.prompt_id: reply for reply in accepted}
    return answers, len(accepted)


def teacher_tool_calls(message: dict) -> list | None:
    calls = message.get("tool_calls") or None
    if not calls:
        return None
    return [{"type": "function", "function": {"name": call["function"]["name"],
                                              "arguments": call["function"]["arguments"]}} for call in calls]


def probe_checks(pairs: list[ProbePair], engine: SimilarityEngine) -> pd.DataFrame:
    """Negation and number-swap probes: cosine beside the share the verdicts call wrong."""
    chosen = [pair for pair in pairs if pair.kind in ("negation", "number_swap", "paraphrase")]
    cosine = engine.cosine([p.a for p in chosen], [p.b for p in chosen])
    verdicts = Judge(load_policy(), check_pii=False).judge_all(
        {"teacher": p.a, "student": p.b} for p in chosen)
    frame = pd.DataFrame({"kind": [p.kind for p in chosen], "cosine": cosine,
                          "judged_wrong": [float(v.wrong) for v in verdicts]})
    return frame.groupby("kind").agg(pairs=("cosine", "size"), mean_cosine=("cosine", "mean"),
                                     judged_wrong=("judged_wrong", "mean")).reindex(
        [kind for kind in PROBE_KINDS if kind in set(frame["kind"])])


# --------------------------------------------------------------------------- the gate


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str]
    metrics: dict[str, float | None]
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)


# 0.72 / 0.8 is 0.8999999999999999 in floating point: a student exactly at the threshold meets it.
_ROUNDING = 1e-9


def decide(scores: pd.DataFrame, config: PromotionConfig) -> GateDecision:
    """Pass only if every condition holds; otherwise fail listing each one that does not."""
    reasons = []
    n = len(scores)
    wrong = scores["verdict"].isin(WRONG).to_numpy()
    wrong_rate = float(wrong.mean()) if n else float("nan")
    upper = wrong_rate_upper_bound(wrong, scores["conversation_id"].to_numpy())
    counts = scores["verdict"].value_counts()
    unsafe = int(counts.get("unsafe", 0))
    missing_rate = float((scores["verdict"] == "missing_fact").mean()) if n else 0.0
    mean = float(scores["similarity"].mean()) if n else float("nan")
    has_ceiling = scores["teacher_ceiling"].notna()
    ceiling = float(scores.loc[has_ceiling, "teacher_ceiling"].mean()) if has_ceiling.any() else None
    student_on_ceiling_prompts = float(scores.loc[has_ceiling, "similarity"].mean()) if has_ceiling.any() else None
    if config.mode == "relative":
        scale = ceiling if ceiling and ceiling > 0 else float("nan")
        value, label = (student_on_ceiling_prompts or float("nan")) / scale, "of the teacher ceiling"
    else:
        scale, value, label = 1.0, mean, "cosine"
    metrics = {"gate_examples": n, "wrong_answers": int(wrong.sum()), "wrong_rate": wrong_rate,
               "wrong_rate_upper_95": upper, "unsafe_answers": unsafe, "missing_fact_rate": missing_rate,
               **{f"verdict.{name}": int(counts.get(name, 0)) for name in VERDICTS},
               "mean_similarity": mean, "teacher_ceiling": ceiling,
               "ceiling_prompts": int(has_ceiling.sum()),
               "ceiling_copies_dropped": int(scores["ceiling_copies_dropped"].sum()), "gate_value": value}

    if n < config.min_gate_examples:
        reasons.append(f"only {n} gate examples, at least {config.min_gate_examples} needed")
    if not upper <= config.max_wrong_rate:
        by_kind = ", ".join(f"{int(counts[name])} {name}" for name in VERDICTS if name in WRONG and counts.get(name))
        reasons.append(f"{int(wrong.sum())} of {n} answers are wrong ({wrong_rate:.1%}{': ' + by_kind if by_kind else ''}); "
                       f"the upper 95% bound {upper:.1%} is above the maximum {config.max_wrong_rate:.1%}")
    if unsafe:
        reasons.append(f"{unsafe} answer(s) are unsafe (personal data, a competitor or rude tone): any one fails")
    if missing_rate > config.max_missing_rate:
        reasons.append(f"{missing_rate:.1%} of answers leave out a fact the teacher gave, above the maximum "
                       f"{config.max_missing_rate:.0%}")
    if config.mode == "relative" and np.isnan(scale):
        reasons.append("relative mode needs a teacher ceiling: no gate example has a distinct second teacher's answer "
                       "(use mode: absolute, or build the dataset with teacher_sources starting with consensus)")
    elif not value >= config.threshold - _ROUNDING:
        reasons.append(f"similarity {value:.3f} {label} is below the threshold {config.threshold}")
    per_intent = {}
    for intent, group in scores.groupby("intent"):
        intent_value = float(group["similarity"].mean()) / scale
        per_intent[str(intent)] = {"examples": len(group), "value": intent_value,
                                   "wrong": int(group["verdict"].isin(WRONG).sum())}
        judged = (len(group) >= config.min_examples_per_intent and intent not in config.verdicts_only_intents
                  and not np.isnan(scale))
        if judged and not intent_value >= config.intent_floor - _ROUNDING:
            reasons.append(f"intent {intent}: similarity {intent_value:.3f} {label} is below its floor "
                           f"{config.intent_floor} ({len(group)} examples)")
    return GateDecision(not reasons, reasons, metrics, per_intent)


# --------------------------------------------------------------------------- the report


def gate_report(scores: pd.DataFrame, decision: GateDecision, config: PromotionConfig, probes: pd.DataFrame,
                title: str, student_text: bool = True, smoke_model: bool = False) -> Report:
    """Decision first, then every answer that is not correct, grouped by verdict, teacher beside student."""
    report = Report(title)
    metrics = decision.metrics
    verdict = "PASSED: the student may be promoted" if decision.passed else "FAILED: do not promote"
    report.paragraph(f"**{verdict}.** {metrics['wrong_answers']} of {metrics['gate_examples']} answers are wrong "
                     f"({metrics['wrong_rate']:.1%}; upper 95% bound {metrics['wrong_rate_upper_95']:.1%}, maximum "
                     f"{config.max_wrong_rate:.1%}); similarity {metrics['gate_value']:.3f} "
                     f"{'of the teacher ceiling' if config.mode == 'relative' else 'cosine'} "
                     f"(threshold {config.threshold}).")
    if smoke_model:
        report.paragraph("This student is a smoke-test model (tiny, random weights): its answers are noise and "
                         "only show that the pipeline runs.")
    if decision.reasons:
        report.heading("Why it failed")
        for reason in decision.reasons:
            report.paragraph(f"- {reason}")
    withheld = "[withheld: not checked for PII]"
    not_correct = scores[scores["verdict"] != "correct"]
    for name in [v for v in VERDICTS if v != "correct"]:
        group = not_correct[not_correct["verdict"] == name]
        if group.empty:
            continue
        report.heading(f"{name.replace('_', ' ')}: {len(group)} answer(s)"
                       + ("" if name in WRONG else " (reported, not counted as wrong)"))
        report.table(["intent", "rule at fault", "evidence", "prompt", "teacher", "student"],
                     [[row.intent, row.rule, row.evidence, row.prompt, row.teacher,
                       row.student if student_text else withheld] for row in group.head(50).itertuples()])
    report.heading("Verdicts per intent")
    report.table(["intent", "examples", "wrong", "similarity (gate units)"],
                 [[name, row["examples"], row["wrong"], row["value"]] for name, row in decision.per_intent.items()])
    report.heading("All figures")
    report.table(["metric", "value"], [[key, "n/a" if value is None else value] for key, value in metrics.items()])
    report.paragraph(f"The teacher ceiling rests on {metrics['ceiling_prompts']} prompt(s) with a distinct second "
                     f"teacher answer; {metrics['ceiling_copies_dropped']} verbatim copies were left out.")
    fig, axis = plt.subplots(figsize=(7, 3.2))
    axis.hist(scores["similarity"], bins=30, alpha=0.7, label="student vs teacher")
    if scores["teacher_ceiling"].notna().any():
        axis.hist(scores["teacher_ceiling"].dropna(), bins=30, alpha=0.5, label="teacher vs teacher (ceiling)")
    axis.set_xlabel("cosine similarity")
    axis.legend()
    report.figure(fig, "similarity", "Student and teacher-ceiling similarity on the gate split")
    report.heading("What cosine misses: probe pairs")
    report.paragraph("Negated claims and swapped numbers keep a high cosine; the verdicts call them wrong.")
    report.table(["kind", "pairs", "mean cosine", "judged wrong"],
                 [[kind, row.pairs, row.mean_cosine, row.judged_wrong] for kind, row in probes.iterrows()])
    return report


# --------------------------------------------------------------------------- the command


def run_evaluation(
    dataset_dir: str | os.PathLike,
    out: str | os.PathLike,
    engine: SimilarityEngine,
    config: PromotionConfig,
    probes: list[ProbePair],
    *,
    adapter: str | os.PathLike | None = None,
    ollama_model: str | None = None,
    answers_file: str | os.PathLike | None = None,
    generation: GenerationSettings | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Answer the gate split, score it, decide, write the report; record and register it in MLflow."""
    from hibachi_lab.dataset import load_built

    sources = [s for s in (adapter, ollama_model, answers_file) if s is not None]
    if len(sources) != 1:
        raise BadInput("give exactly one of --adapter, --ollama or --answers")
    generation = generation or GenerationSettings()
    folder, out = Path(dataset_dir), Path(out)
    splits, summary_of_dataset = load_built(folder)
    examples = list(splits["gate"])
    if adapter is not None:
        answers, kind = answers_from_adapter(adapter, examples, generation), "adapter"
    elif ollama_model is not None:
        answers, kind = answers_from_ollama(ollama_model, examples, generation), "ollama"
    else:
        answers, kind = answers_from_file(answers_file), "answers"
    scores = score(examples, answers, engine, Judge(load_policy(config.policy)))
    decision = decide(scores, config)
    smoke_model = adapter is not None and (Path(adapter).parent / "base" / "config.json").exists()
    probe_table = probe_checks(probes, engine)
    out.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out / "per_example.parquet", index=False)
    result = {
        # Shared in MLflow and the registry description: paths without the user's folders.
        "student": {"kind": kind, "source": shareable_path(sources[0]) if kind != "ollama" else str(sources[0])},
        "dataset": shareable_path(folder),
        "dataset_digest": summary_of_dataset.get("digest"), "generation": generation.to_dict(),
        "gate": config.model_dump(), "passed": decision.passed, "reasons": decision.reasons,
        "metrics": decision.metrics, "per_intent": decision.per_intent, "smoke_model": smoke_model,
    }
    write_text_atomic(out / "decision.json", json.dumps(result, indent=2, default=json_default))
    source = Path(str(sources[0]))
    title = f"Promotion gate: {kind} {source.parent.name + '/' if adapter is not None else ''}{source.name}"
    gate_report(scores, decision, config, probe_table, title, smoke_model=smoke_model).write(out)
    if track:
        result |= _track(out, scores, decision, config, probe_table, title, result, adapter, answers_file)
        write_text_atomic(out / "decision.json", json.dumps(result, indent=2, default=json_default))
    return result


def _track(out: Path, scores: pd.DataFrame, decision: GateDecision, config: PromotionConfig, probes: pd.DataFrame,
           title: str, result: dict, adapter: Any, answers_file: Any) -> dict[str, Any]:
    """An evaluation run whose artifacts hold no unchecked text, and a registered version with the decision."""
    import shutil
    import tempfile

    from hibachi_lab import registry
    from hibachi_lab.pii import LeakChecker

    # Teacher text passed the leak gate when the dataset was built; student text is checked here.
    report = LeakChecker().check((pid, "student", text, []) for pid, text in zip(scores["prompt_id"], scores["student"]))
    leaking = {leak["record"] for leak in report.leaks}
    shared = scores.assign(student=[("[withheld: the PII leak check flagged this answer]" if pid in leaking else text)
                                    for pid, text in zip(scores["prompt_id"], scores["student"])])
    metrics = {key: value for key, value in decision.metrics.items() if value is not None}
    metrics |= {f"intent.{name}": row["value"] for name, row in decision.per_intent.items()}
    metrics["passed"] = float(decision.passed)
    params = {"student_kind": result["student"]["kind"], "student_source": result["student"]["source"],
              "dataset": result["dataset"], "dataset_digest": result["dataset_digest"],
              "generation": json.dumps(result["generation"]), "gate": json.dumps(result["gate"])}
    with tempfile.TemporaryDirectory() as artifacts:
        artifacts = Path(artifacts)
        shared.to_parquet(artifacts / "per_example.parquet", index=False)
        gate_report(shared, decision, config, probes, title, smoke_model=result["smoke_model"]).write(artifacts)
        shutil.copyfile(out / "decision.json", artifacts / "decision.json")
        student = artifacts / "student"
        if adapter is not None:
            shutil.copytree(adapter, student)
        else:
            student.mkdir()
            if answers_file is not None:
                shutil.copyfile(answers_file, student / Path(answers_file).name)
            (student / "source.txt").write_text(result["student"]["source"])
        run_id = registry.log_run("evaluation", title, params, metrics, artifacts,
                                  tags={"gate_result": "pass" if decision.passed else "fail"})
    metrics = decision.metrics
    tags = {"gate_result": "pass" if decision.passed else "fail", "gate_reasons": "; ".join(decision.reasons) or "none",
            "wrong_answers": f"{metrics['wrong_answers']} of {metrics['gate_examples']}",
            "wrong_rate_upper_95": f"{metrics['wrong_rate_upper_95']:.4f}",
            "gate_value": f"{metrics['gate_value']:.4f}", "mean_similarity": f"{metrics['mean_similarity']:.4f}",
            "dataset_digest": str(result["dataset_digest"]), "student": result["student"]["source"],
            "gate_mode": config.mode, "smoke_model": str(result["smoke_model"]).lower()}
    description = (f"{'PASSED' if decision.passed else 'FAILED'} the promotion gate: {metrics['wrong_answers']} of "
                   f"{metrics['gate_examples']} answers wrong (upper 95% bound {metrics['wrong_rate_upper_95']:.1%}, "
                   f"maximum {config.max_wrong_rate:.1%}), similarity {metrics['gate_value']:.3f} "
                   f"{'of the teacher ceiling' if config.mode == 'relative' else 'cosine'}."
                   + (" Smoke-test model: its answers are noise." if result["smoke_model"] else "")
                   + ("" if decision.passed else " Reasons: " + "; ".join(decision.reasons)))
    version = registry.register_student(run_id, "student", tags, description)
    return {"mlflow_run_id": run_id, "registered_version": version, "student_answers_withheld": len(leaking)}
