"""Named-field prompt templates: ``{field}`` placeholders and literal text, nothing else.

The syntax is the plain subset of ``str.format``: ``{name}`` is replaced by the field's text,
and ``{{`` / ``}}`` are literal braces. Attribute or index access (``{text.upper}``,
``{text[0]}``), conversions (``{text!r}``) and format specs (``{text:>20}``) are refused when
the template is made, so a template can neither reach into Python objects nor ask for a
huge padded string. Rendering only joins literal text and field values.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from iclkit.errors import TemplateError
from iclkit.text_files import short_repr

_FIX = "write fields as {name} and literal braces as {{ and }}"


class Template:
    """A template whose fields are example fields, e.g. ``"Review: {text}"``.

    ``{input}`` is every example's whole input; a mapping input also offers each of its named
    fields. ``{output}`` is the verbalized label. Literal braces are written ``{{`` and ``}}``.
    A field is a plain name: no ``.`` or ``[]`` access, no ``!`` conversion, no ``:`` format
    spec, not a number.

    Raises:
        TemplateError: if the template is not valid template syntax, or a field is not a
            plain name.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        shown = short_repr(source)
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as error:
            raise TemplateError(f"template {shown} is malformed ({error}); {_FIX}") from None
        self._parts: list[tuple[str, str | None]] = []
        for literal, field, spec, conversion in parsed:
            if field is not None:
                written = "{" + field + (f"!{conversion}" if conversion else "")
                written += (f":{spec}" if spec else "") + "}"
                if not field or field.isdigit():
                    raise TemplateError(
                        f"template {shown} has a positional field {short_repr(written)}; "
                        "name every field, e.g. {text} or {output}"
                    )
                if conversion or spec or any(mark in field for mark in ".[]"):
                    raise TemplateError(
                        f"template {shown} has the field {short_repr(written)}, which is not a "
                        "plain field name (no attribute or index access, conversion or format "
                        f"spec); {_FIX}"
                    )
            self._parts.append((literal, field))
        self.fields: tuple[str, ...] = tuple(f for _, f in self._parts if f is not None)

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
                f"template: {short_repr(self.source)}. Fix: use one of the example's fields, "
                "or map the data with --input-field/--output-field"
            )
        return "".join(
            literal + (values[field] if field is not None else "") for literal, field in self._parts
        )
