"""Reading YAML safely: PyYAML's safe loader, bounded, with duplicate keys refused.

``yaml.safe_load`` builds no objects but plain data, yet a small file can still ask for a
great deal: aliases that expand into each other ("billion laughs") or thousands of nested
brackets. Before anything is built, the document's events are walked once (no recursion) and
refused if it nests deeper than :data:`MAX_DEPTH` or holds more than :data:`MAX_VALUES` values
once every alias is expanded. A key written twice in one mapping is an error, not a silent
"the last one wins". Every problem is one :class:`~iclkit.errors.ConfigError` naming the
source and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)
from yaml.nodes import MappingNode

from iclkit.errors import ConfigError
from iclkit.text_files import read_text, short_repr

#: The deepest nesting of lists and mappings a YAML document may have.
MAX_DEPTH = 50
#: The most values (scalars, lists and mappings) a document may hold with its aliases expanded.
MAX_VALUES = 100_000

_MERGE = "tag:yaml.org,2002:merge"


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # `<<: *base` merges may override keys, as YAML intends
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if earlier is not None:
                raise ConstructorError(
                    problem=f"the key {short_repr(key)} is written twice (first on line "
                    f"{earlier}); keep one",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _line(event: Event) -> int | str:
    return "?" if event.start_mark is None else int(event.start_mark.line) + 1


def _check_size(text: str, source: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or larger than MAX_VALUES expanded."""
    expanded: dict[str, int] = {}  # anchor -> values its node stands for
    open_counts: list[tuple[str | None, int]] = []  # per open collection: anchor, values so far
    total = 0

    def add(count: int, event: Event) -> None:
        nonlocal total
        if open_counts:
            anchor, so_far = open_counts[-1]
            open_counts[-1] = (anchor, so_far + count)
            size = so_far + count
        else:
            total += count
            size = total
        if size > MAX_VALUES:
            raise ConfigError(
                f"{source}:{_line(event)}: the YAML holds more than {MAX_VALUES:,} values once "
                "its aliases (*name) are expanded. Fix: write the values out, or use fewer "
                "aliases of aliases"
            )

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, CollectionStartEvent):
            open_counts.append((event.anchor, 1))
            if len(open_counts) > MAX_DEPTH:
                raise ConfigError(
                    f"{source}:{_line(event)}: the YAML nests lists/mappings more than "
                    f"{MAX_DEPTH} levels deep. Fix: flatten it"
                )
        elif isinstance(event, CollectionEndEvent):
            anchor, count = open_counts.pop()
            if anchor is not None:
                expanded[anchor] = count
            add(count, event)
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                expanded[event.anchor] = 1
            add(1, event)
        elif isinstance(event, AliasEvent):
            add(expanded.get(event.anchor or "", 1), event)  # an unknown alias fails later


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML ``text`` with the safe loader (see the module docstring).

    ``source`` names the text in messages (a file path, or e.g. ``--option``).

    Raises:
        ConfigError: for a syntax error, a duplicate key, nesting deeper than
            :data:`MAX_DEPTH` or more than :data:`MAX_VALUES` values, naming the line.
    """
    try:
        _check_size(text, source)
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = error.problem or "malformed"
        if isinstance(error, ConstructorError) and "written twice" in problem:
            raise ConfigError(f"{where}: {problem}") from None
        raise ConfigError(f"{where}: not valid YAML: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None


def load_yaml(path: str | Path) -> Any:
    """Read a UTF-8 YAML file (a byte order mark is allowed) with :func:`load_yaml_text`.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the file is not UTF-8 (naming the line and the byte).
        ConfigError: as :func:`load_yaml_text`.
    """
    return load_yaml_text(read_text(path), str(path))
