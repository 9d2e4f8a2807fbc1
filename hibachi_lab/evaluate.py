"""Student vs teacher on the gate split, and the promotion decision.

Student answers come from an adapter (transformers, batched greedy), an Ollama model, or a file
of answers made elsewhere (Kaggle). Each is scored against the teacher's answer with the
similarity engine and with fact agreement (:mod:`hibachi_lab.facts`); the gate in
``configs/promotion.yaml`` turns the scores into pass or fail with every reason listed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pydantic import Field

from hibachi_lab import facts
from hibachi_lab.config import StrictConfig
from hibachi_lab.errors import BadInput
from hibachi_lab.files import json_default
from hibachi_lab.report import Report
from hibachi_lab.similarity import PROBE_KINDS, ProbePair, SimilarityEngine

BOOTSTRAP_REPLICATES = 2000


class PromotionConfig(StrictConfig):
    """configs/promotion.yaml: the production rule "90%+ similarity -> promote", made precise."""

    mode: Literal["absolute", "relative"] = "relative"
    threshold: float = Field(0.90, gt=0, description="absolute: mean cosine; relative: share of the teacher ceiling")
    ci_lower_floor: float = Field(0.85, description="lower end of the 95% interval, same units as threshold")
    fact_agreement_floor: float = Field(0.80, ge=0, le=1)
    intent_floor: float = Field(0.85, description="every intent's mean, same units as threshold")
    min_examples_per_intent: int = Field(10, ge=1, description="intents with fewer gate examples are not judged")
    min_gate_examples: int = Field(50, ge=1)



class StudentAnswer(StrictConfig):
    """One line of an answers file: ``{"prompt_id": ..., "answer": ...}``."""

    prompt_id: str
    answer: str


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


def answers_from_file(path: str | os.PathLike) -> dict[str, str]:
    from hibachi_lab.records import read_jsonl

    return {record.prompt_id: record.answer for record in read_jsonl(path, StudentAnswer)}


def answers_from_adapter(adapter: str | os.PathLike, examples: list[dict], settings: GenerationSettings) -> dict[str, str]:
    """Batched greedy generation with base + adapter (base: the smoke model saved beside it, or the hub id)."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise BadInput(f"{adapter}: no adapter_config.json; pass the adapter folder written by train (OUT/adapter)")
    smoke_base = adapter.parent / "base"
    base = smoke_base if (smoke_base / "config.json").exists() else PeftConfig.from_pretrained(adapter).base_model_name_or_path
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    tokenizer.padding_side = "left"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    answers = {}
    for start in range(0, len(examples), settings.batch_size):
        batch = examples[start : start + settings.batch_size]
        prompts = [tokenizer.apply_chat_template(prompt_messages(example), tools=_tools(example), tokenize=False,
                                                 add_generation_prompt=True) for example in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            generated = model.generate(**encoded, max_new_tokens=settings.max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        for example, row in zip(batch, generated[:, encoded["input_ids"].shape[1] :], strict=True):
            answers[example["prompt_id"]] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return answers


def answers_from_ollama(model: str, examples: list[dict], settings: GenerationSettings) -> dict[str, str]:
    """Ask a model served by Ollama (host from OLLAMA_HOST, as the official client reads it)."""
    from hibachi_lab.ollama import connected

    answers = {}
    with connected() as ollama:
        for example in examples:
            response = ollama.chat(model=model, messages=prompt_messages(example),
                                   options={"temperature": settings.temperature, "num_predict": settings.max_new_tokens})
            answers[example["prompt_id"]] = response.message.content or ""
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


def score(examples: list[dict], answers: dict[str, str], engine: SimilarityEngine) -> pd.DataFrame:
    """Per example: similarity to the teacher, fact agreement, and the teacher ceiling on the same prompt."""
    missing = [example["prompt_id"] for example in examples if example["prompt_id"] not in answers]
    if missing:
        raise BadInput(f"no student answer for {len(missing)} gate prompt(s), e.g. prompt_id {missing[0]}")
    teacher = [example["messages"][-1]["content"] or "" for example in examples]
    student = [answers[example["prompt_id"]] for example in examples]
    similarity = engine.cosine(student, teacher)
    ceiling = []
    for example, reference in zip(examples, teacher, strict=True):
        others = list(example.get("other_teacher_answers") or [])
        ceiling.append(float(np.mean(engine.cosine(others, [reference] * len(others)))) if others else np.nan)
    return pd.DataFrame({
        "prompt_id": [e["prompt_id"] for e in examples],
        "conversation_id": [e["conversation_id"] for e in examples],
        "intent": [e["intent"] for e in examples],
        "tier": [e["tier"] for e in examples],
        "prompt": [e["messages"][-2]["content"] for e in examples],
        "teacher": teacher,
        "student": student,
        "similarity": similarity.astype(float),
        "fact_agreement": [facts.agreement(t, s) for t, s in zip(teacher, student, strict=True)],
        "teacher_ceiling": ceiling,
    })


def probe_checks(pairs: list[ProbePair], engine: SimilarityEngine) -> pd.DataFrame:
    """Negation and number-swap probes: cosine beside fact agreement, to show what each catches."""
    chosen = [pair for pair in pairs if pair.kind in ("negation", "number_swap", "paraphrase")]
    cosine = engine.cosine([p.a for p in chosen], [p.b for p in chosen])
    frame = pd.DataFrame({"kind": [p.kind for p in chosen], "cosine": cosine,
                          "fact_agreement": [facts.agreement(p.a, p.b) for p in chosen]})
    return frame.groupby("kind").agg(pairs=("cosine", "size"), mean_cosine=("cosine", "mean"),
                                     mean_fact_agreement=("fact_agreement", "mean")).reindex(
        [kind for kind in PROBE_KINDS if kind in set(frame["kind"])])


# --------------------------------------------------------------------------- the gate


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str]
    metrics: dict[str, float | None]
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)


