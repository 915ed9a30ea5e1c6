"""Named-field prompt templates (``str.format`` syntax) with clear errors."""

from __future__ import annotations

import string
from collections.abc import Mapping

from iclkit.errors import TemplateError


class Template:
    """A ``str.format`` template whose fields are example fields, e.g. ``"Review: {text}"``.

    ``{input}`` is every example's whole input; a mapping input also offers each of its named
    fields. ``{output}`` is the verbalized label. Literal braces are written ``{{`` and ``}}``.

    Raises:
        TemplateError: if the template is not valid ``str.format`` syntax or uses positional
            fields such as ``{}``.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as error:
            raise TemplateError(
                f"template {source!r} is malformed ({error}); "
                "write fields as {name} and literal braces as {{ and }}"
            ) from None
        names = []
        for _, field, _, _ in parsed:
            if field is None:
                continue
            base = field.split(".")[0].split("[")[0]
            if not base or base.isdigit():
                raise TemplateError(
                    f"template {source!r} has a positional field {{{field}}}; "
                    "name every field, e.g. {text} or {output}"
                )
            names.append(base)
        self.fields: tuple[str, ...] = tuple(names)

    def render(self, values: Mapping[str, str]) -> str:
        """Fill the template from ``values``.

        Raises:
            TemplateError: naming the first field the values lack, the fields they have, and
                the template.
        """
        missing = [name for name in self.fields if name not in values]
        if missing:
            available = ", ".join(sorted(values))
            raise TemplateError(
                f"template field {{{missing[0]}}} is not in the example (it has: {available}); "
                f"template: {self.source!r}. Fix: use one of the example's fields, or map the "
                "data with --input-field/--output-field"
            )
        try:
            return self.source.format_map(values)
        except (AttributeError, IndexError, KeyError, ValueError) as error:
            raise TemplateError(f"template {self.source!r} cannot be filled: {error}") from None
