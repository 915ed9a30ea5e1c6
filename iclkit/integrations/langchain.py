"""A LangChain example selector over any iclkit selector (``pip install 'iclkit[langchain]'``).

::

    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
    from iclkit.integrations.langchain import IclkitExampleSelector

    examples = [{"input": "a gripping film", "output": "positive"}, ...]
    selector = IclkitExampleSelector(examples, selector="mmr", k=4)
    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Review: {input}\\nSentiment: {output}"),
        suffix="Review: {input}\\nSentiment:",
        input_variables=["input"],
    )
    prompt.format(input="dull and far too long")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iclkit.errors import ConfigError
from iclkit.pool import Pool
from iclkit.registry import selectors
from iclkit.selectors.base import Selector

try:
    from langchain_core.example_selectors import BaseExampleSelector
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the LangChain adapter needs the 'langchain-core' package. "
        "Fix: pip install 'iclkit[langchain]'"
    ) from None


class IclkitExampleSelector(BaseExampleSelector):
    """LangChain's ``BaseExampleSelector`` backed by an iclkit selector (knn, mmr, votek, ...).

    Args:
        examples: LangChain examples, dicts of strings.
        selector: an iclkit selector name, ``{"name": ..., **options}`` mapping or instance.
        k: how many examples :meth:`select_examples` returns.
        input_keys: the example keys that form the input the selector compares (default: every
            key but ``output_key``); :meth:`select_examples` reads the same keys from the
            prompt's input variables.
        output_key: the example key holding the answer (the label).

    Raises:
        ConfigError: if ``examples`` is empty or an example lacks a key.
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, str]],
        selector: str | Mapping[str, Any] | Selector = "knn",
        k: int = 4,
        input_keys: Sequence[str] | None = None,
        output_key: str = "output",
    ) -> None:
        if not examples:
            raise ConfigError("IclkitExampleSelector needs at least one example")
        self.examples = [dict(example) for example in examples]
        self.selector = selector
        self.k = k
        self.output_key = output_key
        self.input_keys = list(
            input_keys
            if input_keys is not None
            else [key for key in self.examples[0] if key != output_key]
        )
        self._fitted: tuple[Pool, Selector] | None = None

    def _fit(self) -> tuple[Pool, Selector]:
        if self._fitted is None:
            pool = Pool.from_records(
                self.examples,
                input_fields=self.input_keys,
                output_field=self.output_key,
                source="LangChain examples",
            )
            self._fitted = pool, selectors.create(self.selector).fit(pool)
        return self._fitted

    def add_example(self, example: dict[str, str]) -> None:
        """Add an example; the selector is fitted again (embeddings come from the cache)."""
        self.examples.append(dict(example))
        self._fitted = None

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        """The ``k`` examples the iclkit selector chooses for these input variables.

        Raises:
            ConfigError: if an input key is missing from ``input_variables``.
        """
        missing = [key for key in self.input_keys if key not in input_variables]
        if missing:
            raise ConfigError(
                f"the input variables lack {missing}; the selector compares {self.input_keys}"
            )
        pool, selector = self._fit()
        fields = {key: str(input_variables[key]) for key in self.input_keys}
        query = pool.to_query(fields if len(fields) > 1 else next(iter(fields.values())))
        k = min(self.k, len(pool))
        selection = selector.select(query, k, exclude=pool.matches(query))
        return [self.examples[index] for index in selection.indices]
