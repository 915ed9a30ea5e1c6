"""The sentence-transformers embedder; by default the bundled offline all-MiniLM-L6-v2."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iclkit.bundled_models import BUNDLED_EMBEDDER, bundled_embedder_path
from iclkit.embedding.base import Embedder, Vectors
from iclkit.errors import ConfigError
from iclkit.validation import check_int

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Pools longer than this show a progress bar while they are embedded.
PROGRESS_MIN_TEXTS = 1000


@lru_cache(maxsize=16)
def _folder_fingerprint(location: str) -> str:
    """A short hash of a model folder: every file's path and size, plus its JSON configs."""
    folder = Path(location)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        digest.update(f"{relative}\x00{path.stat().st_size}\x00".encode())
        if path.suffix == ".json":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=4)
def _load(location: str, device: str) -> SentenceTransformer:
    """Load a sentence-transformers model from local files only; cached per process.

    ``local_files_only`` keeps the load off any hub (a name not on disk fails here, it does not
    download) without changing the process's environment.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(
            "embedding selectors need the 'sentence-transformers' package. "
            "Fix: pip install 'iclkit[embed]'"
        ) from None
    try:
        return SentenceTransformer(location, device=device, local_files_only=True)
    except Exception as error:
        raise ConfigError(
            f"embedder {location!r} could not be loaded from local files "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "iclkit never downloads models. Fix: pass the folder of a saved sentence-transformers "
            f"model, a model already in the local Hugging Face cache, or None for the bundled "
            f"{BUNDLED_EMBEDDER}"
        ) from error


class SentenceTransformerEmbedder(Embedder):
    """Embeds texts with a local sentence-transformers model, in batches.

    ``model`` is ``None`` (or ``"all-MiniLM-L6-v2"``) for the bundled offline model, the folder
    of a saved sentence-transformers model, or the name of a model already in the local Hugging
    Face cache. Nothing is downloaded. Pools of more than :data:`PROGRESS_MIN_TEXTS` texts show a
    progress bar. The model is loaded on first use and shared within the process.

    Raises:
        ConfigError: if ``batch_size`` is not a positive integer.
    """

    def __init__(
        self, model: str | Path | None = None, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        self.model = model
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.device = device

    def _location(self) -> str:
        if self.model is None or str(self.model) == BUNDLED_EMBEDDER:
            return str(bundled_embedder_path())
        path = Path(self.model).expanduser()
        return str(path.resolve()) if path.is_dir() else str(self.model)

    @property
    def model_(self) -> SentenceTransformer:
        """The loaded model.

        Raises:
            ConfigError: if the model cannot be loaded from local files (the message names it).
        """
        return _load(self._location(), self.device)

    @property
    def identity(self) -> str:
        """``name@hash`` for a model folder (hash over its files' sizes and configs), else the name.

        Raises:
            ConfigError: if the model cannot be loaded from local files.
        """
        location = self._location()
        if not Path(location).is_dir():
            self.model_  # noqa: B018 - a name that is not on disk must fail with ConfigError
            return location
        name = BUNDLED_EMBEDDER if self.model is None else Path(location).name
        return f"{name}@{_folder_fingerprint(location)}"

    @property
    def dimension(self) -> int:
        """The model's output dimension.

        Raises:
            ConfigError: if the model cannot be loaded from local files.
        """
        model = self.model_
        # sentence-transformers 6 renamed the method; older releases have only the old name.
        method = getattr(model, "get_embedding_dimension", None)
        dimension = method() if method else model.get_sentence_embedding_dimension()
        assert dimension is not None
        return int(dimension)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in batches of ``batch_size``; returns unit-length float32 rows.

        Raises:
            ConfigError: if the model cannot be loaded from local files.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model_.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=len(texts) > PROGRESS_MIN_TEXTS,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
