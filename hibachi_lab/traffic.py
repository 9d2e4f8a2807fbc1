"""Logged traffic: the turn format, its validation, and a loader with bounded memory.

One logged turn is one customer message and what production did with it. Turns are
validated one line at a time; a bad line is set aside (quarantined) with its file, line
number, field and reason, never dropped silently. Valid turns are streamed into an Arrow
file and opened as a memory-mapped ``datasets.Dataset``, so a log larger than RAM loads.

In the Arrow table, fields that the format does not know are kept as JSON text in an
``unknown_fields`` column (one per record and nested record) and written back unchanged,
and ``tool_calls`` (free-form JSON) is kept as JSON text.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import gzip
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hibachi_lab.errors import BadInput
from hibachi_lab.files import atomic_path, cache_dir, shareable_path
from hibachi_lab.progress import progress_bar

log = logging.getLogger(__name__)

# Bump when the Arrow layout or the validation rules change: it invalidates cached loads.
LOADER_VERSION = 1

ROUTED_PROVIDERS = ("mistral_small", "mixtral_8x22b", "mistral_large", "ensemble")
ENSEMBLE_PROVIDERS = ("gpt4o", "claude", "mistral")
PRICED_MODELS = ("gpt-4o", "gpt-4-turbo", "claude-3-5-sonnet", "mistral-large-2", "mixtral-8x22b", "mistral-small")
ENTITY_TYPES = ("PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "STREET_ADDRESS", "ACCESS_CODE")

RoutedProvider = Literal["mistral_small", "mixtral_8x22b", "mistral_large", "ensemble"]
EntityType = Literal["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "STREET_ADDRESS", "ACCESS_CODE"]


# --------------------------------------------------------------------------- the format


def _require_iso_with_offset(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 timestamp with a UTC offset, e.g. 2026-09-01T18:30:00-07:00") from None
    if parsed.tzinfo is None:
        raise ValueError("expected a UTC offset (e.g. -07:00 or Z); a timestamp without one is ambiguous")
    return value


class _Record(BaseModel):
    # strict: a turn_index of "3" or a sentiment of "0.4" is a logging bug worth seeing.
    # extra="allow": unknown fields travel with the record and are written back unchanged.
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


class Message(_Record):
    role: Literal["user", "assistant"]
    content: str


class ProviderResponse(_Record):
    provider: str
    model: str
    content: str | None = None
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    error: str | None = None
    tool_calls: list[Any] | None = None

    @property
    def is_valid(self) -> bool:
        """Production's test for a usable answer: some content and no error."""
        return self.error is None and bool(self.content and self.content.strip())


class Labels(_Record):
    intent: str | None = None
    complexity: Literal["simple", "medium", "complex"] | None = None


class PiiSpan(_Record):
    field: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    entity_type: EntityType


class LoggedTurn(_Record):
    conversation_id: str = Field(min_length=1)
    turn_index: int = Field(ge=0)
    timestamp: str
    query: str
    history: list[Message] = []
    customer_sentiment: float | None = Field(default=None, ge=0, le=1)
    routed_provider: RoutedProvider | None = None
    responses: list[ProviderResponse] = []
    final_response: str | None = None
    consensus_score: float | None = None
    labels: Labels = Labels()
    pii_spans: list[PiiSpan] = []

    _timestamp_has_offset = field_validator("timestamp")(_require_iso_with_offset)

    @field_validator("history", "responses", "pii_spans", mode="before")
    @classmethod
    def _null_list_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("labels", mode="before")
    @classmethod
    def _null_labels_are_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def text_of(self, field_path: str) -> str | None:
        """The text a ``pii_spans`` field path names (``query``, ``history/2/content`` ...), or None."""
        if field_path == "query":
            return self.query
        if field_path == "final_response":
            return self.final_response
        parts = field_path.split("/")
        if len(parts) == 3 and parts[2] == "content" and parts[1].isdigit():
            items = {"history": self.history, "responses": self.responses}.get(parts[0])
            index = int(parts[1])
            if items is not None and index < len(items):
                return items[index].content
        return None


