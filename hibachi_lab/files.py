"""Atomic file writes (a reader never sees a half-written output), numpy values in JSON, and paths as they may
be written where others read them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes owner-only files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; swap it in for ``path`` only if the block succeeds, so a failure
    leaves neither a half-written folder nor the loss of the previous one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy values: numbers as numbers, NaN and infinities as null (JSON has
    neither), arrays as lists."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def shareable_path(path: str | os.PathLike) -> str:
    """A path as anything that can leave this machine may name it (a dataset card, a Kaggle bundle, an MLflow
    run, a report): relative to the working folder when inside it, else the file's name alone. Never the
    absolute path, which names the user's home and folders."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def shareable_paths(text: str) -> str:
    """A description made of paths joined by ", " (what the commands write for several inputs), each made
    shareable; other text is kept."""
    return ", ".join(shareable_path(part) if os.path.isabs(part) else part for part in text.split(", "))


def cache_dir() -> Path:
    """hibachi-lab's cache folder: ``HIBACHI_LAB_CACHE``, else ``~/.cache/hibachi-lab``."""
    return Path(os.environ.get("HIBACHI_LAB_CACHE", Path.home() / ".cache" / "hibachi-lab"))
