"""Router replay: run logged traffic through a policy (and a rival), cost it, weigh the risk, compare.

``replay`` answers "what does this router cost and where does it route badly", and with a
second policy "what would change": agreement, an A x B confusion matrix, the cost difference
with a 95% paired-bootstrap interval over turns, and the turns where the two disagree most
consequentially. ``sweep`` moves one policy parameter across a range and draws the
cost-quality curve, optionally writing a policy calibrated to a budget or an ensemble share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from hibachi_lab import ensemble, registry
from hibachi_lab.cost import Pricing, budget_view, estimate_assumption, routing_costs
from hibachi_lab.errors import BadInput
from hibachi_lab.files import atomic_path, json_default, shareable_path, shareable_paths, write_text_atomic
from hibachi_lab.report import Report
from hibachi_lab.router import TIERS, Policy
from hibachi_lab.similarity import SimilarityEngine
from hibachi_lab.traffic import answer_count, arrow_table

ESCALATION_SENTIMENT = 0.3
SIMILARITY_NOT_COMPUTED = "not computed (no similarity engine given)"
NO_LOGGED_ANSWERS = "not computed: no logged answers"
WITHHELD = "[withheld from MLflow: the PII leak check found personal data in this query]"


@dataclass
class PolicyReplay:
    """One policy's decisions on a log: a row per turn, plus its summary."""

    label: str
    policy: Policy
    path: str
    sha256: str
    decisions: pd.DataFrame
    summary: dict[str, Any]


def escalation_risk(table: datasets.Dataset | pa.Table) -> np.ndarray:
    """Turns that must reach the complex tier: complaints and customers below 0.3 sentiment."""
    arrow = arrow_table(table)
    complaint = pc.equal(pc.struct_field(arrow["labels"], "intent"), "complaint")
    upset = pc.less(arrow["customer_sentiment"], ESCALATION_SENTIMENT)
    return pc.fill_null(pc.or_kleene(complaint, upset), False).to_numpy(zero_copy_only=False)


def replay_policy(
    table: datasets.Dataset | pa.Table,
    policy_path: str | os.PathLike,
    pricing: Pricing,
    charge_unknown_as: str | None = None,
    label: str | None = None,
    env_file: str | os.PathLike | None = None,
    reference: pd.DataFrame | str = SIMILARITY_NOT_COMPUTED,
) -> PolicyReplay:
    """One policy on a log; ``reference`` (from :func:`ensemble.similarity_to_consensus`) adds answer similarity,
    a text says why it was not computed."""
    policy = Policy.from_yaml(policy_path, env_file)
    arrow = arrow_table(table)
    decisions = policy.classify_table(arrow).to_pandas()
    costs = routing_costs(arrow, decisions["provider"].to_numpy(), pricing, charge_unknown_as)
    decisions = pd.concat([decisions, costs], axis=1)
    at_risk = escalation_risk(arrow)
    decisions["escalation_miss"] = at_risk & (decisions["tier"] != "complex")
    estimated = int(decisions["cost_estimated"].sum())
    budget = budget_view(arrow, decisions["cost_usd"], pricing, estimated)
    logged = arrow["routed_provider"].to_numpy(zero_copy_only=False)
    has_logged = pd.notna(logged)
    turns = len(decisions)
    summary = {
        "policy": policy.name,
        "policy_file": shareable_path(policy_path),
        "turns": turns,
        "share_per_tier": {tier: float((decisions["tier"] == tier).mean()) if turns else 0.0 for tier in TIERS},
        "share_per_provider": decisions["provider"].value_counts(normalize=True).sort_index().to_dict(),
        "cost_per_tier_usd": {tier: float(decisions.loc[decisions["tier"] == tier, "cost_usd"].sum()) for tier in TIERS},
        "cost_estimated_turns": estimated,
        "cost_estimate_assumption": estimate_assumption(arrow, pricing) if estimated else None,
        "cost_sources": decisions["cost_source"].value_counts().to_dict(),
        "at_risk_turns": int(at_risk.sum()),
        "escalation_misses": int(decisions["escalation_miss"].sum()),
        "agreement_with_logged_routing": float((decisions["provider"].to_numpy()[has_logged] == logged[has_logged]).mean())
        if has_logged.any()
        else None,
        "turns_with_score_above_1": int((decisions["score"] > 1).sum()),
        "substring_only_hit_turns": _substring_only_hits(policy, decisions, arrow),
        "answer_similarity_to_ensemble": answer_similarity(decisions["provider"], reference),
    } | budget
    name = label or policy.name
    return PolicyReplay(name, policy, shareable_path(policy_path), _sha256(policy_path), decisions, summary)


def answer_similarity(providers: pd.Series, reference: pd.DataFrame | str) -> dict[str, Any] | str:
    """Mean similarity of the answer a policy would send to the ensemble's choice, where that answer was logged.

    A turn counts when production logged an answer from the provider the policy picks (the routed
    model plus shadow ensemble answers); sending it to the ensemble scores 1.
    """
    if isinstance(reference, str):
        return reference
    picked = pd.DataFrame({"turn": np.arange(len(providers)), "provider": providers.to_numpy()})
    scored = picked.merge(reference, on=["turn", "provider"], how="inner")
    comparable = reference["turn"].nunique()
    return {
        "mean": float(scored["similarity"].mean()) if len(scored) else None,
        "turns_scored": len(scored),
        "turns_with_an_ensemble_choice": int(comparable),
    }


def _substring_only_hits(policy: Policy, decisions: pd.DataFrame, arrow: pa.Table) -> int | None:
    """Turns whose hit counts change when keywords must be whole words (the 'facebook' quirk)."""
    if policy.match != "substring":
        return None
    whole_words = policy.model_copy(update={"match": "word_boundary"}).classify_table(arrow)
    differs = np.zeros(arrow.num_rows, dtype=bool)
    for column in ("simple_hits", "complex_hits", "tool_hits"):
        differs |= decisions[column].to_numpy() != whole_words[column].to_numpy()
    return int(differs.sum())


def _sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- A/B


