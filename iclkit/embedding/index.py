"""The FAISS vector index: exact inner product for small pools, IVF or HNSW for large ones.

Vectors are L2-normalised, so inner product is cosine similarity. With ``kind="auto"`` pools of
up to :data:`EXACT_MAX_VECTORS` vectors get an exact ``IndexFlatIP``; larger pools get an
``IndexIVFFlat`` with ``nlist = 4·√n`` lists, of which ``nprobe`` (default
:data:`DEFAULT_NPROBE`) are searched per query. ``nprobe`` (IVF) and ``ef_search`` (HNSW)
trade recall for speed; docs/benchmarks.md gives the recall@8 and speed measured at 1M vectors.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from iclkit.embedding.base import Vectors
from iclkit.errors import ConfigError, DataError
from iclkit.validation import check_int

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger("iclkit.embedding")

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
#: ``kind="auto"`` uses the exact index up to this many vectors, IVF above.
EXACT_MAX_VECTORS = 100_000
#: IVF lists searched per query unless ``nprobe`` is given.
DEFAULT_NPROBE = 16
#: HNSW candidate list size per query unless ``ef_search`` is given.
DEFAULT_EF_SEARCH = 64
#: Pool vectors per BLAS block in exact batched search (FAISS's default, 1,024, makes
#: many small matrix products; 16,384 measured 2.2x faster for 1,000 queries over 300k).
BLAS_DATABASE_BLOCK = 16_384
_KINDS = ("auto", "flat", "ivf", "hnsw")
#: Builds of at least this many vectors show a progress bar (vectors are added in blocks).
PROGRESS_MIN_VECTORS = 100_000
_ADD_BLOCK = 50_000  # vectors per FAISS add call when the build shows progress
_TRAIN_PER_LIST = 40  # IVF training sample: this many vectors per list (FAISS wants >= 39)
_TRAIN_ITERATIONS = 10  # k-means iterations for the IVF lists


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "embedding selectors need the 'faiss-cpu' package. Fix: pip install 'iclkit[embed]'"
        ) from None
    return faiss


class VectorIndex:
    """A FAISS inner-product index over unit vectors, with fingerprinted save and load.

    ``kind`` is ``"flat"`` (exact), ``"ivf"``, ``"hnsw"`` or ``"auto"`` (see the module
    docstring). ``nlist``, ``nprobe``, ``hnsw_m`` and ``ef_search`` tune the approximate
    indexes; ``seed`` fixes the IVF training sample.

    Raises:
        ConfigError: for an unknown ``kind`` or a non-positive tuning value.
    """

    def __init__(
        self,
        kind: IndexKind = "auto",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_search: int | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in _KINDS:
            raise ConfigError(f"index kind must be one of {', '.join(_KINDS)}, got {kind!r}")
        self.kind = kind
        self.nlist = check_int("nlist", nlist, minimum=1, allow_none=True)
        self.nprobe = check_int("nprobe", nprobe, minimum=1, allow_none=True)
        self.hnsw_m = check_int("hnsw_m", hnsw_m, minimum=1, allow_none=True)
        self.ef_search = check_int("ef_search", ef_search, minimum=1, allow_none=True)
        self.seed = seed

    def resolved_kind(self, n_vectors: int) -> str:
        """The index kind used for a pool of ``n_vectors`` vectors."""
        if self.kind != "auto":
            return self.kind
        return "flat" if n_vectors <= EXACT_MAX_VECTORS else "ivf"

    def fingerprint(self, vectors: Vectors) -> str:
        """A hash of the vectors and the index settings: a saved index is valid only for it."""
        digest = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        kind = self.resolved_kind(len(vectors))
        settings = f"{kind}|{vectors.shape}|{self.nlist}|{self.hnsw_m}|{self.seed}"
        digest.update(settings.encode())
        return digest.hexdigest()

    def build(self, vectors: Vectors) -> Self:
        """Build the index over ``vectors`` (``n × d`` float32 unit rows). Returns ``self``.

        Builds of :data:`PROGRESS_MIN_VECTORS` vectors or more log their steps on the
        ``iclkit.embedding`` logger and show a progress bar while the vectors are added.

        Raises:
            ConfigError: if ``vectors`` is not a non-empty 2-D array.
        """
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ConfigError(f"need a non-empty (n, d) array of vectors, got {vectors.shape}")
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dimension = vectors.shape
        self.kind_ = self.resolved_kind(n)
        if self.kind_ == "flat":
            index = faiss.IndexFlatIP(dimension)
        elif self.kind_ == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = min(self.nlist or max(1, round(4 * math.sqrt(n))), n)
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT
            )
            index.cp.niter = _TRAIN_ITERATIONS
            sample = min(n, _TRAIN_PER_LIST * nlist)
            rows = np.random.default_rng(self.seed).choice(n, size=sample, replace=False)
            if n >= PROGRESS_MIN_VECTORS:
                logger.info("training the IVF index: %d lists on %d sample vectors", nlist, sample)
            index.train(vectors[np.sort(rows)])
        self._add(index, vectors)
        self.index_ = index
        self.fingerprint_ = self.fingerprint(vectors)
        return self

    def _add(self, index: Any, vectors: Vectors) -> None:
        """Add ``vectors`` to ``index``, in blocks under a progress bar for large builds."""
        if len(vectors) < PROGRESS_MIN_VECTORS:
            index.add(vectors)
            return
        from tqdm.auto import tqdm

        logger.info("building the %s index over %d vectors", self.kind_, len(vectors))
        with tqdm(total=len(vectors), desc=f"{self.kind_} index", unit="vec", leave=False) as bar:
            for start in range(0, len(vectors), _ADD_BLOCK):
                block = vectors[start : start + _ADD_BLOCK]
                index.add(block)
                bar.update(len(block))

    def _tune(self) -> None:
        if self.kind_ == "flat":
            _faiss().cvar.distance_compute_blas_database_bs = BLAS_DATABASE_BLOCK
        elif self.kind_ == "ivf":
            self.index_.nprobe = self.nprobe or DEFAULT_NPROBE
        elif self.kind_ == "hnsw":
            self.index_.hnsw.efSearch = self.ef_search or DEFAULT_EF_SEARCH

    def search(
        self, queries: Vectors, k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` nearest vectors of every query row in one FAISS call: ``(scores, ids)``.

        Both arrays are ``(len(queries), k)``, best first; ``ids`` is ``-1`` where fewer than
        ``k`` vectors were found. For the exact index this sets FAISS's process-wide BLAS block
        size to :data:`BLAS_DATABASE_BLOCK`.

        Raises:
            AttributeError: if the index has not been built or loaded.
        """
        self._tune()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.index_.search(queries, k)
        return scores, ids

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return int(self.index_.ntotal)

    def save(self, path: str | Path) -> None:
        """Write the index and its fingerprint to ``path`` atomically (temp file + rename)."""
        faiss = _faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        with partial.open("wb") as handle:
            np.savez(
                handle,
                index=faiss.serialize_index(self.index_),
                fingerprint=np.array(self.fingerprint_),
                kind=np.array(self.kind_),
            )
        os.replace(partial, path)

    def load(self, path: str | Path, vectors: Vectors) -> Self:
        """Load the index saved at ``path``, which must have been built from exactly ``vectors``.

        Raises:
            DataError: if the file cannot be read or was built for other vectors or settings.
        """
        path = Path(path)
        expected = self.fingerprint(vectors)
        try:
            with np.load(path, allow_pickle=False) as saved:
                found = str(saved["fingerprint"])
                if found != expected:
                    raise DataError(
                        f"the index was built for another pool or other settings (fingerprint "
                        f"{found[:12]}, expected {expected[:12]})",
                        path=path,
                        fix="rebuild it from the pool",
                    )
                self.index_ = _faiss().deserialize_index(saved["index"])
                self.kind_ = str(saved["kind"])
                self.fingerprint_ = found
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            if isinstance(error, DataError):
                raise
            raise DataError(
                f"the index cannot be read ({error})", path=path, fix="rebuild it from the pool"
            ) from None
        self.loaded_ = True
        return self

    def build_or_load(self, vectors: Vectors, path: str | Path | None) -> Self:
        """Load the index saved at ``path`` if it was built from exactly ``vectors``, else build.

        A saved index whose fingerprint differs (another pool, other settings) or that cannot
        be read is never used: it is logged, rebuilt and overwritten. With ``path=None`` this
        is :meth:`build`. Sets ``loaded_`` to whether the saved index was used.

        Raises:
            ConfigError: if ``vectors`` is not a non-empty 2-D array.
        """
        self.loaded_ = False
        if path is None:
            return self.build(vectors)
        path = Path(path)
        if path.exists():
            try:
                return self.load(path, vectors)
            except DataError as error:
                logger.warning("%s; rebuilding it", error)
        self.build(vectors)
        self.save(path)
        return self
