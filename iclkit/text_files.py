"""Reading the text files iclkit is given: UTF-8 (a BOM is allowed) and JSON, with clear errors.

Every reader of user files goes through here, so that a file in another encoding, a line that
is not JSON or JSON nested too deeply is one :class:`~iclkit.errors.DataError` naming the
file, the line and the fix, never a traceback. ``utf-8-sig`` decoding drops a leading byte
order mark (as written by Excel and Notepad) and reads plain UTF-8 unchanged.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from iclkit.errors import DataError

#: The encoding of every text file iclkit reads: UTF-8, with an optional byte order mark.
ENCODING = "utf-8-sig"

_SHORT = reprlib.Repr()
_SHORT.maxstring = 80
_SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a readable size (long strings and containers are elided).

    Built piece by piece with :mod:`reprlib`, so a huge value is never rendered whole.
    """
    return _SHORT.repr(value)


def _first_bad_byte(path: Path) -> tuple[int, int, int]:
    """The line, column (both 1-based) and value of the first byte that is not UTF-8."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return number, error.start + 1, raw[error.start]
    return 0, 0, 0  # the decoder failed on the file but every line decodes: not expected


def encoding_error(path: str | Path) -> DataError:
    """The :class:`DataError` for a file that is not UTF-8: file, line, column and byte."""
    line, column, byte = _first_bad_byte(Path(path))
    return DataError(
        f"not UTF-8 text (byte 0x{byte:02x} at column {column})",
        path=path,
        line=line or None,
        fix="save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > NEW` for Latin-1",
    )


@contextmanager
def utf8_text(path: str | Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """Open ``path`` for reading as UTF-8 text (see :data:`ENCODING`).

    Raises:
        DataError: (on reading) if the file is not UTF-8, naming the line and the byte.
        OSError: if the file cannot be opened.
    """
    with Path(path).open(encoding=ENCODING, newline=newline) as stream:
        try:
            yield stream
        except UnicodeDecodeError:
            raise encoding_error(path) from None


def read_text(path: str | Path) -> str:
    """The whole file as UTF-8 text.

    Raises:
        DataError: if the file is not UTF-8, naming the line and the byte.
        OSError: if the file cannot be read.
    """
    with utf8_text(path) as stream:
        return stream.read()


def parse_json(text: str, *, path: str | Path, line: int | None = None, fix: str) -> Any:
    """Parse one JSON document; errors name ``path`` and ``line`` and end with ``fix``.

    Raises:
        DataError: if ``text`` is not JSON or is nested too deeply to parse.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        message = f"not valid JSON ({error.msg} at column {error.colno})"
    except RecursionError:
        message = "JSON nested too deeply to read"
    raise DataError(message, path=path, line=line, fix=fix)


def json_lines(
    path: str | Path, *, fix: str, complete_only: bool = False
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file.

    With ``complete_only``, a last line without its newline (a write cut short by a kill) is
    left out.

    Raises:
        DataError: naming the file and line of a line that is not JSON or not UTF-8.
        OSError: if the file cannot be opened.
    """
    with utf8_text(path) as stream:
        for number, line in enumerate(stream, start=1):
            if complete_only and not line.endswith("\n"):
                return
            if line.strip():
                yield number, parse_json(line, path=path, line=number, fix=fix)