def paired_bootstrap_interval(
    differences: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Interval for the total of per-turn differences, resampling turns (so pairs stay paired)."""
    differences = np.asarray(differences, dtype=float)
    n = len(differences)
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    totals = np.empty(resamples)
    chunk = max(1, 5_000_000 // n)  # bound memory on big logs
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, n, size=(stop - start, n))
        totals[start:stop] = differences[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(totals, [tail, 100 - tail])
    return float(low), float(high)


def compare(a: PolicyReplay, b: PolicyReplay) -> dict[str, Any]:
    """B against A on the same turns."""
    da, db = a.decisions, b.decisions
    confusion = pd.crosstab(da["tier"], db["tier"]).reindex(index=TIERS, columns=TIERS, fill_value=0)
    difference = (db["cost_usd"].fillna(0) - da["cost_usd"].fillna(0)).to_numpy()
    low, high = paired_bootstrap_interval(difference)
    return {
        "a": a.label,
        "b": b.label,
        "turns": len(da),
        "tier_agreement": float((da["tier"] == db["tier"]).mean()),
        "provider_agreement": float((da["provider"] == db["provider"]).mean()),
        "confusion_tiers_a_rows_b_columns": {tier: confusion.loc[tier].astype(int).to_dict() for tier in TIERS},
        "cost_delta_usd": float(difference.sum()),
        "cost_delta_95ci_usd": [low, high],
        "cost_delta_per_1k_turns": float(difference.mean() * 1000) if len(difference) else 0.0,
        "escalation_miss_delta": int(db["escalation_miss"].sum() - da["escalation_miss"].sum()),
        # A difference is as uncertain as either side: the turns where A's or B's cost is an estimate.
        "cost_delta_estimated_turns": int((da["cost_estimated"] | db["cost_estimated"]).sum()),
    }


# --------------------------------------------------------------------------- what B changes, and the verdict

TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
ADOPT_B, KEEP_A, NEEDS_REVIEW = "adopt B", "keep A", "needs review"
EXAMPLES_PER_INTENT = 3


def intents(table: pa.Table) -> np.ndarray:
    """Each turn's labelled intent, "unlabelled" where the log has none."""
    labels = table["labels"]
    intent = pc.struct_field(labels, "intent") if pa.types.is_struct(labels.type) else pa.nulls(len(labels), pa.string())
    return pc.fill_null(intent, "unlabelled").to_numpy(zero_copy_only=False)


def lost_keywords(a: Policy, b: Policy, query: str) -> list[str]:
    """The complex and tool keywords that hit under A and not under B (removed, or no longer matching)."""
    lowered = query.lower()
    lost: list[str] = []
    for name in ("complex", "tool"):
        under_b = set(b.matching(lowered, getattr(b.keywords, name)))
        lost += [k for k in dict.fromkeys(a.matching(lowered, getattr(a.keywords, name))) if k not in under_b]
    return lost


def word_containing(query: str, keyword: str) -> str | None:
    """The word of ``query`` a keyword matched inside ("cancelled" for "cancel"), None when it is the whole word."""
    found = re.search(rf"\w*{re.escape(keyword)}\w*", query.lower())
    return found.group(0) if found and found.group(0) != keyword else None


def tier_drops(table: pa.Table, a: PolicyReplay, b: PolicyReplay) -> pd.DataFrame:
    """The turns B sends to a cheaper tier than A: the row, intent, both tiers and A's keywords B no longer hits."""
    rank_a = a.decisions["tier"].map(TIER_RANK).to_numpy()
    rank_b = b.decisions["tier"].map(TIER_RANK).to_numpy()
    rows = np.flatnonzero(rank_b < rank_a)
    queries = table["query"].take(pa.array(rows, pa.int64())).to_pylist()
    return pd.DataFrame({
        "row": rows,
        "intent": intents(table)[rows],
        "tier_a": a.decisions["tier"].to_numpy()[rows],
        "tier_b": b.decisions["tier"].to_numpy()[rows],
        "lost_keywords": [lost_keywords(a.policy, b.policy, query) for query in queries],
        "query": queries,
    })


def drops_by_intent(table: pa.Table, drops: pd.DataFrame) -> list[dict[str, Any]]:
    """Tier drops per intent, those out of the complex tier first: counts and the keywords that stopped matching."""
    per_intent = pd.Series(intents(table)).value_counts()
    groups = []
    for intent, frame in drops.groupby("intent", sort=False):
        keywords = Counter(keyword for lost in frame["lost_keywords"] for keyword in lost)
        groups.append({
            "intent": intent,
            "turns_down": len(frame),
            "from_complex": int((frame["tier_a"] == "complex").sum()),
            "turns_of_intent": int(per_intent.get(intent, 0)),
            "keywords_no_longer_matching": dict(keywords.most_common()),
            "down_without_a_lost_keyword": int((frame["lost_keywords"].str.len() == 0).sum()),
        })
    return sorted(groups, key=lambda g: (-g["from_complex"], -g["turns_down"], g["intent"]))


def assess(table: pa.Table, a: PolicyReplay, b: PolicyReplay, ab: dict[str, Any], drops: pd.DataFrame) -> dict[str, Any]:
    """What B changes that a decision needs (tier moves, escalations, cost), and the verdict with its reasons."""
    da, db = a.decisions, b.decisions
    rank_a, rank_b = da["tier"].map(TIER_RANK), db["tier"].map(TIER_RANK)
    missed_by_b = int((db["escalation_miss"] & ~da["escalation_miss"]).sum())
    missed_by_a = int((da["escalation_miss"] & ~db["escalation_miss"]).sum())
    groups = drops_by_intent(table, drops)
    facts = {
        "tier_down_turns": len(drops),
        "tier_down_from_complex_turns": int((drops["tier_a"] == "complex").sum()),
        "tier_up_turns": int((rank_b > rank_a).sum()),
        "tier_down_by_intent": groups,
        "escalations_missed_by_b_only": missed_by_b,
        "escalations_missed_by_a_only": missed_by_a,
    }
    facts["verdict"] = verdict(ab | facts)
    return facts


def verdict(ab: dict[str, Any]) -> dict[str, Any]:
    """Adopt B, keep A or needs review, and why: escalations first, then turns sent cheaper, then cost."""
    low, high = ab["cost_delta_95ci_usd"]
    delta = ab["cost_delta_usd"]
    cost = (f"B costs {abs(delta):,.2f} USD {'less' if delta < 0 else 'more'} than A on these "
            f"{ab['turns']:,} turns (B - A, 95% paired-bootstrap interval {low:+,.2f} to {high:+,.2f} USD"
            f"{delta_estimated_note(ab)})")
    saves, costs_more = high < 0, low > 0
    cost += ": a saving" if saves else ": more expensive" if costs_more else ": no clear difference (the interval holds 0)"
    escalation = (f"escalations (complaints and customers below {ESCALATION_SENTIMENT} sentiment kept from the complex "
                  f"tier): B misses {ab['escalations_missed_by_b_only']:,} that A catches, A misses "
                  f"{ab['escalations_missed_by_a_only']:,} that B catches")
    down, from_complex = ab["tier_down_turns"], ab["tier_down_from_complex_turns"]
    reasons = []
    if ab["escalations_missed_by_b_only"]:
        decision = KEEP_A
        reasons.append(escalation)
    elif down:
        decision = NEEDS_REVIEW
    elif saves:
        decision = ADOPT_B
    elif costs_more and (ab["tier_up_turns"] or ab["escalations_missed_by_a_only"]):
        decision = NEEDS_REVIEW
        reasons.append(f"B sends {ab['tier_up_turns']:,} turns to a dearer tier: is that worth the extra cost?")
    elif ab["escalations_missed_by_a_only"]:
        decision = ADOPT_B
    else:
        decision = KEEP_A
        reasons.append("B saves nothing measurable and routes no turn to a better tier: no reason to switch")
    if down:
        groups = ab["tier_down_by_intent"]
        named = "; ".join(_drop_group_text(group) for group in groups[:5])
        more = f"; and {len(groups) - 5} more intents" if len(groups) > 5 else ""
        reasons.append(f"B sends {down:,} turns to a cheaper tier than A ({from_complex:,} of them out of the complex "
                       f"tier): {named}{more}")
        if not ab["escalations_missed_by_b_only"] and from_complex:
            reasons.append(f"the escalation count does not see these: it covers complaints and upset customers only, "
                           f"and is unchanged ({ab['escalation_miss_delta']:+d})")
        reasons.append("to decide, read the examples per intent below: if those turns need their tier, keep A or "
                       "add to B the word forms its keywords no longer match (each example names them); if a "
                       "cheaper tier serves them, adopt B")
    reasons.append(cost)
    if not ab["escalations_missed_by_b_only"]:
        reasons.append(escalation)
    return {"decision": decision, "reasons": reasons}


def _drop_group_text(group: dict[str, Any]) -> str:
    keywords = group["keywords_no_longer_matching"]
    why = (", ".join(f"'{k}' on {n:,}" for k, n in list(keywords.items())[:4]) + (" turns" if keywords else ""))
    text = f"{group['intent']} {group['turns_down']:,} of {group['turns_of_intent']:,} turns"
    if keywords:
        text += f" (keywords that no longer match: {why})"
    if group["down_without_a_lost_keyword"]:
        text += f" ({group['down_without_a_lost_keyword']:,} scored lower without losing a keyword)"
    return text


def consequential_disagreements(
    table: pa.Table, a: PolicyReplay, b: PolicyReplay, limit: int = 20
) -> pd.DataFrame:
    """Turns where A and B route differently, the riskiest first (an escalation missed by one, then a turn taken
    out of the complex tier, then any other tier drop), then the costliest; ``risk`` says what each one risks."""
    da, db = a.decisions, b.decisions
    differ = (da["provider"] != db["provider"]).to_numpy()
    rank_a, rank_b = da["tier"].map(TIER_RANK).to_numpy(), db["tier"].map(TIER_RANK).to_numpy()
    frame = pd.DataFrame(
        {
            "conversation_id": table["conversation_id"].to_numpy(zero_copy_only=False),
            "turn_index": table["turn_index"].to_numpy(),
            "query": table["query"].to_numpy(zero_copy_only=False),
            "intent": intents(table),
            "a": da["tier"] + "/" + da["provider"],
            "b": db["tier"] + "/" + db["provider"],
            "cost_delta_usd": db["cost_usd"].fillna(0) - da["cost_usd"].fillna(0),
            "risk_change": db["escalation_miss"].astype(int) - da["escalation_miss"].astype(int),
            "tier_change": rank_b - rank_a,
            "from_complex": rank_a == TIER_RANK["complex"],
        }
    )[differ]
    frame["severity"] = np.select(
        [frame["risk_change"] != 0, (frame["tier_change"] < 0) & frame["from_complex"], frame["tier_change"] < 0],
        [3, 2, 1], 0)
    order = frame.assign(abs_cost=frame["cost_delta_usd"].abs())
    order = order.sort_values(["severity", "abs_cost", "conversation_id", "turn_index"], ascending=[False, False, True, True])
    top = order.head(limit)
    top = top.assign(risk=[_risk_text(row, a, b) for row in top.itertuples()])
    return top.drop(columns=["abs_cost", "risk_change", "tier_change", "from_complex", "severity"])


def _risk_text(row: Any, a: PolicyReplay, b: PolicyReplay) -> str:
    """What routing this turn B's way risks, in words (never empty)."""
    tier_a, tier_b = row.a.split("/")[0], row.b.split("/")[0]
    if row.risk_change > 0:
        return f"B misses an escalation ({row.intent}): {tier_a} -> {tier_b}"
    if row.risk_change < 0:
        return f"A misses an escalation ({row.intent}); B sends it to {tier_b}"
    if row.tier_change < 0:
        lost = lost_keywords(a.policy, b.policy, row.query)
        why = (f"{', '.join(repr(k) for k in lost)} no longer match{'es' if len(lost) == 1 else ''}" if lost
               else "B scores it lower")
        return f"cheaper tier {tier_a} -> {tier_b} ({row.intent}): {why}"
    if row.tier_change > 0:
        return f"dearer tier {tier_a} -> {tier_b} ({row.intent}): costs more, no risk"
    return f"same tier, other provider ({row.intent}): cost only"


# --------------------------------------------------------------------------- the command


def run_replay(
    table: datasets.Dataset | pa.Table,
    policy_paths: list[str | os.PathLike],
    out: str | os.PathLike,
    pricing: Pricing,
    charge_unknown_as: str | None = None,
    track: bool = True,
    logs_description: str = "",
    env_file: str | os.PathLike | None = None,
    engine: SimilarityEngine | None = None,
) -> dict[str, Any]:
    """Replay one policy (or an A/B pair) and write decisions.parquet, summary.json, report.html/md.

    ``env_file`` (production's settings) applies to policy A only, so B stays the changed router.
    With a similarity ``engine``, each policy's answers are scored against the ensemble's choice.
    """
    arrow = arrow_table(table)
    out = Path(out)
    labels = _labels(policy_paths)
    env_files = [env_file] + [None] * (len(policy_paths) - 1)
    reference = _reference(arrow, engine, pricing)
    replays = [
        replay_policy(arrow, path, pricing, charge_unknown_as, label, env, reference)
        for path, label, env in zip(policy_paths, labels, env_files)
    ]
    # The summary and report are copied to MLflow: paths in them are relative (or file names).
    logs_description = shareable_paths(logs_description)
    summary: dict[str, Any] = {"logs": logs_description, "turns": arrow.num_rows, "policies": {r.label: r.summary for r in replays}}
    shown = None
    if len(replays) == 2:
        summary["ab"] = compare(*replays)
        drops = tier_drops(arrow, *replays)
        summary["ab"] |= assess(arrow, *replays, summary["ab"], drops)
        shown = _Shown(consequential_disagreements(arrow, *replays), _examples(drops))
        # Customer messages are shown as logged: the leak check says which hold personal data.
        shown.leaking = _leaking(list(dict.fromkeys([*shown.disagreements["query"], *shown.examples["query"]])))
        summary["customer_messages_shown"] = shown.counts()

    _write_decisions(arrow, replays, out / "decisions.parquet")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=json_default))
    _replay_report(replays, summary, shown, shareable=False).write(out)
    if track:
        with tempfile.TemporaryDirectory() as artifacts:
            _replay_report(replays, summary, shown, shareable=True).write(artifacts)
            (Path(artifacts) / "summary.json").write_text((out / "summary.json").read_text())
            params = {"logs": logs_description, "env_file": shareable_path(env_file) if env_file else "None",
                      "pricing_sha256": hashlib.sha256(pricing.model_dump_json().encode()).hexdigest()}
            for replay in replays:
                params[f"{replay.label}.policy_file"] = replay.path
                params[f"{replay.label}.policy_sha256"] = replay.sha256
            summary["mlflow_run_id"] = registry.log_run(
                "router-replay", " vs ".join(labels), params, _replay_metrics(summary), artifacts
            )
    return summary


