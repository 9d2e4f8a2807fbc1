"""Production's ensemble consensus, replayed on logged responses, and what it agrees on.

The production rule (Smoothie's paper calls it MBR): among the valid answers of the ensemble
members, pick the one with the highest mean cosine similarity to the others; that mean is the
agreement score. Fewer than two valid answers: the single one, or the fallback apology.

Beside it, a Smoothie-style selector estimates each provider's quality from the triangle of
pairwise distances across many turns, to show where a quality-weighted choice would differ.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hibachi_lab import registry, traffic
from hibachi_lab.cost import Pricing, price_responses, response_frame
from hibachi_lab.files import atomic_path, json_default, write_text_atomic
from hibachi_lab.report import Report
from hibachi_lab.router import Providers
from hibachi_lab.similarity import SimilarityEngine
from hibachi_lab.traffic import ENSEMBLE_PROVIDERS, arrow_table

log = logging.getLogger(__name__)

FALLBACK_RESPONSE = "I'm sorry, I couldn't process that request."
FALLBACK_PROVIDER = "fallback"
# The routed provider name under which production runs the ensemble (its members: pricing.ensembles).
ENSEMBLE = "ensemble"
DEFAULT_MIN_AGREEMENT = 0.7
# Smoothie's quality weights per intent need enough complete turns to be estimated; else global.
SMOOTHIE_MIN_TURNS_PER_INTENT = 30


@dataclass
class ConsensusReplay:
    """Per-turn consensus (a row per turn with ensemble answers) and the turns' member answers."""

    turns: pd.DataFrame
    answers: pd.DataFrame
    members: list[str]
    skipped_turns: int


def logged_answers(table: datasets.Dataset | pa.Table, providers: list[str] | None = None) -> pd.DataFrame:
    """One row per logged answer (of ``providers``, default all): turn (row number), position in the turn,
    provider, model, text, validity (production's test: some content and no error) and tokens."""
    arrow = arrow_table(table)
    frame = response_frame(arrow)
    flat = pc.list_flatten(arrow["responses"].combine_chunks())
    content = pd.Series(pc.struct_field(flat, "content").to_numpy(zero_copy_only=False), dtype=object).fillna("")
    answers = pd.DataFrame({
        "turn": frame["turn"].astype("int64"),
        "position": frame.groupby("turn").cumcount().astype("int64"),
        "provider": frame["provider"],
        "model": frame["model"],
        "content": content,
        "valid": ~frame["failed"] & (content.str.strip() != ""),
        "input_tokens": frame["input_tokens"].astype("int64"),
        "output_tokens": frame["output_tokens"].astype("int64"),
    })
    if providers is not None:
        answers = answers[answers["provider"].isin(providers)].reset_index(drop=True)
    return answers


def ensemble_members(pricing: Pricing) -> list[str]:
    """The providers production's ensemble calls, from the pricing config (GPT-4o, Claude, Mistral by default)."""
    return list(pricing.ensembles.get(ENSEMBLE, ENSEMBLE_PROVIDERS))


