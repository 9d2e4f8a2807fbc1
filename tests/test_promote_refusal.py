"""Promotion refuses a student whose gate failed unless forced with a reason; runs are named by id prefixes.

A stand-in for MLflow's client records what promote asks of the registry (fast: no store is created; the
MLflow end-to-end tests are in test_registry.py and test_evaluate.py, in the slow tier).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from hibachi_lab import registry
from hibachi_lab.cli import app
from hibachi_lab.errors import BadInput

runner = CliRunner()


class Registry:
    """The calls promote makes on an MlflowClient, over a list of versions."""

    tracking_uri = "sqlite:///stand-in.db"

    def __init__(self, *versions: tuple[str, str, dict[str, str]]):
        self.versions = [SimpleNamespace(version=v, run_id=run, tags=dict(tags)) for v, run, tags in versions]
        self.aliases: dict[str, str] = {}
        self.filters: list[str] = []

    def search_model_versions(self, filter_string: str):
        self.filters.append(filter_string)
        return list(self.versions)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        assert name == "hibachi-student"
        next(v for v in self.versions if v.version == version).tags[key] = value

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        assert name == "hibachi-student"
        self.aliases[alias] = version

    def tags(self, version: str) -> dict[str, str]:
        return next(v for v in self.versions if v.version == version).tags


@pytest.fixture
def store(monkeypatch):
    state = Registry(("1", "aaaa1111", {"gate_result": "pass"}),
                     ("2", "bbbb2222", {"gate_result": "fail", "gate_reasons": "3 of 60 answers are wrong"}),
                     ("3", "bbbb3333", {}),
                     ("4", "cccc4444", {"gate_result": "pass"}),
                     ("10", "cccc4444", {"gate_result": "pass"}))
    monkeypatch.setattr(registry, "existing_store", lambda uri=None: uri or "sqlite:///stand-in.db")
    monkeypatch.setattr(registry, "_client", lambda uri=None: state)
    return state


def test_a_passed_gate_moves_production_without_a_forced_tag(store):
    assert registry.promote("aaaa1111") == "1"
    assert store.aliases == {"production": "1"}
    assert store.tags("1") == {"gate_result": "pass"}
    assert store.filters == ["name='hibachi-student'"]


def test_a_failed_gate_is_refused_with_its_reasons_and_nothing_changes(store):
    with pytest.raises(BadInput, match=r"run bbbb2222 \(version 2\) failed the promotion gate: 3 of 60 answers are "
                                       r"wrong\. Fix the student, or use --force"):
        registry.promote("bbbb2222")
    assert store.aliases == {}
    assert "forced" not in store.tags("2")


def test_a_version_without_a_gate_result_is_refused(store):
    with pytest.raises(BadInput, match="failed the promotion gate: no reasons recorded"):
        registry.promote("bbbb3333")
    assert store.aliases == {}


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_force_needs_a_reason(store, reason):
    with pytest.raises(BadInput, match="--force needs --reason"):
        registry.promote("bbbb2222", force=True, reason=reason)
    assert store.aliases == {}
    assert "forced" not in store.tags("2")


def test_force_with_a_reason_promotes_and_records_the_override(store):
    assert registry.promote("bbbb2222", force=True, reason="manager approved") == "2"
    assert store.aliases == {"production": "2"}
    assert store.tags("2")["forced"] == "true" and store.tags("2")["force_reason"] == "manager approved"


def test_force_on_a_passed_gate_records_no_override(store):
    assert registry.promote("aaaa1111", force=True, reason="not needed") == "1"
    assert "forced" not in store.tags("1") and "force_reason" not in store.tags("1")


def test_a_run_is_named_by_a_unique_prefix_and_its_latest_version_wins(store):
    assert registry.promote("aaaa") == "1"
    # versions compare as numbers: 10 is later than 4 (as strings "4" > "10")
    assert registry.promote("cccc") == "10"
    assert store.aliases == {"production": "10"}


@pytest.mark.parametrize(("prefix", "message"), [
    ("bbbb", r"run bbbb: 2 evaluated runs start with it \(bbbb2222, bbbb3333\); give more of the id"),
    ("dddd", r"run dddd: no hibachi-student version was registered from a run with this id in sqlite:///stand-in\.db"),
    ("", r"--run: expected a run id"),
    ("  ", r"--run: expected a run id"),
])
def test_an_ambiguous_unknown_or_empty_run_is_refused(store, prefix, message):
    with pytest.raises(BadInput, match=message):
        registry.promote(prefix)
    assert store.aliases == {}


def test_the_promote_command_refuses_a_failed_gate_with_exit_code_2(store):
    refused = runner.invoke(app, ["promote", "--run", "bbbb2222"])
    assert refused.exit_code == 2
    assert "failed the promotion gate" in " ".join(refused.output.split())
    assert store.aliases == {}
    forced = runner.invoke(app, ["promote", "--run", "bbbb2222", "--force", "--reason", "manager approved"])
    assert forced.exit_code == 0, forced.output
    assert "version 2 is now production" in forced.output and store.aliases == {"production": "2"}