class UsageRow(BaseModel):
    """One row of a CSV export of production's ``ai.usage_tracking`` table."""

    # CSV cells are text: here numbers are parsed from strings, unlike in the JSON log.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    conversation_id: str = Field(min_length=1)
    model: str = Field(min_length=1)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    input_cost: float = Field(ge=0)
    output_cost: float = Field(ge=0)
    total_cost: float = Field(ge=0)
    created_at: str

    _created_at_has_offset = field_validator("created_at")(_require_iso_with_offset)


# --------------------------------------------------------------------------- Arrow layout

_UNKNOWN = ("unknown_fields", pa.string())
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string()), _UNKNOWN])
RESPONSE_TYPE = pa.struct(
    [
        ("provider", pa.string()),
        ("model", pa.string()),
        ("content", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("error", pa.string()),
        ("tool_calls", pa.string()),
        _UNKNOWN,
    ]
)
LABELS_TYPE = pa.struct([("intent", pa.string()), ("complexity", pa.string()), _UNKNOWN])
PII_SPAN_TYPE = pa.struct(
    [("field", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("entity_type", pa.string()), _UNKNOWN]
)
TURN_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("turn_index", pa.int64()),
        ("timestamp", pa.string()),
        ("query", pa.string()),
        ("history", pa.list_(MESSAGE_TYPE)),
        ("customer_sentiment", pa.float64()),
        ("routed_provider", pa.string()),
        ("responses", pa.list_(RESPONSE_TYPE)),
        ("final_response", pa.string()),
        ("consensus_score", pa.float64()),
        ("labels", LABELS_TYPE),
        ("pii_spans", pa.list_(PII_SPAN_TYPE)),
        _UNKNOWN,
    ]
)
USAGE_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("model", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("input_cost", pa.float64()),
        ("output_cost", pa.float64()),
        ("total_cost", pa.float64()),
        ("created_at", pa.string()),
        _UNKNOWN,
    ]
)


def to_row(record: BaseModel) -> dict[str, Any]:
    """A validated record as a row of the Arrow layout."""
    row: dict[str, Any] = {}
    for name in type(record).model_fields:
        value = getattr(record, name)
        if isinstance(value, BaseModel):
            value = to_row(value)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            value = [to_row(item) for item in value]
        elif name == "tool_calls" and value is not None:
            value = json.dumps(value, ensure_ascii=False)
        row[name] = value
    extra = record.model_extra
    row["unknown_fields"] = json.dumps(extra, ensure_ascii=False) if extra else None
    return row


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the Arrow layout as the JSON object it was logged as (unknown fields restored)."""
    obj: dict[str, Any] = {}
    for name, value in row.items():
        if name == "unknown_fields":
            continue
        if isinstance(value, dict):
            value = from_row(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            value = [from_row(item) for item in value]
        elif name == "tool_calls" and isinstance(value, str):
            value = json.loads(value)
        obj[name] = value
    unknown = row.get("unknown_fields")
    if unknown:
        obj.update(json.loads(unknown))
    return obj


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """Why one input line was set aside."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


class _LineError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _error_from_validation(exc: ValidationError) -> _LineError:
    problems = exc.errors(include_url=False)
    first = problems[0]
    field_path = "/".join(str(part) for part in first["loc"]) or "(line)"
    if first["type"] == "json_invalid":
        return _LineError("(line)", f"not valid JSON ({first['ctx']['error']})")
    if first["type"] == "model_type" and not first["loc"]:
        return _LineError("(line)", f"expected a JSON object, got {_short(first['input'])}")
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] != "missing":
        reason += f", got {_short(first['input'])}"
    if len(problems) > 1:
        reason += f" (and {len(problems) - 1} more problem(s) on this line)"
    return _LineError(field_path, reason)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, BaseModel) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_spans(turn: LoggedTurn) -> None:
    for index, span in enumerate(turn.pii_spans):
        where = f"pii_spans/{index}"
        text = turn.text_of(span.field)
        if text is None:
            raise _LineError(
                f"{where}/field",
                f"expected query, final_response, history/<i>/content or responses/<j>/content naming "
                f"a text that exists, got {_short(span.field)}",
            )
        if not span.start < span.end <= len(text):
            raise _LineError(
                where,
                f"expected 0 <= start < end <= {len(text)} (the length of {span.field}), "
                f"got start={span.start} end={span.end}",
            )


