"""The plugin registry: one entry-point group per kind of component (selectors, backends, ...).

Built-in components are declared in iclkit's own ``pyproject.toml`` under the same entry-point
groups a third-party package uses, so both are found the same way::

    [project.entry-points."iclkit.selectors"]
    my-selector = "my_package.selector:MySelector"

Lookup is lazy: listing plugins reads package metadata only, and only the plugin asked for by
name is imported. ``register_selector(name, cls)`` (and its siblings) add a plugin in-process,
for scripts and notebooks.

A broken plugin never breaks the others: a distribution whose ``entry_points.txt`` cannot be
read is skipped with a warning naming it; a plugin that fails to import (even by calling
``sys.exit``) or to construct raises an iclkit error naming it, when it is asked for. A
third-party plugin that takes a built-in's name is ignored with a warning: built-ins win.
Warnings go to the ``iclkit.plugins`` logger, once per process each.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, distributions
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from iclkit.errors import (
    ConfigError,
    IclkitError,
    PluginConflictError,
    PluginLoadError,
    PluginNotFoundError,
)

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.calibrators.base import Calibrator
    from iclkit.formatters.base import Formatter
    from iclkit.methods.base import Method
    from iclkit.orderers.base import Orderer
    from iclkit.selectors.base import Selector

T = TypeVar("T")

logger = logging.getLogger("iclkit.plugins")
#: The distribution that declares iclkit's own plugins (they win over same-named others).
BUILTIN = "iclkit"
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def _install_state() -> tuple[tuple[str, int], ...]:
    """Each ``sys.path`` entry with its modification time: what installing a package changes."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def _entry_points(group: str) -> Iterator[tuple[EntryPoint, str, str]]:
    """``(entry point, distribution name, version)`` of every plugin declared for ``group``.

    Distributions whose entry points cannot be read are skipped with a warning.
    """
    for dist in distributions():
        try:
            declared = [ep for ep in dist.entry_points if ep.group == group]
        except Exception as error:
            name = _name(dist) or "an installed distribution"
            _warn_once(
                f"skipped the plugins of {name}: its entry points cannot be read "
                f"({type(error).__name__}: {error}). Fix: reinstall or uninstall that package"
            )
            continue
        if declared:
            name = _name(dist) or "(unnamed distribution)"
            for ep in declared:
                yield ep, name, dist.version


def _name(dist: Distribution) -> str | None:
    try:
        return str(dist.metadata["Name"])
    except Exception:
        return None


@dataclass(frozen=True)
class PluginInfo:
    """What the registry knows about one plugin without importing it.

    ``target`` is the ``module:attribute`` it loads from; ``distribution`` and ``version`` name
    the installed package that declares it (``None`` for in-process registrations).
    """

    group: str
    name: str
    target: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class _Declared:
    info: PluginInfo
    entry_point: EntryPoint | None
    obj: Any = None