def _reference(arrow: pa.Table, engine: SimilarityEngine | None, pricing: Pricing) -> pd.DataFrame | str:
    """Each logged answer's similarity to the ensemble's choice, or why there is none (the text to report)."""
    if engine is None:
        return SIMILARITY_NOT_COMPUTED
    members = ensemble.ensemble_members(pricing)
    if not answer_count(arrow, members):
        # Queries-only exports are common: routing and costs still replay, similarity has nothing to compare.
        return f"{NO_LOGGED_ANSWERS} of the ensemble members ({', '.join(members)})"
    return ensemble.similarity_to_consensus(arrow, engine, members)


@dataclass
class _Shown:
    """The customer messages an A/B report quotes, and those in which the leak check finds personal data."""

    disagreements: pd.DataFrame
    examples: pd.DataFrame
    leaking: dict[str, list[str]] | None = None  # message -> the kinds of personal data found

    def counts(self) -> dict[str, Any]:
        messages = set(self.disagreements["query"]) | set(self.examples["query"])
        kinds = Counter(kind for found in (self.leaking or {}).values() for kind in found)
        return {"messages": len(messages), "with_personal_data": len(self.leaking or {}),
                "personal_data_kinds": dict(kinds.most_common())}

    def text(self, query: str, shareable: bool) -> str:
        """A message as the report shows it: withheld from the shareable copy when the leak check flags it."""
        return WITHHELD if shareable and query in (self.leaking or {}) else query


