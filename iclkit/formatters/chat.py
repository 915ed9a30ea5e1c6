"""The ``chat`` formatter: one user/assistant turn per demonstration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from iclkit.errors import TemplateError
from iclkit.example import Example
from iclkit.formatters.base import Formatter
from iclkit.formatters.template import Template
from iclkit.prompt import Demonstration, Message, Prompt


class ChatFormatter(Formatter):
    """A chat prompt: instruction, one user/assistant turn per demonstration, then the query.

    The system message holds the instruction; each demonstration is a user turn
    (``input_template`` filled) and an assistant turn (the verbalized label); the query is the
    last user turn.

    ``text`` is the same conversation as a plain transcript (``"user: ...\\nassistant: ..."``,
    ending in ``"assistant:"``) for completion-only backends.

    Raises:
        TemplateError: if ``input_template`` uses ``{output}``.
    """

    def __init__(
        self,
        input_template: str = "{input}",
        verbalizer: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(verbalizer)
        self.input_template = input_template
        self._template = Template(input_template)
        if "output" in self._template.fields:
            raise TemplateError(
                f"input_template {input_template!r} must not contain {{output}}: in a chat "
                "prompt the label is the assistant's turn"
            )

    def format(
        self,
        query: Example,
        demonstrations: Sequence[Demonstration],
        instruction: str | None = None,
    ) -> Prompt:
        """Render the chat prompt (see the class docstring)."""
        messages: list[Message] = []
        if instruction:
            messages.append(Message(role="system", content=instruction))
        for demo in demonstrations:
            messages.append(
                Message(role="user", content=self._template.render(demo.example.fields()))
            )
            messages.append(Message(role="assistant", content=self.verbalize(demo.example.output)))
        messages.append(Message(role="user", content=self._template.render(query.fields())))
        transcript = "\n".join(f"{m.role}: {m.content}" for m in messages) + "\nassistant:"
        return Prompt(
            text=transcript,
            messages=tuple(messages),
            query=query,
            demonstrations=tuple(demonstrations),
            instruction=instruction,
            answer_prefix=" ",
        )
