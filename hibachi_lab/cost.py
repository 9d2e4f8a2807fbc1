"""What routing costs: production's price table, per-turn costs of any routing decision, budgets.

A turn routed where production routed it costs what its logged tokens cost. A turn a policy
sends elsewhere costs that provider's logged tokens when a shadow answer exists
(``cost_source = "shadow"``), else an estimate (``"estimated"``, and ``cost_estimated`` is true):
the turn's logged prompt tokens, or the query's own token count where the turn logged no usage
(queries-only exports), and the log's average answer length for that model and intent, or a
stated default where the log holds no answers. :func:`estimate_assumption` says which.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from hibachi_lab import CONFIGS
from hibachi_lab.config import StrictConfig, load_yaml_config
from hibachi_lab.errors import BadInput
from hibachi_lab.traffic import arrow_table, utc_times

log = logging.getLogger(__name__)

DEFAULT_PRICING = CONFIGS / "pricing.yaml"
DAYS_PER_MONTH = 30.4
# Worst first: a turn is as uncertain as its least certain member call.
SOURCE_RANK = {"logged": 0, "shadow": 1, "estimated": 2}


class ModelPrice(StrictConfig):
    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)


class Budget(StrictConfig):
    daily_alert_usd: float = 50
    monthly_alert_usd: float = 500
    all_gpt4_cost_per_query_usd: float = 0.05
    target_monthly_savings: float = Field(0.70, ge=0, le=1)
    self_host_threshold_monthly_usd: float = 300
    gpu_server_monthly_usd: float = 223


class Estimate(StrictConfig):
    """How a call with no logged tokens is costed."""

    # The answer length assumed when the log has no answer of any model to measure (queries-only exports).
    default_output_tokens: int = Field(150, ge=1)


class Pricing(StrictConfig):
    models: dict[str, ModelPrice]
    providers: dict[str, str]
    ensembles: dict[str, list[str]] = Field(default_factory=dict)
    production_unknown_model_fallback: str = "gpt-4-turbo"
    budget: Budget = Budget()
    estimate: Estimate = Estimate()

    @model_validator(mode="after")
    def _references_exist(self) -> Pricing:
        for provider, model in self.providers.items():
            if model not in self.models:
                raise ValueError(f"providers.{provider} names model {model!r}, which has no price under models")
        for name, members in self.ensembles.items():
            missing = [m for m in members if m not in self.providers]
            if missing:
                raise ValueError(f"ensembles.{name} lists {missing}, which are not under providers")
        if self.production_unknown_model_fallback not in self.models:
            raise ValueError("production_unknown_model_fallback must name a model under models")
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike = DEFAULT_PRICING) -> Pricing:
        return load_yaml_config(path, cls)

    def members(self, provider: str) -> list[str]:
        """The providers a routed provider calls: the ensemble's members, or itself."""
        members = self.ensembles.get(provider, [provider])
        unknown = [m for m in members if m not in self.providers]
        if unknown:
            raise BadInput(f"provider {unknown[0]!r} has no model under providers in the pricing config")
        return members


# --------------------------------------------------------------------------- logged responses


def response_frame(table: datasets.Dataset | pa.Table) -> pd.DataFrame:
    """One row per logged response: turn (row number), provider, model, tokens, failure."""
    arrow = arrow_table(table)
    responses = arrow["responses"].combine_chunks()
    flat = pc.list_flatten(responses)
    return pd.DataFrame(
        {
            "turn": pc.list_parent_indices(responses).to_numpy(),
            "provider": pc.struct_field(flat, "provider").to_numpy(zero_copy_only=False),
            "model": pc.struct_field(flat, "model").to_numpy(zero_copy_only=False),
            "input_tokens": pc.struct_field(flat, "input_tokens").to_numpy(zero_copy_only=False),
            "output_tokens": pc.struct_field(flat, "output_tokens").to_numpy(zero_copy_only=False),
            "failed": pc.is_valid(pc.struct_field(flat, "error")).to_numpy(zero_copy_only=False),
        }
    )


