"""The results store of a run: ``results.jsonl`` (append-only) and ``run.json`` in one folder.

Each prediction is one JSON line, appended with a single ``write`` on an ``O_APPEND`` file and
``fsync``-ed before the run moves on, so a run killed at any moment keeps every prediction it
finished. A line cut short by a kill is removed when the store is opened again. ``run.json``
(written atomically) names the grid the results belong to, so that a folder holding another
experiment's results is never silently mixed with this one.

A run holds the folder's lock file (:data:`LOCK`, an OS file lock that the system releases
when the process ends, however it ends) while it writes, so a second run on the same folder
is refused instead of computing the same predictions again. Reading counts each (cell,
query) pair once, the first record written for it, whatever the file holds.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from iclkit.errors import ConfigError, DataError
from iclkit.experiment.grid import Cell
from iclkit.text_files import json_lines, parse_json, read_text

RESULTS = "results.jsonl"
RUN_INFO = "run.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
PLOT_K = "accuracy_vs_k.png"
PLOT_ORDER = "order_sensitivity.png"
#: The lock file a run holds while it writes (it stays; the lock is the OS's, not the file).
LOCK = ".iclkit-run.lock"
REPORT_HTML = "report.html"
#: Every file a run writes; ``--overwrite`` deletes these and nothing else.
OUTPUTS = (RESULTS, RUN_INFO, SUMMARY_CSV, SUMMARY_MD, PLOT_K, PLOT_ORDER, REPORT_HTML)
_FIX = "delete the line, or re-run with --overwrite"


class ResultRecord(TypedDict):
    """What the report reads of a ``results.jsonl`` line (a record holds more)."""

    cell: str
    query: str
    gold: str | None
    prediction: str | None
    params: dict[str, Any]


class CellEntry(TypedDict):
    """One cell of ``run.json``: its id and parameters."""

    id: str
    params: dict[str, Any]


class RunInfo(TypedDict, total=False):
    """What the report reads of ``run.json`` (it holds more)."""

    name: str
    labels: list[str]
    eval_size: int
    cells: list[CellEntry]


_RECORD = TypeAdapter(ResultRecord)
_RUN_INFO = TypeAdapter(RunInfo)


def _first_problem(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in (*prefix, *first["loc"])) or "the value"
    return f"{where}: {first['msg']}"


@functools.lru_cache(maxsize=1024)
def _params_problem(params: str) -> ValidationError | None:
    """Why a cell's ``params`` (as sorted JSON) are not valid, or ``None`` if they are.

    Cached: the records of one cell share their params, and validating them creates the
    cell's components.
    """
    try:
        Cell.model_validate({**json.loads(params), "id": ""}, strict=True)
    except ValidationError as error:
        return error
    return None


def _check_shape(adapter: TypeAdapter[Any], value: Any, path: Path, line: int | None) -> None:
    """Raise a :class:`DataError` naming the first field of ``value`` of the wrong shape.

    Every ``params`` (of a record, or of a ``run.json`` cell) must be a grid
    :class:`~iclkit.experiment.grid.Cell`'s parameters.
    """
    problem = None
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as error:
        problem = _first_problem(error)
    else:
        if "cell" in value:
            located: list[tuple[tuple[str | int, ...], Any]] = [(("params",), value["params"])]
        else:
            located = [
                (("cells", i, "params"), c["params"]) for i, c in enumerate(value.get("cells", []))
            ]
        for where, params in located:
            invalid = _params_problem(json.dumps(params, sort_keys=True))
            if invalid is not None:
                problem = _first_problem(invalid, where)
                break
    if problem is not None:
        raise DataError(
            f"not what iclkit writes here ({problem})",
            path=path,
            line=line,
            fix=_FIX if line is not None else "re-run with --overwrite",
        )


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    The file gets mode 0644, like ``results.jsonl`` (``mkstemp`` alone would leave 0600).
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _repair_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline (it was never complete)."""
    if not path.exists():
        return
    with path.open("rb+") as stream:
        data = stream.read()
        if data and not data.endswith(b"\n"):
            stream.truncate(data.rfind(b"\n") + 1)


