"""The exceptions iclkit raises.

Every error iclkit raises on bad input derives from :class:`IclkitError`, so an application can
catch one type. Each message names what is wrong (the file, line and field where there is one)
and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class IclkitError(Exception):
    """Base class of every error iclkit raises on bad input or configuration."""


class DataError(IclkitError, ValueError):
    """A data file or record is malformed: bad JSON/CSV, a missing field, an empty pool.

    The message starts with ``FILE:LINE:`` when the problem is in a file, names the field when
    there is one, and ends with the fix.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.fix = fix
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        text = where + message
        if field is not None and f"'{field}'" not in message:
            text += f" (field '{field}')"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)


class ConfigError(IclkitError, ValueError):
    """A parameter or option has an invalid value (a negative k, unknown options, ...)."""


class TemplateError(IclkitError, ValueError):
    """A prompt template is malformed or uses a field that the example does not have."""


class SelectionError(IclkitError, ValueError):
    """Demonstration selection cannot satisfy the request (k larger than the pool, ...)."""


class TokenBudgetError(IclkitError, ValueError):
    """The prompt does not fit the token budget even with every demonstration dropped."""


class NotFittedError(IclkitError, RuntimeError):
    """A component was used before ``fit`` gave it its pool."""


class BackendError(IclkitError, RuntimeError):
    """A model backend failed: unreachable server, rejected request, missing capability."""


class WorkerError(IclkitError, RuntimeError):
    """A worker process or node that ran part of a job died, and the job stopped."""


class PluginError(IclkitError, LookupError):
    """Base class of plugin registry errors."""


class PluginNotFoundError(PluginError, KeyError):
    """No plugin of that name is registered in the group; the message lists the available ones."""

    def __init__(self, group: str, name: str, available: Iterable[str]) -> None:
        self.group = group
        self.name = name
        self.available = sorted(available)
        listing = ", ".join(self.available) or "(none)"
        super().__init__(
            f"unknown {group} plugin {name!r}; available: {listing}. "
            f"Fix: use one of the available names, or install the package that provides {name!r}"
        )

    def __str__(self) -> str:
        # KeyError quotes its argument; show the message as written.
        return str(self.args[0])


class PluginConflictError(PluginError):
    """Two plugins claim the same name in one group and no override was asked for."""


class PluginLoadError(PluginError):
    """A plugin's entry point could not be imported or does not provide the expected type."""
