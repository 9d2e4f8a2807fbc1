#!/usr/bin/env python3
"""Mutation checks of the decision paths: does a test fail when the code is wrong?

Usage (from the repository root, in the project's environment; slow, so not in CI):

    nice python tools/mutation.py                     # every decision path, writes benchmarks/results/mutation.md
    nice python tools/mutation.py --only "gate decision" --only promote
    nice python tools/mutation.py --list              # the mutants, without running anything

Only the functions listed in ``TARGETS`` are mutated, one small change at a time (a comparison or boolean
operator swapped, a ``not`` or a minus sign dropped, an arithmetic operator swapped, a number changed, True and
False swapped, a one-word string altered, a returned value made ``None``, a ``raise`` or a call statement
deleted, ``break`` and ``continue`` swapped). For each mutant the fast tests chosen for that path run against a copy of the repository
holding the mutated file; a mutant is *killed* when a test fails, *survived* when they all pass and *timeout*
when they run past the limit. Error messages, log calls, docstrings, strings with spaces (messages) and dict
keys (names of reported metrics) are not mutated.

Results are kept per decision path in ``benchmarks/results/mutation.json``; ``--only`` reruns some paths and
the table in ``benchmarks/results/mutation.md`` is written from the latest run of every path.

Speed: the third-party libraries the tests import (torch through Presidio, pandas, MLflow...) are imported once
in this process; each mutant then runs in a forked child that imports hibachi_lab afresh from the copy, so one
mutant costs its tests' own time, not the 10-20 s of imports. One child runs at a time (one worker).

This is a small purpose-built mutator rather than mutmut/cosmic-ray: those mutate whole files, and these
paths are a few functions inside large modules whose other code would add hundreds of irrelevant mutants.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation.md"
STATE = ROOT / "benchmarks" / "results" / "mutation.json"


@dataclass
class Target:
    name: str
    path: str
    functions: list[str]
    tests: list[str]


TARGETS = [
    Target("leak gate", "hibachi_lab/pii/leak.py",
           ["LeakReport.passed", "LeakChecker.findings", "LeakChecker._ordinary", "LeakChecker._name_like",
            "LeakChecker.check", "leak_gate"],
           ["tests/test_leak_gate_decisions.py", "tests/test_pii.py", "-k", "leak"]),
    Target("gate decision", "hibachi_lab/evaluate.py", ["wrong_rate_upper_bound", "decide"],
           ["tests/test_gate_decision.py"]),
    Target("promote", "hibachi_lab/registry.py", ["promote", "_version_of_run"],
           ["tests/test_promote_refusal.py"]),
    Target("consensus choice", "hibachi_lab/ensemble.py", ["consensus", "_choose"],
           ["tests/test_ensemble.py"]),
    Target("router classification", "hibachi_lab/router.py",
           ["Policy.matching", "Policy.count_hits", "Policy._boundary_pattern", "Policy.classify",
            "Policy._classify_rows"],
           ["tests/test_router.py"]),
    Target("adapter save/resume", "hibachi_lab/train.py",
           ["claim_output", "checkpoint_step", "_step", "adopt_checkpoint", "last_checkpoint"],
           ["tests/test_checkpoints.py"]),
]

PYTEST_ARGS = ["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", "-p", "no:randomly", "--no-header",
               "-o", "addopts="]
TIMEOUT_FACTOR, TIMEOUT_MIN_S = 3.0, 30.0


# --------------------------------------------------------------------------- making mutants


@dataclass
class Mutant:
    target: str
    path: str
    function: str
    line: int
    description: str
    start: int  # byte offsets in the file of the replaced text
    end: int
    replacement: str

    @property
    def key(self) -> str:
        """How the report and ``EQUIVALENT`` name it."""
        return f"{self.path}:{self.line} {self.description}"

    @property
    def ident(self) -> str:
        """Unique within a file while the file is unchanged: which text is replaced by what."""
        return f"{self.start}:{self.end}:{self.replacement}"


OPERATORS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult, ast.Pow: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.And: ast.Or,
    ast.Or: ast.And,
}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
           ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.BitOr: "|", ast.BitAnd: "&",
           ast.And: "and", ast.Or: "or"}
QUIET_CALLS = {"log", "logging", "console", "warnings"}  # calls on these are reporting, not deciding


def _is_message_call(node: ast.AST) -> bool:
    """An exception being built (BadInput(...)) or a log/console call: its text is not a decision."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name) and (func.id.endswith(("Error", "Exception")) or func.id in ("BadInput",)):
        return True
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in QUIET_CALLS


