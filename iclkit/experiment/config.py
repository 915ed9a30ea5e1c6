"""The experiment configuration: data, the base pipeline, the grid to sweep, run settings.

The same model is the YAML file (``load_config``, read with ``yaml.safe_load``) and the Python
API (``ExperimentConfig(data=..., sweep=...)``). Paths in a YAML file are relative to the file.

The ``pipeline`` section and every ``sweep`` key use the field names of
:class:`~iclkit.spec.PipelineSpec` (``selector``, ``orderer``, ``formatter``, ``k``, ``seed``,
``instruction``, ``token_budget``, ``backend``, ``classifier``), one to one; a dotted key
(``classifier.calibration``, ``selector.fetch_k``) sweeps one option inside a field. A grid
cell is a pipeline spec plus the two demonstration ablations, ``label_mode`` and
``permutation``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from iclkit.errors import ConfigError
from iclkit.secret_options import redact
from iclkit.spec import PipelineSpec, label_words
from iclkit.text_files import short_repr
from iclkit.yaml_io import load_yaml

LabelMode = Literal["gold", "random", "flipped", "unrelated"]
LABEL_MODES: tuple[str, ...] = ("gold", "random", "flipped", "unrelated")
DataFormat = Literal["auto", "jsonl", "csv", "tsv", "hf", "label-text"]
Metric = Literal["accuracy", "macro_f1"]

#: What ``name:`` may be: it becomes the folder ``runs/<name>``, so no separators or ``..``.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: The most cells one grid of ``sweep`` may expand to (before duplicates are merged).
MAX_CELLS = 100_000

DEFAULT_UNRELATED = ["foo", "bar", "baz", "qux", "quux", "corge", "grault", "garply"]

#: Keys of older configs, with where their setting lives now (for the error message).
_MOVED = {
    "selectors": "selector",
    "orderers": "orderer",
    "seeds": "seed",
    "backends": "backend",
    "calibration": "classifier.calibration (none | contextual)",
    "scoring": "classifier.method (loglik | loglik-norm | generate)",
    "label_modes": "label_mode",
}
#: Sweep keys that are not pipeline fields: the demonstration ablations.
ABLATIONS = ("label_mode", "permutations")


def _as_list(value: Any) -> Any:
    """Let a scalar stand for a one-element list (``k: 4`` means ``k: [4]``)."""
    return value if isinstance(value, list) else [value]


def _resolve(value: Any, info: ValidationInfo) -> Any:
    """Make a relative path relative to the config file's folder (``context['base_dir']``)."""
    if isinstance(value, str | Path) and "\x00" in str(value):
        raise ValueError("a path cannot contain a NUL character")
    base = (info.context or {}).get("base_dir")
    if isinstance(value, str | Path) and base is not None and not Path(value).is_absolute():
        return Path(base) / value
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_files(value: Any, info: ValidationInfo) -> Any:
    """``data_files`` given as a path, a list of paths or a split → path(s) mapping, resolved."""
    if isinstance(value, list):
        return [_resolve_files(item, info) for item in value]
    if isinstance(value, Mapping):
        return {key: _resolve_files(item, info) for key, item in value.items()}
    resolved = _resolve(value, info)
    return str(resolved) if isinstance(resolved, Path) else resolved


class HFSource(_Strict):
    """One split of a Hugging Face dataset, read with ``datasets.load_dataset``.

    ``path`` is a dataset on the Hugging Face Hub (``stanfordnlp/sst2``), a local dataset
    folder, or a packaged builder (``json``, ``csv``, ``parquet``) reading ``data_files``
    (paths relative to the config file). ``name`` is the dataset's configuration (``sst2``
    of ``nyu-mll/glue``), ``split`` the split (``train``, ``validation``, ``test``, or a
    slice such as ``train[:1000]``). Needs the ``datasets`` extra.
    """

    path: str = Field(min_length=1)
    name: str | None = None
    split: str = "train"
    data_files: str | list[str] | dict[str, str | list[str]] | None = None

    _files = field_validator("data_files", mode="before")(_resolve_files)


class HFData(_Strict):
    """A data file given as a Hugging Face dataset: ``{hf: {path, name, split, data_files}}``."""

    hf: HFSource


def _source_kind(value: Any) -> str:
    return "hf-dataset" if isinstance(value, Mapping | HFData) else "file"


#: A data file or a Hugging Face split; the tags name the alternative in pydantic's errors.
DataSource = Annotated[
    Annotated[Path, Tag("file")] | Annotated[HFData, Tag("hf-dataset")],
    Discriminator(_source_kind),
]
_UNION_TAGS = frozenset({"file", "hf-dataset"})