def price_responses(
    responses: pd.DataFrame, pricing: Pricing, charge_unknown_as: str | None = None
) -> tuple[pd.Series, dict[str, int]]:
    """Cost of each response; unknown models cost NaN unless ``charge_unknown_as`` names a price.

    Returns the costs and a count of responses per unknown model (always reported).
    """
    if charge_unknown_as is not None and charge_unknown_as not in pricing.models:
        raise BadInput(f"--charge-unknown-as {charge_unknown_as}: no such model in the price table")
    input_price, output_price = _prices(pricing, responses["model"])
    unknown = input_price.isna()
    unknown_counts = responses.loc[unknown, "model"].value_counts().to_dict()
    if unknown_counts:
        listing = ", ".join(f"{model} ({count})" for model, count in unknown_counts.items())
        if charge_unknown_as:
            log.warning("responses from models missing from the price table, charged as %s: %s", charge_unknown_as, listing)
            fallback = pricing.models[charge_unknown_as]
            input_price = input_price.fillna(fallback.input_per_1k)
            output_price = output_price.fillna(fallback.output_per_1k)
        else:
            log.warning(
                "responses from models missing from the price table are not charged: %s "
                "(production charges them as %s; pass --charge-unknown-as %s to do the same)",
                listing,
                pricing.production_unknown_model_fallback,
                pricing.production_unknown_model_fallback,
            )
    costs = responses["input_tokens"] / 1000 * input_price + responses["output_tokens"] / 1000 * output_price
    return costs, {str(k): int(v) for k, v in unknown_counts.items()}


