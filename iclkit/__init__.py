"""iclkit: in-context learning toolkit.

Build zero-, one- and few-shot prompts from a demonstration pool with pluggable selectors,
orderers and formatters::

    from iclkit import Pool, PromptBuilder

    pool = Pool.from_records([{"text": "great film", "label": "positive"}, ...])
    builder = PromptBuilder(selector="balanced", k=4).fit(pool)
    print(builder.build("a moving, funny story").text)

An application predicts with :class:`ICLClassifier`, a scikit-learn estimator built from the
same :class:`PipelineSpec` an experiment grid cell is (``iclkit tune`` picks and saves one).
"""

from typing import TYPE_CHECKING, Any

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
    register_calibrator,
    register_formatter,
    register_orderer,
    register_selector,
)
from iclkit.selectors.base import Selection, Selector
from iclkit.spec import ClassifierSpec, PipelineSpec

if TYPE_CHECKING:
    from iclkit.classifier import ICLClassifier


def __getattr__(name: str) -> Any:
    """Import :class:`ICLClassifier` (and scikit-learn) on first use."""
    if name == "ICLClassifier":
        from iclkit.classifier import ICLClassifier

        return ICLClassifier
    raise AttributeError(f"module 'iclkit' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "ClassifierSpec",
    "ConfigError",
    "DataError",
    "Demonstration",
    "Example",
    "Formatter",
    "ICLClassifier",
    "IclkitError",
    "Message",
    "NotFittedError",
    "Orderer",
    "PipelineSpec",
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
    "register_calibrator",
    "register_formatter",
    "register_orderer",
    "register_selector",
    "whitespace_length",
]