class DataConfig(_Strict):
    """Where the demonstration pool, the evaluation set and the dev set come from.

    ``pool``, ``eval`` and ``dev`` are JSONL, CSV/TSV files, folders saved by ``datasets``,
    ``LABEL TEXT`` line files (``format: label-text``, the SST-2 files of Zhao et al. 2021), or
    Hugging Face datasets (``{hf: {path, name, split}}``, see :class:`HFSource`). ``hf``
    instead of ``pool`` and ``eval`` gives one Hugging Face split that is both (separate them
    with ``pool_slice`` and ``eval_slice``). ``eval`` is what ``iclkit run`` evaluates on;
    ``iclkit tune`` never reads it: it chooses on ``dev`` or, without one, on a dev split
    carved from the pool (``tune.dev_size``). ``labels`` is the label space: a list of labels,
    or a mapping label → verbalizer word (the word the model sees and scores).
    ``*_slice: [start, stop]`` keeps rows ``start`` to ``stop - 1`` (0-based, in file order);
    ``*_size`` then draws that many at random with ``subsample_seed``.
    """

    pool: DataSource | None = None
    eval: DataSource | None = None
    dev: DataSource | None = None
    hf: HFSource | None = None
    format: DataFormat = "auto"
    input_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    output_field: str = "label"
    id_field: str = "id"
    labels: dict[str, str] = Field(min_length=2)
    pool_slice: tuple[StrictInt, StrictInt] | None = None
    eval_slice: tuple[StrictInt, StrictInt] | None = None
    pool_size: StrictInt | None = Field(default=None, gt=0)
    eval_size: StrictInt | None = Field(default=None, gt=0)
    subsample_seed: StrictInt = Field(default=0, ge=0)

    _paths = field_validator("pool", "eval", "dev", mode="before")(_resolve)

    @field_validator("input_fields", mode="before")
    @classmethod
    def _fields_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_space(cls, value: Any) -> Any:
        return label_words(value)

    @field_validator("pool_slice", "eval_slice")
    @classmethod
    def _slice(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"a slice is [start, stop] with 0 <= start < stop, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.hf is not None and (self.pool is not None or self.eval is not None):
            raise ValueError(
                "give either data.hf (one split for the pool and the evaluation set) or "
                "data.pool and data.eval, not both"
            )
        if self.hf is None and self.pool is None:
            raise ValueError(
                "data.pool missing: give data.pool (and data.eval for `iclkit run`) as files or "
                "{hf: {path, name, split}}, or data.hf for one Hugging Face split"
            )
        return self

    def source(self, split: Literal["pool", "eval", "dev"]) -> Path | HFSource | None:
        """Where ``split`` comes from: a path, a Hugging Face split, or ``None`` if not given."""
        given = {"pool": self.pool, "eval": self.eval, "dev": self.dev}[split]
        if given is None:
            return self.hf if split != "dev" else None
        return given.hf if isinstance(given, HFData) else given


class RunConfig(_Strict):
    """How a run proceeds: queries per work unit, and the words of the ``unrelated`` ablation."""

    batch_size: StrictInt = Field(default=8, gt=0)
    unrelated_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_UNRELATED))


BaselineName = Literal["majority", "zero-shot", "knn-vote", "random"]
DEFAULT_BASELINES: tuple[BaselineName, ...] = ("majority", "zero-shot", "knn-vote")


class BaselineConfig(_Strict):
    """The baselines ``iclkit run`` and ``iclkit tune`` add to a grid (marked in every table).

    ``include`` lists them: ``majority`` (the pool's most frequent label), ``zero-shot`` (the
    pipeline with k = 0 and no calibration), ``knn-vote`` (the label vote of the ``k`` nearest
    pool examples by the bundled embeddings, ``k`` the best of ``knn_vote_k`` on the dev split),
    ``random`` (the pipeline on ``random_seeds`` fixed random sets of ``random_k``
    demonstrations, no calibration); ``[]`` adds none.
    """

    include: list[BaselineName] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    knn_vote_k: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32], min_length=1
    )
    random_k: int = Field(default=4, gt=0)
    random_seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1
    )


class TuneConfig(_Strict):
    """How ``iclkit tune`` chooses: the metric, and the dev split carved from the pool.

    Without ``data.dev``, ``dev_size`` pool examples drawn with ``dev_seed`` become the dev
    set, and the grid's demonstrations come from the rest of the pool. Ties on the metric go
    to the pipeline with fewer prompt tokens per query.
    """

    metric: Metric = "accuracy"
    dev_size: StrictInt = Field(default=200, gt=0)
    dev_seed: StrictInt = Field(default=0, ge=0)


def _grid(value: Any) -> Any:
    """Normalise one sweep grid: every value a list (``permutations`` stays a count)."""
    if not isinstance(value, Mapping):
        return value
    return {
        str(key): item if key == "permutations" else _as_list(item) for key, item in value.items()
    }


