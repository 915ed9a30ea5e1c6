"""Methods: plugins that read a label for each prompt off a backend (or off the pool).

Built in: ``loglik`` and ``loglik-norm`` (label log-likelihood, summed or per token),
``generate`` (generate and parse the answer), ``self-consistency`` (a vote of sampled,
optionally chain-of-thought answers), ``ensemble`` (averaged over demonstration sets and
orders), ``interpolate`` (the model's label distribution mixed with a nearest-neighbour
vote), ``knn-prompting`` (the nearest pool examples in the model's next-token-distribution
space), and the baselines without a model, ``majority`` and ``knn-vote``. Third-party methods
register under the ``iclkit.methods`` entry-point group, like every other component; a
pipeline names one in ``classifier.method``.
"""

from iclkit.methods.base import Method, Scorer
from iclkit.methods.combination import EnsembleMethod, InterpolateMethod
from iclkit.methods.generation import GenerateMethod, SelfConsistencyMethod
from iclkit.methods.knn_prompting import KNNPromptingMethod
from iclkit.methods.likelihood import LoglikMethod, LoglikNormMethod
from iclkit.methods.voting import KNNVoteMethod, MajorityMethod

__all__ = [
    "EnsembleMethod",
    "GenerateMethod",
    "InterpolateMethod",
    "KNNPromptingMethod",
    "KNNVoteMethod",
    "LoglikMethod",
    "LoglikNormMethod",
    "MajorityMethod",
    "Method",
    "Scorer",
    "SelfConsistencyMethod",
]
