"""The :class:`Example` type: one labelled (or unlabelled) input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Example(BaseModel):
    """One input with its output (label), an optional id and free-form metadata.

    ``input`` is either a string or a mapping of named fields (``{"premise": ..., "hypothesis":
    ...}``); ``output`` is the label or target text, ``None`` for a query. Numbers given as
    labels are stored as strings (``1`` becomes ``"1"``). Instances are immutable.

    Raises:
        pydantic.ValidationError: if ``input`` is neither a string nor a mapping of strings.
    """

    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True, extra="forbid")

    input: str | dict[str, str]
    output: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input")
    @classmethod
    def _input_not_empty_mapping(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, Mapping) and not value:
            raise ValueError("input mapping has no fields; give at least one named field")
        return value

    @property
    def text(self) -> str:
        """The input as one string: the string itself, or the field values joined by newlines."""
        if isinstance(self.input, str):
            return self.input
        return "\n".join(self.input.values())

    def fields(self) -> dict[str, str]:
        """The named input fields, with ``input`` (see :attr:`text`) always among them."""
        named = {} if isinstance(self.input, str) else dict(self.input)
        return {"input": self.text, **named}
