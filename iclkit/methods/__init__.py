"""Methods: plugins that read a label for each prompt off a backend.

Built in: ``loglik`` and ``loglik-norm`` (label log-likelihood, summed or per token) and
``generate`` (generate and parse the answer). Third-party methods register under the
``iclkit.methods`` entry-point group, like every other component; a pipeline names one in
``classifier.method``.
"""

from iclkit.methods.base import Method, Scorer
from iclkit.methods.generation import GenerateMethod
from iclkit.methods.likelihood import LoglikMethod, LoglikNormMethod

__all__ = ["GenerateMethod", "LoglikMethod", "LoglikNormMethod", "Method", "Scorer"]
