"""The pipeline spec: one description of an ICL classifier, from a YAML grid cell to a saved model.

A :class:`PipelineSpec` names everything that decides a prediction: the label space with its
verbalizer words (given once), the selector, orderer and formatter, ``k``, the instruction and
token budget, the backend, and the :class:`ClassifierSpec` (how labels are read off the model:
``method`` and ``calibration``). The keys of an experiment config's ``pipeline`` section and of
its ``sweep`` lists are these field names; :class:`~iclkit.classifier.ICLClassifier` takes the
same names as keywords; a saved classifier stores the spec as JSON.

Components are given as a registry name (``"knn"``) or a mapping with the name and options
(``{"name": "mmr", "fetch_k": 20}``) and are checked against their plugin's constructor when
the spec is made. Options that are secrets (``api_key``, see :mod:`iclkit.secret_options`) are
moved out of the fields: they reach the component's constructor and nothing else, so they never
appear in :meth:`PipelineSpec.identity`, the JSON form, a repr or an error message.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from iclkit.errors import IclkitError
from iclkit.registry import (
    Registry,
    backends,
    calibrators,
    formatters,
    methods,
    orderers,
    selectors,
)
from iclkit.secret_options import split_secrets

if TYPE_CHECKING:
    from iclkit.backends.base import Backend
    from iclkit.builder import PromptBuilder
    from iclkit.methods.base import Scorer

#: The spec fields that hold a component, with the registry each is looked up in.
COMPONENT_FIELDS: dict[str, Registry[Any]] = {
    "selector": selectors,
    "orderer": orderers,
    "formatter": formatters,
    "backend": backends,
}


def component(value: Any, registry: Registry[Any]) -> dict[str, Any]:
    """Normalise a component spec (``"name"`` or ``{"name": ..., **options}``) to a mapping.

    Raises:
        ValueError: if the value is neither, or the name is not registered (the message lists
            the registered names).
    """
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ValueError(
            f"expected a {registry.kind} name or a mapping with a 'name' key and its options, "
            f"got a {type(value).__name__}"
        )
    name = value["name"]
    available = registry.names()
    if name not in available:
        raise ValueError(
            f"unknown {registry.kind} {name!r}; allowed: {', '.join(available)} "
            "(`iclkit plugins` lists them; install the package that provides it)"
        )
    return {str(key): option for key, option in value.items()}


def _calibration(value: Any) -> dict[str, Any] | None:
    if value is None or value == "none" or value is False:
        return None
    return component(value, calibrators)


def with_seed(registry: Registry[Any], spec: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """``spec`` with ``seed`` filled in when the component takes one that the spec does not fix."""
    if seed is None or "seed" in spec:
        return spec
    if "seed" not in inspect.signature(registry.get(spec["name"])).parameters:
        return spec
    return {**spec, "seed": seed}


def takes_seed(registry: Registry[Any], spec: dict[str, Any]) -> bool:
    """Whether the component's result depends on a seed the spec leaves open."""
    return "seed" not in spec and "seed" in inspect.signature(registry.get(spec["name"])).parameters


def label_words(value: Any) -> Any:
    """A label space as ``{label: word}``: a list means each label is its own word.

    Raises:
        ValueError: if a label or word is neither text nor an integer (``null``, ``true``, a
            list), or as :meth:`~iclkit.inference.LabelSpace.from_spec` (a ``ConfigError``).
    """
    from iclkit.inference.labels import LabelSpace
    from iclkit.text_files import short_repr

    if isinstance(value, list | tuple | Mapping):
        pairs = list(value.items()) if isinstance(value, Mapping) else [(v, v) for v in value]
        bad = [item for pair in pairs for item in pair if type(item) not in (str, int)]
        if bad:
            raise ValueError(
                f"labels and their words must be text or integers, got {short_repr(bad[0])}; "
                "write every label (and word) out, quoting yes/no/true/false/null, e.g. "
                "{0: negative, 1: positive}"
            )
        space = LabelSpace.from_spec(value)
        return dict(zip(space.labels, space.words, strict=True))
    return value


ComponentDict = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassifierSpec(_Strict):
    """How a prediction is read off the model.

    ``method``: a method plugin by name or ``{"name": ..., **options}`` (built in: ``loglik``,
    the label word with the highest summed log-likelihood; ``loglik-norm``, the highest mean
    log-likelihood per token; ``generate``, generate and parse the answer, for backends without
    log-probabilities, with option ``max_tokens``). ``calibration``: ``None``/``"none"``, or a
    calibrator plugin (built in: ``contextual``, Zhao et al. 2021); a method without label
    probabilities (``generate``) has nothing to calibrate.

    Raises:
        pydantic.ValidationError: for an unknown method or calibrator, an option it does not
            take, or calibration of a method without label probabilities.
    """

    method: Annotated[ComponentDict, BeforeValidator(lambda v: component(v, methods))] = Field(
        default_factory=lambda: {"name": "loglik"}
    )
    calibration: Annotated[ComponentDict | None, BeforeValidator(_calibration)] = None

    @model_validator(mode="after")
    def _components_exist(self) -> ClassifierSpec:
        methods.create(self.method)  # ConfigError for an option it does not take
        if self.calibration is not None:
            if not methods.get(self.method["name"]).calibrates:
                raise ValueError(
                    f"calibration corrects label probabilities, which method "
                    f"{self.method['name']!r} does not have; use calibration: none"
                )
            calibrators.create(self.calibration)
        return self

    def scorer(self, backend: Backend, labels: Mapping[str, str]) -> Scorer:
        """The method bound to ``backend``, the label space and the calibrator."""
        from iclkit.methods.base import Scorer

        calibrator = None if self.calibration is None else calibrators.create(self.calibration)
        return Scorer(methods.create(self.method), backend, labels, calibrator)


