"""Keep an installed package with unreadable entry-point metadata from breaking ``import iclkit``.

pydantic looks up its own plugins with :func:`importlib.metadata.entry_points` when iclkit
defines its first model, and that call raises if any installed distribution has an
``entry_points.txt`` it cannot parse. When the lookup fails, pydantic's plugins are turned
off for this process (``PYDANTIC_DISABLE_PLUGINS``; they could not be loaded anyway), and
:mod:`iclkit.registry` skips the broken distribution with a warning naming it.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points


def _entry_points_readable() -> bool:
    try:
        entry_points(group="pydantic")
    except Exception:
        return False
    return True


if "PYDANTIC_DISABLE_PLUGINS" not in os.environ and not _entry_points_readable():
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