class _Collector:
    def __init__(self, target: Target, source: bytes):
        self.target, self.source = target, source
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.mutants: list[Mutant] = []
        self.function = ""
        self.keys: set[ast.AST] = set()  # dict keys: names of reported values, not decisions

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def add(self, node: ast.AST, description: str, replacement: str, parenthesize: bool = True) -> None:
        start = self.offset(node.lineno, node.col_offset)
        end = self.offset(node.end_lineno, node.end_col_offset)
        text = f"({replacement})" if parenthesize else replacement
        self.mutants.append(Mutant(self.target.name, self.target.path, self.function, node.lineno, description,
                                   start, end, text))

    def segment(self, node: ast.AST) -> str:
        start = self.offset(node.lineno, node.col_offset)
        end = self.offset(node.end_lineno, node.end_col_offset)
        return " ".join(self.source[start:end].decode().split())

    def visit_body(self, body: list[ast.stmt]) -> None:
        for index, statement in enumerate(body):
            if (index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)):
                continue  # docstring
            self.visit(statement)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.JoinedStr) or _is_message_call(node):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.visit_body(node.body)
            return
        if isinstance(node, ast.Raise):
            self.add(node, f"`{self.segment(node)[:60]}` deleted", "pass", parenthesize=False)
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_message_call(node.value):
            self.add(node, f"call `{self.segment(node)[:60]}` deleted", "pass", parenthesize=False)
        if isinstance(node, (ast.Break, ast.Continue)):
            other = "continue" if isinstance(node, ast.Break) else "break"
            self.add(node, f"`{self.segment(node)}` -> `{other}`", other, parenthesize=False)
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node.value, f"`return {self.segment(node.value)[:50]}` -> `return None`", "None")
        if isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                if type(op) in OPERATORS:
                    mutated = copy.deepcopy(node)
                    mutated.ops[index] = OPERATORS[type(op)]()
                    self.add(node, f"`{SYMBOLS[type(op)]}` -> `{SYMBOLS[OPERATORS[type(op)]]}` in "
                                   f"`{self.segment(node)[:50]}`", ast.unparse(mutated))
        if isinstance(node, ast.BoolOp):
            mutated = copy.deepcopy(node)
            mutated.op = OPERATORS[type(node.op)]()
            self.add(node, f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[type(mutated.op)]}` in "
                           f"`{self.segment(node)[:50]}`", ast.unparse(mutated))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            self.add(node, f"`{self.segment(node)[:50]}` -> without `{'not' if isinstance(node.op, ast.Not) else '-'}`",
                     ast.unparse(node.operand))
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in OPERATORS:
            mutated = copy.deepcopy(node)
            mutated.op = OPERATORS[type(node.op)]()
            statement = isinstance(node, ast.AugAssign)
            self.add(node, f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[type(mutated.op)]}` in "
                           f"`{self.segment(node)[:50]}`", ast.unparse(mutated), parenthesize=not statement)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                self.add(node, f"`{value}` -> `{not value}`", repr(not value))
            elif isinstance(value, (int, float)):
                new = 1 if value == 0 else value + 1
                self.add(node, f"`{value!r}` -> `{new!r}`", repr(new))
            elif isinstance(value, str) and not any(c.isspace() for c in value) and node not in self.keys:
                self.add(node, f"`{value!r}` -> `{'XX' + value + 'XX'!r}`", repr("XX" + value + "XX"))
        if isinstance(node, ast.Dict):
            self.keys.update(key for key in node.keys if key is not None)
        for name, child in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue
            if isinstance(child, list):
                if name in ("body", "orelse", "finalbody") and child and isinstance(child[0], ast.stmt):
                    for statement in child:
                        self.visit(statement)
                else:
                    for item in child:
                        if isinstance(item, ast.AST):
                            self.visit(item)
            elif isinstance(child, ast.AST):
                self.visit(child)


