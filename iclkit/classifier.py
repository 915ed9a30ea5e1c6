"""``ICLClassifier``: an in-context-learning pipeline as a scikit-learn classifier.

::

    from iclkit import ICLClassifier

    clf = ICLClassifier(
        selector="knn", k=4, labels={"0": "negative", "1": "positive"},
        formatter={"name": "text", "template": "Review: {text}\\nSentiment: {output}"},
    )
    clf.fit(texts, labels)                  # or clf.fit(pool)
    clf.predict(["a moving, funny film"])   # array(['1'], dtype=object)
    clf.save("models/sentiment")
    ICLClassifier.load("models/sentiment").predict_proba(["dull"])

The constructor only stores its keywords, the fields of a :class:`~iclkit.spec.PipelineSpec`
(scikit-learn's rule, so ``get_params``, ``set_params``, ``clone``, ``cross_val_score`` and
``Pipeline`` work); :meth:`ICLClassifier.fit` validates them into ``spec_``, keeps the pool,
fits the selector (embedding the pool, for similarity selectors) and opens the backend.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from iclkit.errors import ConfigError, DataError, NotFittedError
from iclkit.example import Example
from iclkit.pool import Pool
from iclkit.secret_options import redact
from iclkit.spec import COMPONENT_FIELDS, PipelineSpec, validate_spec

if TYPE_CHECKING:
    from typing_extensions import Self

    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.experiment.executors import Executor
    from iclkit.inference.prediction import Prediction
    from iclkit.methods.base import Scorer

#: Queries built and scored per step of :meth:`ICLClassifier.predict_detailed`.
STEP = 256
#: Queries per task when an executor spreads :meth:`ICLClassifier.predict_detailed`.
WORKER_STEP = 32


def as_inputs(X: Any) -> list[Any]:
    """The inputs of ``X``: a list of strings, field mappings or :class:`Example` s.

    ``X`` is a sequence or array of strings, a sequence of mappings, a pandas DataFrame (one
    input field per column) or a :class:`Pool`.

    Raises:
        ConfigError: if ``X`` is a single string (wrap it in a list) or not a sequence.
    """
    if isinstance(X, str | bytes):
        raise ConfigError(
            "X must be a list of inputs, not a single string. Fix: wrap it, predict([text])"
        )
    if isinstance(X, Pool):
        return list(X)
    if hasattr(X, "columns") and hasattr(X, "to_dict"):
        return list(X.to_dict(orient="records"))
    if hasattr(X, "tolist"):
        X = X.tolist()
    try:
        return list(X)
    except TypeError:
        raise ConfigError(
            f"X must be a sequence of inputs (strings or field mappings), got {type(X).__name__}"
        ) from None


class ICLClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier that predicts by in-context learning: a scikit-learn estimator.

    Every keyword is a field of :class:`~iclkit.spec.PipelineSpec` (the same names as an
    experiment config's ``pipeline`` section): ``labels`` (``None``: the labels seen in
    :meth:`fit`, each its own word; a list; or a ``{label: word}`` verbalizer), ``selector``,
    ``orderer``, ``formatter``, ``k``, ``seed``, ``instruction``, ``token_budget``,
    ``backend`` and ``classifier`` (``{"method": ..., "calibration": ...}``). ``verbose``
    shows a progress bar for long predictions.

    Fitted attributes: ``spec_``, ``classes_`` (the labels, in label-space order; the columns
    of :meth:`predict_proba`), ``pool_``, ``builder_`` and ``backend_``.

    Secret options (``backend={"name": "openai", "api_key": ...}``) reach the backend and
    nothing else: they are not in ``spec_``, a saved folder, or the repr.
    """

    def __init__(
        self,
        *,
        labels: Sequence[str] | Mapping[str, str] | None = None,
        selector: str | Mapping[str, Any] = "random",
        orderer: str | Mapping[str, Any] = "as-selected",
        formatter: str | Mapping[str, Any] = "text",
        k: int = 4,
        seed: int | None = None,
        instruction: str | None = None,
        token_budget: int | None = None,
        backend: str | Mapping[str, Any] = "local",
        classifier: Mapping[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.labels = labels
        self.selector = selector
        self.orderer = orderer
        self.formatter = formatter
        self.k = k
        self.seed = seed
        self.instruction = instruction
        self.token_budget = token_budget
        self.backend = backend
        self.classifier = classifier
        self.verbose = verbose

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: PipelineSpec | Mapping[str, Any], **options: Any) -> ICLClassifier:
        """A classifier with the fields of ``spec`` (a :class:`PipelineSpec` or its mapping).

        ``options`` are further keywords (``verbose``). A spec's secret options go with it.

        Raises:
            ConfigError: if ``spec`` is not a valid pipeline spec.
        """
        if not isinstance(spec, PipelineSpec):
            spec = validate_spec(spec)
        fields: dict[str, Any] = {
            name: spec.options(name) if name in COMPONENT_FIELDS else getattr(spec, name)
            for name in PipelineSpec.model_fields
        }
        fields["classifier"] = spec.classifier.model_dump(mode="json")
        return cls(**fields, **options)

    def _spec(self, seen: Sequence[str]) -> PipelineSpec:
        labels: Any = self.labels if self.labels is not None else sorted(set(seen))
        raw = {
            "labels": labels,
            "selector": self.selector,
            "orderer": self.orderer,
            "formatter": self.formatter,
            "k": self.k,
            "seed": self.seed,
            "instruction": self.instruction,
            "token_budget": self.token_budget,
            "backend": self.backend,
            "classifier": dict(self.classifier or {}),
        }
        return validate_spec(raw, source="ICLClassifier")

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> Self:
        """Keep the demonstration pool and fit the pipeline on it. Returns ``self``.

        ``X`` is a :class:`Pool` (``y`` then ``None``), or inputs (see :func:`as_inputs`)
        with their labels in ``y``.

        Raises:
            ConfigError: for an invalid pipeline keyword, or a label outside ``labels``.
            DataError: if ``X`` and ``y`` differ in length, or the pool is empty.
        """
        pool, classes = self._pool(X, y)
        self.spec_ = self._spec([str(c) for c in classes])
        unknown = sorted({str(c) for c in classes} - set(self.spec_.labels))
        if unknown:
            raise ConfigError(
                f"the training labels {unknown} are not in labels {list(self.spec_.labels)}. "
                "Fix: add them to labels, or leave labels=None to use the labels of y"
            )
        return self._attach(pool, classes, None)

    def _attach(self, pool: Pool, classes: Sequence[Any], restore: Path | None) -> Self:
        """Open the backend and fit the builder (from saved selector files with ``restore``)."""
        by_text = {str(c): c for c in classes}
        self.classes_ = np.array(
            [by_text.get(label, label) for label in self.spec_.labels], dtype=object
        )
        self.pool_ = pool
        self.backend_: Backend = self.spec_.create_backend()
        self.builder_: PromptBuilder = self.spec_.builder(self.backend_)
        self.builder_.allow_fewer = True
        self.builder_.fit(pool, restore_from=restore)
        self.scorer_: Scorer = self.spec_.scorer(self.backend_)
        return self

    @staticmethod
    def _pool(X: Any, y: Any) -> tuple[Pool, list[Any]]:
        if isinstance(X, Pool):
            if y is not None:
                raise ConfigError("fit(pool) takes the labels from the pool; pass y=None")
            return X, sorted(set(X.labels))
        if y is None:
            raise ConfigError(
                "fit needs labels: fit(X, y) with inputs X and labels y, or fit(pool)"
            )
        inputs = as_inputs(X)
        labels = as_inputs(y)
        if len(inputs) != len(labels):
            raise DataError(f"X has {len(inputs)} inputs but y has {len(labels)} labels")
        records = [_fields(value) for value in inputs]
        fields = list(records[0]) if records else ["text"]
        output = "label" if "label" not in fields else "output"
        key = "id" if "id" not in fields else "row_id"
        for row, (record, label) in enumerate(zip(records, labels, strict=True)):
            record[output], record[key] = str(label), f"fit-{row}"
        classes = sorted({_plain(label) for label in labels}, key=str)
        pool = Pool.from_records(
            records, input_fields=fields, output_field=output, id_field=key, source="fit(X, y)"
        )
        return pool, classes

    # -- prediction -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "builder_"):
            raise NotFittedError("ICLClassifier is not fitted; call .fit(X, y) or .fit(pool) first")

    def predict_detailed(self, X: Any, *, executor: Executor | None = None) -> list[Prediction]:
        """One :class:`~iclkit.inference.Prediction` per input, with its provenance.

        Each holds the label (as the pool stores it, a string), the label probabilities, the
        raw scores and the prompt with the demonstrations used (and those dropped to fit the
        token budget). Queries are built and scored in batches.

        ``executor`` (a :class:`~iclkit.experiment.executors.ProcessExecutor` or
        :class:`~iclkit.experiment.ray_executor.RayExecutor`) spreads the inputs over its
        workers, :data:`WORKER_STEP` per task: each worker fits a copy of this pipeline on
        the same pool once (loading the model, embedding the pool for similarity selectors)
        and the predictions come back in input order. Worth it when the inputs take much
        longer than that setup.

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            ConfigError: if ``X`` is not a sequence of inputs, or the executor refuses the
                pipeline's secret options.
            BackendError: if the backend fails.
        """
        from tqdm.auto import tqdm

        self._check_fitted()
        inputs = [
            value if isinstance(value, Example | str) else _fields(value) for value in as_inputs(X)
        ]
        step = STEP if executor is None else WORKER_STEP
        chunks = [inputs[start : start + step] for start in range(0, len(inputs), step)]
        bar = tqdm(total=len(chunks), desc="predicting", unit="batch", disable=not self.verbose)
        with bar:
            if executor is None:
                done = []
                for chunk in chunks:
                    done.append(
                        self.scorer_.predict(self.builder_.build_batch(chunk), self.builder_)
                    )
                    bar.update()
            else:
                results = {}
                shared = (self.spec_, self.pool_)
                secret = self.spec_.has_secrets
                for index, found in executor.map(
                    fitted_copy, shared, predict_chunk, chunks, secrets=secret
                ):
                    results[index] = found
                    bar.update()
                done = [results[index] for index in range(len(chunks))]
        return [prediction for chunk in done for prediction in chunk]

    def predict(self, X: Any, *, executor: Executor | None = None) -> npt.NDArray[Any]:
        """The predicted label of each input (``None`` where generated text names no label).

        ``executor`` spreads the work over worker processes or a Ray cluster (see
        :meth:`predict_detailed`).

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            ConfigError: if ``X`` is not a sequence of inputs.
            BackendError: if the backend fails.
        """
        by_text = {str(c): c for c in self.classes_} if hasattr(self, "classes_") else {}
        labels = [
            None if p.label is None else by_text.get(p.label, p.label)
            for p in self.predict_detailed(X, executor=executor)
        ]
        return np.array(labels, dtype=object)

    def predict_proba(self, X: Any, *, executor: Executor | None = None) -> npt.NDArray[np.float64]:
        """Label probabilities, one row per input, columns in ``classes_`` order.

        With a method that has no label probabilities (``generate``) a row is one-hot on the
        parsed answer (all zeros where it names no label). ``executor``: see
        :meth:`predict_detailed`.

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            BackendError: if the backend fails.
        """
        predictions = self.predict_detailed(X, executor=executor)
        labels = list(self.spec_.labels)
        rows = np.zeros((len(predictions), len(labels)))
        for row, prediction in zip(rows, predictions, strict=True):
            if prediction.probabilities:
                row[:] = [prediction.probabilities[label] for label in labels]
            elif prediction.label is not None:
                row[labels.index(prediction.label)] = 1.0
        return rows

    async def apredict(self, X: Any) -> npt.NDArray[Any]:
        """:meth:`predict` without blocking the event loop (for API backends in async apps).

        Raises:
            The same errors as :meth:`predict`.
        """
        return await asyncio.to_thread(self.predict, X)

    # -- persistence ----------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Save the fitted classifier into ``folder`` (see :mod:`iclkit.saved_model`).

        Raises:
            NotFittedError: if :meth:`fit` has not been called.
            ConfigError: if ``folder`` exists and is not a saved classifier.
        """
        from iclkit.saved_model import save_classifier

        self._check_fitted()
        return save_classifier(self, Path(folder))

    @classmethod
    def load(cls, folder: str | Path, **secrets: Any) -> ICLClassifier:
        """Load a classifier saved by :meth:`save`: no pool embedding, no index build.

        ``secrets`` are secret backend options the folder never holds (``api_key=...``;
        by default the backend reads its environment, e.g. ``OPENAI_API_KEY``).

        Raises:
            DataError: if the folder is not a saved classifier or is damaged.
            ConfigError: if it was saved by a newer iclkit, or with another embedder.
        """
        from iclkit.saved_model import load_classifier

        return load_classifier(Path(folder), secrets)

    # -- representation -------------------------------------------------------------------------

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """The constructor call with the non-default keywords; secret options redacted."""
        defaults = ICLClassifier().get_params()
        shown = [
            f"{key}={redact(value)!r}"
            for key, value in self.get_params().items()
            if value != defaults[key]
        ]
        text = f"ICLClassifier({', '.join(shown)})"
        return text if len(text) <= N_CHAR_MAX else text[: N_CHAR_MAX - 1] + "…"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def fitted_copy(shared: tuple[PipelineSpec, Pool]) -> ICLClassifier:
    """A worker's copy of a fitted classifier: the pipeline ``spec`` fitted on ``pool``."""
    spec, pool = shared
    return ICLClassifier.from_spec(spec).fit(pool)


def predict_chunk(classifier: ICLClassifier, inputs: list[Any]) -> list[Prediction]:
    """``classifier``'s predictions for one chunk of inputs (an executor's task)."""
    return classifier.predict_detailed(inputs)


def _plain(value: Any) -> Any:
    """A NumPy scalar as its Python value (labels come back as the type ``y`` had)."""
    return value.item() if isinstance(value, np.generic) else value


def _fields(value: Any) -> dict[str, str]:
    """One input as named fields: a string is the field ``text``."""
    if isinstance(value, Mapping):
        return {str(key): str(field) for key, field in value.items()}
    if isinstance(value, str):
        return {"text": value}
    raise ConfigError(
        f"an input must be a string or a mapping of named fields, got {type(value).__name__}"
    )
