"""The demonstration pool: the labelled examples that selectors choose demonstrations from."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from iclkit.errors import DataError
from iclkit.example import Example
from iclkit.field_map import FieldMap, FieldOptions, FieldSpec
from iclkit.text_files import json_lines, utf8_text

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset
    from typing_extensions import Unpack

#: Records with their line (in a file) or record number, as the loaders read them.
NumberedRows = Iterable[tuple[int, Mapping[str, Any] | Example]]


def _numbered(records: Iterable[Mapping[str, Any] | Example]) -> NumberedRows:
    return enumerate(records, start=1)


_JSONL_FIX = "write one JSON object per line"
#: The longest CSV field read (Python's csv module stops at 131,072 characters by default).
CSV_FIELD_LIMIT = 2**31 - 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, record in json_lines(path, fix=_JSONL_FIX):
        if not isinstance(record, dict):
            raise DataError(
                f"expected a JSON object, got {type(record).__name__}",
                path=path,
                line=number,
                fix=_JSONL_FIX,
            )
        yield number, record


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The rows of a CSV file with a header; a byte order mark before the header is dropped."""
    limit = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        with utf8_text(path, newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            try:
                for row in reader:
                    yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}
            except csv.Error as error:
                raise DataError(
                    f"not valid CSV ({error})",
                    path=path,
                    line=reader.line_num + 1,  # the line being read when it failed
                    fix="check the quotes on that line (a quote opened and never closed)",
                ) from None
    finally:
        csv.field_size_limit(limit)