def _examples(drops: pd.DataFrame) -> pd.DataFrame:
    """A few distinct turns per intent that B sends cheaper: out of the complex tier first, and each showing a
    keyword the ones before it do not."""
    ordered = drops.assign(out_of_complex=drops["tier_a"] == "complex")
    ordered = ordered.sort_values(["out_of_complex", "row"], ascending=[False, True], kind="stable")
    picked = []
    for _, frame in ordered.groupby("intent", sort=False):
        frame = frame.drop_duplicates("query")
        covered: set[str] = set()
        showing_more = []  # the examples that show a keyword none before them does
        for index, lost in zip(frame.index, frame["lost_keywords"], strict=True):
            if not covered.issuperset(lost):
                showing_more.append(index)
                covered.update(lost)
        chosen = list(dict.fromkeys([*showing_more, *frame.index]))[:EXAMPLES_PER_INTENT]
        picked.append(frame.loc[frame.index.isin(chosen)])
    return pd.concat(picked)[list(drops.columns)] if picked else drops.iloc[:0]


def _leaking(queries: list[str]) -> dict[str, list[str]]:
    """The queries in which the PII leak gate finds something, with what it found: they stay out of MLflow."""
    if not queries:
        return {}
    from hibachi_lab.pii import LeakChecker

    report = LeakChecker().check((str(i), "query", query, []) for i, query in enumerate(queries))
    found: dict[str, list[str]] = {}
    for leak in report.leaks:
        kinds = found.setdefault(queries[int(leak["record"])], [])
        if leak["entity_type"] not in kinds:
            kinds.append(leak["entity_type"])
    return found


