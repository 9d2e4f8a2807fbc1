"""The ``hibachi-lab`` command line: parses arguments and calls the pipeline modules.

Exit codes: 0 ok, 1 internal error (a bug: ``--debug`` shows the traceback), 2 bad input
(one line naming the file, line, field and what was expected).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from typer.core import TyperGroup

from hibachi_lab import BUNDLED_PROBES, CONFIGS, DATA, GATE_PROBES, REPO_ROOT
from hibachi_lab.errors import BadInput

SAMPLE_TRAFFIC = DATA / "sample_traffic.jsonl"
DEFAULT_PRICING = CONFIGS / "pricing.yaml"
DEFAULT_SIMILARITY = CONFIGS / "similarity.yaml"
SIMILARITY_PROBES = BUNDLED_PROBES
DEFAULT_PII = CONFIGS / "pii.yaml"
DEFAULT_DATASET = CONFIGS / "dataset.yaml"
DEFAULT_PROMOTION = CONFIGS / "promotion.yaml"

console = Console()
error_console = Console(stderr=True)


def bundled(path: Path) -> str:
    """How help names a default file that ships with hibachi-lab (not the install's absolute path)."""
    return f"bundled {path.relative_to(REPO_ROOT).as_posix()}"


class _Group(TyperGroup):
    """Turns exceptions into exit codes: one clear line for bad input, a hint for bugs."""

    def invoke(self, ctx: typer.Context) -> Any:
        debug = ctx.params.get("debug") or os.environ.get("HIBACHI_LAB_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # typer's own flow: exits, usage errors
            raise
        except BadInput as exc:
            if debug:
                traceback.print_exc()
            error_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as exc:  # noqa: BLE001 - a bug: say so, and how to see it
            if debug:
                traceback.print_exc()
            else:
                error_console.print(
                    f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                    highlight=False,
                    soft_wrap=True,
                )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    help="Offline workbench for My Hibachi's multi-LLM assistant: replay routing, scrub PII, "
    "build datasets, LoRA-tune small students and gate their promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: it wraps within the terminal (at 80 columns too), where Rich's option table cut
    # default paths and gave every flag a <bool> column.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=error_console, show_path=False, show_time=False)],
        force=True,
    )


LogPaths = Annotated[list[Path], typer.Argument(help="Log files (.jsonl, .jsonl.gz, .parquet), folders or globs.",
                                                metavar="LOGS")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first bad line instead of quarantining it.")]


def _load(logs: list[Path], strict: bool, quarantine: Path | None = None):
    """Read logs (bad lines to ``quarantine``) and show what was loaded and set aside."""
    from hibachi_lab import traffic

    loaded = traffic.read_logs(logs, strict=strict, quarantine_path=quarantine)
    _print_load_report(loaded.report)
    return loaded.dataset


def _print_load_report(report, title: str = "Load") -> None:
    table = Table(title=title, show_header=False)
    table.add_row("files", ", ".join(report.files))
    table.add_row("lines read", f"{report.lines_read:,}")
    table.add_row("rows loaded", f"{report.rows_loaded:,}")
    table.add_row("rows quarantined", f"{report.rows_quarantined:,}")
    if report.quarantine_file:
        table.add_row("quarantine file", report.quarantine_file)
    console.print(table)
    if report.quarantined_by_field:
        by_field = Table(title="Problems per field")
        by_field.add_column("field")
        by_field.add_column("lines", justify="right")
        for name, count in sorted(report.quarantined_by_field.items(), key=lambda item: -item[1]):
            by_field.add_row(name, str(count))
        console.print(by_field)
        for problem in report.first_problems:
            console.print(f"  {problem}", highlight=False, soft_wrap=True)
        if report.rows_quarantined > len(report.first_problems):
            console.print(f"  ... and {report.rows_quarantined - len(report.first_problems)} more in the quarantine file")


def _print_summary(summary: dict[str, Any]) -> None:
    overview = Table(title="Traffic", show_header=False)
    for key in ("turns", "conversations", "first_turn_utc", "last_turn_utc", "responses", "provider_errors",
                "turns_with_3_or_more_responses", "sentiment_missing"):
        value = summary[key]
        overview.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    console.print(overview)
    for key in ("turns_per_intent", "turns_per_routed_provider", "responses_per_model", "pii_spans_per_entity_type"):
        counts = Table(title=key.replace("_", " "))
        counts.add_column("value")
        counts.add_column("count", justify="right")
        for name, count in summary[key].items():
            counts.add_row(name, f"{count:,}")
        console.print(counts)


@app.command()
def validate(
    logs: LogPaths,
    strict: Strict = False,
    quarantine: Annotated[
        Path | None, typer.Option(help="Where to write the bad lines (default: beside the cached table).")
    ] = None,
) -> None:
    """Check log files against the logged-turn format; print counts and problems per field (exit 2 if any, or if
    no turn is left)."""
    from hibachi_lab import traffic

    result = traffic.read_logs(logs, strict=strict, quarantine_path=quarantine, allow_empty=True)
    _print_load_report(result.report, title="Validation")
    traffic.require_turns(result.report)
    if result.report.rows_quarantined:
        raise typer.Exit(2)


@app.command()
def summarize(logs: LogPaths, strict: Strict = False) -> None:
    """Summarize logged traffic: volume, dates, intents, routing, provider errors and PII labels."""
    from hibachi_lab import traffic

    result = traffic.read_logs(logs, strict=strict)
    _print_load_report(result.report)
    _print_summary(traffic.summarize(result.dataset))


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.jsonl, .jsonl.gz or .parquet).")],
    conversations: Annotated[int, typer.Option("--conversations", "-n", min=1, help="How many conversations.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 0,
    config: Annotated[Path | None, typer.Option(help="Generator settings (YAML, see configs/synth.yaml).")] = None,
) -> None:
    """Generate realistic synthetic My Hibachi traffic with exact PII labels (deterministic per seed)."""
    from hibachi_lab import synth as synth_module

    settings = synth_module.load_config(config) if config else synth_module.SynthConfig()
    turns = synth_module.write_synthetic(out, conversations, seed, settings)
    console.print(f"wrote {turns:,} turns in {conversations:,} conversations to {out}")


PricingOption = Annotated[Path, typer.Option(help="Price table and budget settings (YAML).",
                                             show_default=bundled(DEFAULT_PRICING))]
SimilarityOption = Annotated[Path, typer.Option("--similarity", help="Similarity engine settings (YAML).",
                                                show_default=bundled(DEFAULT_SIMILARITY))]


def _engine(config: Path):
    from hibachi_lab.similarity import SimilarityConfig, SimilarityEngine

    return SimilarityEngine(SimilarityConfig.from_yaml(config))


NoSimilarity = Annotated[
    bool, typer.Option("--no-similarity", help="Skip scoring answers against the ensemble's choice (no model load).")
]
NoMlflow = Annotated[bool, typer.Option("--no-mlflow", help="Do not record an MLflow run.")]


@app.command()
def replay(
    logs: LogPaths,
    policy: Annotated[Path, typer.Option(help="Router policy to replay (YAML, e.g. configs/router/seed.yaml).")],
    out: Annotated[Path, typer.Option(help="Folder for decisions.parquet, summary.json and report.html/md.")],
    vs: Annotated[Path | None, typer.Option("--vs", help="A second policy to compare against (A/B).")] = None,
    pricing: PricingOption = DEFAULT_PRICING,
    charge_unknown_as: Annotated[
        str | None,
        typer.Option(help="Charge models missing from the price table at this model's prices, as production does "
                     "with gpt-4-turbo (default: leave them uncharged; both ways warn)."),
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="Production env file: AI_ROUTER_COMPLEX_THRESHOLD overrides policy A's threshold.")
    ] = None,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
    no_similarity: NoSimilarity = False,
    strict: Strict = False,
    no_mlflow: NoMlflow = False,
) -> None:
    """Replay logged traffic through a router policy (and a rival): cost, escalation risk, A/B report."""
    from hibachi_lab import replay as replay_module
    from hibachi_lab.cost import Pricing

    policies = [policy] + ([vs] if vs else [])
    summary = replay_module.run_replay(
        _load(logs, strict, out / "quarantine.jsonl"), policies, out, Pricing.from_yaml(pricing), charge_unknown_as,
        track=not no_mlflow, logs_description=", ".join(str(p) for p in logs), env_file=env_file,
        engine=None if no_similarity else _engine(similarity),
    )
    _print_replay(summary)
    console.print(f"report: {out / 'report.html'}")


def _print_replay(summary: dict[str, Any]) -> None:
    from hibachi_lab.replay import delta_estimated_note, estimated_flag, savings_text

    table = Table(title=f"Replay of {summary['turns']:,} turns")
    table.add_column("")
    labels = list(summary["policies"])
    for label in labels:
        table.add_column(label, justify="right")
    rows = [
        ("total cost (USD)", lambda p: f"{p['total_cost_usd']:,.4f}{estimated_flag(p)}"),
        ("per 1k turns (USD)", lambda p: f"{p['cost_per_1k_turns']:,.3f}{estimated_flag(p)}"),
        ("monthly projection (USD)", lambda p: f"{p['monthly_projection_usd']:,.2f}{estimated_flag(p)}"),
        ("savings vs all-GPT-4", lambda p: f"{savings_text(p)}{estimated_flag(p)}"),
        ("escalation misses", lambda p: f"{p['escalation_misses']:,} / {p['at_risk_turns']:,}"),
        ("share simple/medium/complex", lambda p: " / ".join(f"{v:.0%}" for v in p["share_per_tier"].values())),
        ("answer similarity to ensemble", lambda p: _similarity_text(p["answer_similarity_to_ensemble"])),
    ]
    for name, render in rows:
        table.add_row(name, *[render(summary["policies"][label]) for label in labels])
    console.print(table)
    for label in labels:
        console.print(f"{label}: {summary['policies'][label]['verdict_300_rule']}", highlight=False)
    assumptions = {summary["policies"][label]["cost_estimate_assumption"] for label in labels} - {None}
    for assumption in assumptions:  # the same log, so one assumption for every policy that needed it
        console.print(f"costs {assumption}", highlight=False)
    if "ab" in summary:
        ab = summary["ab"]
        low, high = ab["cost_delta_95ci_usd"]
        console.print(
            f"A/B: same tier on {ab['tier_agreement']:.1%} of turns; B - A cost {ab['cost_delta_usd']:+,.4f} USD "
            f"(95% CI {low:+,.4f} to {high:+,.4f}{delta_estimated_note(ab)}); escalation misses "
            f"{ab['escalation_miss_delta']:+d}",
            highlight=False,
        )
        colour = {"adopt B": "green", "keep A": "red"}.get(ab["verdict"]["decision"], "yellow")
        console.print(f"verdict: [bold {colour}]{ab['verdict']['decision']}[/]")
        for reason in ab["verdict"]["reasons"]:
            console.print(f"  - {reason}", highlight=False)
    shown = summary.get("customer_messages_shown")
    if shown and shown["with_personal_data"]:
        console.print(f"[yellow]note:[/] the local report quotes {shown['with_personal_data']:,} customer messages "
                      "holding personal data (the log is not scrubbed): keep it on this machine", highlight=False)


def _similarity_text(similarity: dict[str, Any] | str) -> str:
    if isinstance(similarity, str):  # why it was not computed
        return similarity
    return "n/a" if similarity["mean"] is None else f"{similarity['mean']:.3f}"


@app.command()
def sweep(
    logs: LogPaths,
    policy: Annotated[Path, typer.Option(help="Policy whose parameter is swept.")],
    param: Annotated[str, typer.Option(help="Parameter: complex_threshold, medium_threshold, escalate_sentiment_below, "
                                       "default_sentiment or <length|complex|tool|sentiment|history>_weight.")],
    values: Annotated[str, typer.Option(help="start:stop:step (stop included) or a comma list, e.g. 0.3:0.9:0.05.")],
    out: Annotated[Path, typer.Option(help="Folder for sweep.json, report.html/md and a calibrated policy.")],
    target_monthly_usd: Annotated[float | None, typer.Option(help="Write the best policy within this monthly budget.")] = None,
    target_ensemble_share: Annotated[float | None, typer.Option(help="Write the policy closest to this ensemble share.")] = None,
    pricing: PricingOption = DEFAULT_PRICING,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
    no_similarity: NoSimilarity = False,
    no_mlflow: NoMlflow = False,
) -> None:
    """Sweep one router parameter: cost-quality curve with the production point; optional calibrated policy."""
    from hibachi_lab import replay as replay_module
    from hibachi_lab import traffic
    from hibachi_lab.cost import Pricing

    loaded = traffic.read_logs(logs, quarantine_path=out / "quarantine.jsonl")
    summary = replay_module.run_sweep(
        loaded.dataset, policy, param, replay_module.parse_values(values), out, Pricing.from_yaml(pricing),
        target_monthly_usd, target_ensemble_share, track=not no_mlflow,
        engine=None if no_similarity else _engine(similarity),
    )
    table = Table(title=f"Sweep of {param}")
    for column in ("value", "ensemble share", "monthly USD", "escalation misses"):
        table.add_column(column, justify="right")
    for point in summary["points"]:
        estimated = " (estimated)" if point["cost_estimated_turns"] else ""
        table.add_row(f"{point['value']:g}", f"{point['ensemble_share']:.1%}",
                      f"{point['monthly_projection_usd']:,.2f}{estimated}", str(point["escalation_misses"]))
    console.print(table)
    for region in summary["flat_regions"]:
        console.print(f"flat stretch: {region['why']}", highlight=False)
    if summary["cost_estimate_assumption"]:
        console.print(f"costs {summary['cost_estimate_assumption']}", highlight=False)
    if "calibrated" in summary:
        console.print(f"calibrated policy: {out / 'calibrated_policy.yaml'} ({param} = {summary['calibrated']['value']})")
    console.print(f"report: {out / 'report.html'}")


@app.command("similarity-probe")
def similarity_probe(
    pairs: Annotated[Path, typer.Argument(help="JSONL of {kind, a, b} pairs (default: the bundled My Hibachi set).",
                                          show_default=False)] = SIMILARITY_PROBES,
    threshold: Annotated[float, typer.Option(help="The threshold to read the scores against.")] = 0.90,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
) -> None:
    """Score labelled probe pairs (paraphrase, negation, number swap...) to see what a threshold means."""
    from hibachi_lab.records import read_jsonl
    from hibachi_lab.similarity import ProbePair, probe_scores, probe_summary

    probes = read_jsonl(pairs, ProbePair)
    engine = _engine(similarity)
    summary = probe_summary(probe_scores(probes, engine), threshold)
    table = Table(title=f"Cosine per probe kind ({engine.config.model}, {len(probes)} pairs)")
    table.add_column("kind", no_wrap=True)
    for column in ("pairs", "min", "p25", "median", "p75", "max", f">={threshold:g}"):
        table.add_column(column, justify="right", no_wrap=True)
    for kind, row in summary.iterrows():
        table.add_row(kind, f"{row['pairs']:.0f}", *[f"{row[c]:.2f}" for c in ("min", "p25", "median", "p75", "max")],
                      f"{row['share_at_or_above_threshold']:.0%}")
    console.print(table)
    console.print("A pair kind that should differ (negation, number_swap, entity_swap) but scores above the "
                  "threshold passes a cosine-only gate: check facts beside cosine.", highlight=False)


@app.command("gate-calibrate")
def gate_calibrate(
    probes: Annotated[Path, typer.Argument(help="JSONL of labelled (teacher, student) pairs (default: the bundled "
                                           "hand-written set, data/gate_probes.jsonl).",
                                           show_default=False)] = GATE_PROBES,
    policy: Annotated[Path | None, typer.Option(help="Business policy sheet (default configs/business.yaml).")] = None,
    misses: Annotated[bool, typer.Option(help="Also list every pair the judge gets wrong.")] = False,
) -> None:
    """How the gate's per-answer verdicts read labelled pairs: accepted paraphrases, rejected flips, per kind and rule."""
    from hibachi_lab.policy import load_policy
    from hibachi_lab.records import read_jsonl
    from hibachi_lab.verdicts import (
        Judge,
        LabelledAnswer,
        calibrate,
        calibration_by_kind,
        calibration_by_rule,
    )

    pairs = read_jsonl(probes, LabelledAnswer)
    judged = calibrate(pairs, Judge(load_policy(policy)))
    table = Table(title=f"Verdicts on {len(pairs)} labelled pairs ({probes.name})")
    for column, justify in (("label", "left"), ("kind", "left"), ("pairs", "right"), ("judged as labelled", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in calibration_by_kind(judged).itertuples():
        table.add_row(row.label, row.kind, str(row.pairs), f"{row.judged_as_labelled:.0%}")
    console.print(table)
    rules = Table(title="Rules that called an answer wrong")
    for column, justify in (("rule", "left"), ("fired", "right"), ("really wrong", "right")):
        rules.add_column(column, justify=justify, no_wrap=True)
    for row in calibration_by_rule(judged).itertuples():
        rules.add_row(row.rule, str(row.fired), f"{row.really_wrong:.0%}")
    console.print(rules)
    correct, wrong = judged[judged["label"] == "correct"], judged[judged["label"] == "wrong"]
    console.print(f"correct answers accepted: {correct['agrees'].mean():.1%} of {len(correct)}; wrong answers "
                  f"rejected: {wrong['agrees'].mean():.1%} of {len(wrong)}", highlight=False)
    if misses:
        for row in judged[~judged["agrees"]].itertuples():
            console.print(f"{row.id} {row.label}/{row.kind} {row.fact!r}: judged {row.verdict} {row.rule} "
                          f"{row.evidence}", highlight=False, markup=False)


@app.command()
def consensus(
    logs: LogPaths,
    out: Annotated[Path, typer.Option(help="Folder for consensus.parquet, summary.json and report.html/md.")],
    min_agreement: Annotated[float, typer.Option(help="Turns whose agreement is below this are flagged.")] = 0.7,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
    pricing: PricingOption = DEFAULT_PRICING,
    strict: Strict = False,
    no_mlflow: NoMlflow = False,
) -> None:
    """Replay production's ensemble consensus on logged answers: agreement, win rates, cheaper pairs."""
    from hibachi_lab import ensemble
    from hibachi_lab.cost import Pricing

    summary = ensemble.run_consensus(
        _load(logs, strict, out / "quarantine.jsonl"), out, _engine(similarity), Pricing.from_yaml(pricing), min_agreement,
        track=not no_mlflow, logs_description=", ".join(str(p) for p in logs),
    )
    _print_consensus(summary)
    console.print(f"report: {out / 'report.html'}")


def _print_consensus(summary: dict[str, Any]) -> None:
    table = Table(title=f"Ensemble consensus on {summary['turns_with_ensemble_answers']:,} turns", show_header=False)
    table.add_row("turns without ensemble answers (not scored)", f"{summary['turns_without_ensemble_answers']:,}")
    table.add_row("fallbacks / single answer", f"{summary['fallbacks']:,} / {summary['single_answer_turns']:,}")
    if summary["agreement_mean"] is not None:
        table.add_row("mean agreement", f"{summary['agreement_mean']:.3f}")
        table.add_row(f"below min_agreement {summary['min_agreement']}", f"{summary['share_below_min_agreement']:.1%}")
    table.add_row("win rates", ", ".join(f"{p} {s:.0%}" for p, s in summary["win_rates"].items()))
    if summary["smoothie"].get("available"):
        table.add_row("Smoothie would pick differently", f"{summary['smoothie']['would_pick_differently']:.1%}")
    table.add_row("texts newly embedded", f"{summary['newly_embedded_texts']:,}")
    console.print(table)


PiiOption = Annotated[Path, typer.Option("--config", help="PII settings (YAML).", show_default=bundled(DEFAULT_PII))]


@app.command()
def scrub(
    logs: LogPaths,
    out: Annotated[Path, typer.Option("--out", "-o", help="Scrubbed log (.jsonl, .jsonl.gz or .parquet).")],
    mode: Annotated[str | None, typer.Option(help="placeholder (<PERSON_1>) or surrogate (consistent fake values); "
                                             "default: the config's.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes that analyse texts (forked copies of one "
                                                     "analyzer); default: every core, at most 4.")] = min(4, os.cpu_count() or 1),
    config: PiiOption = DEFAULT_PII,
    strict: Strict = False,
) -> None:
    """Scrub names, phones, emails, addresses, cards and gate codes from every text of every turn."""
    from hibachi_lab import pii

    settings = pii.PiiConfig.from_yaml(config)
    if mode is not None:
        if mode not in ("placeholder", "surrogate"):
            raise BadInput(f"--mode {mode}: expected placeholder or surrogate")
        settings = settings.model_copy(update={"mode": mode})
    report = pii.scrub_file(logs, out, settings, workers, strict)
    table = Table(title=f"Scrubbed ({report['mode']})", show_header=False)
    for key in ("rows_in", "rows_out", "rows_set_aside", "texts", "distinct_texts", "turns_touched", "texts_per_second"):
        table.add_row(key.replace("_", " "), f"{report[key]:,}")
    for entity, count in report["entities"].items():
        table.add_row(f"  {entity}", f"{count:,}")
    console.print(table)
    console.print(f"wrote {out} and {out.parent / 'scrub_report.json'}; check it with: hibachi-lab pii-check {out}")


@app.command("pii-check")
def pii_check(
    logs: LogPaths,
    config: PiiOption = DEFAULT_PII,
) -> None:
    """The leak gate: re-scan scrubbed logs with a stricter analyzer; exit 2 listing conversations and entity
    types (never the values) if anything is left."""
    from hibachi_lab import pii, traffic

    loaded = traffic.read_logs(logs, strict=True)
    report = pii.LeakChecker(pii.PiiConfig.from_yaml(config)).check_turns(loaded.dataset)
    if report.passed:
        console.print(f"[green]leak check passed[/]: {report.texts_checked:,} texts in {report.records_checked:,} turns")
        return
    table = Table(title=f"PII left in {len(report.by_record()):,} turns")
    table.add_column("conversation/turn")
    table.add_column("entity types")
    for record, types in report.by_record().items():
        table.add_row(record, ", ".join(types))
    console.print(table)
    error_console.print(f"[bold red]leak check failed[/]: {pii.describe_leaks(report)}", highlight=False)
    raise typer.Exit(2)


@app.command("pii-eval")
def pii_eval(
    labelled: Annotated[Path | None, typer.Argument(
        help="Logs with pii_spans, or JSONL of {text, spans: [{start, end, entity_type}], keep?: [{text}], "
             "conversation?}. Leave out with --presidio-evaluator.")] = None,
    presidio_evaluator: Annotated[int | None, typer.Option(
        "--presidio-evaluator", help="Evaluate on N sentences from presidio-evaluator's generator instead "
                                     "(text this project did not write; needs `pip install presidio-evaluator`).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --presidio-evaluator set.")] = 42,
    only: Annotated[list[str] | None, typer.Option(help="Keep turns where a field has a value, e.g. "
                                                    "synth.template_family=B.")] = None,
    without: Annotated[list[str] | None, typer.Option(
        help="Leave a recognizer out (by name, e.g. NameLexiconRecognizer) to see what it adds.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the scores as JSON here.")] = None,
    config: PiiOption = DEFAULT_PII,
) -> None:
    """Values left, needed words destroyed, recall, precision and F2 per entity type: ours vs plain Presidio.

    "left" is the share of labelled values still in the scrubbed text (as written, or for phones, cards
    and codes as the same digits in any format); "destroyed" the share of keep entries (a city, a price)
    no longer there. The last table says what each recognizer found.
    """
    from hibachi_lab import pii
    from hibachi_lab.files import write_text_atomic

    filters = {}
    for item in only or []:
        key, separator, value = item.partition("=")
        if not separator:
            raise BadInput(f"--only {item}: expected field=value, e.g. synth.template_family=B")
        filters[key] = value
    if presidio_evaluator:
        examples = pii.as_examples(pii.presidio_evaluator_examples(presidio_evaluator, seed))
        source = f"presidio-evaluator, {presidio_evaluator:,} sentences, seed {seed}"
    elif labelled is not None:
        examples = pii.labelled_examples(labelled, filters)
        source = str(labelled)
    else:
        raise BadInput("pii-eval: give a labelled file or --presidio-evaluator N")
    if not examples:
        raise BadInput(f"{source}: no labelled texts{' match ' + ', '.join(only) if only else ''}")
    result = pii.evaluate(examples, pii.PiiConfig.from_yaml(config), without=tuple(without or ()))
    console.print(f"{source}: {result['examples']:,} texts, {result['gold_spans']:,} labelled values, "
                  f"{result['keep_entries']:,} keep entries", highlight=False)
    table = Table(title="values left after scrubbing (lower is better): ours | plain Presidio")
    for column in ("entity", "values", "left", "recall", "precision", "F2", "| left", "recall "):
        table.add_column(column, justify="left" if column == "entity" else "right", no_wrap=True)
    for entity, row in result["ours"].items():
        if not row["gold"]:
            continue
        default = result["presidio_default"][entity]
        table.add_row(entity, f"{row['gold']:,}", *[_share(row["left_share"]), _score(row["recall"]),
                                                    _score(row["precision"]), _score(row["f2"]),
                                                    _share(default["left_share"]), _score(default["recall"])])
    console.print(table)
    ours, default = result["ours"]["overall"], result["presidio_default"]["overall"]
    console.print(f"needed words destroyed: ours {_share(ours['destroyed_share'])}, plain Presidio "
                  f"{_share(default['destroyed_share'])} (of {ours['keep_entries']:,} keep entries)", highlight=False)
    # Presidio keeps one result where recognizers agree on a span, so "only it" is an upper bound.
    sources = Table(title="labelled values each recognizer's results cover (after Presidio's merging)")
    for column in ("recognizer", "found", "only it"):
        sources.add_column(column, justify="left" if column == "recognizer" else "right")
    for name, row in result["by_recognizer"].items():
        sources.add_row(name, f"{row['found']:,}", f"{row['only_it_found']:,}")
    console.print(sources)
    misses = pii.targets_missed(result)
    console.print("[green]targets met[/] (values left <= 2% overall, names and streets <= 3%, phones, emails, "
                  "cards, codes <= 0.5%; needed words destroyed <= 3%)"
                  if not misses else "[yellow]targets missed:[/] " + "; ".join(misses))
    if out:
        write_text_atomic(out, json.dumps(result, indent=2))


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@app.command("build-dataset")
def build_dataset(
    logs: LogPaths,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder (replaced atomically).")],
    config: Annotated[Path, typer.Option(help="Dataset settings (YAML).", show_default=bundled(DEFAULT_DATASET))] \
    = DEFAULT_DATASET,
    pii_config: Annotated[Path, typer.Option("--pii-config", help="Settings of the leak gate (YAML).",
                                             show_default=bundled(DEFAULT_PII))] = DEFAULT_PII,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
    pricing: PricingOption = DEFAULT_PRICING,
    strict: Strict = False,
    no_mlflow: NoMlflow = False,
) -> None:
    """Scrubbed traffic to chat datasets: teacher answers, dedupe, splits by conversation, leak gate, card."""
    from hibachi_lab import dataset, ensemble, pii
    from hibachi_lab.cost import Pricing

    settings = dataset.DatasetConfig.from_yaml(config)
    table = _load(logs, strict, out.with_name(out.name + ".quarantine.jsonl"))
    needs_engine = "consensus" in settings.teacher_sources or settings.dedupe.near_threshold is not None
    members = ensemble.ensemble_members(Pricing.from_yaml(pricing))
    result = dataset.build(
        table, out, settings, _engine(similarity) if needs_engine else None, members,
        pii.PiiConfig.from_yaml(pii_config), source=", ".join(str(p) for p in logs), track=not no_mlflow,
    )
    _print_dataset(result.summary)
    console.print(f"wrote {out} (card: {out / 'README.md'}, Kaggle bundle: {out / 'kaggle'})")


def _print_dataset(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['turns_in']:,} turns in, {summary['examples_out']:,} examples out", show_header=False)
    for name, count in summary["per_split"].items():
        table.add_row(f"split {name}", f"{count:,} ({summary['conversations_per_split'][name]:,} conversations)")
    for reason, count in {**summary["dropped"], **summary["removed"]}.items():
        if count:
            table.add_row(reason.replace("_", " "), f"{count:,}")
    flagged = summary["teacher_answers_off_policy"]
    if flagged["train"] or flagged["eval"]:
        table.add_row("teacher answers against the policy sheet, kept and flagged",
                      f"train {flagged['train']:,}, eval {flagged['eval']:,} (column off_policy)")
    table.add_row("median / max tokens", f"{summary['tokens']['median']:.0f} / {summary['tokens']['max']:,}")
    console.print(table)


ModelOption = Annotated[str, typer.Option("--model", help="Recipe name (configs/models/) or YAML path.")]
HardwareOption = Annotated[str, typer.Option("--hardware", help="Profile name (configs/hardware/) or YAML path.")]


@app.command()
def plan(
    model: ModelOption,
    hardware: HardwareOption,
    dataset: Annotated[Path | None, typer.Option(help="A built dataset: its token count sets the time estimate.")]
    = None,
    backend: Annotated[str | None, typer.Option(help="Force unsloth or peft.")] = None,
) -> None:
    """Will this model train on this hardware? Memory, settings and time per epoch; refuses what cannot fit."""
    from hibachi_lab import plan as planner
    from hibachi_lab import train as trainer
    from hibachi_lab.recipes import load_hardware, load_recipe

    recipe = load_recipe(model)
    tokens, longest = planner.dataset_tokens(dataset)
    lengths = None
    if dataset is not None:
        try:
            # The examples rendered as training renders them: the recipe's tokenizer, chat template and tools.
            lengths = trainer.measured_lengths(recipe, dataset)
            tokens, longest = lengths.total, lengths.sequence_length
        except OSError as exc:  # the tokenizer is not in the local cache and the hub cannot be reached
            console.print(f"[yellow]note:[/] lengths not measured with {recipe.hub_id}'s tokenizer ({exc}); the "
                          "dataset's own estimate is used", highlight=False)
    chosen = planner.make_plan(recipe, load_hardware(hardware), tokens, longest, backend,
                               planner.dataset_examples(dataset))
    chosen.lengths = lengths.to_dict() if lengths else None
    _print_plan(chosen)
    if lengths and lengths.over:
        console.print(f"[bold red]{lengths.over:,} of {lengths.examples:,} training examples do not fit "
                      f"max_seq_length {recipe.max_seq_length} with a {trainer.SEQUENCE_MARGIN}-token margin: "
                      "train refuses them rather than cut their answers off[/]", highlight=False)


def _print_plan(chosen) -> None:
    table = Table(title=f"Plan: {chosen.model} on {chosen.hardware}", show_header=False)
    table.add_row("backend", chosen.backend)
    table.add_row("weights / precision", f"{chosen.weight_bits}-bit / {chosen.precision}")
    table.add_row("batch x accumulation", f"{chosen.batch_size} x {chosen.gradient_accumulation}")
    table.add_row("sequence length", str(chosen.sequence_length))
    if chosen.lengths:
        table.add_row("longest example (measured)", f"{chosen.lengths['longest']:,} tokens of "
                      f"{chosen.lengths['examples']:,} examples, rendered with the chat template and tools")
        table.add_row("examples over max_seq_length", f"{chosen.lengths['over']:,}")
    table.add_row("GPUs", chosen.multi_gpu or "one")
    table.add_row("weights at 4 / 8 / 16 bit", " / ".join(_gb(gb) for gb in chosen.weights_gb_at_bits.values()))
    table.add_row("LoRA parameters", f"{chosen.lora_parameters:,}")
    for part, gb in chosen.memory_gb.items():
        table.add_row(f"memory: {part}", _gb(gb))
    assumed = " (assumed: no --dataset)" if chosen.tokens_assumed else ""
    table.add_row("tokens per epoch", f"{chosen.tokens_per_epoch:,}{assumed}")
    table.add_row("steps per epoch", f"{chosen.steps_per_epoch:,}{assumed}")
    table.add_row("time per step", f"~{chosen.seconds_per_step:.2g} s ({chosen.time_basis})")
    table.add_row("time per epoch", f"{_duration(chosen.hours_per_epoch)} (an estimate)")
    console.print(table)
    for warning in chosen.warnings:
        console.print(f"[yellow]note:[/] {warning}", highlight=False)
    _print_reference(chosen.model)


def _print_reference(model: str) -> None:
    """Our memory estimate beside Unsloth's published need, under its conditions (QLoRA, batch 1, short sequences)."""
    from hibachi_lab import plan as planner

    table = Table(title=f"Memory model vs Unsloth's published QLoRA needs (batch 1, {planner.REFERENCE_SEQUENCE} tokens)")
    for column in ("model", "Unsloth reference", "hibachi-lab estimate", "ratio"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for row in planner.reference_table():
        marker = " <" if row["model"] == model else ""
        table.add_row(row["model"] + marker, f"~{row['unsloth_gb']:g} GB", f"{row['hibachi_gb']:.1f} GB",
                      f"{row['ratio']:.2f}")
    console.print(table)


def _gb(gb: float) -> str:
    """Memory in GB with one decimal; a part too small to show as 0.1 says so rather than "0"."""
    return f"{gb:,.1f} GB" if gb >= 0.05 else "<0.1 GB"


def _duration(hours: float) -> str:
    if hours < 1 / 60:
        return f"~{max(1, round(hours * 3600))} s"
    if hours < 1:
        return f"~{round(hours * 60)} min"
    return f"~{hours:,.1f} h"


@app.command("train")
def train_command(
    model: ModelOption,
    hardware: HardwareOption,
    dataset: Annotated[Path, typer.Option(help="A folder written by build-dataset.")],
    out: Annotated[Path, typer.Option(help="Output folder: adapter/, checkpoints/, README.md.")],
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[float, typer.Option(help="Epochs when --max-steps is not given.")] = 1.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every this many steps.")] = 50,
    packing: Annotated[bool, typer.Option("--packing", help="Pack examples into full sequences (best with flash attention).")]
    = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT/checkpoints (same model, "
                                         "dataset and settings only).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard the checkpoints of an earlier run in OUT and start over.")]
    = False,
    backend: Annotated[str | None, typer.Option(help="Force unsloth or peft (default: unsloth where it runs).")]
    = None,
    seed: Annotated[int, typer.Option(help="Random seed (data order, LoRA init).")] = 2026,
    resume_from: Annotated[Path | None, typer.Option(
        help="Continue from checkpoints kept elsewhere, e.g. an earlier session's checkpoints/ attached as a Kaggle "
             "input: copied into OUT/checkpoints (same model, dataset and settings only).")] = None,
    no_mlflow: NoMlflow = False,
) -> None:
    """Fine-tune a LoRA adapter on a built dataset (Unsloth on a capable GPU, PEFT + TRL elsewhere)."""
    from hibachi_lab import train as trainer
    from hibachi_lab.recipes import load_hardware, load_recipe

    recipe = load_recipe(model)
    if recipe.smoke:
        console.print(f"[yellow]{recipe.name} is a smoke model: a pipeline check, not a student.[/]")
    settings = trainer.TrainSettings(max_steps=max_steps, epochs=epochs, learning_rate=learning_rate,
                                     save_steps=save_steps, packing=packing, resume=resume, backend=backend,
                                     overwrite=overwrite, seed=seed, resume_from=resume_from)
    result = trainer.train(recipe, load_hardware(hardware), dataset, out, settings, track=not no_mlflow)
    _print_plan(result.plan)
    first, last = (result.losses[0][1], result.losses[-1][1]) if result.losses else (float("nan"),) * 2
    console.print(f"trained to step {result.global_step} (from {result.resumed_from_step}); loss {first:.3f} -> "
                  f"{last:.3f}; {result.tokens_per_second:,.0f} tokens/s; adapter in {out / 'adapter'}",
                  highlight=False)


@app.command()
def evaluate(
    dataset: Annotated[Path, typer.Option(help="A built dataset: its gate split is answered and scored.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html/md, per_example.parquet, decision.json.")],
    adapter: Annotated[Path | None, typer.Option(help="A trained adapter folder (OUT/adapter).")] = None,
    ollama_model: Annotated[str | None, typer.Option("--ollama", help="A model served by Ollama (OLLAMA_HOST).")]
    = None,
    answers: Annotated[Path | None, typer.Option(help="JSONL of {prompt_id, answer} made elsewhere (Kaggle).")]
    = None,
    config: Annotated[Path, typer.Option(help="The promotion gate (YAML).", show_default=bundled(DEFAULT_PROMOTION))] \
    = DEFAULT_PROMOTION,
    similarity: SimilarityOption = DEFAULT_SIMILARITY,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest student answer.")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts generated together.")] = 8,
    no_mlflow: NoMlflow = False,
) -> None:
    """Score a student against the teachers on the gate split and decide promotion (pass/fail with reasons)."""
    from hibachi_lab import evaluate as evaluation
    from hibachi_lab.records import read_jsonl
    from hibachi_lab.similarity import ProbePair

    result = evaluation.run_evaluation(
        dataset, out, _engine(similarity), evaluation.PromotionConfig.from_yaml(config),
        read_jsonl(SIMILARITY_PROBES, ProbePair), adapter=adapter, ollama_model=ollama_model, answers_file=answers,
        generation=evaluation.GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size),
        track=not no_mlflow,
    )
    _print_decision(result)
    console.print(f"report: {out / 'report.html'}")


