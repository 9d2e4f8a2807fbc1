"""YAML configs validated by pydantic models, with errors that name the file and the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hibachi_lab.errors import BadInput

ConfigModel = TypeVar("ConfigModel", bound=BaseModel)


class StrictConfig(BaseModel):
    """Base of every YAML config model: a misspelt key is an error, not a silently ignored line."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Self:
        return load_yaml_config(path, cls)


def describe_validation_error(error: ValidationError) -> str:
    """``key.path: what was expected`` for the first problem, plus how many more there are."""
    problems = error.errors()
    first = problems[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] not in ("missing", "extra_forbidden") and "input" in first:
        message += f", got {_short_repr(first['input'])}"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{key}: {message}{more}"


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_yaml_config(path: str | os.PathLike, model: type[ConfigModel]) -> ConfigModel:
    """Read ``path`` and validate it as ``model``; any problem is one :class:`BadInput` line."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: expected a mapping of keys to values at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(f"{path}: {describe_validation_error(exc)}") from None
