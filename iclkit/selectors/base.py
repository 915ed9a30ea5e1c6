"""The selector interface every demonstration selector, built-in or plugin, implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iclkit.errors import NotFittedError

if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import Self

    from iclkit.backends.base import Backend
    from iclkit.example import Example
    from iclkit.formatters.base import Formatter
    from iclkit.pool import Pool


@dataclass(frozen=True)
class Selection:
    """A selector's answer for one query: pool indices, most relevant first, and their scores.

    ``scores[i]`` belongs to ``indices[i]``; higher is more relevant. Selectors without a notion
    of relevance (``random``) give ``None`` scores and rank by their own order. ``calls`` and
    ``tokens`` are the model calls and prompt tokens spent choosing (selectors that score
    candidates with a language model; 0 for the others).

    Raises:
        ValueError: if ``indices`` and ``scores`` differ in length.
    """

    indices: tuple[int, ...]
    scores: tuple[float | None, ...]
    calls: int = 0
    tokens: int = 0

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.scores):
            raise ValueError(
                f"Selection has {len(self.indices)} indices but {len(self.scores)} scores"
            )


class Selector(ABC):
    """Chooses which pool examples become demonstrations for a query.

    Follows scikit-learn: the constructor only stores parameters, :meth:`fit` takes the pool
    (and does the expensive work, such as embedding it), and :meth:`select` answers one query.
    :meth:`select_batch` answers many at once; override it when batching is faster (one
    embedding call, one index search).

    Every implementation must honour ``exclude``: the indices of pool examples that are the
    query itself. :class:`~iclkit.builder.PromptBuilder` passes them and checks the answer.
    """

    pool_: Pool

    def fit(self, pool: Pool) -> Self:
        """Remember the pool (and precompute what selection needs). Returns ``self``."""
        self.pool_ = pool
        return self

    def prepare(  # noqa: B027 - an optional hook, empty by default
        self, formatter: Formatter, instruction: str | None, backend: Backend | None
    ) -> None:
        """Learn how the pipeline renders and scores prompts (called by ``PromptBuilder.fit``).

        The default ignores it; selectors that score candidate prompts with a language model
        (``cone``, ``mdl``) render them with the builder's formatter and instruction and score
        them with the pipeline's backend (``None`` when the builder has none).
        """

    def calls_per_query(self, k: int) -> int:
        """Model calls selecting ``k`` demonstrations for one query costs (0 for most selectors).

        Used for cost estimates (``--dry-run``); selectors that score candidates with a
        language model override it.
        """
        return 0

    def save(self, folder: Path) -> None:  # noqa: B027 - an optional hook, empty by default
        """Write what :meth:`restore` needs to skip the costly part of :meth:`fit`.

        The default writes nothing (fitting is cheap); selectors that embed the pool write
        the embeddings and the index. Files only, never pickled objects.
        """

    def restore(self, pool: Pool, folder: Path) -> Self:
        """Fit on ``pool`` from what :meth:`save` wrote into ``folder`` (default: :meth:`fit`).

        Raises:
            DataError: if the saved files do not belong to ``pool``.
            ConfigError: if they were made by another model than this selector's.
        """
        return self.fit(pool)

    @property
    def pool(self) -> Pool:
        """The fitted pool.

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
        """
        try:
            return self.pool_
        except AttributeError:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call .fit(pool) first"
            ) from None

    @abstractmethod
    def select(self, query: Example, k: int, *, exclude: frozenset[int] = frozenset()) -> Selection:
        """Choose up to ``k`` pool indices for ``query``, none of them in ``exclude``.

        Raises:
            NotFittedError: if the selector has not been fitted.
        """

    def select_batch(
        self,
        queries: Sequence[Example],
        k: int,
        *,
        exclude: Sequence[frozenset[int]] | None = None,
    ) -> list[Selection]:
        """Choose demonstrations for many queries; ``exclude[i]`` belongs to ``queries[i]``.

        The default answers one query at a time; selectors with a faster batched path
        override it.

        Raises:
            ValueError: if ``exclude`` and ``queries`` differ in length.
        """
        excludes = exclude_sets(queries, exclude)
        return [self.select(q, k, exclude=ex) for q, ex in zip(queries, excludes, strict=True)]

    def candidates(self, exclude: frozenset[int]) -> list[int]:
        """The pool indices that may be selected: all of them except ``exclude``, in order."""
        return [i for i in range(len(self.pool)) if i not in exclude]


def exclude_sets(queries: Sized, exclude: Sequence[frozenset[int]] | None) -> list[frozenset[int]]:
    """The per-query exclude sets of a batch: ``exclude`` as a list, or empty sets if ``None``.

    ``queries`` is the batch: examples, or an array of query embeddings.

    Raises:
        ValueError: if ``exclude`` and ``queries`` differ in length.
    """
    excludes = list(exclude) if exclude is not None else [frozenset()] * len(queries)
    if len(excludes) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(excludes)} exclude sets")
    return excludes