def _problem(location: tuple[int | str, ...], message: str, value: Any) -> InitErrorDetails:
    error = PydanticCustomError("sweep", message)
    return InitErrorDetails(type=error, loc=location, input=value)


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted ``path`` of a spec mapping (``classifier.calibration``).

    A component given as a name is expanded to ``{"name": ...}`` before an option is set in it.

    Raises:
        ValueError: if a step of the path is neither a mapping nor a component name.
    """
    head, _, rest = path.partition(".")
    if not rest:
        spec[head] = value
        return
    inner = spec.get(head, {})
    if isinstance(inner, str):
        inner = {"name": inner}
    if not isinstance(inner, Mapping):
        raise ValueError(f"{head!r} is not a mapping, so {path!r} cannot be set")
    inner = dict(inner)
    set_path(inner, rest, value)
    spec[head] = inner


class ExperimentConfig(_Strict):
    """A whole experiment: the data, the base pipeline, one or more grids, and run settings.

    ``pipeline`` holds the :class:`~iclkit.spec.PipelineSpec` fields every cell shares (the
    label space comes from ``data.labels``). ``sweep`` is a mapping (one grid) or a list of
    mappings whose cells are joined (the same cell listed twice runs once); each key is a
    pipeline field or a dotted path into one, or an ablation (``label_mode``: gold | random |
    flipped | unrelated; ``permutations: N``: the same demonstrations in N orders).
    ``baselines`` (:class:`BaselineConfig`) are added to the grid and marked in the tables.

    ``name`` is also the default output folder ``runs/<name>``: 1 to 100 letters, digits,
    ``.``, ``_`` or ``-``, starting with a letter or digit. One grid may have at most
    :data:`MAX_CELLS` cells.

    Raises:
        pydantic.ValidationError: from the constructor; :func:`load_config` and
            :func:`validate_config` turn it into one :class:`~iclkit.errors.ConfigError`.
    """

    name: str = "experiment"
    data: DataConfig
    pipeline: dict[str, Any] = Field(default_factory=dict)
    sweep: list[dict[str, Any]] = Field(min_length=1)
    run: RunConfig = Field(default_factory=RunConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    baselines: BaselineConfig = Field(default_factory=BaselineConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_sections(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "prompt" in value:
            raise ValueError(
                "the 'prompt' section moved into 'pipeline': pipeline.formatter ({name: text, "
                "template: ..., separator: ...}) and pipeline.instruction"
            )
        return value

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweeps(cls, value: Any) -> Any:
        return [_grid(grid) for grid in _as_list(value)]

    @field_serializer("pipeline", "sweep")
    def _without_secrets(self, value: Any) -> Any:
        """Every dump (``run.json``, JSON, dicts) shows secret options as ``<redacted>``."""
        return redact(value)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name in ("pipeline", "sweep") else value

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "the name is the run's folder (runs/<name>): use 1 to 100 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        return value

    def base_spec(self) -> dict[str, Any]:
        """The ``pipeline`` section with the label space: what every cell starts from."""
        return {**self.pipeline, "labels": self.data.labels}

    @model_validator(mode="wrap")
    @classmethod
    def _check_grids(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Check the pipeline and each swept value, and report them with every other problem."""
        problems: list[InitErrorDetails] = []
        config = None
        try:
            config = handler(data)
        except ValidationError as error:
            problems = [
                InitErrorDetails(
                    type=PydanticCustomError(item["type"], item["msg"]),
                    loc=item["loc"],
                    input=item.get("input"),
                )
                for item in error.errors()
            ]
        if config is not None:
            problems += sweep_problems(
                config.sweep, config.pipeline, config.data.labels, config.run.unrelated_labels
            )
        elif isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
            problems += _raw_sweep_problems(data)
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return config