def _functions(tree: ast.Module) -> dict[str, ast.AST]:
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = item
    return found


def mutants_of(target: Target, root: Path = ROOT) -> list[Mutant]:
    source = (root / target.path).read_bytes()
    functions = _functions(ast.parse(source))
    collector = _Collector(target, source)
    for name in target.functions:
        if name not in functions:
            raise SystemExit(f"{target.path}: no function {name} (update TARGETS)")
        collector.function = name
        collector.visit(functions[name])
    valid = []
    for mutant in collector.mutants:
        mutated = source[:mutant.start] + mutant.replacement.encode() + source[mutant.end:]
        try:
            compile(mutated, target.path, "exec")
        except SyntaxError:
            continue
        valid.append(mutant)
    return valid


# --------------------------------------------------------------------------- running them


def _copy_repository(to: Path) -> None:
    ignore = shutil.ignore_patterns(".git", "__pycache__", ".venv", "*.pyc", ".pytest_cache", "mlruns", "mlflow.db",
                                    "outputs", "dist", "build", "*.egg-info")
    for item in ROOT.iterdir():
        if item.name in (".git", ".venv", "outputs", "dist", "build", "mlruns", "notebooks"):
            continue
        if item.is_dir():
            shutil.copytree(item, to / item.name, ignore=ignore)
        elif item.is_file():
            shutil.copy2(item, to / item.name)


def _purge_project_modules() -> None:
    for name in list(sys.modules):
        if name == "hibachi_lab" or name.startswith(("hibachi_lab.", "tests.", "conftest")) or name == "tests":
            del sys.modules[name]


def _child(copy_root: Path, tests: list[str], log_path: Path, check_origin: bool) -> int:
    """In a forked child: import the project from the copy and run the tests; returns pytest's exit code."""
    import pytest

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    _purge_project_modules()
    if check_origin:
        import hibachi_lab

        if not Path(hibachi_lab.__file__).resolve().is_relative_to(copy_root.resolve()):
            print(f"hibachi_lab imported from {hibachi_lab.__file__}, not from the copy {copy_root}")
            return 99
    return int(pytest.main([*tests, *PYTEST_ARGS]))


def run_tests(copy_root: Path, tests: list[str], timeout: float, log_path: Path,
              check_origin: bool = False) -> tuple[str, float]:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 98
        try:
            code = _child(copy_root, tests, log_path, check_origin)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() - started > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - started
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    if code == 0:
        return "survived", elapsed
    if code in (1, 3) or code < 0:  # tests failed, internal error (a mutant can break collection), or a crash
        return "killed", elapsed
    return f"error {code}", elapsed