def decide(scores: pd.DataFrame, config: PromotionConfig) -> GateDecision:
    """Pass only if every condition holds; otherwise fail listing each one that does not."""
    reasons = []
    n = len(scores)
    mean = float(scores["similarity"].mean()) if n else float("nan")
    low, high = clustered_bootstrap(scores["similarity"].to_numpy(), scores["conversation_id"].to_numpy())
    with_facts = scores["fact_agreement"].dropna()
    fact_mean = float(with_facts.mean()) if len(with_facts) else None
    has_ceiling = scores["teacher_ceiling"].notna()
    ceiling = float(scores.loc[has_ceiling, "teacher_ceiling"].mean()) if has_ceiling.any() else None
    student_on_ceiling_prompts = float(scores.loc[has_ceiling, "similarity"].mean()) if has_ceiling.any() else None

    if config.mode == "relative":
        if ceiling is None or not ceiling > 0:
            reasons.append("relative mode needs a teacher ceiling: no gate example has a second teacher's answer "
                           "(use mode: absolute, or build the dataset with teacher_sources starting with consensus)")
            scale = float("nan")
        else:
            scale = ceiling
        value = (student_on_ceiling_prompts or float("nan")) / scale
        low_value, label = low / scale, "of the teacher ceiling"
    else:
        scale, value, low_value, label = 1.0, mean, low, "cosine"
    # The threshold in cosine units: as is (absolute) or scaled by the ceiling (relative).
    cosine_threshold = config.threshold * (scale if config.mode == "relative" and not np.isnan(scale) else 1.0)
    metrics = {"gate_examples": n, "mean_similarity": mean, "median_similarity": float(scores["similarity"].median()),
               "ci_low": low, "ci_high": high,
               "share_above_threshold": float((scores["similarity"] >= cosine_threshold).mean()),
               "fact_agreement": fact_mean, "teacher_ceiling": ceiling, "gate_value": value, "gate_ci_low": low_value}
    if n < config.min_gate_examples:
        reasons.append(f"only {n} gate examples, at least {config.min_gate_examples} needed")
    comparable = not np.isnan(scale)
    if comparable and not value >= config.threshold:
        reasons.append(f"mean similarity {value:.3f} {label} is below the threshold {config.threshold}")
    if comparable and not low_value >= config.ci_lower_floor:
        reasons.append(f"lower end of the 95% interval {low_value:.3f} {label} is below the floor "
                       f"{config.ci_lower_floor}")
    if fact_mean is not None and fact_mean < config.fact_agreement_floor:
        reasons.append(f"fact agreement {fact_mean:.3f} is below the floor {config.fact_agreement_floor}: the student "
                       "states different prices, numbers, dates or service claims than the teacher")
    per_intent = {}
    for intent, group in scores.groupby("intent"):
        intent_value = float(group["similarity"].mean()) / (scale if config.mode == "relative" else 1.0)
        per_intent[str(intent)] = {"examples": len(group), "value": intent_value,
                                   "fact_agreement": float(group["fact_agreement"].dropna().mean())
                                   if group["fact_agreement"].notna().any() else None}
        if comparable and len(group) >= config.min_examples_per_intent and not intent_value >= config.intent_floor:
            reasons.append(f"intent {intent}: {intent_value:.3f} {label} is below its floor {config.intent_floor} "
                           f"({len(group)} examples)")
    return GateDecision(not reasons, reasons, metrics, per_intent)


