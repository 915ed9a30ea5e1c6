r"""Inference on top of any backend: prompts in, label predictions out.

Classification by label log-likelihood::

    from iclkit.inference import LikelihoodClassifier
    from iclkit.metrics import accuracy

    labels = {"0": "negative", "1": "positive"}
    builder = PromptBuilder(selector="random", k=4, formatter={"name": "text",
        "template": "Review: {input}\nSentiment: {output}", "verbalizer": labels}).fit(pool)
    prompts = builder.build_batch(queries)
    classifier = LikelihoodClassifier("local", labels, calibration="contextual")
    predictions = classifier.predict(prompts, builder)   # list[Prediction]
    accuracy([q.output for q in queries], [p.label for p in predictions])

Most applications use :class:`iclkit.ICLClassifier`, which puts the builder and these
classifiers together from one :class:`~iclkit.spec.PipelineSpec`. The pieces:

* :class:`LabelSpace` – raw labels and their words; ``labels`` arguments take a list of
  labels or a ``{label: word}`` verbalizer.
* :class:`LikelihoodClassifier` – scores ``prompt.answer_prefix + word`` for each label
  through :meth:`Backend.score`; ``method="loglik"`` (summed log-likelihood) or
  ``"loglik-norm"`` (mean per token); ``calibration`` names a calibrator plugin
  (:mod:`iclkit.calibrators`, e.g. ``"contextual"``, Zhao et al. 2021).
* :class:`GenerationClassifier` – generates an answer with :meth:`Backend.generate` and maps
  it into the label space with :func:`parse_answer` (for backends without log-probabilities).
* :class:`Prediction` – ``label``, ``probabilities`` (calibrated when asked),
  ``scores`` (raw :class:`ContinuationScore` per label), ``text`` (generation) and the
  ``prompt`` with its demonstrations.
* :func:`label_probabilities` – softmax over label scores.

Backends are given as instances, registered names or ``{"name": ..., **options}`` mappings
(``{"name": "openai", "base_url": ..., "model": ...}``).
"""

from iclkit.inference.classify import GenerationClassifier, LikelihoodClassifier
from iclkit.inference.labels import LabelSpace, LabelSpec, ScoreMethod, label_probabilities
from iclkit.inference.parsing import parse_answer, parse_reasoned
from iclkit.inference.prediction import Prediction

__all__ = [
    "GenerationClassifier",
    "LabelSpace",
    "LabelSpec",
    "LikelihoodClassifier",
    "Prediction",
    "ScoreMethod",
    "label_probabilities",
    "parse_answer",
    "parse_reasoned",
]