class ResultsStore:
    """The output folder of a run: its predictions and the grid they belong to.

    The constructor only stores the folder; :meth:`open` prepares it for a run, :meth:`append`
    adds predictions and :meth:`records` reads them back.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def results_path(self) -> Path:
        """The ``results.jsonl`` file."""
        return self.folder / RESULTS

    @property
    def info_path(self) -> Path:
        """The ``run.json`` file."""
        return self.folder / RUN_INFO

    def info(self) -> dict[str, Any] | None:
        """The ``run.json`` contents, or ``None`` if the folder has none.

        Raises:
            DataError: if ``run.json`` is not valid JSON.
        """
        if not self.info_path.exists():
            return None
        loaded = parse_json(
            read_text(self.info_path), path=self.info_path, fix="re-run with --overwrite"
        )
        _check_shape(_RUN_INFO, loaded, self.info_path, None)
        return dict(loaded)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's :data:`LOCK` inside the block (creating the folder if needed).

        Raises:
            ConfigError: if another run (in this or another process) holds it.
            OSError: if the folder cannot be created or written.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(
                f"{self.folder} is in use by another iclkit run (it holds {LOCK}). Fix: wait "
                "for that run to finish, or choose another --out folder"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def open(
        self, info: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False
    ) -> set[tuple[str, str]]:
        """Prepare the folder for the run described by ``info``; return the finished predictions.

        ``info["grid_hash"]`` identifies the grid. A folder with results of the same grid is
        continued; one with results of another grid is refused unless ``resume`` (keep them;
        predictions of cells shared with this grid are reused) or ``overwrite`` (delete the
        files in :data:`OUTPUTS`, and only those).

        Returns:
            The ``(cell id, query id)`` pairs already in ``results.jsonl``.

        Raises:
            ConfigError: if the folder holds another grid's results and neither flag is set,
                or both flags are set.
        """
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other; choose one")
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self.info()
        has_results = self.results_path.exists() and self.results_path.stat().st_size > 0
        if overwrite:
            for name in OUTPUTS:
                (self.folder / name).unlink(missing_ok=True)
        elif has_results and not resume:
            if previous is None or previous.get("grid_hash") != info["grid_hash"]:
                what = "another experiment" if previous is None else f"{previous.get('name')!r}"
                raise ConfigError(
                    f"{self.folder} holds results of a different config ({what}). Fix: pass "
                    "--resume to keep them and reuse the cells both configs share, --overwrite "
                    "to delete them, or choose another --out folder"
                )
        _repair_tail(self.results_path)
        write_atomic(self.info_path, json.dumps(dict(info), indent=2, ensure_ascii=False) + "\n")
        return {(record["cell"], record["query"]) for record in self.records()}

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append ``records`` as JSON lines in one write, then ``fsync``."""
        if not records:
            return
        data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        handle = os.open(self.results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            payload = data.encode("utf-8")
            while payload:
                written = os.write(handle, payload)
                payload = payload[written:]
            os.fsync(handle)
        finally:
            os.close(handle)

    def put_in_order(self, order: Mapping[tuple[str, str], int]) -> None:
        """Rewrite ``results.jsonl`` (atomically) with its records in ``order``.

        ``order`` gives each (cell, query) pair its place; records it does not name (another
        grid's, kept by ``resume``) follow in the order they were. Nothing is written when
        the file is in order already.

        Raises:
            DataError: naming the line of a record that is not valid JSON.
        """
        records = self.records()
        end = len(order)
        ranked = sorted(
            range(len(records)),
            key=lambda i: (order.get((records[i]["cell"], records[i]["query"]), end), i),
        )
        if ranked == list(range(len(records))):
            return
        lines = "".join(json.dumps(records[i], ensure_ascii=False) + "\n" for i in ranked)
        write_atomic(self.results_path, lines)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record in ``results.jsonl``.

        Each (cell, query) pair counts once: a later record of the same pair (a folder written
        by two runs at once before runs took its lock) is left out. A last line cut short by
        a kill is left out too.

        Raises:
            DataError: naming the line of a record that is not valid JSON or lacks a field.
        """
        if not self.results_path.exists():
            return []
        found = []
        seen: set[tuple[str, str]] = set()
        for number, record in json_lines(self.results_path, fix=_FIX, complete_only=True):
            _check_shape(_RECORD, record, self.results_path, number)
            pair = (record["cell"], record["query"])
            if pair not in seen:
                seen.add(pair)
                found.append(record)
        return found