# --------------------------------------------------------------------------- the report


def gate_report(scores: pd.DataFrame, decision: GateDecision, config: PromotionConfig, probes: pd.DataFrame,
                title: str, student_text: bool = True) -> Report:
    report = Report(title)
    verdict = "PASSED" if decision.passed else "FAILED"
    report.paragraph(f"Gate {verdict} ({config.mode} mode, threshold {config.threshold}).")
    if decision.reasons:
        report.heading("Why it failed")
        for reason in decision.reasons:
            report.paragraph(f"- {reason}")
    report.heading("Scores")
    report.table(["metric", "value"], [[key, "n/a" if value is None else value] for key, value in
                                       decision.metrics.items()])
    report.heading("Per intent")
    report.table(["intent", "examples", "gate value", "fact agreement"],
                 [[name, row["examples"], row["value"], "n/a" if row["fact_agreement"] is None else row["fact_agreement"]]
                  for name, row in decision.per_intent.items()])
    report.table(["tier", "examples", "mean similarity"],
                 [[tier, len(group), float(group["similarity"].mean())] for tier, group in scores.groupby("tier")])
    fig, axis = plt.subplots(figsize=(7, 3.2))
    axis.hist(scores["similarity"], bins=30, alpha=0.7, label="student vs teacher")
    if scores["teacher_ceiling"].notna().any():
        axis.hist(scores["teacher_ceiling"].dropna(), bins=30, alpha=0.5, label="teacher vs teacher (ceiling)")
    axis.set_xlabel("cosine similarity")
    axis.legend()
    report.figure(fig, "similarity", "Student and teacher-ceiling similarity on the gate split")
    report.heading("What cosine misses: probe pairs")
    report.paragraph("Negated claims and swapped numbers keep a high cosine; fact agreement drops to near zero.")
    report.table(["kind", "pairs", "mean cosine", "mean fact agreement"],
                 [[kind, row.pairs, row.mean_cosine, row.mean_fact_agreement] for kind, row in probes.iterrows()])
    report.heading("The 20 worst examples")
    worst = scores.nsmallest(20, "similarity")
    withheld = "[withheld: not checked for PII]"
    report.table(["intent", "similarity", "facts", "prompt", "teacher", "student"],
                 [[row.intent, row.similarity, "n/a" if row.fact_agreement != row.fact_agreement or
                   row.fact_agreement is None else row.fact_agreement, row.prompt, row.teacher,
                   row.student if student_text else withheld] for row in worst.itertuples()])
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
    scores = score(examples, answers, engine)
    decision = decide(scores, config)
    probe_table = probe_checks(probes, engine)
    out.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out / "per_example.parquet", index=False)
    result = {
        "student": {"kind": kind, "source": str(sources[0])}, "dataset": str(folder),
        "dataset_digest": summary_of_dataset.get("digest"), "generation": generation.to_dict(),
        "gate": config.model_dump(), "passed": decision.passed, "reasons": decision.reasons,
        "metrics": decision.metrics, "per_intent": decision.per_intent,
    }
    (out / "decision.json").write_text(json.dumps(result, indent=2, default=json_default))
    title = f"Promotion gate: {kind} {Path(str(sources[0])).name}"
    gate_report(scores, decision, config, probe_table, title).write(out)
    if track:
        result |= _track(out, scores, decision, config, probe_table, title, result, adapter, answers_file)
        (out / "decision.json").write_text(json.dumps(result, indent=2, default=json_default))
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
        gate_report(shared, decision, config, probes, title).write(artifacts)
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
    tags = {"gate_result": "pass" if decision.passed else "fail", "gate_reasons": "; ".join(decision.reasons) or "none",
            "mean_similarity": f"{decision.metrics['mean_similarity']:.4f}",
            "fact_agreement": "n/a" if decision.metrics["fact_agreement"] is None
            else f"{decision.metrics['fact_agreement']:.4f}",
            "dataset_digest": str(result["dataset_digest"]), "student": result["student"]["source"],
            "gate_mode": config.mode}
    version = registry.register_student(run_id, "student", tags)
    return {"mlflow_run_id": run_id, "registered_version": version, "student_answers_withheld": len(leaking)}
