"""The ``text`` formatter: demonstrations rendered through one named-field template."""

from __future__ import annotations

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

    Raises:
        TemplateError: if the template lacks ``{output}`` or has it more than once.
    """

    def __init__(
        self,
        template: str = "Input: {input}\nOutput: {output}",
        separator: str = "\n\n",
        verbalizer: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(verbalizer)
        self.template = template
        self.separator = separator
        self._template = Template(template)
        if self._template.fields.count("output") != 1:
            raise TemplateError(
                f"template {template!r} must contain {{output}} exactly once: it marks where "
                "the label goes in demonstrations and where the answer starts for the query"
            )

    def format(
        self,
        query: Example,
        demonstrations: Sequence[Demonstration],
        instruction: str | None = None,
    ) -> Prompt:
        """Render the completion prompt (see the class docstring)."""
        blocks = [
            self._template.render(
                {**d.example.fields(), "output": self.verbalize(d.example.output)}
            )
            for d in demonstrations
        ]
        filled = self._template.render({**query.fields(), "output": _ANSWER})
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