def _labels(policy_paths: list[str | os.PathLike]) -> list[str]:
    names = [Policy.from_yaml(path).name for path in policy_paths]
    if len(set(names)) < len(names):
        return [f"{name}[{'AB'[i]}]" for i, name in enumerate(names)]
    return names


def _write_decisions(arrow: pa.Table, replays: list[PolicyReplay], path: Path) -> None:
    frames = []
    for replay in replays:
        frame = replay.decisions.copy()
        frame.insert(0, "policy", replay.label)
        frame.insert(0, "turn_index", arrow["turn_index"].to_numpy())
        frame.insert(0, "conversation_id", arrow["conversation_id"].to_numpy(zero_copy_only=False))
        frames.append(frame)
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)


def _replay_metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for label, policy in summary["policies"].items():
        for key in ("total_cost_usd", "cost_per_1k_turns", "monthly_projection_usd", "escalation_misses",
                    "savings_vs_all_gpt4", "cost_estimated_turns"):
            metrics[f"{label}.{key}"] = policy[key]
        for tier, share in policy["share_per_tier"].items():
            metrics[f"{label}.share_{tier}"] = share
        similarity = policy["answer_similarity_to_ensemble"]
        if isinstance(similarity, dict):
            metrics[f"{label}.answer_similarity_to_ensemble"] = similarity["mean"]
    if "ab" in summary:
        ab = summary["ab"]
        metrics |= {"ab.tier_agreement": ab["tier_agreement"], "ab.cost_delta_usd": ab["cost_delta_usd"],
                    "ab.escalation_miss_delta": ab["escalation_miss_delta"]}
    return metrics


def _replay_report(
    replays: list[PolicyReplay], summary: dict[str, Any], shown: _Shown | None, shareable: bool,
) -> Report:
    """The report; a ``shareable`` one (the MLflow copy) withholds the customer messages the leak check flags."""
    title = "Router replay: " + " vs ".join(r.label for r in replays)
    report = Report(title)
    if shown is not None and not shareable and shown.leaking:
        counts = shown.counts()
        kinds = ", ".join(kind.lower().replace("_", " ") for kind in counts["personal_data_kinds"])
        report.banner(f"Unscrubbed customer text: this report quotes {counts['messages']:,} customer messages as "
                      f"logged, and the leak check finds personal data ({kinds}) in {counts['with_personal_data']:,} "
                      "of them. Keep it on this machine; the copy recorded in MLflow withholds those messages. "
                      "Replay a scrubbed log (hibachi-lab scrub) to share it.")
    if "ab" in summary:
        ab = summary["ab"]
        report.heading(f"Verdict: {ab['verdict']['decision']} ({ab['a']} is A, {ab['b']} is B)")
        report.bullets(ab["verdict"]["reasons"])
    report.paragraph(f"{summary['turns']:,} logged turns from {summary['logs'] or 'the given logs'}.")
    report.heading("Policies")
    header = ["", *[r.label for r in replays]]
    rows = [
        ["policy file", *[r.path for r in replays]],
        ["total cost (USD)", *[f"{r.summary['total_cost_usd']:,.4f}{estimated_flag(r.summary)}" for r in replays]],
        ["cost per 1k turns (USD)",
         *[f"{r.summary['cost_per_1k_turns']:,.4f}{estimated_flag(r.summary)}" for r in replays]],
        ["monthly projection (USD)",
         *[f"{r.summary['monthly_projection_usd']:,.2f}{estimated_flag(r.summary)}" for r in replays]],
        ["savings vs all-GPT-4", *[f"{savings_text(r.summary)}{estimated_flag(r.summary)}" for r in replays]],
        ["escalation misses", *[f"{r.summary['escalation_misses']} of {r.summary['at_risk_turns']} at-risk turns" for r in replays]],
        ["turns with estimated cost", *[r.summary["cost_estimated_turns"] for r in replays]],
        ["agreement with logged routing", *[_share(r.summary["agreement_with_logged_routing"]) for r in replays]],
        ["turns with a substring-only keyword hit", *[_or_na(r.summary["substring_only_hit_turns"]) for r in replays]],
        ["turns with score above 1", *[r.summary["turns_with_score_above_1"] for r in replays]],
        ["answer similarity to the ensemble's choice",
         *[_similarity_cell(r.summary["answer_similarity_to_ensemble"]) for r in replays]],
    ] + [[f"share {tier}", *[f"{r.summary['share_per_tier'][tier]:.1%}" for r in replays]] for tier in TIERS]
    report.table(header, rows)
    for replay in replays:
        if replay.summary["cost_estimate_assumption"]:
            report.paragraph(f"{replay.label}: costs of {replay.summary['cost_estimated_turns']:,} of "
                             f"{replay.summary['turns']:,} turns are {replay.summary['cost_estimate_assumption']}.")
    report.heading("The $300 rule")
    for replay in replays:
        report.paragraph(f"{replay.label}: {replay.summary['verdict_300_rule']}.")
        alerts = replay.summary["days_over_daily_alert"]
        if alerts:
            report.paragraph(f"{replay.label}: {len(alerts)} day(s) over the daily alert: {', '.join(alerts[:10])}.")

    report.figure(_bars(replays, lambda r: [100 * r.summary["share_per_tier"][t] for t in TIERS], "share of turns (%)"),
                  "tier_shares", "Share of turns per tier")
    report.figure(_bars(replays, lambda r: [r.summary["cost_per_tier_usd"][t] for t in TIERS], "cost (USD)"),
                  "cost_per_tier", "Cost per tier")
    report.figure(_daily(replays), "daily_cost", "Daily cost (local date of the turn)")
    if "ab" in summary:
        ab = summary["ab"]
        report.heading(f"A/B: {ab['a']} (A) vs {ab['b']} (B)")
        low, high = ab["cost_delta_95ci_usd"]
        report.paragraph(
            f"Same tier on {ab['tier_agreement']:.1%} of turns, same provider on {ab['provider_agreement']:.1%}. "
            f"B costs {ab['cost_delta_usd']:+,.4f} USD against A (95% paired-bootstrap interval {low:+,.4f} to {high:+,.4f}"
            f"{delta_estimated_note(ab)}); "
            f"escalation misses change by {ab['escalation_miss_delta']:+d}."
        )
        report.figure(_heatmap(ab), "confusion", f"Tiers: {ab['a']} (rows) vs {ab['b']} (columns)")
        if ab["tier_down_by_intent"]:
            report.heading("Turns B sends to a cheaper tier, by intent")
            report.paragraph("Keywords that no longer match: complex or tool keywords that hit under A and not "
                             "under B (taken out of a list, or matched differently). Examples come from the "
                             "complex tier first.")
            examples = shown.examples
            report.table(
                ["intent", "turns down (of the intent's)", "from complex", "keywords that no longer match",
                 "examples"],
                [[group["intent"], f"{group['turns_down']:,} of {group['turns_of_intent']:,}", group["from_complex"],
                  _keywords_cell(group),
                  " | ".join(_example_text(row, shown, shareable)
                             for row in examples[examples["intent"] == group["intent"]].itertuples())]
                 for group in ab["tier_down_by_intent"]],
            )
        report.heading(f"The {len(shown.disagreements)} most consequential disagreements")
        report.table(
            ["conversation", "turn", "query", f"A: {ab['a']}", f"B: {ab['b']}", "cost B - A (USD)", "risk"],
            [
                [row.conversation_id, row.turn_index, shown.text(row.query, shareable), row.a, row.b,
                 row.cost_delta_usd, row.risk]
                for row in shown.disagreements.itertuples()
            ],
        )
    return report


