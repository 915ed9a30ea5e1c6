"""The formatter interface: turns a query and its demonstrations into a :class:`Prompt`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.prompt import Demonstration, Prompt


class Formatter(ABC):
    """Renders the instruction, demonstrations (in prompt order) and query as a prompt.

    ``verbalizer`` maps raw labels to the words the model sees (``{"0": "negative", "1":
    "positive"}``); labels it does not list are used as they are only if ``verbalizer`` is
    ``None``.
    """

    def __init__(self, verbalizer: Mapping[str, str] | None = None) -> None:
        self.verbalizer = dict(verbalizer) if verbalizer is not None else None

    def verbalize(self, label: str | None) -> str:
        """The word for ``label`` under the verbalizer.

        Raises:
            ConfigError: if a verbalizer is set and has no entry for the label.
        """
        if label is None:
            raise ConfigError("a demonstration has no label; every demonstration needs one")
        if self.verbalizer is None:
            return label
        if label not in self.verbalizer:
            known = ", ".join(sorted(self.verbalizer))
            raise ConfigError(
                f"label {label!r} has no verbalizer entry (the verbalizer maps: {known}). "
                "Fix: add it to the verbalizer"
            )
        return self.verbalizer[label]

    @abstractmethod
    def format(
        self,
        query: Example,
        demonstrations: Sequence[Demonstration],
        instruction: str | None = None,
    ) -> Prompt:
        """Render the prompt for ``query`` with ``demonstrations`` in the given order.

        Raises:
            TemplateError: if the template uses a field an example lacks.
            ConfigError: if a label has no verbalizer entry.
        """
