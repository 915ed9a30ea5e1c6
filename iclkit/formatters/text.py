"""The ``text`` formatter: demonstrations rendered through one named-field template."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

from iclkit.errors import TemplateError
from iclkit.example import Example
from iclkit.formatters.base import Formatter
from iclkit.formatters.template import Template
from iclkit.prompt import Demonstration, Message, Prompt

_ANSWER = "\x00iclkit-answer\x00"


class TextFormatter(Formatter):
    """A completion-style prompt: instruction, demonstrations, then the query.

    Each demonstration is ``template`` filled with its fields and ``{output}`` (the verbalized
    label); demonstrations are joined by ``separator``. The query is the template cut right
    before ``{output}``; the spaces cut there become the prompt's ``answer_prefix``. The
    instruction, when given, comes first, followed by ``separator``. ``messages`` holds the same
    text as one user message.

    Chain-of-thought: with ``rationale_field`` (e.g. ``"rationale"``), each demonstration also
    fills ``{rationale}`` (its field of that name, from the pool's extra fields) and the query
    is cut before ``{rationale}`` instead, so that the model writes its reasoning and then the
    answer: ``"Q: {text}\nA: {rationale} So the answer is {output}."``. The template text
    between the two fields (``"So the answer is"``) is :attr:`answer_marker`, where generation
    methods look for the answer.

    Raises:
        TemplateError: if the template lacks ``{output}`` or has it more than once, or lacks
            ``{rationale_field}`` or has it after ``{output}``.
    """

    def __init__(
        self,
        template: str = "Input: {input}\nOutput: {output}",
        separator: str = "\n\n",
        verbalizer: Mapping[str, str] | None = None,
        rationale_field: str | None = None,
    ) -> None:
        super().__init__(verbalizer)
        self.template = template
        self.separator = separator
        self.rationale_field = rationale_field
        self._template = Template(template)
        fields = self._template.fields
        if fields.count("output") != 1:
            raise TemplateError(
                f"template {template!r} must contain {{output}} exactly once: it marks where "
                "the label goes in demonstrations and where the answer starts for the query"
            )
        self.answer_marker: str | None = None
        if rationale_field is not None:
            if fields.count(rationale_field) != 1 or (
                fields.index(rationale_field) > fields.index("output")
            ):
                raise TemplateError(
                    f"template {template!r} must contain {{{rationale_field}}} once, before "
                    f"{{output}}, for rationale_field={rationale_field!r}"
                )
            self.answer_marker = _between(template, rationale_field, "output").strip() or None

    def format(
        self,
        query: Example,
        demonstrations: Sequence[Demonstration],
        instruction: str | None = None,
    ) -> Prompt:
        """Render the completion prompt (see the class docstring)."""
        blocks = [
            self._template.render(
                {
                    **self._rationale(d.example),
                    **d.example.fields(),
                    "output": self.verbalize(d.example.output),
                }
            )
            for d in demonstrations
        ]
        answer = {"output": _ANSWER}
        if self.rationale_field is not None:
            answer = {self.rationale_field: _ANSWER, "output": ""}
        filled = self._template.render({**query.fields(), **answer})
        head = filled.split(_ANSWER)[0]
        query_text = head.rstrip(" ")
        blocks.append(query_text)
        if instruction:
            blocks.insert(0, instruction)
        text = self.separator.join(blocks)
        return Prompt(
            text=text,
            messages=(Message(role="user", content=text),),
            query=query,
            demonstrations=tuple(demonstrations),
            instruction=instruction,
            answer_prefix=head[len(query_text) :],
        )

    def _rationale(self, example: Example) -> dict[str, str]:
        """``{rationale_field: the example's rationale}`` (empty without ``rationale_field``).

        Raises:
            TemplateError: if the example has no such field.
        """
        if self.rationale_field is None:
            return {}
        value = example.metadata.get(self.rationale_field)
        if value is None:
            raise TemplateError(
                f"demonstration {example.id or example.text[:40]!r} has no "
                f"{self.rationale_field!r} field; chain-of-thought demonstrations need one. "
                "Fix: add it to every pool record"
            )
        return {self.rationale_field: str(value)}


def _between(template: str, first: str, second: str) -> str:
    """The literal template text between the fields ``{first}`` and ``{second}``."""
    text, inside = [], False
    for literal, field, _, _ in string.Formatter().parse(template):
        if inside:
            text.append(literal)
        if field == first:
            inside = True
        elif field == second:
            break
    return "".join(text)