def _keywords_cell(group: dict[str, Any]) -> str:
    parts = [f"'{keyword}' ({count:,})" for keyword, count in group["keywords_no_longer_matching"].items()]
    if group["down_without_a_lost_keyword"]:
        parts.append(f"none: scored lower under B ({group['down_without_a_lost_keyword']:,})")
    return ", ".join(parts)


def _example_text(row: Any, shown: _Shown, shareable: bool) -> str:
    """An example query, its tiers and, for each keyword it lost, the word the keyword had matched inside."""
    text = shown.text(row.query, shareable)
    lost = []
    for keyword in row.lost_keywords:
        word = word_containing(row.query, keyword) if text != WITHHELD else None
        lost.append(f"'{keyword}'" + (f" in '{word}'" if word else ""))
    return f"\"{text}\" ({row.tier_a} -> {row.tier_b}{'; lost ' + ', '.join(lost) if lost else ''})"


def estimated_flag(summary: dict[str, Any]) -> str:
    """What to write beside a cost: whether (or how much of) it is an estimate rather than logged usage."""
    estimated, turns = summary["cost_estimated_turns"], summary["turns"]
    if not estimated:
        return ""
    return " (estimated)" if estimated == turns else f" ({estimated / turns:.0%} of turns estimated)"


def delta_estimated_note(ab: dict[str, Any]) -> str:
    estimated = ab["cost_delta_estimated_turns"]
    return f"; estimated on {estimated:,} turns" if estimated else ""


def savings_text(summary: dict[str, Any]) -> str:
    savings = summary["savings_vs_all_gpt4"]
    return "n/a (nothing could be costed)" if savings is None else f"{savings:.1%}"


def _similarity_cell(similarity: dict[str, Any] | str) -> str:
    if isinstance(similarity, str):
        return similarity
    if similarity["mean"] is None:
        return "no turn where the chosen answer was logged"
    return (f"{similarity['mean']:.3f} (on {similarity['turns_scored']:,} of {similarity['turns_with_an_ensemble_choice']:,} "
            "turns with ensemble answers: those where the chosen model's answer was logged)")


def _share(value: float | None) -> str:
    return "n/a (no routed_provider logged)" if value is None else f"{value:.1%}"


def _or_na(value: Any) -> Any:
    return "n/a (word matching)" if value is None else value


def _bars(replays: list[PolicyReplay], values, ylabel: str) -> plt.Figure:
    fig, axis = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(replays)
    positions = np.arange(len(TIERS))
    for i, replay in enumerate(replays):
        axis.bar(positions + i * width, values(replay), width, label=replay.label)
    axis.set_xticks(positions + width * (len(replays) - 1) / 2, TIERS)
    axis.set_ylabel(ylabel)
    axis.legend()
    return fig


def _daily(replays: list[PolicyReplay]) -> plt.Figure:
    fig, axis = plt.subplots(figsize=(8, 3.2))
    for replay in replays:
        daily = pd.Series(replay.summary["daily_cost_usd"])
        axis.plot(pd.to_datetime(daily.index), daily.to_numpy(), label=replay.label, linewidth=1)
    axis.set_ylabel("USD per day")
    axis.legend()
    fig.autofmt_xdate()
    return fig


