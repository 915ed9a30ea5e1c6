"""The base of the embedding selectors: embed the pool once, then search FAISS in batches.

:meth:`EmbeddingSelector.fit` embeds the pool through the on-disk cache (texts already
embedded by the same model are not embedded again) and builds, or loads, the FAISS index.
:meth:`~EmbeddingSelector.select_batch` embeds all queries in one call and searches the index
in one call; subclasses only decide how to pick ``k`` demonstrations among the candidates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import numpy.typing as npt

from iclkit.embedding.base import Vectors
from iclkit.embedding.cache import EmbeddingCache, embed_texts
from iclkit.embedding.index import IndexKind, VectorIndex
from iclkit.embedding.sentence_transformer import SentenceTransformerEmbedder
from iclkit.errors import ConfigError, DataError
from iclkit.example import Example
from iclkit.selectors.base import Selection, Selector, exclude_sets
from iclkit.validation import check_int

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from iclkit.pool import Pool

_EMBEDDINGS = "embeddings.npy"
_INDEX = "index.npz"
_EMBEDDER = "embedder.json"

#: One query's candidates: (pool indices, cosine similarities), most similar first.
Candidates = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]


class EmbeddingOptions(TypedDict, total=False):
    """The options every embedding selector takes (see :class:`EmbeddingSelector`)."""

    embedder: str | None
    index: IndexKind
    index_path: str | None
    nprobe: int | None
    ef_search: int | None
    cache: bool | str
    batch_size: int


def check_texts(pool: Pool) -> None:
    """Reject pools that similarity selection cannot work with.

    Raises:
        DataError: naming the first example whose input text is empty, or if every example of
            a pool of several has the same input text.
    """
    where = pool.source or "pool"
    for index, example in enumerate(pool):
        if not example.text.strip():
            name = f" (id {example.id!r})" if example.id is not None else ""
            raise DataError(
                f"{where}: example {index}{name} has an empty input text, which has no "
                "meaningful embedding",
                field=", ".join(pool.input_fields),
                fix="drop the example or give it a non-empty input",
            )
    if len(pool) > 1 and len(set(pool.texts)) == 1:
        raise DataError(
            f"{where}: all {len(pool)} examples have the same input text "
            f"{pool[0].text[:60]!r}, so similarity cannot tell them apart",
            field=", ".join(pool.input_fields),
            fix="deduplicate the pool, or use the 'random' or 'balanced' selector",
        )


def nearest(
    index: VectorIndex,
    vectors: Vectors,
    fetch: int,
    excludes: Sequence[frozenset[int]],
    ids: npt.NDArray[np.int64] | None = None,
) -> list[Candidates]:
    """The ``fetch`` nearest pool entries of every query row, outside its exclude set.

    One FAISS search for all rows. ``ids`` maps index positions to pool indices when the index
    holds a subset of the pool. Returns ``(pool_indices, similarities)`` per query, best first.
    """
    widest = max((len(exclude) for exclude in excludes), default=0)
    depth = min(fetch + widest, index.ntotal)
    if depth == 0 or len(vectors) == 0:
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        return [empty for _ in range(len(vectors))]
    scores, found = index.search(vectors, depth)
    result = []
    for row_scores, row_found, exclude in zip(scores, found, excludes, strict=True):
        valid = row_found >= 0
        row_ids = row_found[valid] if ids is None else ids[row_found[valid]]
        keep = np.array([int(i) not in exclude for i in row_ids], dtype=bool)
        result.append((row_ids[keep][:fetch], row_scores[valid][keep][:fetch]))
    return result


class EmbeddingSelector(Selector):
    """Base of the selectors that compare sentence embeddings by cosine similarity.

    ``embedder`` is ``None`` for the bundled all-MiniLM-L6-v2, or a local sentence-transformers
    model folder or cached model name (nothing is downloaded). ``index`` chooses the FAISS index
    (``"auto"``: exact up to 100,000 examples, IVF above; see :mod:`iclkit.embedding.index`),
    tuned by ``nprobe`` / ``ef_search``. With ``index_path`` the index is saved there and reused
    when the pool and settings are the same (a mismatched file is rebuilt). ``cache`` is
    ``True`` for the default embedding cache, a file path for another, or ``False`` for none.

    After :meth:`fit`: ``embeddings_`` (one unit row per example), ``index_`` and
    ``embedded_count_``, the number of pool texts the fit actually sent to the model (0 when
    the cache had them all).

    Raises:
        ConfigError: for an unknown index kind or a non-positive tuning value or batch size.
    """

    def __init__(
        self,
        embedder: str | None = None,
        *,
        index: IndexKind = "auto",
        index_path: str | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        cache: bool | str = True,
        batch_size: int = 64,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.index_path = index_path
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.cache = cache
        self.batch_size = batch_size
        # Validate now, as the other constructors do (these objects only store parameters).
        self._new_index()
        SentenceTransformerEmbedder(embedder, batch_size=batch_size)

    def _new_index(self, kind: IndexKind | None = None) -> VectorIndex:
        return VectorIndex(kind or self.index, nprobe=self.nprobe, ef_search=self.ef_search)

    def fit(self, pool: Pool) -> Self:
        """Embed the pool (through the cache) and build or load its FAISS index.

        Raises:
            DataError: if an input text is empty or all examples have the same text.
            ConfigError: if the embedder cannot be loaded (the message names it) or a
                dependency of the ``embed`` extra is missing.
        """
        self._attach(pool)
        run = embed_texts(self.embedder_, pool.texts, self.cache_)
        self.embeddings_ = run.vectors
        self.embedded_count_ = run.embedded
        self.index_ = self._new_index().build_or_load(self.embeddings_, self.index_path)
        self._prepare()
        return self

    def _attach(self, pool: Pool) -> None:
        """Check and keep the pool; make the embedder and the cache (loading nothing)."""
        check_texts(pool)
        Selector.fit(self, pool)
        self.embedder_ = SentenceTransformerEmbedder(self.embedder, batch_size=self.batch_size)
        self.cache_ = (
            None
            if self.cache is False
            else EmbeddingCache(None if self.cache is True else Path(self.cache))
        )

    def save(self, folder: Path) -> None:
        """Write the pool's embeddings, the index and the embedder's identity into ``folder``.

        Raises:
            NotFittedError: if the selector has not been fitted.
        """
        self.pool  # noqa: B018 - raises NotFittedError before anything else
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / _EMBEDDINGS, self.embeddings_, allow_pickle=False)
        self.index_.save(folder / _INDEX)
        identity = {"embedder": self.embedder_.identity, "dimension": self.embedder_.dimension}
        (folder / _EMBEDDER).write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")

    def restore(self, pool: Pool, folder: Path) -> Self:
        """Fit on ``pool`` from saved embeddings and index: nothing is embedded or built.

        Raises:
            ConfigError: if the files were written with another embedder than this
                selector's (its identity differs: another model, or other weights).
            DataError: if the files are missing, unreadable, or belong to another pool.
        """
        self._attach(pool)
        try:
            saved = json.loads((folder / _EMBEDDER).read_text(encoding="utf-8"))["embedder"]
            embeddings = np.load(folder / _EMBEDDINGS, allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"the saved embeddings cannot be read ({error})",
                path=folder,
                fix="save the classifier again",
            ) from None
        current = self.embedder_.identity
        if saved != current:
            raise ConfigError(
                f"{folder} was saved with the embedder {saved!r}, but this selector's embedder "
                f"is {current!r}; vectors of two embedders cannot be compared. Fix: load it "
                "where that embedder is installed, or fit the classifier again"
            )
        if embeddings.shape[0] != len(pool):
            raise DataError(
                f"{embeddings.shape[0]} saved embeddings for a pool of {len(pool)} examples",
                path=folder / _EMBEDDINGS,
                fix="save the classifier again",
            )
        self.embeddings_ = embeddings
        self.embedded_count_ = 0
        self.index_ = self._new_index().load(folder / _INDEX, embeddings)
        self._prepare()
        return self

    def _prepare(self) -> None:
        """Precompute what a subclass needs after the pool is embedded (default: nothing)."""

    def embed_queries(self, queries: Sequence[Example]) -> Vectors:
        """Embed the queries' texts in one call (through the cache).

        Raises:
            NotFittedError: if the selector has not been fitted.
            DataError: if a query's input text is empty.
        """
        self.pool  # noqa: B018 - raises NotFittedError before anything else
        for number, query in enumerate(queries):
            if not query.text.strip():
                raise DataError(
                    f"query {number} has an empty input text", fix="give a non-empty query"
                )
        return embed_texts(self.embedder_, [query.text for query in queries], self.cache_).vectors

    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Choose up to ``k`` pool indices for ``query``, none in ``exclude``.

        Raises:
            NotFittedError: if the selector has not been fitted.
            ConfigError: if ``k`` is negative.
            DataError: if the query's input text is empty.
        """
        return self.select_batch([query], k, exclude=[exclude])[0]

    def select_batch(
        self,
        queries: Sequence[Example],
        k: int,
        *,
        exclude: Sequence[frozenset[int]] | None = None,
    ) -> list[Selection]:
        """Choose demonstrations for many queries: one embedding call, one FAISS search.

        Raises:
            NotFittedError: if the selector has not been fitted.
            ConfigError: if ``k`` is negative.
            DataError: if a query's input text is empty.
            ValueError: if ``exclude`` and ``queries`` differ in length.
        """
        check_int("k", k)
        excludes = exclude_sets(queries, exclude)
        return self.select_vectors(self.embed_queries(queries), k, exclude=excludes)

    def select_vectors(
        self, vectors: Vectors, k: int, *, exclude: Sequence[frozenset[int]] | None = None
    ) -> list[Selection]:
        """Choose demonstrations for query embeddings given directly (one FAISS search).

        Raises:
            NotFittedError: if the selector has not been fitted.
            ConfigError: if ``k`` is negative.
            ValueError: if ``exclude`` and ``vectors`` differ in length.
        """
        check_int("k", k)
        self.pool  # noqa: B018 - raises NotFittedError before anything else
        excludes = exclude_sets(vectors, exclude)
        if k == 0:
            return [Selection((), ()) for _ in excludes]
        return self.select_among(vectors, k, excludes)

    def select_among(
        self, vectors: Vectors, k: int, excludes: Sequence[frozenset[int]]
    ) -> list[Selection]:
        """The selection step once inputs are checked (``k`` > 0, one exclude set per row).

        By default: one FAISS search for :meth:`fetch_size` candidates per query, then
        :meth:`choose` among them.
        """
        found = nearest(self.index_, vectors, self.fetch_size(k), excludes)
        return [self.choose(candidates, k) for candidates in found]

    def fetch_size(self, k: int) -> int:
        """How many nearest candidates :meth:`choose` needs for ``k`` demonstrations (``k``)."""
        return k

    def choose(self, candidates: Candidates, k: int) -> Selection:
        """Pick ``k`` of the ``(ids, similarities)`` candidates: by default the ``k`` nearest."""
        ids, similarities = candidates
        return to_selection(ids[:k], similarities[:k])


class RerankingSelector(EmbeddingSelector):
    """Base of the selectors that re-rank the ``fetch_k`` nearest candidates (``mmr``, ``dpp``).

    Raises:
        ConfigError: if ``fetch_k`` is not a positive integer, or as
            :class:`EmbeddingSelector`.
    """

    def __init__(self, fetch_k: int = 20, **embedding: Unpack[EmbeddingOptions]) -> None:
        super().__init__(**embedding)
        self.fetch_k = check_int("fetch_k", fetch_k, minimum=1)

    def fetch_size(self, k: int) -> int:
        """``max(fetch_k, k)`` nearest candidates."""
        return max(self.fetch_k, k)


def to_selection(ids: npt.ArrayLike, scores: npt.ArrayLike) -> Selection:
    """A :class:`Selection` from parallel arrays of pool indices and scores."""
    return Selection(
        indices=tuple(int(i) for i in np.asarray(ids)),
        scores=tuple(float(s) for s in np.asarray(scores)),
    )