def _raw_sweep_problems(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """The sweep problems of a config that failed elsewhere too (so all are listed at once)."""
    try:
        labels = label_words(data["data"].get("labels"))
        sweep = [_grid(grid) for grid in _as_list(data.get("sweep", []))]
        unrelated = dict(data.get("run") or {}).get("unrelated_labels")
    except (ValueError, TypeError, AttributeError):
        return []
    if not isinstance(unrelated, list):
        unrelated = DEFAULT_UNRELATED
    pipeline = data.get("pipeline") or {}
    if not isinstance(labels, dict) or not isinstance(pipeline, Mapping):
        return []
    grids = [grid for grid in sweep if isinstance(grid, dict)]
    return sweep_problems(grids, dict(pipeline), labels, [str(word) for word in unrelated])


def sweep_problems(
    sweep: list[dict[str, Any]],
    pipeline: dict[str, Any],
    labels: dict[str, str],
    unrelated: list[str],
) -> list[InitErrorDetails]:
    """Check the base pipeline, then each swept value on its own against it."""
    problems: list[InitErrorDetails] = []
    base = {**pipeline, "labels": labels}
    try:
        PipelineSpec.model_validate(base)
    except ValidationError as error:
        for item in error.errors():
            location = ("pipeline", *item["loc"])
            problems.append(_problem(location, item["msg"], redact(item.get("input"))))
        return problems
    fields = set(PipelineSpec.model_fields) - {"labels"}
    for number, grid in enumerate(sweep):
        cells = 1
        for key, values in grid.items():
            cells *= values if key == "permutations" and isinstance(values, int) else len(values)
        if cells > MAX_CELLS:
            message = (
                f"this grid has up to {cells:,} cells, more than {MAX_CELLS:,}; split it into "
                "several configs or list fewer values"
            )
            problems.append(_problem(("sweep", number), message, None))
            continue
        for key, values in grid.items():
            where: tuple[int | str, ...] = ("sweep", number, key)
            if key == "permutations":
                if isinstance(values, bool) or not isinstance(values, int) or values < 1:
                    problems.append(_problem(where, "a count of orders, at least 1", values))
                continue
            if key in _MOVED:
                problems.append(_problem(where, f"renamed: write {_MOVED[key]}", redact(values)))
                continue
            if key.partition(".")[0] not in fields | {"label_mode"}:
                allowed = ", ".join(sorted(fields | set(ABLATIONS)))
                message = f"unknown key; a sweep key is a pipeline field ({allowed})"
                problems.append(_problem(where, message, redact(values)))
                continue
            if not values:
                problems.append(_problem(where, "an empty list sweeps nothing", values))
            context = base
            if "." in key:  # a dotted key sets an option of the field this grid chooses
                context = dict(base)
                for other, choices in grid.items():
                    if other in fields and choices:
                        context[other] = choices[0]
            for index, value in enumerate(values):
                found = _value_problem(key, value, context, unrelated)
                if found is not None:
                    problems.append(_problem((*where, index), found, redact(value)))
    return problems


def _value_problem(key: str, value: Any, base: dict[str, Any], unrelated: list[str]) -> str | None:
    if key == "label_mode":
        if value not in LABEL_MODES:
            return f"allowed: {', '.join(repr(mode) for mode in LABEL_MODES)}"
        if value == "unrelated" and len(set(unrelated)) < len(base["labels"]):
            return (
                f"needs {len(base['labels'])} distinct run.unrelated_labels (one per label), "
                f"got {unrelated}"
            )
        return None
    trial = dict(base)
    try:
        set_path(trial, key, value)
        PipelineSpec.model_validate(trial)
    except ValidationError as error:
        return "; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())
    except (ValueError, ConfigError) as error:
        return str(error)
    return None


def _dotted(location: tuple[int | str, ...], raw: Any) -> str:
    """``('sweep', 0, 'k', 1)`` → ``sweep.k[1]`` (the index is dropped for a single mapping)."""
    parts: list[str] = []
    node = raw
    for key in location:
        if key in _UNION_TAGS:  # which alternative of a union failed: not a key of the file
            continue
        if isinstance(key, int):
            if isinstance(node, list):
                parts[-1] += f"[{key}]"
                node = node[key] if key < len(node) else None
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, Mapping) else None
    return ".".join(parts) or "(top level)"


def config_error(
    error: ValidationError, raw: Any, source: str, what: str = "the experiment config"
) -> ConfigError:
    """One :class:`ConfigError` for all the problems in ``error``, each on its own line.

    Each line names the key (dotted path), the problem with the allowed values, and the bad
    value (secret options shown as ``<redacted>``).
    """
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against the documented keys"
        line = f"  {_dotted(tuple(problem['loc']), raw)}: {message}"
        if problem["type"] not in ("missing",):
            line += f" (got {short_repr(redact(problem['input']))})"
        lines.append(line)
    count = len(lines)
    return ConfigError(f"{source}: {count} problem(s) in {what}:\n" + "\n".join(lines))


def validate_config(
    raw: Any, *, base_dir: Path | None = None, source: str = "config"
) -> ExperimentConfig:
    """Validate a config mapping (paths relative to ``base_dir``) into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: listing every bad key with its value and the allowed values.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the experiment config must be a mapping of keys")
    context = {"base_dir": base_dir} if base_dir is not None else None
    try:
        return ExperimentConfig.model_validate(dict(raw), context=context)
    except ValidationError as error:
        raise config_error(error, raw, source) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config (see :func:`iclkit.yaml_io.load_yaml`).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: if the file is not UTF-8 (naming the line).
        ConfigError: for YAML syntax errors, duplicate keys or oversized documents (with the
            line) and every invalid key.
    """
    path = Path(path)
    return validate_config(load_yaml(path), base_dir=path.parent, source=str(path))