def _heatmap(ab: dict[str, Any]) -> plt.Figure:
    matrix = np.array([[ab["confusion_tiers_a_rows_b_columns"][a][b] for b in TIERS] for a in TIERS])
    fig, axis = plt.subplots(figsize=(4.2, 3.6))
    image = axis.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axis.text(j, i, f"{count:,}", ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    axis.set_xticks(range(3), TIERS)
    axis.set_yticks(range(3), TIERS)
    axis.set_xlabel(f"B: {ab['b']}")
    axis.set_ylabel(f"A: {ab['a']}")
    fig.colorbar(image)
    return fig


# --------------------------------------------------------------------------- sweep

SWEEP_PARAMETERS = {
    "complex_threshold": ("thresholds", "complex"),
    "medium_threshold": ("thresholds", "medium"),
    "escalate_sentiment_below": ("overrides", "escalate_sentiment_below"),
    "default_sentiment": (None, "default_sentiment"),
    **{f"{name}_weight": ("weights", name) for name in ("length", "complex", "tool", "sentiment", "history")},
}


def parse_values(spec: str) -> list[float]:
    """``0.3:0.9:0.05`` (start:stop:step, stop included) or ``0.4,0.5,0.7``."""
    try:
        if ":" in spec:
            start, stop, step = (float(part) for part in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = round((stop - start) / step) + 1
            return [round(start + i * step, 10) for i in range(count)]
        return [float(part) for part in spec.split(",")]
    except ValueError:
        raise BadInput(f"--values {spec}: expected start:stop:step with step > 0 (e.g. 0.3:0.9:0.05) or a comma list") from None


def with_parameter(policy: Policy, parameter: str, value: float) -> Policy:
    if parameter not in SWEEP_PARAMETERS:
        raise BadInput(f"--param {parameter}: expected one of {', '.join(sorted(SWEEP_PARAMETERS))}")
    section, key = SWEEP_PARAMETERS[parameter]
    if section is None:
        return policy.model_copy(update={key: value})
    return policy.model_copy(update={section: getattr(policy, section).model_copy(update={key: value})})


def run_sweep(
    table: datasets.Dataset | pa.Table,
    policy_path: str | os.PathLike,
    parameter: str,
    values: list[float],
    out: str | os.PathLike,
    pricing: Pricing,
    target_monthly_usd: float | None = None,
    target_ensemble_share: float | None = None,
    track: bool = True,
    engine: SimilarityEngine | None = None,
) -> dict[str, Any]:
    """Cost and quality for each value of one parameter; optionally write a calibrated policy."""
    arrow = arrow_table(table)
    out = Path(out)
    base = Policy.from_yaml(policy_path)
    at_risk = escalation_risk(arrow)
    reference = _reference(arrow, engine, pricing)
    points = []
    routings = []
    for value in values:
        policy = with_parameter(base, parameter, value)
        decisions = policy.classify_table(arrow).to_pandas()
        routings.append(hashlib.sha256(decisions["tier"].to_numpy().astype(str).tobytes()
                                       + decisions["provider"].to_numpy().astype(str).tobytes()).hexdigest())
        costs = routing_costs(arrow, decisions["provider"].to_numpy(), pricing)
        estimated = int(costs["cost_estimated"].sum())
        budget = budget_view(arrow, costs["cost_usd"], pricing, estimated)
        misses = int((at_risk & (decisions["tier"] != "complex")).sum())
        points.append({
            "value": value,
            "ensemble_share": float((decisions["provider"] == policy.providers.complex).mean()),
            "monthly_projection_usd": budget["monthly_projection_usd"],
            "total_cost_usd": budget["total_cost_usd"],
            "cost_estimated_turns": estimated,
            "escalation_misses": misses,
            # Missing an escalation is the costly error, so coverage is the quality calibration optimises.
            "escalation_coverage": 1 - misses / at_risk.sum() if at_risk.any() else 1.0,
        })
        similarity = answer_similarity(decisions["provider"], reference)
        if isinstance(similarity, dict):
            points[-1]["answer_similarity"] = similarity["mean"]
    section, key = SWEEP_PARAMETERS[parameter]
    production_value = getattr(base, key) if section is None else getattr(getattr(base, section), key)
    summary: dict[str, Any] = {"policy": base.name, "parameter": parameter, "production_value": production_value,
                               "quality": "escalation coverage: the share of complaints and upset customers "
                                          "that reach the complex tier"
                                          + (f"; answer similarity {reference}" if isinstance(reference, str) else ""),
                               "points": points,
                               "flat_regions": flat_regions(arrow, base, parameter, points, routings, at_risk),
                               "cost_estimate_assumption": estimate_assumption(arrow, pricing)
                               if any(point["cost_estimated_turns"] for point in points) else None}
    chosen = _calibrate(points, target_monthly_usd, target_ensemble_share)
    if chosen is not None:
        calibrated = with_parameter(base, parameter, chosen["value"])
        calibrated = calibrated.model_copy(update={
            "name": f"{base.name}-calibrated",
            "description": f"{base.name} with {parameter} = {chosen['value']} (calibrated by hibachi-lab sweep)",
        })
        path = write_text_atomic(out / "calibrated_policy.yaml", yaml.safe_dump(calibrated.model_dump(), sort_keys=False))
        summary["calibrated"] = {"value": chosen["value"], "policy_file": shareable_path(path), "point": chosen}
    write_text_atomic(out / "sweep.json", json.dumps(summary, indent=2, default=json_default))
    report = _sweep_report(summary)
    report.write(out)
    if track:
        registry.log_run("router-sweep", f"{base.name}:{parameter}", {"policy_file": shareable_path(policy_path),
                         "policy_sha256": _sha256(policy_path), "parameter": parameter, "values": values},
                         {}, out)
    return summary


def flat_regions(arrow: pa.Table, base: Policy, parameter: str, points: list[dict], routings: list[str],
                 at_risk: np.ndarray) -> list[dict[str, Any]]:
    """Runs of swept values where the curve does not move, each with why in words.

    Two kinds: values that route every turn the same way (their points coincide), and values that move
    turns between tiers but no at-risk turn (the quality stays put while the cost moves).
    """
    regions = []
    for start, stop in _runs(routings):
        regions.append({"from": points[start]["value"], "to": points[stop]["value"], "kind": "same routing",
                        "why": _same_routing_why(arrow, base, parameter, points[start]["value"], points[stop]["value"])})
    coverage = [point["escalation_coverage"] for point in points]
    for start, stop in _runs(coverage):
        if routings[start] == routings[stop]:
            continue  # said above
        regions.append({
            "from": points[start]["value"], "to": points[stop]["value"], "kind": "same quality",
            "why": f"escalation coverage stays at {coverage[start]:.1%} for {parameter} from {points[start]['value']:g} "
                   f"to {points[stop]['value']:g}: these values move turns between tiers, but none of the "
                   f"{int(at_risk.sum()):,} at-risk turns (complaints and customers below {ESCALATION_SENTIMENT} "
                   "sentiment) across the complex tier's edge, so only the cost changes"})
    return sorted(regions, key=lambda region: region["from"])


def _runs(values: list) -> list[tuple[int, int]]:
    """(first, last) index of each run of two or more equal consecutive values."""
    runs, start = [], 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[start]:
            if index - 1 > start:
                runs.append((start, index - 1))
            start = index
    return runs


def _same_routing_why(arrow: pa.Table, base: Policy, parameter: str, low: float, high: float) -> str:
    said = f"{parameter} from {low:g} to {high:g} routes every turn the same way"
    if parameter not in ("complex_threshold", "medium_threshold"):
        return f"{said}: no turn's score or override crosses a tier's edge within that range"
    # A threshold matters only for turns the overrides leave to the score; their scores do not depend on it.
    decisions = base.classify_table(arrow).to_pandas()
    sentiment = pc.fill_null(arrow["customer_sentiment"], base.default_sentiment).to_numpy(zero_copy_only=False)
    overrides = base.overrides
    escalated = np.zeros(len(decisions), dtype=bool)
    if overrides.escalate_complex_hits is not None:
        escalated |= decisions["complex_hits"].to_numpy() >= overrides.escalate_complex_hits
    if overrides.escalate_sentiment_below is not None:
        escalated |= sentiment < overrides.escalate_sentiment_below
    tool = (decisions["tool_hits"].to_numpy() > 0) & ~escalated if overrides.tool_hits_to_medium else np.zeros_like(escalated)
    scores = decisions["score"].to_numpy()[~escalated & ~tool]
    below, above = scores[scores < low], scores[scores >= high]
    nearest = (f"the nearest are {below.max():.3f} below" if len(below) else "none lies below") + (
        f" and {above.min():.3f} above" if len(above) else ", none above")
    return (f"{said}: of the {len(scores):,} turns the overrides leave to the score, none scores from {low:g} up to "
            f"{high:g} ({nearest}); the {int(escalated.sum()):,} turns the overrides escalate (complex hits, low "
            f"sentiment) and the {int(tool.sum()):,} tool turns do not depend on the threshold")


def _calibrate(points: list[dict], monthly_usd: float | None, ensemble_share: float | None) -> dict | None:
    if monthly_usd is not None and ensemble_share is not None:
        raise BadInput("give either --target-monthly-usd or --target-ensemble-share, not both")
    if monthly_usd is not None:
        affordable = [p for p in points if p["monthly_projection_usd"] <= monthly_usd]
        if not affordable:
            cheapest = min(points, key=lambda p: p["monthly_projection_usd"])
            raise BadInput(f"--target-monthly-usd {monthly_usd}: no swept value is that cheap "
                           f"(cheapest: {cheapest['monthly_projection_usd']:.2f} at {cheapest['value']})")
        return max(affordable, key=lambda p: (p["escalation_coverage"], -p["monthly_projection_usd"]))
    if ensemble_share is not None:
        return min(points, key=lambda p: (abs(p["ensemble_share"] - ensemble_share), p["monthly_projection_usd"]))
    return None


def point_labels(xs: list[float], ys: list[float], values: list[float]) -> list[tuple[float, float, str]]:
    """One label per distinct point: consecutive swept values on the same point share one ("0.4-0.9")."""
    labels: list[tuple[float, float, str]] = []
    start = 0
    for index in range(1, len(values) + 1):
        if index == len(values) or (xs[index], ys[index]) != (xs[start], ys[start]):
            text = f"{values[start]:g}" if index - 1 == start else f"{values[start]:g}\u2013{values[index - 1]:g}"
            labels.append((xs[start], ys[start], text))
            start = index
    return labels


# Where a label may go around its point (points): right-above first, then below, left, further out.
_LABEL_OFFSETS = [(4, 4, "left"), (4, -11, "left"), (-4, 4, "right"), (-4, -11, "right"), (4, 14, "left"),
                  (4, -21, "left"), (-4, 14, "right"), (-4, -21, "right")]


def label_points(axis: plt.Axes, labels: list[tuple[float, float, str]]) -> list[Any]:
    """Annotate points so that no two labels overlap: each takes the first free place around its point, and a
    label with no free place is left out (the table below the figure lists every value)."""
    figure = axis.figure
    figure.canvas.draw()  # final limits, so label boxes are where they will be drawn
    renderer = figure.canvas.get_renderer()
    placed, boxes = [], []
    for x, y, text in labels:
        for dx, dy, align in _LABEL_OFFSETS:
            label = axis.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7, ha=align)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in boxes):
                placed.append(label)
                boxes.append(box)
                break
            label.remove()
    return placed