def consensus(
    table: datasets.Dataset | pa.Table,
    engine: SimilarityEngine,
    members: list[str],
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> ConsensusReplay:
    """Replay production's consensus on every turn that logged at least one ensemble member answer."""
    arrow = arrow_table(table)
    answers = logged_answers(arrow, members)
    valid = answers[answers["valid"]].reset_index(drop=True)
    vectors = engine.embed(valid["content"].tolist(), description="embedding ensemble answers")
    rows = []
    for turn, group in valid.groupby("turn", sort=True):
        # The logged order decides ties, as production's max() over its list does.
        index = group.index.to_numpy()
        matrix = vectors[index] @ vectors[index].T
        rows.append(_choose(turn, group["provider"].tolist(), group["position"].tolist(), matrix))
    chosen = pd.DataFrame(rows, columns=["turn", "best_provider", "best_position", "agreement_score", "votes",
                                         "member_means"])
    turns_with_members = np.unique(answers["turn"].to_numpy())
    frame = pd.DataFrame({"turn": turns_with_members}).merge(chosen, on="turn", how="left")
    frame["valid_responses"] = frame["turn"].map(valid.groupby("turn").size()).fillna(0).astype(int)
    frame["fallback"] = frame["valid_responses"] == 0
    frame.loc[frame["fallback"], "best_provider"] = FALLBACK_PROVIDER
    frame["votes"] = frame["votes"].apply(lambda votes: votes if isinstance(votes, list) else [])
    frame["low_agreement"] = frame["agreement_score"].notna() & (frame["agreement_score"] < min_agreement)
    frame = _with_turn_columns(frame, arrow)
    return ConsensusReplay(frame, answers, members, arrow.num_rows - len(frame))


def _choose(turn: int, providers: list[str], positions: list[int], matrix: np.ndarray) -> tuple:
    if len(providers) == 1:
        return turn, providers[0], positions[0], np.nan, providers, {providers[0]: np.nan}
    means = (matrix.sum(axis=1) - np.diag(matrix)) / (len(providers) - 1)
    best = int(np.argmax(means))
    order = sorted(range(len(providers)), key=lambda i: -means[i])
    return (turn, providers[best], positions[best], float(means[best]), [providers[i] for i in order],
            {provider: float(mean) for provider, mean in zip(providers, means)})


def _with_turn_columns(frame: pd.DataFrame, arrow: pa.Table) -> pd.DataFrame:
    """Add the turn's ids, intent, logged tier and production's logged choice."""
    # An empty merge leaves "turn" as object dtype, which numpy refuses as an index.
    rows = frame["turn"].to_numpy(dtype=np.int64)
    labels = arrow["labels"].to_pylist()
    frame.insert(0, "conversation_id", np.asarray(arrow["conversation_id"].to_pylist(), dtype=object)[rows])
    frame.insert(1, "turn_index", arrow["turn_index"].to_numpy()[rows])
    frame["intent"] = [(labels[row] or {}).get("intent") or "unlabelled" for row in rows]
    frame["routed_provider"] = np.asarray(arrow["routed_provider"].to_pylist(), dtype=object)[rows]
    frame["tier"] = [TIER_OF_ROUTED_PROVIDER.get(provider, "unknown") for provider in frame["routed_provider"]]
    frame["logged_final_response"] = np.asarray(arrow["final_response"].to_pylist(), dtype=object)[rows]
    frame["logged_consensus_score"] = np.asarray(arrow["consensus_score"].to_pylist(), dtype=float)[rows]
    return frame


def _tier_of_routed_provider() -> dict[str, str]:
    providers = Providers()
    return {providers.simple: "simple", providers.medium: "medium", providers.tool: "medium",
            providers.complex: "complex"}


# Production's tier as logged: which tier each routed provider serves.
TIER_OF_ROUTED_PROVIDER = _tier_of_routed_provider()


def similarity_to_consensus(
    table: datasets.Dataset | pa.Table, engine: SimilarityEngine, members: list[str]
) -> pd.DataFrame:
    """Each valid logged answer's similarity to the ensemble's choice on its turn (turn, provider, similarity).

    Only turns where the ensemble had a choice (2+ valid member answers); the ensemble itself scores 1.
    A router replay uses this to say how close the answer it would send is to the ensemble's.
    """
    replay = consensus(table, engine, members)
    chosen = replay.turns[replay.turns["valid_responses"] >= 2]
    best_text = chosen.merge(replay.answers, left_on=["turn", "best_position"], right_on=["turn", "position"])
    best_text = best_text.set_index("turn")["content"]
    answers = logged_answers(table)
    answers = answers[answers["valid"] & answers["turn"].isin(best_text.index)]
    scores = engine.cosine(answers["content"].tolist(), best_text.loc[answers["turn"]].tolist())
    own = pd.DataFrame({"turn": best_text.index, "provider": ENSEMBLE, "similarity": 1.0})
    scored = pd.DataFrame({"turn": answers["turn"].to_numpy(), "provider": answers["provider"].to_numpy(),
                           "similarity": scores})
    return pd.concat([scored, own], ignore_index=True).drop_duplicates(["turn", "provider"])


# --------------------------------------------------------------------------- what-if and alternatives


def pair_what_ifs(replay: ConsensusReplay, answer_costs: pd.Series) -> list[dict[str, Any]]:
    """For each pair of members: how often it picks what the full ensemble picks, and its cost.

    With two answers the production rule has no majority: both means are the one similarity, so
    the first answer in the logged order wins.
    """
    answers = replay.answers.assign(cost_usd=answer_costs.to_numpy())
    full_cost = float(answers["cost_usd"].sum())
    best = replay.turns.set_index("turn")["best_provider"]
    results = []
    for pair in itertools.combinations(replay.members, 2):
        chosen = answers[answers["provider"].isin(pair)]
        first_valid = chosen[chosen["valid"]].sort_values(["turn", "position"]).groupby("turn")["provider"].first()
        pick = best.index.to_series().map(first_valid).fillna(FALLBACK_PROVIDER)
        cost = float(chosen["cost_usd"].sum())
        results.append({
            "pair": list(pair),
            "same_pick_as_full_ensemble": float((pick == best).mean()) if len(best) else None,
            "cost_usd": cost,
            "cost_share_of_full_ensemble": cost / full_cost if full_cost else None,
        })
    return results


def smoothie(replay: ConsensusReplay, engine: SimilarityEngine) -> dict[str, Any]:
    """Smoothie-style selection: per-provider quality from the triangle of distances, per intent.

    With unit vectors, E|a_i - a_j|^2 = d_i + d_j, where d_i is provider i's spread around the
    unknown true answer; three providers give d_i = (D_ij + D_ik - D_jk) / 2. The provider with the
    smallest spread is picked among the valid answers of a turn (estimated per intent when it has
    enough complete turns, globally otherwise).
    """
    members = replay.members
    complete = replay.turns[replay.turns["valid_responses"] == len(members)]
    if len(members) < 3 or complete.empty:
        return {"available": False, "reason": "needs turns where at least 3 members all answered"}
    valid = replay.answers[replay.answers["valid"]]
    spreads_global = _spreads(complete, valid, engine, members)
    spreads_per_intent = {}
    for intent, group in complete.groupby("intent"):
        if len(group) >= SMOOTHIE_MIN_TURNS_PER_INTENT:
            spreads_per_intent[intent] = _spreads(group, valid, engine, members)
    picks = []
    for row in replay.turns.itertuples():
        if row.valid_responses < 2:
            picks.append(row.best_provider)
            continue
        spreads = spreads_per_intent.get(row.intent, spreads_global)
        picks.append(min(row.votes, key=lambda provider: spreads[provider]))
    picks = pd.Series(picks, index=replay.turns.index)
    contested = replay.turns["valid_responses"] >= 2
    differs = (picks != replay.turns["best_provider"]) & contested
    return {
        "available": True,
        "spread_global": spreads_global,
        "spread_per_intent": spreads_per_intent,
        "picks": picks,
        "would_pick_differently": float(differs.sum() / contested.sum()) if contested.any() else 0.0,
        "win_rates": picks[contested].value_counts(normalize=True).to_dict(),
    }


def _spreads(turns: pd.DataFrame, valid: pd.DataFrame, engine: SimilarityEngine, members: list[str]) -> dict:
    answers = valid[valid["turn"].isin(turns["turn"])].sort_values(["turn", "provider"])
    vectors = engine.embed(answers["content"].tolist())
    order = {provider: i for i, provider in enumerate(sorted(members))}
    stacked = np.zeros((len(turns), len(members), vectors.shape[1]), dtype=np.float32)
    turn_row = {turn: i for i, turn in enumerate(sorted(turns["turn"]))}
    for vector, turn, provider in zip(vectors, answers["turn"], answers["provider"], strict=True):
        stacked[turn_row[turn], order[provider]] = vector
    # Mean squared distance between every two providers' answers.
    distance = np.einsum("tid,tjd->ij", stacked, stacked)
    distance = 2 - 2 * distance / len(turns)
    spreads = {}
    for provider, i in order.items():
        others = [j for j in order.values() if j != i]
        estimates = [(distance[i, j] + distance[i, k] - distance[j, k]) / 2 for j, k in itertools.combinations(others, 2)]
        spreads[provider] = float(np.mean(estimates))
    return spreads


def production_agreement(turns: pd.DataFrame, answers: pd.DataFrame, ensemble: str) -> dict[str, Any]:
    """How the replay compares with production's logged final answer and consensus score.

    Only turns production routed to the ensemble: on shadow turns the logged answer is the routed model's.
    """
    content = answers.set_index(["turn", "position"])["content"]
    logged = turns[turns["logged_final_response"].notna() & (turns["valid_responses"] >= 2)
                   & (turns["routed_provider"] == ensemble)]
    if logged.empty:
        return {"turns_compared": 0}
    ours = [content.get((row.turn, row.best_position), "") for row in logged.itertuples()]
    same = np.array([a.strip() == (b or "").strip() for a, b in zip(ours, logged["logged_final_response"])])
    scored = logged[logged["logged_consensus_score"].notna()]
    difference = (scored["agreement_score"] - scored["logged_consensus_score"]).to_numpy()
    return {
        "turns_compared": len(logged),
        "same_answer_as_logged": float(same.mean()),
        "turns_with_logged_score": len(scored),
        "mean_score_difference": float(difference.mean()) if len(difference) else None,
        "mean_abs_score_difference": float(np.abs(difference).mean()) if len(difference) else None,
        "note": "production embedded with a different model, so scores differ by design; compare picks",
    }


# --------------------------------------------------------------------------- the command


def summarize(replay: ConsensusReplay, min_agreement: float, pairs: list[dict], alternative: dict,
              production: dict, engine: SimilarityEngine) -> dict[str, Any]:
    turns = replay.turns
    scored = turns[turns["agreement_score"].notna()]
    quantiles = scored["agreement_score"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]) if len(scored) else pd.Series()
    contested = turns[turns["valid_responses"] >= 2]
    return {
        "turns_in": int(len(turns) + replay.skipped_turns),
        "turns_with_ensemble_answers": len(turns),
        "turns_without_ensemble_answers": int(replay.skipped_turns),
        "members": replay.members,
        "min_agreement": min_agreement,
        "fallbacks": int(turns["fallback"].sum()),
        "single_answer_turns": int((turns["valid_responses"] == 1).sum()),
        "contested_turns": len(contested),
        "win_rates": contested["best_provider"].value_counts(normalize=True).to_dict(),
        "agreement_mean": float(scored["agreement_score"].mean()) if len(scored) else None,
        "agreement_quantiles": {f"p{int(q * 100)}": float(v) for q, v in quantiles.items()},
        "share_below_min_agreement": float(turns["low_agreement"].sum() / len(contested)) if len(contested) else None,
        "agreement_per_intent": _per_group(scored, "intent", min_agreement),
        "agreement_per_tier": _per_group(scored, "tier", min_agreement),
        "pairs": pairs,
        "smoothie": {key: value for key, value in alternative.items() if key != "picks"},
        "production": production,
        "similarity_model": engine.config.model,
        "newly_embedded_texts": engine.newly_embedded,
    }


