"""Small JSONL inputs (probe pairs, labelled texts, student answers), validated line by line.

Any problem is one :class:`BadInput` line naming the file, the line, the field and what was expected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from hibachi_lab.config import describe_validation_error
from hibachi_lab.errors import BadInput

Record = TypeVar("Record", bound=BaseModel)


def read_jsonl(path: str | os.PathLike, model: type[Record]) -> list[Record]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(model.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValidationError as exc:
            raise BadInput(f"{path}:{number}: {describe_validation_error(exc)}") from None
    if not records:
        raise BadInput(f"{path}: no records (expected one JSON object per line)")
    return records