def label_text_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The numbered ``{"label", "text"}`` records of a ``LABEL TEXT`` line file.

    A line is a label, one space, then the text (the SST-2 files of Zhao et al. 2021); blank
    lines are skipped.

    Raises:
        DataError: naming the line that has no text after its label.
    """
    with utf8_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            label, _, text = line.rstrip("\n").partition(" ")
            if not text.strip():
                raise DataError(
                    "expected 'LABEL TEXT' (a label, a space, then the text)",
                    path=path,
                    line=number,
                    fix="write one labelled example per line",
                )
            yield number, {"label": label, "text": text}


def _file_rows(path: Path, file_format: str = "auto") -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The numbered records of a ``.jsonl``/``.json``/``.ndjson``, ``.csv`` or ``.tsv`` file.

    ``file_format="label-text"`` reads ``LABEL TEXT`` lines whatever the suffix.

    Raises:
        DataError: for another suffix, or a malformed line.
    """
    if file_format == "label-text":
        return label_text_rows(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl_rows(path)
    if suffix in (".csv", ".tsv"):
        return _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    raise DataError(
        f"unsupported file type {suffix!r}",
        path=path,
        fix="use .jsonl, .csv, .tsv, or a folder saved by datasets' save_to_disk",
    )


def read_queries(path: str | Path, field_map: FieldMap, file_format: str = "auto") -> list[Example]:
    """Read queries to predict from a ``.jsonl``, ``.csv`` or ``.tsv`` file (labels optional).

    ``file_format="label-text"`` reads ``LABEL TEXT`` lines (fields ``label`` and ``text``).

    Records are read through ``field_map``; a record's label, when it has one, is kept as the
    query's gold output. Rows without an id get ``row-N`` (their line number).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: naming the file and line of a malformed record or a missing input field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    queries = []
    for number, record in _file_rows(path, file_format):
        example = field_map.to_example(
            record, where=(str(path), number, "line"), require_output=False
        )
        if example.id is None:
            example = example.model_copy(update={"id": f"row-{number}"})
        queries.append(example)
    return queries


class Pool(Sequence[Example]):
    """An immutable, indexed collection of labelled :class:`Example` objects.

    Build one from records with :meth:`from_records`, or from a file, DataFrame or Hugging Face
    dataset with :meth:`load`, :meth:`from_jsonl`, :meth:`from_csv`, :meth:`from_pandas` or
    :meth:`from_hf`. Every loader takes the same field mapping (a
    :class:`~iclkit.field_map.FieldMap`): ``input_fields`` name the record fields that form the
    input (default ``text``), ``output_field`` the label (default ``label``) and ``id_field``
    the example id (default ``id``; optional in the records), the Hugging Face classification
    convention. The pool keeps its mapping in :attr:`field_map` and reads queries given as
    records (:meth:`to_query`) through it.

    Raises:
        DataError: if the pool is empty, an item is not an :class:`Example`, a record lacks a
            field, or two examples share an id.
    """

    def __init__(
        self,
        examples: Iterable[Example],
        *,
        input_fields: FieldSpec = ("text",),
        output_field: str = "label",
        source: str | None = None,
        id_field: str = "id",
    ) -> None:
        self._examples: tuple[Example, ...] = tuple(examples)
        self.field_map = FieldMap.of(input_fields, output_field, id_field)
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
            if not isinstance(example, Example):
                raise DataError(
                    f"{where}: item {index} is a {type(example).__name__}, not an Example",
                    fix="build the pool with Pool.from_records(...) from dicts, or give Examples",
                )
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
                        field=id_field,
                        fix="make every id unique, or drop the id field",
                    )
                seen[example.id] = index
            self._by_text.setdefault(example.text, []).append(index)
        self._by_id = seen

    @property
    def input_fields(self) -> tuple[str, ...]:
        """The record fields that form an example's input."""
        return self.field_map.input_fields

    @property
    def output_field(self) -> str:
        """The record field that holds the label."""
        return self.field_map.output_field

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any] | Example],
        *,
        source: str | None = None,
        **fields: Unpack[FieldOptions],
    ) -> Pool:
        """Build a pool from dicts (mapped through the field names) or ready :class:`Example` s.

        Args:
            records: mappings (read through the field mapping) or :class:`Example` s.
            source: a name for the records in messages, such as the file they came from.
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: on an empty pool, a missing field (naming record and field) or a
                duplicate id.
        """
        return cls._from_rows(
            _numbered(records), FieldMap.of(**fields), source=source, unit="record"
        )

    @classmethod
    def from_jsonl(cls, path: str | Path, **fields: Unpack[FieldOptions]) -> Pool:
        """Read a JSON-lines file: one JSON object per line; blank lines are skipped.

        Args:
            path: the ``.jsonl`` file.
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: naming the file and line of a line that is not a JSON object, or of a
                record that lacks a field.
            FileNotFoundError: if the file does not exist.
        """
        return cls._from_rows(
            _jsonl_rows(Path(path)), FieldMap.of(**fields), source=str(path), unit="line"
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        delimiter: str = ",",
        **fields: Unpack[FieldOptions],
    ) -> Pool:
        """Read a CSV file with a header row (a TSV file with ``delimiter="\\t"``).

        Args:
            path: the CSV file.
            delimiter: the column separator (``"\\t"`` for TSV).
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: naming the file and line of a row that lacks a field.
            FileNotFoundError: if the file does not exist.
        """
        rows = _csv_rows(Path(path), delimiter)
        return cls._from_rows(rows, FieldMap.of(**fields), source=str(path), unit="line")

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame, **fields: Unpack[FieldOptions]) -> Pool:
        """Build a pool from a pandas DataFrame, one row per example (NaN counts as missing).

        Args:
            frame: the DataFrame.
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: naming the row of a missing field, an empty frame or a duplicate id.
        """
        records = [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
        return cls._from_rows(
            _numbered(records), FieldMap.of(**fields), source="DataFrame", unit="record"
        )

    @classmethod
    def from_hf(cls, dataset: Dataset, **fields: Unpack[FieldOptions]) -> Pool:
        """Build a pool from a Hugging Face ``datasets.Dataset`` (already loaded, no download).

        Class-label columns keep their integer values as labels; map them to words with the
        formatter's verbalizer.

        Args:
            dataset: the dataset.
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: naming the row of a missing field, an empty dataset or a duplicate id.
        """
        return cls._from_rows(
            _numbered(dataset), FieldMap.of(**fields), source="Dataset", unit="record"
        )

    @classmethod
    def load(cls, path: str | Path, **fields: Unpack[FieldOptions]) -> Pool:
        """Load a pool from a ``.jsonl``/``.json``, ``.csv``, ``.tsv`` file or a dataset folder.

        A folder is read with ``datasets.load_from_disk`` (a dataset saved with
        ``save_to_disk``).

        Args:
            path: the file or dataset folder.
            **fields: the field mapping, ``input_fields``, ``output_field`` and ``id_field``
                (see :class:`~iclkit.field_map.FieldOptions`).

        Raises:
            DataError: for an unsupported suffix, a folder without ``datasets`` installed, or
                any error of the specific reader.
            FileNotFoundError: if the path does not exist.
        """
        path = Path(path)
        mapping = FieldMap.of(**fields)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_dir():
            try:
                from datasets import load_from_disk
            except ImportError:
                raise DataError(
                    "reading a dataset folder needs the 'datasets' package",
                    path=path,
                    fix="pip install 'iclkit[datasets]', or give a .jsonl/.csv file",
                ) from None
            dataset = load_from_disk(str(path))
            return cls._from_rows(_numbered(dataset), mapping, source=str(path), unit="record")
        return cls._from_rows(_file_rows(path), mapping, source=str(path), unit="line")

    @classmethod
    def _from_rows(
        cls, rows: NumberedRows, fields: FieldMap, *, source: str | None, unit: str
    ) -> Pool:
        """The pool of ``rows``: records mapped through ``fields``, examples kept as they are."""
        examples = [
            row
            if isinstance(row, Example)
            else fields.to_example(row, where=(source, number, unit))
            for number, row in rows
        ]
        return cls(
            examples,
            input_fields=fields.input_fields,
            output_field=fields.output_field,
            id_field=fields.id_field,
            source=source,
        )

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
            DataError: if the query is of another type, a string is given but the pool has
                several input fields, or a mapping lacks an input field.
        """
        if isinstance(query, Example):
            return query
        if not isinstance(query, str | Mapping):
            raise DataError(
                f"a query is a string, a mapping of fields or an Example, got "
                f"{type(query).__name__}",
                fix="pass the query text, e.g. builder.build('a gripping film')",
            )
        if isinstance(query, str):
            if len(self.input_fields) != 1:
                raise DataError(
                    f"a plain-string query needs a pool with one input field, this one has "
                    f"{list(self.input_fields)}",
                    fix="give the query as a mapping of those fields",
                )
            return Example(input={self.input_fields[0]: query})
        return self.field_map.to_example(
            query, where=("query", None, "record"), require_output=False
        )
