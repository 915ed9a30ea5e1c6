"""The field mapping: which fields of a data record become an example's input, label and id."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from pydantic import ValidationError

from iclkit.errors import DataError
from iclkit.example import Example

#: One input field name, or several (a multi-field input such as premise and hypothesis).
FieldSpec = str | Sequence[str]

#: Where a record comes from, for error messages: ``(source, number, unit)``, the file (or
#: another name, or ``None``), the line or record number, and the word for it (``"line"``
#: when ``source`` is a file, else for example ``"record"``).
Where = tuple[str | None, int | None, str]


class FieldOptions(TypedDict, total=False):
    """The field-mapping keywords every :class:`~iclkit.pool.Pool` loader takes.

    ``input_fields`` (default ``"text"``), ``output_field`` (default ``"label"``) and
    ``id_field`` (default ``"id"``), as in :meth:`FieldMap.of`.
    """

    input_fields: FieldSpec
    output_field: str
    id_field: str


#: Values that are not text or a number: an input, label or id holding one is an error, not
#: its Python ``str()``.
_NOT_TEXT = (Mapping, list, tuple, set, bytes)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class FieldMap:
    """Which record fields form an example: ``input_fields``, ``output_field`` and ``id_field``.

    The defaults (``text``, ``label``, ``id``) are the Hugging Face classification convention.
    Build one from user-facing arguments with :meth:`of`; every :class:`~iclkit.pool.Pool`
    loader does, and :meth:`to_example` then maps each record.

    Raises:
        DataError: if ``input_fields`` is empty.
    """

    input_fields: tuple[str, ...] = ("text",)
    output_field: str = "label"
    id_field: str = "id"

    def __post_init__(self) -> None:
        if not self.input_fields:
            raise DataError("input_fields is empty", fix="name at least one input field")

    @classmethod
    def of(
        cls, input_fields: FieldSpec = "text", output_field: str = "label", id_field: str = "id"
    ) -> FieldMap:
        """The mapping for one input field name or a sequence of them.

        Raises:
            DataError: if ``input_fields`` is empty.
        """
        fields = (input_fields,) if isinstance(input_fields, str) else tuple(input_fields)
        return cls(fields, output_field, id_field)

    def to_example(
        self, record: Mapping[str, Any], *, where: Where, require_output: bool = True
    ) -> Example:
        """Map one record to an :class:`~iclkit.example.Example`.

        ``where`` (see :data:`Where`) places the record in messages. Fields the mapping does
        not name become metadata; a missing or NaN label or id becomes ``None``.

        Raises:
            DataError: if ``record`` is not a mapping, an input field (or, with
                ``require_output``, the output field) is missing, or the input, label or id
                is a JSON object or list rather than text or a number, naming the place, the
                field, the fields the record has, and the fix; or if the record does not make
                a valid example.
        """
        source, number, unit = where
        path = source if unit == "line" else None
        line = number if unit == "line" else None
        place = f"{unit} {number}: " if number is not None else ""
        prefix = "" if unit == "line" else f"{source or 'data'}: {place}"
        if not isinstance(record, Mapping):
            raise DataError(
                f"{prefix}expected a mapping of fields or an Example, got {type(record).__name__}",
                path=path,
                line=line,
                fix="give each record as a dict such as {'text': ..., 'label': ...}",
            )
        available = ", ".join(sorted(map(str, record))) or "(none)"
        wanted = [*self.input_fields, *([self.output_field] if require_output else [])]
        for name in wanted:
            if name not in record or _is_missing(record[name]):
                option = "--output-field" if name == self.output_field else "--input-field"
                raise DataError(
                    f"{prefix}missing field {name!r}; the record has: {available}",
                    path=path,
                    line=line,
                    field=name,
                    fix=f"map the right field with {option} (input_fields/output_field in Python)",
                )
        for name in (*self.input_fields, self.output_field, self.id_field):
            if isinstance(record.get(name), _NOT_TEXT):
                raise DataError(
                    f"{prefix}field {name!r} holds a {type(record[name]).__name__}, not text or "
                    "a number",
                    path=path,
                    line=line,
                    field=name,
                    fix="flatten it into its own fields (map them with --input-field), or "
                    "write it as a string",
                )
        output = record.get(self.output_field)
        raw_id = record.get(self.id_field)
        used = {*self.input_fields, self.output_field, self.id_field}
        try:
            return Example(
                input={name: str(record[name]) for name in self.input_fields},
                output=None if _is_missing(output) else str(output),
                id=None if _is_missing(raw_id) else str(raw_id),
                metadata={k: v for k, v in record.items() if k not in used},
            )
        except ValidationError as error:
            raise DataError(f"{prefix}invalid example: {error}", path=path, line=line) from None