class PipelineSpec(_Strict):
    """Everything that decides an ICL classifier's predictions (see the module docstring).

    ``seed`` is handed to the selector and orderer when they take a seed their spec does not
    fix (as scikit-learn's ``random_state``); ``None`` leaves their own defaults.

    Raises:
        pydantic.ValidationError: for an unknown component or an option its constructor does
            not take, a bad label space, a verbalizer given in the formatter (the words belong
            in ``labels``), or a negative ``k``.
    """

    labels: dict[str, str] = Field(min_length=2)
    selector: ComponentDict = Field(default_factory=lambda: {"name": "random"})
    orderer: ComponentDict = Field(default_factory=lambda: {"name": "as-selected"})
    formatter: ComponentDict = Field(default_factory=lambda: {"name": "text"})
    k: int = Field(default=4, ge=0, strict=True)
    seed: int | None = Field(default=None, ge=0, strict=True)
    instruction: str | None = None
    token_budget: int | None = Field(default=None, gt=0, strict=True)
    backend: ComponentDict = Field(default_factory=lambda: {"name": "local"})
    classifier: ClassifierSpec = Field(default_factory=ClassifierSpec)

    _secrets: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_secrets_out(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Move secret options out of the component fields before anything sees them."""
        secrets: dict[str, dict[str, Any]] = {}
        if isinstance(data, Mapping):
            data = dict(data)
            for name in COMPONENT_FIELDS:
                value = data.get(name)
                if isinstance(value, Mapping):
                    public, hidden = split_secrets(value)
                    if hidden:
                        data[name], secrets[name] = public, hidden
        spec = handler(data)
        if secrets:
            spec._secrets = {**spec._secrets, **secrets}
        spec._check_components()
        return spec

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return label_words(value)

    @field_validator(*COMPONENT_FIELDS, mode="before")
    @classmethod
    def _component(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None
        spec = component(value, COMPONENT_FIELDS[info.field_name])
        if info.field_name == "formatter" and "verbalizer" in spec:
            raise ValueError(
                "the verbalizer words are given once, in labels ({label: word}); remove "
                "'verbalizer' from the formatter"
            )
        return spec

    def _check_components(self) -> None:
        """Construct each component once: an option it does not take fails now, not mid-run.

        Raises:
            pydantic.ValidationError: naming each field whose component cannot be made.
        """
        problems = []
        for name, registry in COMPONENT_FIELDS.items():
            options = self.options(name)
            if name == "formatter":
                options["verbalizer"] = self.labels
            try:
                registry.create(options)
            except IclkitError as error:
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError("component", str(error)),
                        loc=(name,),
                        input=getattr(self, name),
                    )
                )
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)

    # -- what the spec makes ------------------------------------------------------------------

    def options(self, field: str) -> dict[str, Any]:
        """A component field's spec with its secret options (for the constructor only)."""
        value: dict[str, Any] = getattr(self, field)
        return {**value, **self._secrets.get(field, {})}

    def create_backend(self) -> Backend:
        """A new backend as the spec describes it (secret options included)."""
        return backends.create(self.options("backend"))

    def builder(self, backend: Backend | None = None) -> PromptBuilder:
        """An unfitted :class:`~iclkit.builder.PromptBuilder` for this spec.

        With a ``token_budget``, prompts are measured in ``backend``'s own tokens
        (:meth:`~iclkit.backends.base.Backend.count_tokens`); selectors that score candidates
        with a model (``cone``, ``mdl``) score with ``backend``.
        """
        from iclkit.builder import PromptBuilder, whitespace_length

        length = whitespace_length
        if self.token_budget is not None and backend is not None:
            length = backend.count_tokens
        return PromptBuilder(
            selector=with_seed(selectors, self.options("selector"), self.seed),
            orderer=with_seed(orderers, self.options("orderer"), self.seed),
            formatter={**self.options("formatter"), "verbalizer": self.labels},
            k=self.k,
            instruction=self.instruction,
            token_budget=self.token_budget,
            length_fn=length,
            backend=backend,
        )

    def scorer(self, backend: Backend) -> Scorer:
        """The classifier's method bound to ``backend`` and this spec's label space."""
        return self.classifier.scorer(backend, self.labels)

    # -- identity and forms -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready mapping (no secrets: they are not fields)."""
        return self.model_dump(mode="json")

    def identity(self) -> str:
        """A hash of :meth:`to_dict`: equal specs have equal identities, secrets play no part."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def has_secrets(self) -> bool:
        """Whether the spec hands secret options (an ``api_key``, ...) to a component."""
        return any(self._secrets.values())

    def with_secrets_of(self, other: PipelineSpec) -> PipelineSpec:
        """A copy of this spec that hands ``other``'s secret options to its components."""
        copy = self.model_copy()
        copy._secrets = dict(other._secrets)
        return copy


def validate_spec(raw: Mapping[str, Any], *, source: str = "pipeline") -> PipelineSpec:
    """Validate a mapping into a :class:`PipelineSpec`, with one readable error.

    Raises:
        ConfigError: listing every bad key with the problem (secret values are never shown).
    """
    from iclkit.experiment.config import config_error

    try:
        return PipelineSpec.model_validate(dict(raw))
    except ValidationError as error:
        raise config_error(error, raw, source, "the pipeline spec") from None