def _print_decision(result: dict[str, Any]) -> None:
    metrics = result["metrics"]
    table = Table(title=f"Gate (wrong answers ≤ {result['gate']['max_wrong_rate']:.0%} at the upper 95% bound; "
                        f"similarity {result['gate']['mode']}, threshold {result['gate']['threshold']})",
                  show_header=False)
    for key in ("gate_examples", "wrong_answers", "wrong_rate_upper_95", "unsafe_answers", "missing_fact_rate",
                "mean_similarity", "teacher_ceiling", "gate_value"):
        value = metrics[key]
        table.add_row(key.replace("_", " "), "n/a" if value is None else f"{value:,.3f}" if isinstance(value, float)
                      else f"{value:,}")
    console.print(table)
    verdict = "[bold green]PASSED[/]" if result["passed"] else "[bold red]FAILED[/]"
    console.print(f"gate {verdict}")
    for reason in result["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    if "registered_version" in result:
        console.print(f"registered hibachi-student version {result['registered_version']} (alias candidate), "
                      f"MLflow run {result['mlflow_run_id']}; promote with: hibachi-lab promote --run "
                      f"{result['mlflow_run_id']}", highlight=False)


def _decision_in_words(student: str, result: dict[str, Any]) -> str:
    """One gate decision for a reader who is no engineer: how many answers were wrong and what that means."""
    metrics = result["metrics"]
    wrong, total = metrics["wrong_answers"], metrics["gate_examples"]
    if result["passed"]:
        return (f"{student} PASSED the quality check: {wrong} of {total} test answers were wrong or unsafe, and its "
                f"answers say what the teacher's say")
    return (f"{student} FAILED the quality check: {wrong} of {total} test answers were wrong or unsafe "
            f"(at most {result['gate']['max_wrong_rate']:.0%} may be, with room for chance)")


TrackingUri = Annotated[
    str | None,
    typer.Option(help="The MLflow store to read (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this "
                 "folder); a SQLite store that does not exist is refused, not created."),
]


@app.command()
def promote(
    run: Annotated[str, typer.Option("--run", help="The evaluation run whose student to promote (its id, or the "
                                     "first characters of it that status shows).")],
    force: Annotated[bool, typer.Option("--force", help="Promote although the gate failed (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why the gate is overridden; recorded on the version.")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Move the alias `production` to a student whose gate passed; refuse otherwise, listing the reasons."""
    from hibachi_lab import registry

    console.print(f"registry: {registry.tracking_uri(tracking_uri)}", highlight=False)
    version = registry.promote(run, force, reason, tracking_uri)
    console.print(f"hibachi-student version {version} is now [bold]production[/]")


@app.command()
def status(tracking_uri: TrackingUri = None) -> None:
    """The student registry: versions, gate results, which is production; teacher-student pairs collected."""
    from hibachi_lab import registry

    console.print(f"registry: {registry.tracking_uri(tracking_uri)}", highlight=False)
    state = registry.student_status(tracking_uri)
    table = Table(title="hibachi-student")
    for column in ("version", "aliases", "gate", "wrong answers", "similarity", "run"):
        table.add_column(column, no_wrap=True)
    for row in state["versions"]:
        table.add_row(str(row["version"]), ", ".join(row["aliases"]), (row["gate_result"] or "?") +
                      (" (forced)" if row["forced"] else ""), row["wrong_answers"] or "", row["mean_similarity"] or "",
                      row["run_id"][:8])
    console.print(table)
    production = [row for row in state["versions"] if "production" in row["aliases"]]
    console.print(f"production: version {production[0]['version']} (run {production[0]['run_id']})" if production
                  else "production: none yet (hibachi-lab promote --run RUN_ID)", highlight=False)
    console.print(f"teacher-student pairs collected: {state['pairs']:,} of the {state['pair_goal']:,} goal "
                  f"({state['pairs'] / state['pair_goal']:.1%})")


@app.command("ollama-export")
def ollama_export(
    adapter: Annotated[Path, typer.Argument(help="A trained adapter folder (OUT/adapter).")],
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Folder for merged/, model.gguf (when needed) and Modelfile.")],
    name: Annotated[str | None, typer.Option(help="Create it on the Ollama server under this name.")] = None,
    gguf: Annotated[bool | None, typer.Option(help="Force (or skip) GGUF conversion; default: where Ollama needs it.")]
    = None,
    config: Annotated[Path, typer.Option(help="Dataset settings: the system prompt.",
                                         show_default=bundled(DEFAULT_DATASET))] = DEFAULT_DATASET,
) -> None:
    """Merge an adapter into its base, convert for Ollama, write the Modelfile and optionally create the model."""
    from hibachi_lab import ollama
    from hibachi_lab.dataset import DatasetConfig
    from hibachi_lab.recipes import load_recipe

    recipe = load_recipe(model)
    system_prompt = DatasetConfig.from_yaml(config).system_prompt
    exported = ollama.export(adapter, recipe, out, system_prompt, gguf)
    console.print(f"merged {exported.architecture} into {exported.weights}; Modelfile: {exported.modelfile}")
    if name:
        files = ollama.create(name, exported, recipe, system_prompt)
        console.print(f"created Ollama model {name} from {len(files)} file(s); evaluate it with: "
                      f"hibachi-lab evaluate --ollama {name} --dataset DIR --out DIR")
    else:
        console.print(f"create it with: {ollama.create_command(exported)}", highlight=False)


@app.command()
def demo(
    logs: Annotated[Path, typer.Option(help="Logged traffic to run on.", show_default=bundled(SAMPLE_TRAFFIC))] \
    = SAMPLE_TRAFFIC,
    out: Annotated[Path, typer.Option(help="Where reports go.")] = Path("reports/demo"),
) -> None:
    """The main job on the bundled sample: replay A/B -> consensus -> scrub -> leak check -> dataset -> smoke student
    (fails the gate) -> a second teacher (passes, promoted to production in the MLflow registry), on CPU in a few
    minutes."""
    from hibachi_lab import dataset, ensemble, pii, registry, traffic
    from hibachi_lab import evaluate as evaluation
    from hibachi_lab import replay as replay_module
    from hibachi_lab import train as trainer
    from hibachi_lab.cost import Pricing
    from hibachi_lab.files import shareable_path, write_text_atomic
    from hibachi_lab.policy import load_policy
    from hibachi_lab.recipes import load_hardware, load_recipe
    from hibachi_lab.records import read_jsonl
    from hibachi_lab.similarity import ProbePair
    from hibachi_lab.verdicts import Judge

    result = traffic.read_logs(logs, quarantine_path=out / "quarantine.jsonl")
    _print_load_report(result.report, title="Step 1: validate")
    summary = traffic.summarize(result.dataset)
    _print_summary(summary)

    console.rule("Step 2: router replay, production (seed) vs word-boundary keywords")
    engine = _engine(DEFAULT_SIMILARITY)
    routers = CONFIGS / "router"
    replayed = replay_module.run_replay(
        result.dataset, [routers / "seed.yaml", routers / "word_boundary.yaml"], out / "replay_ab",
        Pricing.from_yaml(DEFAULT_PRICING), logs_description=str(logs), engine=engine,
    )
    _print_replay(replayed)

    console.rule("Step 3: ensemble consensus replay")
    agreed = ensemble.run_consensus(result.dataset, out / "consensus", engine, Pricing.from_yaml(DEFAULT_PRICING),
                                    logs_description=str(logs))
    _print_consensus(agreed)

    console.rule("Step 4: scrub PII, then the leak gate")
    settings = pii.PiiConfig.from_yaml(DEFAULT_PII)
    scrubbed = pii.scrub_file([logs], out / "scrubbed" / "traffic.jsonl", settings)
    leaks = pii.leak_gate(traffic.load(out / "scrubbed" / "traffic.jsonl"), "demo scrub", settings)
    console.print(f"scrubbed {scrubbed['rows_out']:,} of {scrubbed['rows_in']:,} turns, "
                  f"{sum(scrubbed['entities'].values()):,} values replaced "
                  f"({', '.join(f'{k} {v:,}' for k, v in scrubbed['entities'].items())}); "
                  f"leak check passed on {leaks.texts_checked:,} texts", highlight=False)

    console.rule("Step 5: instruction dataset from the scrubbed traffic")
    members = ensemble.ensemble_members(Pricing.from_yaml(DEFAULT_PRICING))
    built = dataset.build(traffic.load(out / "scrubbed" / "traffic.jsonl"), out / "dataset",
                          dataset.DatasetConfig.from_yaml(DEFAULT_DATASET), engine, members, settings,
                          source=str(out / "scrubbed" / "traffic.jsonl"))
    _print_dataset(built.summary)

    console.rule("Step 6: train a smoke student (qwen3-tiny on CPU: a pipeline check, not a student)")
    trained = trainer.train(load_recipe("qwen3-tiny"), load_hardware("laptop-cpu"), out / "dataset",
                            out / "student",
                            # The demo redoes its whole job on every run: last time's student is replaced.
                            trainer.TrainSettings(max_steps=30, learning_rate=5e-3, save_steps=100, overwrite=True))
    console.print(f"trained {trained.global_step} steps, loss {trained.losses[0][1]:.2f} -> "
                  f"{trained.losses[-1][1]:.2f}, adapter in {out / 'student' / 'adapter'}", highlight=False)

    console.rule("Step 7: evaluate it on the gate split and decide promotion")
    promotion = evaluation.PromotionConfig.from_yaml(DEFAULT_PROMOTION)
    probes = read_jsonl(SIMILARITY_PROBES, ProbePair)
    evaluated = evaluation.run_evaluation(
        out / "dataset", out / "evaluation", engine, promotion, probes, adapter=out / "student" / "adapter",
        generation=evaluation.GenerationSettings(max_new_tokens=48, batch_size=16),
    )
    _print_decision(evaluated)
    try:
        registry.promote(evaluated["mlflow_run_id"])
        smoke_refused = False
    except BadInput as refusal:
        smoke_refused = True
        console.print(f"promotion refused, as it should be: {refusal}", highlight=False)

    console.rule("Step 8: a second teacher as the student (no training), then promotion")
    # The other side of the decision: another ensemble member's answers to the same gate prompts,
    # where they agree with the reference, written as an answers file like one made on Kaggle.
    gate_examples = list(dataset.load_built(out / "dataset")[0]["gate"])
    honest_answers, from_second = evaluation.second_teacher_answers(
        gate_examples, Judge(load_policy(promotion.policy)))
    answers_file = write_text_atomic(out / "second_teacher" / "answers.jsonl", "".join(
        reply.model_dump_json(exclude_none=True) + "\n" for reply in honest_answers.values()))
    console.print(f"{from_second} of {len(gate_examples)} gate answers from a second teacher, the reference "
                  f"answer elsewhere: {answers_file}", highlight=False)
    honest = evaluation.run_evaluation(out / "dataset", out / "second_teacher" / "evaluation", engine, promotion,
                                       probes, answers_file=answers_file)
    _print_decision(honest)
    promoted_version = registry.promote(honest["mlflow_run_id"]) if honest["passed"] else None
    if promoted_version:
        console.print(f"hibachi-student version {promoted_version} is now [bold]production[/]")

    report = {"load": result.report.shareable(), "summary": summary, "replay": replayed, "consensus": agreed,
              "scrub": scrubbed, "leak_check": {"passed": leaks.passed, "texts_checked": leaks.texts_checked},
              "dataset": built.summary, "training": trainer.result_dict(trained), "evaluation": evaluated,
              "second_teacher": {"answers_file": shareable_path(answers_file), "answers_from_second_teacher": from_second,
                                 "evaluation": honest, "promoted_version": promoted_version},
              "smoke_promotion_refused": smoke_refused}
    path = write_text_atomic(out / "summary.json", json.dumps(report, indent=2, default=str))
    seed = replayed["policies"]["seed"]
    console.rule("Demo summary")
    console.print(
        f"cost: ${seed['total_cost_usd']:,.2f} for {replayed['turns']:,} turns (${seed['monthly_projection_usd']:,.2f}"
        f"/month projected); escalation misses {seed['escalation_misses']} of {seed['at_risk_turns']} at-risk turns\n"
        f"PII found and replaced: {sum(scrubbed['entities'].values()):,} values in {scrubbed['turns_touched']:,} "
        f"turns; leak check passed\n"
        f"dataset: {built.summary['examples_out']:,} examples (train {built.summary['per_split']['train']:,} / eval "
        f"{built.summary['per_split']['eval']:,} / gate {built.summary['per_split']['gate']:,})\n"
        f"{_decision_in_words('the smoke student (a tiny model trained for seconds)', evaluated)}; "
        f"{'so it was not put into service' if smoke_refused else 'it was promoted'}\n"
        f"{_decision_in_words('the second teacher', honest)}; "
        + (f"it now answers customers (hibachi-student version {promoted_version} is production)" if promoted_version
           else "so it was not put into service"),
        highlight=False)
    console.print(f"reports: {path.parent} (replay_ab/, consensus/, dataset/README.md, evaluation/report.html, "
                  "second_teacher/evaluation/report.html)", highlight=False)
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {registry.tracking_uri()}  then open "
                  "http://127.0.0.1:5000 (Models > hibachi-student shows the gate decision)", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