def _sweep_report(summary: dict[str, Any]) -> Report:
    points = pd.DataFrame(summary["points"])
    report = Report(f"Sweep of {summary['parameter']} on {summary['policy']}")
    report.paragraph(f"Quality here is {summary['quality']}. Production value: {summary['production_value']}.")
    if summary["cost_estimate_assumption"]:
        report.paragraph(f"Costs in cost_estimated_turns are {summary['cost_estimate_assumption']}.")
    for region in summary["flat_regions"]:
        report.paragraph(f"Flat stretch: {region['why']}.")
    for x, label, name in (("ensemble_share", "share of turns sent to the ensemble", "cost_quality_share"),
                           ("monthly_projection_usd", "projected monthly cost (USD)", "cost_quality_dollars")):
        fig, axis = plt.subplots(figsize=(6, 3.6))
        axis.plot(points[x], points["escalation_coverage"], marker="o")
        label_points(axis, point_labels(points[x].tolist(), points["escalation_coverage"].tolist(),
                                        points["value"].tolist()))
        production = points[np.isclose(points["value"], summary["production_value"])]
        if len(production):
            axis.scatter(production[x], production["escalation_coverage"], s=120, facecolors="none", edgecolors="red",
                         label="production value", zorder=3)
            axis.legend()
        axis.set_xlabel(label)
        axis.set_ylabel("escalation coverage")
        report.figure(fig, name, f"Quality against {label}")
    if "answer_similarity" in points:
        fig, axis = plt.subplots(figsize=(6, 3.6))
        axis.plot(points["ensemble_share"], points["answer_similarity"], marker="o", color="#55a868")
        axis.set_xlabel("share of turns sent to the ensemble")
        axis.set_ylabel("answer similarity to the ensemble's choice")
        report.figure(fig, "answer_similarity", "How close the sent answers are to the ensemble's, per swept value")
    report.table(list(points.columns), points.to_numpy().tolist())
    if "calibrated" in summary:
        report.paragraph(f"Calibrated value {summary['calibrated']['value']} written to {summary['calibrated']['policy_file']}.")
    return report