def parse_turn(obj: dict[str, Any] | str | bytes) -> LoggedTurn:
    """Validate one logged turn (a dict or its JSON text); raises ``_LineError`` with field and reason."""
    try:
        turn = (
            LoggedTurn.model_validate_json(obj) if isinstance(obj, (str, bytes)) else LoggedTurn.model_validate(obj)
        )
    except ValidationError as exc:
        raise _error_from_validation(exc) from None
    _check_spans(turn)
    return turn


def _parse_usage(obj: dict[str, Any]) -> UsageRow:
    try:
        return UsageRow.model_validate(obj)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None


# --------------------------------------------------------------------------- reading sources


@dataclass
class _SourceLine:
    number: int  # 1-based line (JSONL, CSV) or row (Parquet) number
    raw: str  # what goes to the quarantine file
    parse: Callable[[], BaseModel]


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files, directories (their log files) and globs, in a stable order; a missing one is bad input."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for item in paths:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                raise BadInput(f"{text}: no file matches this pattern")
            found.extend(matches)
        elif Path(text).is_dir():
            found.extend(
                sorted(p for p in Path(text).iterdir() if p.name.endswith((".jsonl", ".jsonl.gz", ".parquet")))
            )
        elif Path(text).is_file():
            found.append(Path(text))
        else:
            raise BadInput(f"{text}: no such file")
    if not found:
        raise BadInput("no log files given")
    return found


def _jsonl_lines(path: Path, parse: Callable[[Any], BaseModel]) -> Iterator[_SourceLine]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        previous: bytes | None = None
        number = 0
        # Look one line ahead so the last line is known to be last (a truncated write).
        for raw_line in stream:
            if previous is not None:
                yield _jsonl_line(number, previous, parse, is_last=False)
            number += 1
            previous = raw_line
        if previous is not None:
            yield _jsonl_line(number, previous, parse, is_last=True)


def _jsonl_line(number: int, raw_line: bytes, parse: Callable[[Any], BaseModel], is_last: bool) -> _SourceLine:
    text = raw_line.decode("utf-8", errors="backslashreplace").rstrip("\r\n")

    def parse_line() -> BaseModel:
        try:
            decoded = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _LineError("(line)", f"expected UTF-8 text, got byte 0x{raw_line[exc.start]:02x} at column {exc.start + 1}")
        try:
            return parse(decoded)
        except _LineError as exc:
            if is_last and not raw_line.endswith(b"\n") and exc.field == "(line)":
                raise _LineError("(line)", f"truncated last line (no newline at the end): {exc.reason}") from None
            raise

    return _SourceLine(number, text, parse_line)


def _parquet_rows(path: Path, parse: Callable[[Any], BaseModel]) -> Iterator[_SourceLine]:
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            obj = from_row(row)
            yield _SourceLine(number, json.dumps(obj, ensure_ascii=False, default=str), lambda obj=obj: parse(obj))


def _csv_rows(path: Path) -> Iterator[_SourceLine]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        for row in reader:
            line = reader.line_num
            row = {key: (value if value != "" else None) for key, value in row.items() if key is not None}
            yield _SourceLine(line, json.dumps(row, ensure_ascii=False), lambda row=row: _parse_usage(row))


def _total_size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


# --------------------------------------------------------------------------- loading


