r"""Inference on top of any backend: prompts in, label predictions out.

Classification by label log-likelihood::

    from iclkit.inference import LikelihoodClassifier, accuracy

    builder = PromptBuilder(selector="random", k=4, formatter={"name": "text",
        "template": "Review: {input}\nSentiment: {output}",
        "verbalizer": {"0": "negative", "1": "positive"}}).fit(pool)
    prompts = builder.build_batch(queries)
    classifier = LikelihoodClassifier("local", {"0": "negative", "1": "positive"},
        method="acc", calibration="contextual", formatter=builder.formatter_)
    predictions = classifier.predict(prompts)        # list[Prediction]
    accuracy(predictions, [q.output for q in queries])

The pieces:

* :class:`LabelSpace` – raw labels and their words; ``labels`` arguments take a list of
  labels or a ``{label: word}`` verbalizer.
* :class:`LikelihoodClassifier` – scores ``prompt.answer_prefix + word`` for each label
  through :meth:`Backend.score`; ``method="acc"`` (summed log-likelihood) or ``"acc_norm"``
  (mean per token); ``calibration="contextual"`` divides out the label bias measured with
  content-free inputs (Zhao et al. 2021).
* :class:`GenerationClassifier` – generates an answer with :meth:`Backend.generate` and maps
  it into the label space with :func:`parse_answer` (for backends without log-probabilities).
* :class:`Prediction` – ``label``, ``probabilities`` (calibrated when asked),
  ``scores`` (raw :class:`ContinuationScore` per label), ``text`` (generation);
  :func:`accuracy` compares predictions with gold labels.
* Building blocks: :func:`label_probabilities`, :func:`content_free_prompts`,
  :func:`contextual_bias`, :func:`score_with_bias`, :func:`calibrate`,
  :data:`CONTENT_FREE`.

Backends are given as instances, registered names or ``{"name": ..., **options}`` mappings
(``{"name": "openai", "base_url": ..., "model": ...}``).
"""

from iclkit.inference.calibration import (
    CONTENT_FREE,
    Method,
    calibrate,
    content_free_prompts,
    contextual_bias,
    label_probabilities,
    score_with_bias,
)
from iclkit.inference.classify import GenerationClassifier, LikelihoodClassifier
from iclkit.inference.labels import LabelSpace, LabelSpec
from iclkit.inference.parsing import parse_answer
from iclkit.inference.prediction import Prediction, accuracy

__all__ = [
    "CONTENT_FREE",
    "GenerationClassifier",
    "LabelSpace",
    "LabelSpec",
    "LikelihoodClassifier",
    "Method",
    "Prediction",
    "accuracy",
    "calibrate",
    "content_free_prompts",
    "contextual_bias",
    "label_probabilities",
    "parse_answer",
    "score_with_bias",
]
