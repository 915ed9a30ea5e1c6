"""How the command line reports errors: one ``Error: ...`` line and exit status 1, no traceback."""

from __future__ import annotations

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


def friendly_errors(command: F) -> F:
    """Turn iclkit's input errors into one clean ``Error: ...`` line and exit status 1.

    A Ctrl-C says that finished work is kept and how to continue.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise click.ClickException(INTERRUPTED) from None
        except (IclkitError, FileNotFoundError) as error:
            raise click.ClickException(str(error)) from error

    return wrapper  # type: ignore[return-value]
