"""The :class:`PromptBuilder`: selector → orderer → formatter, under a token budget."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iclkit.errors import ConfigError, NotFittedError, SelectionError, TokenBudgetError
from iclkit.example import Example
from iclkit.formatters.base import Formatter
from iclkit.orderers.base import Orderer
from iclkit.pool import Pool
from iclkit.prompt import Demonstration, Prompt
from iclkit.registry import formatters, orderers, selectors
from iclkit.selectors.base import Selection, Selector
from iclkit.validation import check_int

if TYPE_CHECKING:
    from typing_extensions import Self

    from iclkit.backends.base import Backend

ComponentSpec = str | Mapping[str, Any]
QueryLike = str | Mapping[str, Any] | Example


def whitespace_length(text: str) -> int:
    """Count whitespace-separated words: the default length function of the token budget.

    A rough stand-in for tokens; pass ``length_fn=lambda s: len(tokenizer.encode(s))`` to
    :class:`PromptBuilder` for a model's real token count.
    """
    return len(text.split())


class PromptBuilder:
    """Builds zero-, one- and few-shot prompts from a demonstration pool.

    The constructor only stores the configuration (scikit-learn style); :meth:`fit` takes the
    pool and prepares the components; :meth:`build` and :meth:`build_batch` make prompts.
    ``selector``, ``orderer`` and ``formatter`` are each a component instance, a registry name
    (``"random"``), or a mapping with the name and options (``{"name": "random", "seed":
    3}``). ``k = 0`` gives a zero-shot prompt (with ``instruction``, if set, as in Brown et al.
    2020).

    With ``token_budget`` set, demonstrations are dropped, least relevant first, until
    ``length_fn(prompt.text)`` fits; the prompt lists them in ``dropped``. A query that is also
    in the pool (same id or same input) is never its own demonstration. ``backend`` is the
    model the prompts are for, handed to selectors that score candidates with it (``cone``,
    ``mdl``); the builder itself never calls it.

    Raises:
        ConfigError: if ``k`` or ``token_budget`` is negative or not an integer.
    """

    def __init__(
        self,
        selector: Selector | ComponentSpec = "random",
        orderer: Orderer | ComponentSpec = "as-selected",
        formatter: Formatter | ComponentSpec = "text",
        k: int = 4,
        instruction: str | None = None,
        token_budget: int | None = None,
        length_fn: Callable[[str], int] = whitespace_length,
        allow_fewer: bool = False,
        backend: Backend | None = None,
    ) -> None:
        self.selector = selector
        self.orderer = orderer
        self.formatter = formatter
        self.k = check_int("k", k)
        self.instruction = instruction
        self.token_budget = check_int("token_budget", token_budget, allow_none=True)
        self.length_fn = length_fn
        self.allow_fewer = allow_fewer
        self.backend = backend

    def fit(self, pool: Pool, *, restore_from: Path | None = None) -> Self:
        """Resolve the components and fit the selector on ``pool``. Returns ``self``.

        With ``restore_from``, the selector is fitted from the files its
        :meth:`~iclkit.selectors.base.Selector.save` wrote there (a saved classifier: the pool
        is not embedded again).

        Raises:
            PluginNotFoundError: for an unknown component name.
            ConfigError: if ``pool`` is not a :class:`Pool`, or for options a component does
                not take.
            SelectionError: if ``k`` exceeds the pool size and ``allow_fewer`` is false.
            DataError: if the saved selector files do not belong to ``pool``.
        """
        if not isinstance(pool, Pool):
            raise ConfigError(
                f"fit() takes a Pool, got {type(pool).__name__}. Fix: Pool.from_records(records) "
                "or Pool.load(path)"
            )
        if self.k > len(pool) and not self.allow_fewer:
            raise SelectionError(
                f"k={self.k} is larger than the pool ({len(pool)} examples). Fix: lower k, "
                "or pass allow_fewer=True (--allow-fewer) to use as many as there are"
            )
        self.pool_ = pool
        self.selector_ = selectors.create(self.selector)
        self.orderer_ = orderers.create(self.orderer)
        self.formatter_ = formatters.create(self.formatter)
        self.selector_.prepare(self.formatter_, self.instruction, self.backend)
        if self.k > 0:
            if restore_from is None:
                self.selector_.fit(pool)
            else:
                self.selector_.restore(pool, restore_from)
        return self

    def build(self, query: QueryLike) -> Prompt:
        """Build the prompt for one query (a string, a record mapping or an :class:`Example`).

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            SelectionError: if too few demonstrations can be chosen and ``allow_fewer`` is
                false, or a selector breaks its contract.
            TokenBudgetError: if the prompt does not fit even with no demonstrations.
            TemplateError: if the template uses a field the examples lack.
            DataError: if a query is not a string, a mapping or an Example, or lacks a field.
        """
        return self.build_batch([query])[0]

    def build_batch(self, queries: Sequence[QueryLike]) -> list[Prompt]:
        """Build prompts for many queries, selecting all demonstrations in one batched call.

        Raises:
            The same errors as :meth:`build`.
        """
        try:
            pool = self.pool_
        except AttributeError:
            raise NotFittedError("PromptBuilder is not fitted; call .fit(pool) first") from None
        examples = [pool.to_query(query) for query in queries]
        if self.k == 0:
            selections = [Selection((), ()) for _ in examples]
        else:
            excludes = [pool.matches(example) for example in examples]
            for example, exclude in zip(examples, excludes, strict=True):
                available = len(pool) - len(exclude)
                if self.k > available and not self.allow_fewer:
                    raise SelectionError(
                        f"k={self.k} but only {available} pool examples can serve as "
                        f"demonstrations for query {example.text[:60]!r} (the query itself is in "
                        "the pool). Fix: lower k, or pass allow_fewer=True (--allow-fewer)"
                    )
            selections = self.selector_.select_batch(examples, self.k, exclude=excludes)
            for selection, exclude in zip(selections, excludes, strict=True):
                self._check_selection(selection, exclude)
        return [
            self._assemble(example, selection)
            for example, selection in zip(examples, selections, strict=True)
        ]

    def render(self, query: QueryLike, demonstrations: Sequence[Demonstration]) -> Prompt:
        """Render ``query`` around the given demonstrations, in the order given.

        No selection, ordering or token budget: the fitted formatter and the instruction only.
        Calibrators use it to put a content-free input where the query was; ablations use it
        to show the same demonstrations with other labels or in another order.

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            TemplateError: if the template uses a field the examples lack.
        """
        try:
            pool, formatter = self.pool_, self.formatter_
        except AttributeError:
            raise NotFittedError("PromptBuilder is not fitted; call .fit(pool) first") from None
        return formatter.format(pool.to_query(query), list(demonstrations), self.instruction)

    def with_formatter(self, formatter: Formatter | ComponentSpec) -> PromptBuilder:
        """A fitted copy of this builder that renders with another formatter.

        The pool and the fitted selector and orderer are shared, not refitted: the copy
        selects the same demonstrations and shows them another way (other label words,
        another template).

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            PluginNotFoundError, ConfigError: for a bad formatter spec.
        """
        if not hasattr(self, "pool_"):
            raise NotFittedError("PromptBuilder is not fitted; call .fit(pool) first")
        other = copy.copy(self)
        other.formatter = formatter
        other.formatter_ = formatters.create(formatter)
        return other

    def _check_selection(self, selection: Selection, exclude: frozenset[int]) -> None:
        name = type(self.selector_).__name__
        indices = selection.indices
        wanted = min(self.k, len(self.pool_) - len(exclude))
        if len(indices) > self.k or (len(indices) < wanted and not self.allow_fewer):
            raise SelectionError(
                f"selector {name} returned {len(indices)} demonstrations for k={self.k}. "
                "Fix: pass allow_fewer=True to accept fewer, or fix the selector"
            )
        if len(set(indices)) != len(indices):
            raise SelectionError(f"selector {name} returned a pool index twice: {indices}")
        bad = [i for i in indices if not 0 <= i < len(self.pool_)]
        if bad:
            raise SelectionError(f"selector {name} returned indices outside the pool: {bad}")
        leaked = sorted(set(indices) & exclude)
        if leaked:
            raise SelectionError(
                f"selector {name} chose the query itself (pool indices {leaked}) as a "
                "demonstration; selectors must honour `exclude`"
            )

    def _assemble(self, query: Example, selection: Selection) -> Prompt:
        kept = [
            Demonstration(index=index, score=score, rank=rank, example=self.pool_[index])
            for rank, (index, score) in enumerate(
                zip(selection.indices, selection.scores, strict=True)
            )
        ]
        dropped: list[Demonstration] = []
        cost = {}
        if selection.calls or selection.tokens:
            cost = {"selection_calls": selection.calls, "selection_tokens": selection.tokens}
        while True:
            ordered = self.orderer_.order(query, kept)
            prompt = self.formatter_.format(query, ordered, self.instruction)
            if self.token_budget is None:
                return prompt.model_copy(update=cost) if cost else prompt
            length = self.length_fn(prompt.text)
            if length <= self.token_budget:
                return prompt.model_copy(update={"dropped": tuple(dropped), **cost})
            if not kept:
                raise TokenBudgetError(
                    f"the prompt is {length} tokens with no demonstrations, over the budget of "
                    f"{self.token_budget}. Fix: raise token_budget, shorten the instruction or "
                    "template, or truncate the query"
                )
            least_relevant = max(kept, key=lambda demo: demo.rank)
            kept.remove(least_relevant)
            dropped.append(least_relevant)