def warm_imports(copy_root: Path, tests: list[str]) -> None:
    """Import what the tests import (collect only), then forget the project's own modules."""
    import pytest

    with open(os.devnull, "w") as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            pytest.main([*tests, *PYTEST_ARGS, "--collect-only"])
            from hibachi_lab import pii  # the Presidio/spaCy stack, imported lazily by the code

            pii.LeakChecker.__init__  # noqa: B018
            import presidio_analyzer  # noqa: F401
            import spacy  # noqa: F401
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    _purge_project_modules()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only this decision path (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", action="store_true", help="only rewrite the table from mutation.json")
    parser.add_argument("--survivors", action="store_true",
                        help="rerun only the mutants that survived the last run (after adding tests; a killed mutant "
                             "stays killed as long as no test was weakened and the file is unchanged)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many mutants per path (a quick look)")
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    if args.only and len(targets) != len(args.only):
        raise SystemExit(f"--only: known paths are {', '.join(t.name for t in TARGETS)}")
    if args.report:
        write_report(args.out)
        return 0
    planned = {t.name: mutants_of(t) for t in targets}
    if args.list:
        for target in targets:
            for mutant in planned[target.name]:
                print(f"{target.name}\t{mutant.function}\t{mutant.key}")
        print(f"{sum(map(len, planned.values()))} mutants")
        return 0

    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    began = time.monotonic()
    results: dict[str, list[tuple[Mutant, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="hibachi-mutation-") as tmp:
        copy_root = Path(tmp) / "repo"
        copy_root.mkdir()
        _copy_repository(copy_root)
        os.chdir(copy_root)
        sys.path.insert(0, str(copy_root))
        log_path = Path(tmp) / "pytest.log"
        previous = json.loads(STATE.read_text()) if STATE.exists() else {}
        for target in targets:
            mutants = planned[target.name][: args.limit or None]
            kept: list[dict] = []
            if args.survivors and target.name in previous:
                last = {row["ident"]: row for row in previous[target.name]["mutants"]}
                if set(last) != {m.ident for m in mutants}:
                    raise SystemExit(f"{target.name}: {target.path} changed since the last run; run it in full")
                kept = [row for row in previous[target.name]["mutants"] if row["status"] in ("killed", "timeout")]
                mutants = [m for m in mutants if last[m.ident]["status"] not in ("killed", "timeout")]
            started = time.monotonic()
            print(f"== {target.name}: {len(mutants)} mutants of {', '.join(target.functions)} in {target.path}",
                  flush=True)
            warm_imports(copy_root, target.tests)
            status, baseline = run_tests(copy_root, target.tests, 600, log_path, check_origin=True)
            if status != "survived":
                print(log_path.read_text()[-3000:])
                raise SystemExit(f"{target.name}: the tests do not pass on the unmutated code ({status})")
            timeout = max(TIMEOUT_MIN_S, TIMEOUT_FACTOR * baseline)
            print(f"   baseline {baseline:.1f} s, timeout {timeout:.0f} s", flush=True)
            file = copy_root / target.path
            original = file.read_bytes()
            results[target.name] = []
            try:
                for number, mutant in enumerate(mutants, 1):
                    file.write_bytes(original[:mutant.start] + mutant.replacement.encode() + original[mutant.end:])
                    status, elapsed = run_tests(copy_root, target.tests, timeout, log_path)
                    results[target.name].append((mutant, status))
                    print(f"   [{number}/{len(mutants)}] {status:8} {elapsed:5.1f}s {mutant.key}", flush=True)
            finally:
                file.write_bytes(original)
            state = json.loads(STATE.read_text()) if STATE.exists() else {}
            minutes = round((time.monotonic() - started) / 60, 1)
            if kept:
                minutes = round(minutes + previous[target.name]["minutes"], 1)
            rows = kept + [{"ident": m.ident, "key": m.key, "file": f"{m.path}:{m.line}", "function": m.function,
                            "mutation": m.description, "status": status} for m, status in results[target.name]]
            order = {m.ident: i for i, m in enumerate(planned[target.name])}
            state[target.name] = {
                "date": time.strftime("%Y-%m-%d"), "minutes": minutes, "baseline_s": round(baseline, 1),
                "functions": target.functions, "tests": target.tests,
                "mutants": sorted(rows, key=lambda row: order[row["ident"]])}
            STATE.parent.mkdir(parents=True, exist_ok=True)
            STATE.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        os.chdir(ROOT)
    print(f"ran {len(results)} path(s) in {(time.monotonic() - began) / 60:.0f} min")
    write_report(args.out)
    print(f"wrote {args.out}")
    return 0


def write_report(out: Path) -> None:
    """The table and the survivors, from the latest run of each path (``mutation.json``)."""
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    lines = ["# Mutation checks of the decision paths", "",
             ("Written by `nice python tools/mutation.py` (see its docstring for the mutations made). Each mutant is one "
              "small change to one of the functions named; *killed*: a test failed. Score = (killed + timeout) / "
              "mutants. *minutes*: the path's full run plus any `--survivors` reruns, on the 2-core development machine, "
              "one worker, shared with other jobs (a full run of every path takes about 45 minutes)."), "",
             "| decision path | functions | tests run | mutants | killed | survived | timeout | score | run on | minutes |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    total = {"mutants": 0, "killed": 0, "survived": 0, "timeout": 0}
    survivors = []
    for target in TARGETS:
        if target.name not in state:
            continue
        run = state[target.name]
        rows = run["mutants"]
        counts = {"mutants": len(rows), "killed": sum(r["status"] == "killed" for r in rows),
                  "timeout": sum(r["status"] == "timeout" for r in rows)}
        counts["survived"] = counts["mutants"] - counts["killed"] - counts["timeout"]
        score = f"{(counts['killed'] + counts['timeout']) / counts['mutants']:.0%}" if rows else "-"
        lines.append(f"| {target.name} | {', '.join(f'`{f}`' for f in run['functions'])} | "
                     f"`{' '.join(run['tests'])}` | {counts['mutants']} | {counts['killed']} | "
                     f"{counts['survived']} | {counts['timeout']} | {score} | {run['date']} | {run['minutes']} |")
        for key in total:
            total[key] += counts[key]
        survivors += [(target, row) for row in rows if row["status"] not in ("killed", "timeout")]
    score = f"{(total['killed'] + total['timeout']) / total['mutants']:.1%}" if total["mutants"] else "-"
    lines.append(f"| **all** | | | {total['mutants']} | {total['killed']} | {total['survived']} | {total['timeout']} | "
                 f"**{score}** | | |")
    lines += ["", "## Survivors", "", "Each with the reason it is left (kept in `EQUIVALENT` in tools/mutation.py).", ""]
    if not survivors:
        lines.append("None.")
    for target, row in survivors:
        reason = EQUIVALENT.get(row["key"], "NOT EXPLAINED")
        extra = "" if row["status"] == "survived" else f" ({row['status']})"
        lines.append(f"- {target.name}, `{row['file']}` `{row['function']}`: {row['mutation']}{extra}. {reason}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


# Surviving mutants that no test should kill, keyed "function: mutation", with the reason.
BIG_PASS = ("Equivalent below 2 GiB: this only picks 64-bit string offsets for a pass holding 2 GiB of query text or "
            "more; on smaller passes both string types scan to the same decisions, and a test would need 2 GiB of "
            "memory.")
EQUIVALENT: dict[str, str] = {
    "hibachi_lab/ensemble.py:95 `True` -> `False`":
        "Equivalent: `reset_index(drop=False)` adds the old index as an unused column; the new index (the rows "
        "of the embedding matrix) is the same.",
    "hibachi_lab/ensemble.py:98 `True` -> `False`":
        "Equivalent: `groupby(sort=False)` changes the order the winners are computed in, but they are merged back "
        "by turn onto the sorted turns, so the replay is the same.",
    # the leak gate
    "hibachi_lab/pii/leak.py:162 `16` -> `17`":
        "Harmless: the look-back for a word that makes a number no code (\"unit\", a state, a month) is a "
        "16-character heuristic; 17 differs only for a blocker starting exactly 17 characters before the number.",
    "hibachi_lab/pii/leak.py:181 `True` -> `False`":
        "Equivalent for the names probed: `allow_ordinary` admits names that are also in NOT_NAMES; of 43 common "
        "names tried only \"Will\", \"Price\" and \"Love\" were, all too common (Zipf >= 4.5) and outside the "
        "top-300 lists, so the next condition drops them either way.",
    "hibachi_lab/pii/leak.py:182 `<` -> `<=` in `_zipf(last) < 4.5`":
        "Boundary of a frequency heuristic: differs only for a greeted name whose Zipf frequency is exactly 4.50 "
        "and that is outside the top-300 lists.",
    "hibachi_lab/pii/leak.py:182 `4.5` -> `5.5`":
        "Tuning, not a requirement: it would also flag greeted names as common as \"Frank\", \"Lee\" or "
        "\"Mark\" (Zipf 4.5-5.5), which the gate lets through today; a test would pin one side of a "
        "precision/recall trade-off that `pii-eval` measures.",
    "hibachi_lab/pii/leak.py:189 `>=` -> `>` in `_zipf(word) >= 3.5`":
        "Boundary of a frequency heuristic: differs only for a PERSON span (spaCy) whose every word has Zipf "
        "frequency exactly 3.50.",
    "hibachi_lab/pii/leak.py:189 `3.5` -> `4.5`":
        "Tuning, not a requirement: spaCy PERSON spans of words with Zipf 3.5-4.5 (\"Dawn\") would count; "
        "which way is right is a precision/recall choice measured by `pii-eval`, not a unit-test fact.",
    "hibachi_lab/pii/leak.py:195 `return False` -> `return None`": "Equivalent: `_name_like` is only used in an "
        "`if`, where None and False are the same.",
    "hibachi_lab/pii/leak.py:198 `return False` -> `return None`": "Equivalent: as above (None is falsy).",
    "hibachi_lab/pii/leak.py:202 `return False` -> `return None`": "Equivalent: as above (None is falsy).",
    "hibachi_lab/pii/leak.py:205 `return False` -> `return None`": "Equivalent: as above (None is falsy).",
    "hibachi_lab/pii/leak.py:197 `'_'` -> `'XX_XX'`":
        "Left untested: whether a capitalised word glued to an underscore (\"party_Priya\", identifier text) "
        "starts a sentence; no logged field holds such text, and either answer is defensible.",
    "hibachi_lab/pii/leak.py:211 `<` -> `<=` in `_zipf(word) < 3.0`":
        "Boundary of a frequency heuristic: differs only for a name outside the top-300 lists with Zipf exactly "
        "3.00 (\"Aldridge\"), where either answer is defensible.",
    # the gate decision
    "hibachi_lab/evaluate.py:205 `1.0` -> `2.0`":
        "Equivalent: the Wilson bound never exceeds 1 (all answers wrong gives (1 + z²/n) / (1 + z²/n)); the "
        "`min` only guards against rounding.",
    "hibachi_lab/evaluate.py:308 `>` -> `>=` in `ceiling > 0`":
        "Equivalent: a ceiling of exactly 0.0 is falsy and already fails `ceiling and ...`, so `>=` and `>` "
        "differ nowhere.",
    # adapter save/resume
    "hibachi_lab/train.py:492 `2` -> `3`": "Equivalent: the run record's JSON indentation; it is read back with "
        "`json.loads` and compared as data.",
    "hibachi_lab/train.py:507 `-1` -> without `-`": "Equivalent for the trainer's folder names: \"checkpoint-N\" "
        "has one dash, so the part after it is both [1] and [-1].",
    "hibachi_lab/train.py:539 `'.adopt-'` -> `'XX.adopt-XX'`": "Equivalent: the name of the staging folder, which "
        "is removed once the copy is moved into place.",
    "hibachi_lab/train.py:542 `True` -> `False`": "Equivalent: the staging folder exists and is empty after the "
        "move, so removing it raises nothing with or without `ignore_errors`.",
    # the router
    "hibachi_lab/router.py:184 `>=` -> `>` in `sum(chunk.buffers()[2].size for chunk in query.chu`": BIG_PASS,
    "hibachi_lab/router.py:184 `**` -> `*` in `2**31`": BIG_PASS,
    "hibachi_lab/router.py:184 `2` -> `3`": BIG_PASS,
    "hibachi_lab/router.py:184 `31` -> `32`": BIG_PASS,
}


if __name__ == "__main__":
    sys.exit(main())
