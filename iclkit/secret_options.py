"""Which component options are secrets, and how they are kept out of everything iclkit writes.

An option is a secret when its name says so (``api_key``, ``openai_api_key``, ``token``,
``access_token``, ``secret``, ``password``, ...). A :class:`~iclkit.spec.PipelineSpec` moves
such options out of its fields when it is made: they are handed to the component's constructor
and to nothing else, so they are never part of a spec's identity (a grid cell's id), its JSON
form, a saved classifier, a results file, a table or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SECRET_NAME = re.compile(r"(^|_)(api_?key|token|secret|password|passwd)$", re.IGNORECASE)
#: What a secret value is shown as, wherever a value would be shown.
REDACTED = "<redacted>"


def is_secret(name: str) -> bool:
    """Whether an option called ``name`` holds a secret (``api_key``, ``hf_token``, ...)."""
    return bool(_SECRET_NAME.search(name))


def split_secrets(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` split into (public options, secret options) by :func:`is_secret`."""
    public = {key: value for key, value in options.items() if not is_secret(str(key))}
    hidden = {key: value for key, value in options.items() if is_secret(str(key))}
    return public, hidden


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with every secret option's value replaced by :data:`REDACTED`.

    Mappings and lists are walked (to a bounded depth); other values are returned as they are.
    """
    if depth > 50:
        return "..."
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret(str(key)) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, depth + 1) for item in value]
    return value
