"""Cost math on hand-computed turns, unknown models, estimates and the budget view."""

from __future__ import annotations

import logging

import pytest

from hibachi_lab import traffic
from hibachi_lab.cost import Pricing, budget_view, estimate_assumption, routing_costs


def response(provider, model, tokens_in, tokens_out, error=None, content="ok"):
    return {"provider": provider, "model": model, "content": None if error else content, "input_tokens": tokens_in,
            "output_tokens": tokens_out, "latency_ms": 10.0, "error": error}


def turn(index, routed, responses, intent="faq_hours", timestamp="2026-09-01T10:00:00-07:00"):
    return traffic.parse_turn({
        "conversation_id": f"c{index}", "turn_index": 0, "timestamp": timestamp, "query": "q",
        "routed_provider": routed, "responses": responses, "labels": {"intent": intent},
    })


@pytest.fixture(scope="module")
def pricing() -> Pricing:
    return Pricing.from_yaml()


def test_logged_single_provider_and_ensemble_costs(pricing):
    table = traffic.turns_table([
        turn(0, "mistral_small", [response("mistral_small", "mistral-small", 1000, 500)]),
        turn(1, "ensemble", [response("gpt4o", "gpt-4o", 2000, 100), response("claude", "claude-3-5-sonnet", 2000, 200),
                             response("mistral", "mistral-large-2", 2000, 300)]),
    ])
    costs = routing_costs(table, ["mistral_small", "ensemble"], pricing)
    # 1000/1000*0.001 + 500/1000*0.003
    assert costs["cost_usd"][0] == pytest.approx(0.0025)
    # gpt-4o 2*0.005 + 0.1*0.015, claude 2*0.003 + 0.2*0.015, mistral-large 2*0.008 + 0.3*0.024
    assert costs["cost_usd"][1] == pytest.approx(0.0115 + 0.009 + 0.0232)
    assert list(costs["cost_source"]) == ["logged", "logged"]
    assert not costs["cost_estimated"].any()


def test_rerouting_uses_shadow_tokens_else_an_estimate(pricing):
    shadowed = turn(0, "mistral_small", [response("mistral_small", "mistral-small", 1000, 100),
                                         response("gpt4o", "gpt-4o", 1000, 50), response("claude", "claude-3-5-sonnet", 1000, 60),
                                         response("mistral", "mistral-large-2", 1000, 70)])
    bare = turn(1, "mistral_small", [response("mistral_small", "mistral-small", 800, 40)])
    table = traffic.turns_table([shadowed, bare])
    costs = routing_costs(table, ["mistral_large", "mixtral_8x22b"], pricing)
    # mistral_large calls mistral-large-2: the shadow "mistral" answer used that model
    assert costs["cost_usd"][0] == pytest.approx(1 * 0.008 + 0.07 * 0.024)
    assert costs["cost_source"][0] == "shadow" and not costs["cost_estimated"][0]
    # no mixtral answer anywhere in the log: prompt 800 tokens, output = the log's overall average answer (64)
    average_output = (100 + 50 + 60 + 70 + 40) / 5
    assert costs["cost_usd"][1] == pytest.approx(0.8 * 0.002 + average_output / 1000 * 0.006)
    assert costs["cost_source"][1] == "estimated" and costs["cost_estimated"][1]


def test_unknown_models_are_uncharged_unless_asked_and_always_warned(pricing, caplog):
    table = traffic.turns_table([turn(0, "mistral_small", [response("mistral_small", "mistral-tiny-9", 1000, 1000)])])
    with caplog.at_level(logging.WARNING):
        free = routing_costs(table, ["mistral_small"], pricing)
    assert free["cost_usd"].isna()[0]
    assert "mistral-tiny-9 (1)" in caplog.text and "--charge-unknown-as gpt-4-turbo" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        charged = routing_costs(table, ["mistral_small"], pricing, charge_unknown_as="gpt-4-turbo")
    assert charged["cost_usd"][0] == pytest.approx(0.01 + 0.03)
    assert "charged as gpt-4-turbo: mistral-tiny-9 (1)" in caplog.text


