"""How every ``iclkit`` command reports a failure: one ``Error: ...`` line and exit status 1.

iclkit's own errors already name the file, line, field and fix. File-system errors (a
read-only or full disk, a path under a file, a name too long) are put the same way, with the
path and a fix, instead of a traceback.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from iclkit.errors import IclkitError

F = TypeVar("F", bound=Callable[..., Any])

#: What an interrupted command says (every finished result is kept).
INTERRUPTED = (
    "interrupted; every finished prediction is saved. Re-run the same command to continue "
    "where it stopped"
)

_FIXES = {
    errno.EACCES: "choose a folder you may write to (--out), or change its permissions",
    errno.EPERM: "choose a folder you may write to (--out), or change its permissions",
    errno.EROFS: "the file system is read-only: choose another folder (--out)",
    errno.ENOSPC: "free some disk space and run the same command again; finished work is kept",
    errno.EDQUOT: "free some disk space and run the same command again; finished work is kept",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file is in the way of a folder: move it, or choose another path",
    errno.EISDIR: "the path is a folder, not a file: give a file",
    errno.ENAMETOOLONG: "use a shorter name or path",
}


def describe_os_error(error: OSError) -> str:
    """One line for a file-system error: the path, what went wrong and the fix."""
    if error.errno is None:
        return str(error)  # raised by iclkit with its own message
    where = f"{error.filename}: " if error.filename is not None else ""
    text = f"{where}{error.strerror or error}"
    fix = _FIXES.get(error.errno)
    return f"{text}. Fix: {fix}" if fix else text


def friendly_errors(command: F) -> F:
    """Turn iclkit's errors and file-system errors into one ``Error: ...`` line (exit 1).

    A Ctrl-C says that finished work is kept and how to continue.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise click.ClickException(INTERRUPTED) from None
        except IclkitError as error:
            raise click.ClickException(str(error)) from error
        except OSError as error:
            raise click.ClickException(describe_os_error(error)) from error

    return wrapper  # type: ignore[return-value]
