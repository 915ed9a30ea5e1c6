"""The demonstration pool: the labelled examples that selectors choose demonstrations from."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pydantic import ValidationError

from iclkit.errors import DataError
from iclkit.example import Example

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset

FieldSpec = str | Sequence[str]


def _as_field_list(input_fields: FieldSpec) -> tuple[str, ...]:
    fields = (input_fields,) if isinstance(input_fields, str) else tuple(input_fields)
    if not fields:
        raise DataError("input_fields is empty", fix="name at least one input field")
    return fields


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Pool(Sequence[Example]):
    """An immutable, indexed collection of labelled :class:`Example` objects.

    Build one from records with :meth:`from_records`, or from a file, DataFrame or Hugging Face
    dataset with :meth:`load`, :meth:`from_jsonl`, :meth:`from_csv`, :meth:`from_pandas` or
    :meth:`from_hf`. ``input_fields`` name the record fields that form the input (default
    ``text``) and ``output_field`` the label (default ``label``), the Hugging Face
    classification convention. A record's ``id`` field, when present, becomes the example id.

    Raises:
        DataError: if the pool is empty, a record lacks a field, or two examples share an id.
    """

    def __init__(
        self,
        examples: Iterable[Example],
        *,
        input_fields: FieldSpec = ("text",),
        output_field: str = "label",
        source: str | None = None,
    ) -> None:
        self._examples: tuple[Example, ...] = tuple(examples)
        self.input_fields = _as_field_list(input_fields)
        self.output_field = output_field
        self.source = source
        where = source or "pool"
        if not self._examples:
            raise DataError(
                f"{where} has no examples",
                fix="give a non-empty pool (check the file and the field mapping)",
            )
        seen: dict[str, int] = {}
        self._by_text: dict[str, list[int]] = {}
        for index, example in enumerate(self._examples):
            if example.output is None:
                raise DataError(
                    f"{where}: example {index} has no output (label)",
                    field=output_field,
                    fix="every demonstration needs a label",
                )
            if example.id is not None:
                if example.id in seen:
                    raise DataError(
                        f"{where}: duplicate id {example.id!r} at examples {seen[example.id]} "
                        f"and {index}",
                        field="id",
                        fix="make every id unique, or drop the id field",
                    )
                seen[example.id] = index
            self._by_text.setdefault(example.text, []).append(index)
        self._by_id = seen

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any] | Example],
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
        source: str | None = None,
    ) -> Pool:
        """Build a pool from dicts (mapped through the field names) or ready :class:`Example` s.

        Raises:
            DataError: on an empty pool, a missing field (naming record and field) or a
                duplicate id.
        """
        numbered = ((number, record) for number, record in enumerate(records, start=1))
        return cls._from_numbered(
            numbered,
            input_fields=input_fields,
            output_field=output_field,
            id_field=id_field,
            source=source,
            unit="record",
        )

    @classmethod
    def from_jsonl(
        cls,
        path: str | Path,
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
    ) -> Pool:
        """Read a JSON-lines file: one JSON object per line; blank lines are skipped.

        Raises:
            DataError: naming the file and line of a line that is not a JSON object, or of a
                record that lacks a field.
            FileNotFoundError: if the file does not exist.
        """
        path = Path(path)

        def rows() -> Iterator[tuple[int, Mapping[str, Any]]]:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DataError(
                            f"not valid JSON ({error.msg} at column {error.colno})",
                            path=path,
                            line=number,
                            fix="write one JSON object per line",
                        ) from None
                    if not isinstance(record, dict):
                        raise DataError(
                            f"expected a JSON object, got {type(record).__name__}",
                            path=path,
                            line=number,
                            fix="write one JSON object per line",
                        )
                    yield number, record

        return cls._from_numbered(
            rows(),
            input_fields=input_fields,
            output_field=output_field,
            id_field=id_field,
            source=str(path),
            unit="line",
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
        delimiter: str = ",",
    ) -> Pool:
        """Read a CSV file with a header row (use ``delimiter="\\t"`` for TSV).

        Raises:
            DataError: naming the file and line of a row that lacks a field.
            FileNotFoundError: if the file does not exist.
        """
        path = Path(path)

        def rows() -> Iterator[tuple[int, Mapping[str, Any]]]:
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle, delimiter=delimiter)
                for row in reader:
                    yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}

        return cls._from_numbered(
            rows(),
            input_fields=input_fields,
            output_field=output_field,
            id_field=id_field,
            source=str(path),
            unit="line",
        )

    @classmethod
    def from_pandas(
        cls,
        frame: pd.DataFrame,
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
    ) -> Pool:
        """Build a pool from a pandas DataFrame, one row per example (NaN counts as missing).

        Raises:
            DataError: naming the row of a missing field, an empty frame or a duplicate id.
        """
        records = [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
        return cls.from_records(
            records,
            input_fields=input_fields,
            output_field=output_field,
            id_field=id_field,
            source="DataFrame",
        )

    @classmethod
    def from_hf(
        cls,
        dataset: Dataset,
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
    ) -> Pool:
        """Build a pool from a Hugging Face ``datasets.Dataset`` (already loaded, no download).

        Class-label columns keep their integer values as labels; map them to words with the
        formatter's verbalizer.

        Raises:
            DataError: naming the row of a missing field, an empty dataset or a duplicate id.
        """
        return cls.from_records(
            iter(dataset),
            input_fields=input_fields,
            output_field=output_field,
            id_field=id_field,
            source="Dataset",
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        input_fields: FieldSpec = "text",
        output_field: str = "label",
        id_field: str = "id",
    ) -> Pool:
        """Load a pool from a ``.jsonl``/``.json``, ``.csv``, ``.tsv`` file or a dataset folder.

        A folder is read with ``datasets.load_from_disk`` (a dataset saved with
        ``save_to_disk``).

        Raises:
            DataError: for an unsupported suffix or any error of the specific reader.
            FileNotFoundError: if the path does not exist.
        """
        path = Path(path)
        mapping: dict[str, Any] = {
            "input_fields": input_fields,
            "output_field": output_field,
            "id_field": id_field,
        }
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_dir():
            from datasets import load_from_disk

            return cls.from_hf(load_from_disk(str(path)), **mapping)
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            return cls.from_jsonl(path, **mapping)
        if suffix in (".csv", ".tsv"):
            return cls.from_csv(path, delimiter="\t" if suffix == ".tsv" else ",", **mapping)
        raise DataError(
            f"unsupported file type {suffix!r}",
            path=path,
            fix="use .jsonl, .csv, .tsv, or a folder saved by datasets' save_to_disk",
        )

    @classmethod
    def _from_numbered(
        cls,
        rows: Iterable[tuple[int, Mapping[str, Any] | Example]],
        *,
        input_fields: FieldSpec,
        output_field: str,
        id_field: str,
        source: str | None,
        unit: str,
    ) -> Pool:
        fields = _as_field_list(input_fields)
        examples = []
        for number, row in rows:
            if isinstance(row, Example):
                examples.append(row)
                continue
            examples.append(
                record_to_example(
                    row,
                    input_fields=fields,
                    output_field=output_field,
                    id_field=id_field,
                    where=(source, number, unit),
                )
            )
        return cls(examples, input_fields=fields, output_field=output_field, source=source)

    # -- access ---------------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> Example: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Example]: ...

    def __getitem__(self, index: int | slice) -> Example | Sequence[Example]:
        return self._examples[index]

    def __len__(self) -> int:
        return len(self._examples)

    def __repr__(self) -> str:
        return f"Pool({len(self)} examples, labels={self.labels}, source={self.source!r})"

    @property
    def labels(self) -> list[str]:
        """The distinct labels in the pool, sorted."""
        return sorted({example.output for example in self._examples if example.output is not None})

    @property
    def texts(self) -> list[str]:
        """The input of every example as one string (see :attr:`Example.text`), in pool order."""
        return [example.text for example in self._examples]

    def matches(self, query: Example) -> frozenset[int]:
        """Indices of pool examples that *are* the query: the same id, or the same input text.

        Selectors exclude these, so that a query in the pool is never its own demonstration.
        """
        found = set(self._by_text.get(query.text, ()))
        if query.id is not None and query.id in self._by_id:
            found.add(self._by_id[query.id])
        return frozenset(found)

    def to_query(self, query: str | Mapping[str, Any] | Example) -> Example:
        """Turn a string, a record or an :class:`Example` into a query example for this pool.

        A string becomes the pool's single input field; a mapping is read through the pool's
        field mapping (its label, if any, is kept as the query's gold output).

        Raises:
            DataError: if a string is given but the pool has several input fields, or a
                mapping lacks an input field.
        """
        if isinstance(query, Example):
            return query
        if isinstance(query, str):
            if len(self.input_fields) != 1:
                raise DataError(
                    f"a plain-string query needs a pool with one input field, this one has "
                    f"{list(self.input_fields)}",
                    fix="give the query as a mapping of those fields",
                )
            return Example(input={self.input_fields[0]: query})
        return record_to_example(
            query,
            input_fields=self.input_fields,
            output_field=self.output_field,
            id_field="id",
            where=("query", None, "record"),
            require_output=False,
        )


def record_to_example(
    record: Mapping[str, Any],
    *,
    input_fields: Sequence[str],
    output_field: str,
    id_field: str,
    where: tuple[str | None, int | None, str],
    require_output: bool = True,
) -> Example:
    """Map one record to an :class:`Example` through the field names.

    ``where`` is ``(source, number, unit)`` for messages: the file (or ``None``), the line or
    record number and the word for it. Fields not named become metadata.

    Raises:
        DataError: if an input field (or, when required, the output field) is missing, naming
            the place, the field, the fields the record has, and the fix.
    """
    source, number, unit = where
    path = source if unit == "line" else None
    line = number if unit == "line" else None
    prefix = "" if unit == "line" else f"{source or 'data'}: {unit} {number}: "
    available = ", ".join(sorted(record)) or "(none)"
    wanted = list(input_fields) + ([output_field] if require_output else [])
    for name in wanted:
        if name not in record or _is_missing(record[name]):
            option = "--output-field" if name == output_field else "--input-field"
            raise DataError(
                f"{prefix}missing field {name!r}; the record has: {available}",
                path=path,
                line=line,
                field=name,
                fix=f"map the right field with {option} (input_fields/output_field in Python)",
            )
    inputs = {name: str(record[name]) for name in input_fields}
    output = record.get(output_field)
    raw_id = record.get(id_field)
    used = {*input_fields, output_field, id_field}
    try:
        return Example(
            input=inputs,
            output=None if _is_missing(output) else str(output),
            id=None if _is_missing(raw_id) else str(raw_id),
            metadata={k: v for k, v in record.items() if k not in used},
        )
    except ValidationError as error:
        raise DataError(f"{prefix}invalid example: {error}", path=path, line=line) from None