def test_budget_view_alerts_projection_savings_and_the_300_rule(pricing):
    turns = [turn(i, "mistral_small", [], timestamp=f"2026-09-{1 + i % 2:02d}T10:00:00-07:00") for i in range(4)]
    table = traffic.turns_table(turns)
    view = budget_view(table, [30.0, 10.0, 30.0, 10.0], pricing)
    assert view["daily_cost_usd"] == {"2026-09-01": 60.0, "2026-09-02": 20.0}
    assert view["days_over_daily_alert"] == ["2026-09-01"]
    assert view["all_gpt4_baseline_usd"] == pytest.approx(0.20)
    assert view["savings_vs_all_gpt4"] < 0 and not view["meets_savings_target"]
    # 80 USD over one day -> 80 * 30.4 a month: above 300, so a GPU server pays off
    assert view["monthly_projection_usd"] == pytest.approx(80 * 30.4)
    assert view["verdict_300_rule"].startswith("rent a GPU server")
    cheap = budget_view(table, [0.001] * 4, pricing)
    assert cheap["verdict_300_rule"].startswith("stay on APIs")
    assert cheap["gpu_server_break_even_turns_per_month"] == pytest.approx(223 / 0.001)


def test_pricing_config_references_are_checked(tmp_path):
    from hibachi_lab.errors import BadInput

    bad = tmp_path / "pricing.yaml"
    bad.write_text("models: {gpt-4o: {input_per_1k: 0.005, output_per_1k: 0.015}}\nproviders: {gpt4o: gpt-5}\n")
    with pytest.raises(BadInput, match="providers.gpt4o names model 'gpt-5'"):
        Pricing.from_yaml(bad)


def test_a_turn_without_logged_usage_is_estimated_from_its_query_and_a_stated_answer_length(pricing):
    # "what are your hours" is 4 word pieces; no answer anywhere in the log: the default answer length
    queries_only = traffic.turns_table([turn(0, None, []).model_copy(update={"query": "what are your hours"})])
    costs = routing_costs(queries_only, ["mistral_small"], pricing)
    default = pricing.estimate.default_output_tokens
    assert costs["cost_usd"][0] == pytest.approx(4 / 1000 * 0.001 + default / 1000 * 0.003)
    assert costs["cost_source"][0] == "estimated" and costs["cost_estimated"][0]
    assert f"{default} tokens per answer (the stated default" in estimate_assumption(queries_only, pricing)


def test_the_typical_answer_length_comes_from_the_log_when_it_has_answers(pricing):
    answered = turn(0, "mistral_small", [response("mistral_small", "mistral-small", 500, 40)])
    # An export that dropped the counts (0 in, 0 out on a successful call) is not a free call.
    dropped_counts = turn(1, "mistral_small", [response("mistral_small", "mistral-small", 0, 0)])
    table = traffic.turns_table([answered, dropped_counts.model_copy(update={"query": "what are your hours"})])
    costs = routing_costs(table, ["mistral_small", "mistral_small"], pricing)
    assert costs["cost_usd"][1] == pytest.approx(4 / 1000 * 0.001 + 40 / 1000 * 0.003)
    assert list(costs["cost_source"]) == ["logged", "estimated"]
    assert "mean length of the log's 1 logged answers" in estimate_assumption(table, pricing)


def test_a_log_that_cannot_be_costed_has_no_savings_and_no_infinite_break_even(pricing):
    table = traffic.turns_table([turn(i, "mistral_small", []) for i in range(2)])
    view = budget_view(table, [float("nan"), float("nan")], pricing)  # every call of an unpriced model
    assert view["savings_vs_all_gpt4"] is None and not view["meets_savings_target"]
    assert view["gpu_server_break_even_turns_per_month"] is None and view["rule_300_trips_at_turns_per_month"] is None
    assert view["verdict_300_rule"].startswith("no verdict: no turn has a cost")
    estimated = budget_view(table, [0.002, 0.002], pricing, estimated_turns=2)
    assert "(estimated: 2 of 2 turns have no logged tokens" in estimated["verdict_300_rule"]