def _prices(pricing: Pricing, models: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per-1k input and output prices for a column of model names (NaN for unknown models)."""
    return (
        models.map({name: price.input_per_1k for name, price in pricing.models.items()}),
        models.map({name: price.output_per_1k for name, price in pricing.models.items()}),
    )


# --------------------------------------------------------------------------- costs of a routing


def routing_costs(
    table: datasets.Dataset | pa.Table,
    providers: pa.Array | pa.ChunkedArray | list[str],
    pricing: Pricing,
    charge_unknown_as: str | None = None,
) -> pd.DataFrame:
    """Cost of sending each turn to ``providers[i]``: columns ``cost_usd``, ``cost_source``, ``cost_estimated``."""
    arrow = arrow_table(table)
    turns = arrow.num_rows
    responses = _with_usage(response_frame(arrow))
    responses["cost_usd"], _ = price_responses(responses, pricing, charge_unknown_as)
    intents = pc.struct_field(arrow["labels"], "intent").to_numpy(zero_copy_only=False)
    routed = arrow["routed_provider"].to_numpy(zero_copy_only=False)
    targets = np.asarray(providers.to_pylist() if hasattr(providers, "to_pylist") else providers, dtype=object)

    # One row per (turn, member call) the target routing makes.
    calls = pd.DataFrame({"turn": np.arange(turns), "target": targets}).assign(
        provider=lambda frame: frame["target"].map({p: pricing.members(p) for p in set(frame["target"])})
    ).explode("provider", ignore_index=True)
    calls["model"] = calls["provider"].map(pricing.providers)
    calls["intent"] = intents[calls["turn"]]
    calls["was_routed_here"] = routed[calls["turn"]] == calls["target"]

    # 1) the same provider answered in this turn; 2) another provider with the same model did.
    # (A logged call to a model missing from the price table stays logged, and uncharged.)
    by_provider = responses.drop_duplicates(["turn", "provider"]).set_index(["turn", "provider"])["cost_usd"]
    by_model = responses.drop_duplicates(["turn", "model"]).set_index(["turn", "model"])["cost_usd"]
    provider_keys = pd.MultiIndex.from_frame(calls[["turn", "provider"]])
    model_keys = pd.MultiIndex.from_frame(calls[["turn", "model"]])
    same_provider = provider_keys.isin(by_provider.index)
    same_model = model_keys.isin(by_model.index)
    logged = pd.Series(same_provider | same_model)
    cost = pd.Series(np.where(same_provider, by_provider.reindex(provider_keys).to_numpy(),
                              by_model.reindex(model_keys).to_numpy()))
    # 3) an estimate: this turn's prompt size, the model's average answer length for the intent
    estimate = _estimate(calls, responses, arrow, pricing)
    cost = cost.where(logged, estimate)
    calls["cost_usd"] = cost.to_numpy()
    calls["source_rank"] = np.where(logged, np.where(calls["was_routed_here"], 0, 1), 2)

    by_turn = calls.groupby("turn")
    turn_cost = by_turn["cost_usd"].sum(min_count=1)  # an uncharged (unknown-model) call keeps NaN
    rank = by_turn["source_rank"].max()
    return pd.DataFrame(
        {
            "cost_usd": turn_cost.to_numpy(),
            "cost_source": rank.map({value: name for name, value in SOURCE_RANK.items()}).to_numpy(),
            "cost_estimated": (rank == SOURCE_RANK["estimated"]).to_numpy(),
        }
    )


def _with_usage(responses: pd.DataFrame) -> pd.DataFrame:
    """The responses whose usage was logged: a successful call with 0 tokens in and out is an export that
    dropped the counts, not a free call, so it is estimated like a call that was never logged."""
    logged = responses["failed"] | (responses["input_tokens"] > 0) | (responses["output_tokens"] > 0)
    return responses[logged].reset_index(drop=True)


def _estimate(calls: pd.DataFrame, responses: pd.DataFrame, arrow: pa.Table, pricing: Pricing) -> pd.Series:
    answered = responses[~responses["failed"]].copy()
    answered["intent"] = calls.drop_duplicates("turn").set_index("turn")["intent"].reindex(answered["turn"]).to_numpy()
    by_model_intent = answered.groupby(["model", "intent"])["output_tokens"].mean()
    by_model = answered.groupby("model")["output_tokens"].mean()
    overall = answered["output_tokens"].mean() if len(answered) else pricing.estimate.default_output_tokens
    output = pd.Series(by_model_intent.reindex(pd.MultiIndex.from_frame(calls[["model", "intent"]])).to_numpy())
    output = output.fillna(pd.Series(by_model.reindex(calls["model"]).to_numpy())).fillna(overall)
    prompt = responses.groupby("turn")["input_tokens"].max()
    input_tokens = pd.Series(prompt.reindex(calls["turn"]).to_numpy(), dtype=float)
    unlogged = input_tokens.isna().to_numpy()
    if unlogged.any():
        input_tokens[unlogged] = query_tokens(arrow, calls["turn"].to_numpy()[unlogged])
    input_price, output_price = _prices(pricing, calls["model"])
    return input_tokens / 1000 * input_price.to_numpy() + output / 1000 * output_price.to_numpy()


def query_tokens(table: datasets.Dataset | pa.Table, turns: np.ndarray) -> np.ndarray:
    """Token counts of the customer messages of ``turns`` (row numbers; repeats are counted once)."""
    from hibachi_lab.similarity import stand_in_tokenizer

    unique, inverse = np.unique(turns, return_inverse=True)
    queries = arrow_table(table)["query"].take(pa.array(unique)).to_pylist()
    counts = np.array([len(ids) for ids in stand_in_tokenizer()(queries, add_special_tokens=False)["input_ids"]])
    return counts[inverse]


def estimate_assumption(table: datasets.Dataset | pa.Table, pricing: Pricing) -> str:
    """What an estimated cost assumes on this log, in words for the report and the summary."""
    from hibachi_lab.similarity import STAND_IN_TOKENIZER

    responses = _with_usage(response_frame(table))
    answers = int((~responses["failed"]).sum())
    output = (f"the mean length of the log's {answers:,} logged answers of that model and intent (else of that "
              "model, else of all models)" if answers else
              f"{pricing.estimate.default_output_tokens} tokens per answer (the stated default, "
              "pricing estimate.default_output_tokens: the log has no answer with usage to measure)")
    return ("estimated where no tokens were logged for the model a policy picks: input = the turn's logged prompt "
            f"tokens, else the customer's message counted with the {STAND_IN_TOKENIZER} tokenizer (system prompt "
            f"and history not counted, so a lower bound); output = {output}")


# --------------------------------------------------------------------------- budget view


def budget_view(table: datasets.Dataset | pa.Table, cost_usd: pd.Series | np.ndarray, pricing: Pricing,
                estimated_turns: int = 0) -> dict[str, Any]:
    """Daily and monthly totals, alerts, projection, savings against all-GPT-4 and the $300 verdict.

    ``estimated_turns`` (turns whose cost is an estimate) is said in the verdict. Without any cost to go on
    (every call uncharged), savings and break-even volumes are None, not 100% and infinity.
    """
    budget = pricing.budget
    arrow = arrow_table(table)
    cost = pd.Series(np.asarray(cost_usd, dtype=float)).fillna(0.0)
    # The business's day is the local day the customer wrote on: the timestamp's own date.
    local_day = pd.Series(arrow["timestamp"].to_pandas().str.slice(0, 10))
    daily = cost.groupby(local_day).sum().sort_index()
    monthly = cost.groupby(local_day.str.slice(0, 7)).sum().sort_index()
    moments = utc_times(arrow)
    days_covered = max(1.0, (moments.max() - moments.min()).total_seconds() / 86400) if len(moments) else 1.0
    total = float(cost.sum())
    turns = len(cost)
    monthly_projection = total / days_covered * DAYS_PER_MONTH
    turns_per_month = turns / days_covered * DAYS_PER_MONTH
    cost_per_turn = total / turns if turns else 0.0
    baseline = turns * budget.all_gpt4_cost_per_query_usd
    costed = total > 0
    savings = 1 - total / baseline if baseline and costed else None
    threshold = budget.self_host_threshold_monthly_usd
    rule_turns = threshold / cost_per_turn if costed else None
    server_break_even_turns = budget.gpu_server_monthly_usd / cost_per_turn if costed else None
    projected = f"projected ${monthly_projection:,.2f}/month"
    if estimated_turns:
        projected += (f" (estimated: {estimated_turns:,} of {turns:,} turns have no logged tokens for the model "
                      "picked)")
    if not costed:
        verdict = (f"no verdict: no turn has a cost (calls of models missing from the price table are left "
                   f"uncharged), so the ${threshold:,.0f} rule cannot be judged")
    elif monthly_projection < threshold:
        verdict = (
            f"stay on APIs: {projected} is below the ${threshold:,.0f} rule. "
            f"At ${cost_per_turn * 1000:,.2f} per 1k turns (now {turns_per_month:,.0f} turns/month), a "
            f"~${budget.gpu_server_monthly_usd:,.0f}/month GPU server breaks even at {server_break_even_turns:,.0f} "
            f"turns/month and the ${threshold:,.0f} rule trips at {rule_turns:,.0f}"
        )
    else:
        verdict = (
            f"rent a GPU server: {projected} is above the ${threshold:,.0f} rule, "
            f"so a ~${budget.gpu_server_monthly_usd:,.0f}/month server saves "
            f"${monthly_projection - budget.gpu_server_monthly_usd:,.2f}/month"
        )
    return {
        "total_cost_usd": total,
        "cost_per_1k_turns": cost_per_turn * 1000,
        "days_covered": days_covered,
        "monthly_projection_usd": monthly_projection,
        "turns_per_month": turns_per_month,
        "daily_cost_usd": {day: float(value) for day, value in daily.items()},
        "monthly_cost_usd": {month: float(value) for month, value in monthly.items()},
        "days_over_daily_alert": [day for day, value in daily.items() if value > budget.daily_alert_usd],
        "months_over_monthly_alert": [m for m, value in monthly.items() if value > budget.monthly_alert_usd],
        "all_gpt4_baseline_usd": baseline,
        "savings_vs_all_gpt4": savings,
        "meets_savings_target": savings is not None and savings >= budget.target_monthly_savings,
        "gpu_server_break_even_turns_per_month": server_break_even_turns,
        "rule_300_trips_at_turns_per_month": rule_turns,
        "verdict_300_rule": verdict,
    }
