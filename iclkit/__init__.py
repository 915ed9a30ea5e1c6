"""iclkit: in-context learning toolkit.

Build zero-, one- and few-shot prompts from a demonstration pool with pluggable selectors,
orderers and formatters::

    from iclkit import Pool, PromptBuilder

    pool = Pool.from_records([{"text": "great film", "label": "positive"}, ...])
    builder = PromptBuilder(selector="balanced", k=4).fit(pool)
    print(builder.build("a moving, funny story").text)
"""

from iclkit import _unreadable_metadata  # noqa: F401 - before the first pydantic model
from iclkit._version import __version__
from iclkit.builder import PromptBuilder, whitespace_length
from iclkit.errors import (
    BackendError,
    ConfigError,
    DataError,
    IclkitError,
    NotFittedError,
    PluginConflictError,
    PluginError,
    PluginLoadError,
    PluginNotFoundError,
    SelectionError,
    TemplateError,
    TokenBudgetError,
)
from iclkit.example import Example
from iclkit.formatters.base import Formatter
from iclkit.orderers.base import Orderer
from iclkit.pool import Pool
from iclkit.prompt import Demonstration, Message, Prompt
from iclkit.registry import (
    PluginInfo,
    register_backend,
    register_formatter,
    register_orderer,
    register_selector,
)
from iclkit.selectors.base import Selection, Selector

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "Demonstration",
    "Example",
    "Formatter",
    "IclkitError",
    "Message",
    "NotFittedError",
    "Orderer",
    "PluginConflictError",
    "PluginError",
    "PluginInfo",
    "PluginLoadError",
    "PluginNotFoundError",
    "Pool",
    "Prompt",
    "PromptBuilder",
    "Selection",
    "SelectionError",
    "Selector",
    "TemplateError",
    "TokenBudgetError",
    "__version__",
    "register_backend",
    "register_formatter",
    "register_orderer",
    "register_selector",
    "whitespace_length",
]
