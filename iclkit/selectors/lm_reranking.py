"""The base of the selectors that re-rank nearest neighbours by a language model's own signal.

``cone`` and ``mdl`` fetch the ``fetch_k`` nearest pool examples by embedding (as ``knn``), then
score candidate prompts with a real model and keep the best. The model is the pipeline's own
backend (handed over by the :class:`~iclkit.builder.PromptBuilder`, see
:meth:`~iclkit.selectors.base.Selector.prepare`), so that what the selector scored is
remembered when the pipeline scores it again; ``backend`` names another one (or the one to use
outside a pipeline; default the bundled ``local`` model). Candidate prompts are rendered with
the builder's own formatter and instruction, so the model scores exactly what the pipeline
would show it. All candidates of a batch of queries go to the backend together: the ``local``
backend runs prompts that share a prefix (the same candidate demonstration for several
queries) on one key/value cache.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.prompt import Demonstration
from iclkit.registry import backends
from iclkit.secret_options import is_secret
from iclkit.selectors.base import Selection, exclude_sets
from iclkit.selectors.embedding import Candidates, RerankingSelector, nearest
from iclkit.spec import component
from iclkit.validation import check_int

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from iclkit.backends.base import Backend
    from iclkit.embedding.base import Vectors
    from iclkit.formatters.base import Formatter
    from iclkit.prompt import Prompt
    from iclkit.selectors.embedding import EmbeddingOptions


def _checked_backend(value: Any) -> dict[str, Any]:
    """A backend spec without secrets (they would be written wherever the spec is).

    Raises:
        ConfigError: for an unknown backend or a secret option.
    """
    try:
        spec = component(value, backends)
    except ValueError as error:
        raise ConfigError(f"backend: {error}") from None
    secret = sorted(key for key in spec if is_secret(key))
    if secret:
        raise ConfigError(
            f"a selector's backend takes no secret options ({', '.join(secret)}): they would be "
            "saved with the pipeline. Fix: set them in the environment (OPENAI_API_KEY)"
        )
    return spec


class LMRerankingSelector(RerankingSelector):
    """Base of ``cone`` and ``mdl``: nearest candidates, re-ranked by model scores.

    Subclasses implement :meth:`rerank`. ``backend`` is ``None`` (the pipeline's own backend;
    the bundled ``local`` model outside a pipeline), a backend name or
    ``{"name": ..., **options}`` (no secret options: give keys through the environment).
    Takes the options of :class:`~iclkit.selectors.embedding.EmbeddingSelector` too.

    Raises:
        ConfigError: for a bad ``fetch_k``, an unknown backend, a secret backend option, or
            as :class:`~iclkit.selectors.embedding.EmbeddingSelector`.
    """

    def __init__(
        self,
        fetch_k: int = 8,
        backend: str | Mapping[str, Any] | None = None,
        **embedding: Unpack[EmbeddingOptions],
    ) -> None:
        super().__init__(fetch_k, **embedding)
        self.backend = None if backend is None else _checked_backend(backend)

    def prepare(
        self, formatter: Formatter, instruction: str | None, backend: Backend | None
    ) -> None:
        """Keep the formatter and instruction of candidate prompts, and the pipeline's backend."""
        self.formatter_ = formatter
        self.instruction_ = instruction
        if backend is not None and self.backend is None:
            self.backend_: Backend = backend

    @property
    def scorer(self) -> Backend:
        """The backend that scores candidate prompts (made on first use unless handed over)."""
        if not hasattr(self, "backend_"):
            self.backend_ = backends.create(self.backend or "local")
        return self.backend_

    def render(self, query: Example, chosen: Sequence[int]) -> Prompt:
        """``query`` rendered after the pool examples ``chosen``, in that order.

        Raises:
            ConfigError: if no prompt format was set (the selector is used without a
                :class:`~iclkit.builder.PromptBuilder`).
        """
        if not hasattr(self, "formatter_"):
            raise ConfigError(
                f"{type(self).__name__} renders candidate prompts with the builder's formatter; "
                "use it through PromptBuilder (or call prepare first)"
            )
        demos = [
            Demonstration(index=i, score=None, rank=rank, example=self.pool[i])
            for rank, i in enumerate(chosen)
        ]
        return self.formatter_.format(query, demos, self.instruction_)

    def select_batch(
        self,
        queries: Sequence[Example],
        k: int,
        *,
        exclude: Sequence[frozenset[int]] | None = None,
    ) -> list[Selection]:
        """The ``fetch_k`` nearest candidates of each query, re-ranked by :meth:`rerank`.

        Raises:
            NotFittedError: if the selector has not been fitted.
            ConfigError: if ``k`` is negative or no prompt format was set.
            BackendError: if the scoring backend fails.
            ValueError: if ``exclude`` and ``queries`` differ in length.
        """
        check_int("k", k)
        excludes = exclude_sets(queries, exclude)
        if k == 0:
            return [Selection((), ()) for _ in queries]
        vectors = self.embed_queries(queries)
        found = nearest(self.index_, vectors, self.fetch_size(k), excludes)
        return self.rerank(queries, found, k)

    def select_among(
        self, vectors: Vectors, k: int, excludes: Sequence[frozenset[int]]
    ) -> list[Selection]:
        """Not available: re-ranking scores the query's text, which vectors do not carry.

        Raises:
            ConfigError: always; use :meth:`select_batch`.
        """
        raise ConfigError(
            f"{type(self).__name__} scores the query's text with a language model; select "
            "with select_batch(queries, k), not from embeddings"
        )

    @abstractmethod
    def rerank(
        self, queries: Sequence[Example], candidates: Sequence[Candidates], k: int
    ) -> list[Selection]:
        """Choose ``k`` of each query's candidates (``(ids, similarities)``, nearest first)."""