class Registry(Generic[T]):
    """The plugins of one entry-point group, e.g. ``iclkit.selectors``.

    ``base`` is the class (``"module:Name"``, imported on first use) that every plugin of the
    group must subclass.
    """

    def __init__(self, group: str, kind: str, base: str) -> None:
        self.group = group
        self.kind = kind
        self.base = base
        self._local: dict[str, _Declared] = {}
        self._scanned: tuple[tuple[tuple[str, int], ...], dict[str, list[_Declared]]] | None = None

    # -- discovery ------------------------------------------------------------------------------

    def _declared(self) -> dict[str, list[_Declared]]:
        """The group's entry points by name; rescanned only after a package is (un)installed."""
        state = _install_state()
        if self._scanned is None or self._scanned[0] != state:
            self._scanned = (state, self._scan())
        return self._scanned[1]

    def _scan(self) -> dict[str, list[_Declared]]:
        found: dict[str, list[_Declared]] = {}
        for ep, distribution, version in _entry_points(self.group):
            info = PluginInfo(
                group=self.group,
                name=ep.name,
                target=ep.value,
                distribution=distribution,
                version=version,
            )
            same = found.setdefault(ep.name, [])
            # One package seen twice (an editable install beside its build folder) is no clash.
            if all(d.info.target != info.target for d in same):
                same.append(_Declared(info, ep))
        for name, same in found.items():
            builtin = [d for d in same if d.info.distribution == BUILTIN]
            if builtin and len(same) > 1:
                others = ", ".join(
                    f"{d.info.distribution} ({d.info.target})" for d in same if d not in builtin
                )
                _warn_once(
                    f"{self.kind} {name!r} of {others} is ignored: iclkit's built-in "
                    f"{name!r} keeps the name. Fix: that package should register another name"
                )
                found[name] = builtin
        return found

    def names(self) -> list[str]:
        """Every registered plugin name in the group, sorted; imports nothing."""
        return sorted(set(self._declared()) | set(self._local))

    def plugins(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per name (in-process registrations win), sorted by name."""
        declared = self._declared()
        result = []
        for name in self.names():
            if name in self._local:
                result.append(self._local[name].info)
            else:
                result.extend(d.info for d in declared[name])
        return result

    # -- lookup ---------------------------------------------------------------------------------

    def _base_class(self) -> type[T]:
        module, _, attr = self.base.partition(":")
        return cast("type[T]", getattr(importlib.import_module(module), attr))

    def get(self, name: str) -> type[T]:
        """Import and return the plugin class registered as ``name``.

        Raises:
            PluginNotFoundError: if no plugin has that name (the message lists those that do).
            PluginConflictError: if two third-party packages declare the name differently (a
                built-in's name always stays the built-in's).
            PluginLoadError: if the plugin cannot be imported or is not a subclass of the
                group's base class.
        """
        if name in self._local:
            return cast("type[T]", self._local[name].obj)
        declared = self._declared()
        if name not in declared:
            raise PluginNotFoundError(self.kind, name, self.names())
        candidates = declared[name]
        if len(candidates) > 1:
            sources = "; ".join(f"{d.info.distribution} ({d.info.target})" for d in candidates)
            raise PluginConflictError(
                f"{self.kind} {name!r} is declared by several packages: {sources}. Fix: "
                f"uninstall one, or choose with register_{self.kind}({name!r}, cls, "
                "override=True)"
            )
        entry = candidates[0]
        assert entry.entry_point is not None
        try:
            obj = entry.entry_point.load()
        except (Exception, SystemExit) as error:  # a plugin's sys.exit must not end iclkit
            raise PluginLoadError(
                f"{self.kind} plugin {name!r} from {entry.info.distribution} could not be "
                f"imported from {entry.info.target}: {type(error).__name__}: {error}"
            ) from error
        self._check(name, obj)
        return cast("type[T]", obj)

    def _check(self, name: str, obj: Any) -> None:
        base = self._base_class()
        if not (inspect.isclass(obj) and issubclass(obj, base)):
            raise PluginLoadError(
                f"{self.kind} plugin {name!r} is {obj!r}, not a subclass of "
                f"{base.__module__}.{base.__qualname__}"
            )

    def create(self, spec: str | Mapping[str, Any] | T, **options: Any) -> T:
        """Return a component from an instance, a name, or a ``{"name": ..., **options}`` map.

        Options given both in the mapping and as keywords take the keyword's value. An
        instance is returned as it is (options are not allowed with it).

        Raises:
            PluginNotFoundError: for an unknown name.
            ConfigError: for options the plugin's constructor does not take, or a spec of the
                wrong type.
            PluginLoadError: if the plugin cannot be imported, or its constructor fails with
                an error that is not iclkit's own (or calls ``sys.exit``).
        """
        if isinstance(spec, str):
            name, merged = spec, dict(options)
        elif isinstance(spec, Mapping):
            merged = {k: v for k, v in spec.items() if k != "name"} | options
            if "name" not in spec:
                raise ConfigError(f"{self.kind} spec {dict(spec)!r} needs a 'name' key")
            name = str(spec["name"])
        elif isinstance(spec, self._base_class()):
            if options:
                raise ConfigError(
                    f"options {sorted(options)} cannot be applied to a ready {self.kind} "
                    "instance; pass them to its constructor"
                )
            return spec
        else:
            raise ConfigError(
                f"a {self.kind} must be a name, a {{'name': ...}} mapping or an instance, "
                f"got {type(spec).__name__}"
            )
        cls = self.get(name)
        accepted = _accepted_options(cls)
        if accepted is not None:
            unknown = sorted(set(merged) - accepted)
            if unknown:
                takes = ", ".join(sorted(accepted)) or "no options"
                raise ConfigError(
                    f"{self.kind} {name!r} does not take option(s) {', '.join(unknown)}; "
                    f"it takes: {takes}"
                )
        try:
            return cls(**merged)
        except IclkitError:
            raise
        except TypeError as error:
            raise ConfigError(f"{self.kind} {name!r}: {error}") from error
        except (Exception, SystemExit) as error:
            raise PluginLoadError(
                f"{self.kind} plugin {name!r} ({_target(cls)}) failed when constructed: "
                f"{type(error).__name__}: {error}"
            ) from error

    # -- in-process registration ----------------------------------------------------------------

    def register(self, name: str, plugin: type[T], *, override: bool = False) -> type[T]:
        """Register ``plugin`` as ``name`` for this process; returns it (usable as decorator).

        Raises:
            PluginConflictError: if the name is taken and ``override`` is false.
            PluginLoadError: if ``plugin`` is not a subclass of the group's base class.
        """
        self._check(name, plugin)
        if not override and name in self.names():
            raise PluginConflictError(
                f"{self.kind} {name!r} is already registered; pass override=True to replace it"
            )
        info = PluginInfo(
            group=self.group,
            name=name,
            target=_target(plugin),
            distribution=None,
            version=None,
        )
        self._local[name] = _Declared(info, None, plugin)
        return plugin

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (installed entry points stay).

        Raises:
            PluginNotFoundError: if ``name`` was not registered in-process.
        """
        if name not in self._local:
            raise PluginNotFoundError(self.kind, name, self._local)
        del self._local[name]


def _target(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _accepted_options(cls: type) -> set[str] | None:
    """Keyword names the constructor takes, or ``None`` if it takes ``**kwargs``."""
    parameters = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


selectors: Registry[Selector] = Registry(
    "iclkit.selectors", "selector", "iclkit.selectors.base:Selector"
)
orderers: Registry[Orderer] = Registry("iclkit.orderers", "orderer", "iclkit.orderers.base:Orderer")
formatters: Registry[Formatter] = Registry(
    "iclkit.formatters", "formatter", "iclkit.formatters.base:Formatter"
)
backends: Registry[Backend] = Registry("iclkit.backends", "backend", "iclkit.backends.base:Backend")
methods: Registry[Method] = Registry("iclkit.methods", "method", "iclkit.methods.base:Method")
calibrators: Registry[Calibrator] = Registry(
    "iclkit.calibrators", "calibrator", "iclkit.calibrators.base:Calibrator"
)

GROUPS: dict[str, Registry[Any]] = {
    "selectors": selectors,
    "orderers": orderers,
    "formatters": formatters,
    "backends": backends,
    "methods": methods,
    "calibrators": calibrators,
}

register_selector = selectors.register
register_orderer = orderers.register
register_formatter = formatters.register
register_backend = backends.register
register_method = methods.register
register_calibrator = calibrators.register
