"""Map generated text into the label space (answer parsing)."""

from __future__ import annotations

import re

from iclkit.inference.labels import LabelSpace


def parse_answer(text: str, space: LabelSpace) -> str | None:
    """The raw label whose word the generated ``text`` gives as its answer, or ``None``.

    Matching ignores case and surrounding whitespace and punctuation. The answer is the label
    whose word the text starts with (the longest such word wins, so ``"very positive"`` beats
    ``"positive"``); failing that, the label whose word occurs earliest as a whole word.
    """
    answer = text.strip().lower()
    by_length = sorted(zip(space.words, space.labels, strict=True), key=lambda p: -len(p[0]))
    for word, label in by_length:
        if re.match(rf"\W*{re.escape(word.lower())}(?!\w)", answer):
            return label
    found = []
    for word, label in by_length:
        match = re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", answer)
        if match:
            found.append((match.start(), -len(word), label))
    return min(found)[2] if found else None


def parse_reasoned(text: str, space: LabelSpace, marker: str | None) -> str | None:
    """The label a chain-of-thought answer gives after its last ``marker``, or ``None``.

    With ``marker`` (``"So the answer is"``, matched ignoring case) the answer is what
    follows its last occurrence, parsed by :func:`parse_answer`; text without the marker has
    no answer. Without ``marker`` the whole text is parsed.
    """
    if marker is None:
        return parse_answer(text, space)
    position = text.lower().rfind(marker.lower())
    if position < 0:
        return None
    return parse_answer(text[position + len(marker) :], space)