def _per_group(scored: pd.DataFrame, column: str, min_agreement: float) -> dict[str, dict[str, float]]:
    return {
        str(name): {"turns": len(group), "mean": float(group["agreement_score"].mean()),
                    "share_below_min_agreement": float((group["agreement_score"] < min_agreement).mean())}
        for name, group in scored.groupby(column)
    }


def run_consensus(
    table: datasets.Dataset | pa.Table,
    out: str | os.PathLike,
    engine: SimilarityEngine,
    pricing: Pricing,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    track: bool = True,
    logs_description: str = "",
) -> dict[str, Any]:
    """Replay consensus and write consensus.parquet, summary.json, report.html/md (and an MLflow run)."""
    out = Path(out)
    members = ensemble_members(pricing)
    traffic.require_answers(table, logs_description, "the consensus replay", members)
    replay = consensus(table, engine, members, min_agreement)
    answer_costs, _ = price_responses(replay.answers, pricing)
    pairs = pair_what_ifs(replay, answer_costs.fillna(0.0))
    alternative = smoothie(replay, engine)
    production = production_agreement(replay.turns, replay.answers, ENSEMBLE)
    summary = summarize(replay, min_agreement, pairs, alternative, production, engine)
    summary["logs"] = logs_description

    columns = ["conversation_id", "turn_index", "best_provider", "best_position", "agreement_score", "low_agreement",
               "fallback", "votes", "valid_responses", "intent", "tier"]
    frame = replay.turns[columns].copy()
    frame["smoothie_pick"] = alternative["picks"] if alternative["available"] else None
    with atomic_path(out / "consensus.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=json_default))
    report = consensus_report(replay, summary)
    report.write(out)
    if track:
        # Only ids, providers and scores: the answers themselves stay out of MLflow.
        with tempfile.TemporaryDirectory() as artifacts:
            report.write(artifacts)
            for name in ("summary.json", "consensus.parquet"):
                (Path(artifacts) / name).write_bytes((out / name).read_bytes())
            params = {"logs": logs_description, "similarity_model": engine.config.model,
                      "min_agreement": min_agreement, "members": ",".join(members),
                      "pricing_sha256": hashlib.sha256(pricing.model_dump_json().encode()).hexdigest()}
            summary["mlflow_run_id"] = registry.log_run(
                "ensemble-consensus", f"consensus@{min_agreement}", params, _metrics(summary), artifacts
            )
    return summary


def _metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics = {key: summary[key] for key in ("turns_with_ensemble_answers", "fallbacks", "single_answer_turns",
                                              "contested_turns", "agreement_mean", "share_below_min_agreement",
                                              "newly_embedded_texts")}
    metrics |= {f"win_rate.{provider}": share for provider, share in summary["win_rates"].items()}
    if summary["smoothie"].get("available"):
        metrics["smoothie.would_pick_differently"] = summary["smoothie"]["would_pick_differently"]
    return metrics


def consensus_report(replay: ConsensusReplay, summary: dict[str, Any]) -> Report:
    report = Report("Ensemble consensus replay")
    report.paragraph(
        f"{summary['turns_in']:,} turns read; {summary['turns_with_ensemble_answers']:,} carry answers of the ensemble "
        f"members ({', '.join(summary['members'])}), {summary['turns_without_ensemble_answers']:,} do not and are not "
        f"scored. Similarity model: {summary['similarity_model']}."
    )
    below = summary["share_below_min_agreement"]
    report.table(["", "value"], [
        ["turns with 2 or more valid answers", summary["contested_turns"]],
        ["turns with a single valid answer", summary["single_answer_turns"]],
        ["fallbacks (no valid answer: the apology is sent)", summary["fallbacks"]],
        ["mean agreement", summary["agreement_mean"] if summary["agreement_mean"] is not None else "n/a"],
        [f"share below min_agreement {summary['min_agreement']}", f"{below:.1%}" if below is not None else "n/a"],
    ])
    scored = replay.turns["agreement_score"].dropna()
    if len(scored):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist(scored, bins=40, color="#4c72b0")
        ax.axvline(summary["min_agreement"], color="#c44e52", linestyle="--", label="min_agreement")
        ax.set_xlabel("agreement score (mean cosine of the chosen answer to the others)")
        ax.set_ylabel("turns")
        ax.legend()
        report.figure(fig, "agreement_histogram", "Agreement per turn")
    report.heading("Win rates")
    wins = summary["win_rates"]
    if wins:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(list(wins), [100 * share for share in wins.values()], color="#55a868")
        ax.set_ylabel("share of contested turns won (%)")
        report.figure(fig, "win_rates", "Which member's answer production would send")
    report.heading("Agreement per intent and per tier")
    for column in ("intent", "tier"):
        groups = summary[f"agreement_per_{column}"]
        report.table([column, "turns", "mean agreement", "share below min_agreement"],
                     [[name, g["turns"], g["mean"], f"{g['share_below_min_agreement']:.1%}"] for name, g in groups.items()])
    intents = summary["agreement_per_intent"]
    if intents:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = sorted(intents, key=lambda name: intents[name]["mean"])
        ax.barh(names, [intents[name]["mean"] for name in names], color="#8172b2")
        ax.axvline(summary["min_agreement"], color="#c44e52", linestyle="--")
        ax.set_xlabel("mean agreement")
        report.figure(fig, "agreement_per_intent", "Mean agreement per intent")
    report.heading("What if only two members answered?")
    report.paragraph("With two answers the production rule has no majority: both means equal their one similarity, "
                     "so the first answer in the logged order is sent.")
    report.table(["pair", "same pick as the full ensemble", "cost (USD)", "cost share of full ensemble"],
                 [[" + ".join(p["pair"]), _share(p["same_pick_as_full_ensemble"]), p["cost_usd"],
                   _share(p["cost_share_of_full_ensemble"])] for p in summary["pairs"]])
    report.heading("Smoothie-style selector")
    alternative = summary["smoothie"]
    if alternative.get("available"):
        report.paragraph(
            f"Choosing the provider with the smallest estimated spread (Smoothie's triangle estimate, per intent "
            f"where at least {SMOOTHIE_MIN_TURNS_PER_INTENT} complete turns exist) would have picked differently "
            f"on {alternative['would_pick_differently']:.1%} of contested turns."
        )
        report.table(["provider", "estimated spread (lower is better)"],
                     [[provider, spread] for provider, spread in alternative["spread_global"].items()])
    else:
        report.paragraph(f"Not available: {alternative['reason']}.")
    production = summary["production"]
    report.heading("Against production's logged choice")
    if production["turns_compared"]:
        report.paragraph(
            f"On {production['turns_compared']:,} ensemble-routed turns with a logged final answer, the replay sends the same answer on "
            f"{production['same_answer_as_logged']:.1%}. {production['note']}"
            + (f"; mean score difference {production['mean_score_difference']:+.3f}."
               if production["mean_score_difference"] is not None else ".")
        )
    else:
        report.paragraph("No ensemble-routed turn with two or more valid answers has a logged final answer.")
    return report


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