@dataclass
class LoadReport:
    """What a load did: every line read is either loaded or quarantined."""

    files: list[str]
    lines_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_field: dict[str, int] = field(default_factory=dict)
    quarantine_file: str | None = None
    first_problems: list[str] = field(default_factory=list)
    from_cache: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shareable(self) -> dict[str, Any]:
        """As a report that may leave this machine shows it: the files named without the user's folders."""
        return self.to_dict() | {"files": [shareable_path(path) for path in self.files],
                                 "quarantine_file": shareable_path(self.quarantine_file) if self.quarantine_file else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        return cls(**data)


@dataclass
class LoadResult:
    dataset: datasets.Dataset
    report: LoadReport


# How many first problems a report lists in full; the quarantine file has them all.
_LISTED_PROBLEMS = 20
_BATCH_ROWS = 5_000


def default_cache_dir() -> Path:
    return cache_dir()


def _fingerprint(kind: str, files: list[Path], strict: bool) -> str:
    digest = hashlib.sha256(f"{kind}:{LOADER_VERSION}:{strict}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"|{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def read_logs(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    strict: bool = False,
    quarantine_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_empty: bool = False,
) -> LoadResult:
    """Load logged turns (``.jsonl``, ``.jsonl.gz``, ``.parquet``) into a memory-mapped Dataset.

    Every line is validated. With ``strict`` the first bad line raises :class:`BadInput`
    (``file:line: field: what was expected``); otherwise bad lines go to ``quarantine_path``
    (by default beside the cached Arrow file) and are counted in the report. Duplicate
    ``(conversation_id, turn_index)`` pairs keep the first occurrence. No turn loaded (an empty
    file, or every line set aside) is bad input unless ``allow_empty`` (then see :func:`require_turns`).
    """
    files = expand_paths(paths)
    _require_log_files(files)
    seen_turns: set[tuple[str, int]] = set()

    def parse_source(path: Path) -> Iterator[_SourceLine]:
        if path.name.endswith(".parquet"):
            return _parquet_rows(path, parse_turn)
        return _jsonl_lines(path, parse_turn)

    def duplicate_check(turn: LoggedTurn) -> None:
        key = (turn.conversation_id, turn.turn_index)
        if key in seen_turns:
            raise _LineError(
                "conversation_id/turn_index",
                f"expected each (conversation_id, turn_index) once, got a second "
                f"({turn.conversation_id!r}, {turn.turn_index}); the first was kept",
            )
        seen_turns.add(key)

    return _load(
        "turns", files, parse_source, duplicate_check, TURN_SCHEMA, strict, quarantine_path, cache_dir, allow_empty
    )


def load(paths: str | os.PathLike | Iterable[str | os.PathLike], **options: Any) -> datasets.Dataset:
    """:func:`read_logs` returning only the Dataset; quarantined lines are still logged as a warning."""
    return read_logs(paths, **options).dataset


def read_usage_csv(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    strict: bool = False,
    quarantine_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> LoadResult:
    """Load a CSV export of production's ``ai.usage_tracking`` table (for cost-only analyses)."""
    files = expand_paths(paths)
    return _load("usage", files, lambda path: _csv_rows(path), None, USAGE_SCHEMA, strict, quarantine_path, cache_dir,
                 allow_empty=False)


def _load(
    kind: str,
    files: list[Path],
    parse_source: Callable[[Path], Iterator[_SourceLine]],
    extra_check: Callable[[Any], None] | None,
    schema: pa.Schema,
    strict: bool,
    quarantine_path: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    allow_empty: bool,
) -> LoadResult:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = _fingerprint(kind, files, strict)
    arrow_path = cache / f"{kind}-{key}.arrow"
    report_path = cache / f"{kind}-{key}.report.json"
    cached_quarantine = cache / f"{kind}-{key}.quarantine.jsonl"

    if arrow_path.exists() and report_path.exists():
        report = LoadReport.from_dict(json.loads(report_path.read_text()))
        report.from_cache = True
        report.files = [str(p) for p in files]  # the same files, perhaps named by another path
    else:
        report = _build(files, parse_source, extra_check, schema, strict, arrow_path, cached_quarantine)
        with atomic_path(report_path) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2))

    if report.rows_quarantined:
        target = Path(quarantine_path) if quarantine_path is not None else cached_quarantine
        if target != cached_quarantine:
            with atomic_path(target) as tmp:
                tmp.write_bytes(cached_quarantine.read_bytes())
        report.quarantine_file = str(target)
        log.warning(
            "%d of %d lines set aside (quarantined) in %s", report.rows_quarantined, report.lines_read, target
        )
    if not allow_empty:
        require_turns(report)
    dataset = datasets.Dataset.from_file(str(arrow_path))
    return LoadResult(dataset, report)


def _build(
    files: list[Path],
    parse_source: Callable[[Path], Iterator[_SourceLine]],
    extra_check: Callable[[Any], None] | None,
    schema: pa.Schema,
    strict: bool,
    arrow_path: Path,
    quarantine_file: Path,
) -> LoadReport:
    report = LoadReport(files=[str(p) for p in files])
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
        report.rows_loaded += len(rows)
        rows.clear()

    with contextlib.ExitStack() as stack:
        tmp_arrow = stack.enter_context(atomic_path(arrow_path))
        tmp_quarantine = stack.enter_context(atomic_path(quarantine_file))
        quarantine_stream = stack.enter_context(open(tmp_quarantine, "w", encoding="utf-8"))
        sink = stack.enter_context(pa.OSFile(str(tmp_arrow), "wb"))
        writer = stack.enter_context(pa.ipc.new_stream(sink, schema))
        advance = stack.enter_context(progress_bar("Loading logs", _total_size(files) // 400))
        for path in files:
            for line in parse_source(path):
                report.lines_read += 1
                advance(1)
                try:
                    record = line.parse()
                    if extra_check is not None:
                        extra_check(record)
                except _LineError as exc:
                    problem = Problem(str(path), line.number, exc.field, exc.reason)
                    if strict:
                        raise BadInput(str(problem)) from None
                    _quarantine(quarantine_stream, problem, line.raw)
                    report.rows_quarantined += 1
                    report.quarantined_by_field[exc.field] = report.quarantined_by_field.get(exc.field, 0) + 1
                    if len(report.first_problems) < _LISTED_PROBLEMS:
                        report.first_problems.append(str(problem))
                    continue
                rows.append(to_row(record))
                if len(rows) >= _BATCH_ROWS:
                    flush()
        if rows:
            flush()
    return report


# --------------------------------------------------------------------------- the guard every stage uses

LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def _require_log_files(files: list[Path]) -> None:
    """Refuse a file that is not a turn log before reading a line of it (so no quarantine file is written)."""
    for path in files:
        if not path.name.endswith(LOG_SUFFIXES):
            kind = "a CSV file" if path.name.lower().endswith((".csv", ".csv.gz")) else (
                f"a {''.join(path.suffixes) or 'suffixless'} file")
            hint = " (a usage_tracking CSV export loads with traffic.read_usage_csv)" if kind == "a CSV file" else ""
            raise BadInput(f"{path}: {kind}, not a turn log: expected {', '.join(LOG_SUFFIXES)}{hint}")


def require_turns(report: LoadReport) -> None:
    """No turn to work on (an empty file, or every line set aside) is bad input, with what was set aside and where."""
    if report.rows_loaded:
        return
    files = ", ".join(report.files)
    if not report.lines_read:
        raise BadInput(f"{files}: empty: no logged turn to work on")
    by_field = ", ".join(f"{field} {count:,}" for field, count in report.quarantined_by_field.items())
    raise BadInput(f"{files}: no valid turn: all {report.rows_quarantined:,} lines were set aside "
                   f"(problems per field: {by_field}; see {report.quarantine_file})")


def answer_count(table: datasets.Dataset | pa.Table, providers: Iterable[str] | None = None) -> int:
    """How many usable answers (some content, no error) the log holds, of ``providers`` when given."""
    import pyarrow.compute as pc

    responses = pc.list_flatten(arrow_table(table)["responses"])
    content = pc.utf8_trim_whitespace(pc.struct_field(responses, "content"))
    usable = pc.and_(pc.greater(pc.utf8_length(content), 0), pc.is_null(pc.struct_field(responses, "error")))
    if providers is not None:
        usable = pc.and_(usable, pc.is_in(pc.struct_field(responses, "provider"), pa.array(list(providers))))
    return int(pc.sum(pc.fill_null(usable, False)).as_py() or 0)


def require_answers(table: datasets.Dataset | pa.Table, source: str, stage: str,
                    providers: Iterable[str] | None = None) -> None:
    """A stage that cannot work without logged answers refuses a log that has none (queries only)."""
    providers = list(providers) if providers is not None else None
    if answer_count(table, providers):
        return
    whose = f" of {', '.join(providers)}" if providers else ""
    raise BadInput(f"{source or 'input'}: {stage} needs logged answers{whose}, and none of its "
                   f"{arrow_table(table).num_rows:,} turns has one (responses empty or all failed)")


def _quarantine(stream: io.TextIOBase, problem: Problem, raw: str) -> None:
    record = {"file": problem.file, "line": problem.line, "field": problem.field, "reason": problem.reason, "raw": raw}
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- writing


def iter_objects(table: datasets.Dataset | pa.Table) -> Iterator[dict[str, Any]]:
    """The rows of a turn table as the JSON objects of the log format, unknown fields restored."""
    for batch in arrow_table(table).to_batches(max_chunksize=_BATCH_ROWS):
        for row in batch.to_pylist():
            yield from_row(row)


def write(table: datasets.Dataset | pa.Table, path: str | os.PathLike) -> int:
    """Write a turn table as ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` (by suffix), atomically; returns rows."""
    arrow = arrow_table(table)
    return _write_batches(arrow.to_batches(max_chunksize=_BATCH_ROWS), arrow.schema, path)


def write_turns(turns: Iterable[LoggedTurn], path: str | os.PathLike) -> int:
    """Stream validated turns to a file without holding them all in memory; returns rows."""

    def batches() -> Iterator[pa.RecordBatch]:
        rows: list[dict[str, Any]] = []
        for turn in turns:
            rows.append(to_row(turn))
            if len(rows) >= _BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(rows, schema=TURN_SCHEMA)
                rows = []
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=TURN_SCHEMA)

    return _write_batches(batches(), TURN_SCHEMA, path)


def _write_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: str | os.PathLike) -> int:
    path = Path(path)
    if not path.name.endswith((".jsonl", ".jsonl.gz", ".parquet")):
        raise BadInput(f"{path}: expected a .jsonl, .jsonl.gz or .parquet file name")
    rows = 0
    with atomic_path(path) as tmp:
        if path.name.endswith(".parquet"):
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        else:
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(tmp, "wt", encoding="utf-8") as stream:
                for batch in batches:
                    for row in batch.to_pylist():
                        stream.write(json.dumps(from_row(row), ensure_ascii=False) + "\n")
                    rows += batch.num_rows
    return rows


def turns_table(turns: Iterable[LoggedTurn]) -> pa.Table:
    """An Arrow table of validated turns built in memory (small inputs: tests, examples)."""
    return pa.Table.from_pylist([to_row(turn) for turn in turns], schema=TURN_SCHEMA)


def arrow_table(table: datasets.Dataset | pa.Table) -> pa.Table:
    """The Arrow table behind a Dataset (or the table itself)."""
    # with_format("arrow")[:] honours a Dataset's selection/shuffle indices; zero-copy without them.
    return table.with_format("arrow")[:] if isinstance(table, datasets.Dataset) else table


# --------------------------------------------------------------------------- summary


def utc_times(table: datasets.Dataset | pa.Table) -> pd.Series:
    """The turns' timestamps as UTC pandas timestamps (offsets may differ from line to line)."""
    arrow = arrow_table(table)
    return pd.to_datetime(arrow["timestamp"].to_pandas(), utc=True, format="ISO8601")


def summarize(table: datasets.Dataset | pa.Table) -> dict[str, Any]:
    """Counts a person checks first on a log: volume, dates, intents, routing, failures, PII labels."""
    import pyarrow.compute as pc

    arrow = arrow_table(table)
    responses = pc.list_flatten(arrow["responses"])
    errors = pc.sum(pc.is_valid(pc.struct_field(responses, "error"))).as_py() or 0
    spans = pc.list_flatten(arrow["pii_spans"])
    moments = utc_times(arrow)

    def counts(values: pa.ChunkedArray | pa.Array) -> dict[str, int]:
        result = pc.value_counts(values).to_pylist()
        return dict(sorted(((item["values"] or "(none)"), item["counts"]) for item in result))

    with_three = pc.sum(pc.greater_equal(pc.list_value_length(arrow["responses"]), 3)).as_py() or 0
    return {
        "turns": arrow.num_rows,
        "conversations": pc.count_distinct(arrow["conversation_id"]).as_py(),
        "first_turn_utc": moments.min().isoformat() if arrow.num_rows else None,
        "last_turn_utc": moments.max().isoformat() if arrow.num_rows else None,
        "turns_per_intent": counts(pc.struct_field(arrow["labels"], "intent")),
        "turns_per_routed_provider": counts(arrow["routed_provider"]),
        "responses": len(responses),
        "responses_per_model": counts(pc.struct_field(responses, "model")),
        "provider_errors": errors,
        "turns_with_3_or_more_responses": with_three,
        "pii_spans_per_entity_type": counts(pc.struct_field(spans, "entity_type")),
        "sentiment_missing": arrow["customer_sentiment"].null_count,
    }
