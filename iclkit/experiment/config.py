"""The experiment configuration: data, prompt and the grid to sweep, validated by pydantic.

The same model is the YAML file (``load_config``, read with ``yaml.safe_load``) and the Python
API (``ExperimentConfig(data=..., sweep=...)``). Paths in a YAML file are relative to the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from iclkit.errors import ConfigError
from iclkit.registry import Registry, backends, formatters, orderers, selectors
from iclkit.text_files import short_repr
from iclkit.yaml_io import load_yaml

LabelMode = Literal["gold", "random", "flipped", "unrelated"]
Scoring = Literal["loglik", "loglik-norm", "generate"]
DataFormat = Literal["auto", "jsonl", "csv", "tsv", "hf", "label-text"]

#: What ``name:`` may be: it becomes the folder ``runs/<name>``, so no separators or ``..``.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: The most cells one grid of ``sweep`` may expand to (before duplicates are merged).
MAX_CELLS = 100_000

DEFAULT_UNRELATED = ["foo", "bar", "baz", "qux", "quux", "corge", "grault", "garply"]


def _component(value: Any, registry: Registry[Any]) -> dict[str, Any]:
    """Normalise a component spec (``"name"`` or ``{"name": ..., **opts}``) and check it.

    The component is constructed once (constructors only store their settings), so that an
    unknown name or option fails when the config is read, not hours into a run.
    """
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ValueError(
            f"expected a {registry.kind} name or a mapping with a 'name' key and its options, "
            f"got {short_repr(value)}"
        )
    name = value["name"]
    available = registry.names()
    if name not in available:
        raise ValueError(
            f"unknown {registry.kind} {short_repr(name)}; allowed: {', '.join(available)} "
            "(`iclkit plugins` lists them; install the package that provides it)"
        )
    registry.create(value)  # ConfigError (a ValueError) for an option it does not take
    return dict(value)


SelectorSpec = Annotated[dict[str, Any], BeforeValidator(lambda v: _component(v, selectors))]
OrdererSpec = Annotated[dict[str, Any], BeforeValidator(lambda v: _component(v, orderers))]
BackendSpec = Annotated[dict[str, Any], BeforeValidator(lambda v: _component(v, backends))]


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


class DataConfig(_Strict):
    """Where the demonstration pool and the evaluation set come from, and their label space.

    ``pool`` and ``eval`` are JSONL, CSV/TSV files, folders saved by ``datasets`` or
    ``LABEL TEXT`` line files (``format: label-text``, the SST-2 files of Zhao et al. 2021).
    ``labels`` is the label space: a list of labels, or a mapping label → verbalizer word (the
    word the model sees and scores). ``*_slice: [start, stop]`` keeps rows ``start`` to
    ``stop - 1`` (0-based, in file order); ``*_size`` then draws that many at random with
    ``subsample_seed``.
    """

    pool: Path
    eval: Path
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

    _paths = field_validator("pool", "eval", mode="before")(_resolve)

    @field_validator("input_fields", mode="before")
    @classmethod
    def _fields_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_space(cls, value: Any) -> Any:
        if isinstance(value, list):
            pairs = [(label, label) for label in value]
        elif isinstance(value, Mapping):
            pairs = list(value.items())
        else:
            return value
        bad = [v for pair in pairs for v in pair if type(v) not in (str, int)]
        if bad:
            raise ValueError(
                f"labels and their words must be text or integers, got {short_repr(bad[0])}; "
                "write every label (and word) out, quoting yes/no/true/false/null, e.g. "
                "{0: negative, 1: positive}"
            )
        words = [str(word) for _, word in pairs]
        if len(set(words)) != len(words):
            raise ValueError(f"two labels share a verbalizer word: {words}")
        return {str(label): str(word) for label, word in pairs}

    @field_validator("pool_slice", "eval_slice")
    @classmethod
    def _slice(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"a slice is [start, stop] with 0 <= start < stop, got {list(value)}")
        return value


class PromptConfig(_Strict):
    """How a prompt is rendered: the formatter, its template, separator and instruction.

    ``template`` is the text formatter's template (``{output}`` marks the label) or the chat
    formatter's user-turn template.
    """

    formatter: Literal["text", "chat"] = "text"
    template: str = "Input: {input}\nOutput: {output}"
    separator: str = "\n\n"
    instruction: str | None = None

    @model_validator(mode="after")
    def _template_builds(self) -> PromptConfig:
        options: dict[str, Any] = {"name": self.formatter}
        if self.formatter == "text":
            options |= {"template": self.template, "separator": self.separator}
        else:
            options["input_template"] = self.template
        formatters.create(options)  # raises TemplateError on a malformed template
        return self


class SweepConfig(_Strict):
    """One grid: every combination of the listed values becomes a cell.

    ``k: 0`` is zero-shot (the selector, orderer and label mode do not apply there). A scalar
    stands for a one-element list. ``label_modes`` are the demonstration-label ablations:
    ``gold``; ``random`` labels (Min et al. 2022); ``flipped`` labels and ``unrelated`` label
    words such as foo/bar (Wei et al. 2023). ``permutations: N`` evaluates the same
    demonstrations in N orders (Lu et al. 2022; the first is the orderer's own order). One
    grid may have at most :data:`MAX_CELLS` cells.
    """

    selectors: list[SelectorSpec] = Field(
        default_factory=lambda: [{"name": "random"}], min_length=1
    )
    k: list[StrictInt] = Field(default_factory=lambda: [4], min_length=1)
    orderers: list[OrdererSpec] = Field(
        default_factory=lambda: [{"name": "as-selected"}], min_length=1
    )
    seeds: list[StrictInt] = Field(default_factory=lambda: [0], min_length=1)
    backends: list[BackendSpec] = Field(default_factory=lambda: [{"name": "local"}], min_length=1)
    calibration: list[StrictBool] = Field(default_factory=lambda: [False], min_length=1)
    scoring: list[Scoring] = Field(default_factory=lambda: ["loglik"], min_length=1)  # type: ignore[arg-type]
    label_modes: list[LabelMode] = Field(default_factory=lambda: ["gold"], min_length=1)  # type: ignore[arg-type]
    permutations: StrictInt = Field(default=1, ge=1)

    @field_validator(
        "selectors",
        "k",
        "orderers",
        "seeds",
        "backends",
        "calibration",
        "scoring",
        "label_modes",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)

    @model_validator(mode="after")
    def _bounded(self) -> SweepConfig:
        cells = self.permutations
        for values in (self.selectors, self.k, self.orderers, self.seeds, self.backends):
            cells *= len(values)
        cells *= len(self.calibration) * len(self.scoring) * len(self.label_modes)
        if cells > MAX_CELLS:
            raise ValueError(
                f"this grid has up to {cells:,} cells, more than {MAX_CELLS:,}; split it into "
                "several configs or list fewer values"
            )
        return self

    @field_validator("k", "seeds")
    @classmethod
    def _non_negative(cls, values: list[int]) -> list[int]:
        bad = [value for value in values if value < 0]
        if bad:
            raise ValueError(f"values must be non-negative integers, got {bad}")
        return values


class RunConfig(_Strict):
    """How predictions are computed: batch size, generation length, calibration inputs."""

    batch_size: StrictInt = Field(default=8, gt=0)
    max_tokens: StrictInt = Field(default=8, gt=0)
    content_free_inputs: list[str] = Field(default_factory=lambda: ["N/A", "", "[MASK]"])
    unrelated_labels: list[str] = Field(default_factory=lambda: list(DEFAULT_UNRELATED))


class ExperimentConfig(_Strict):
    """A whole experiment: the data, the prompt, one or more grids, and run settings.

    ``sweep`` is a mapping (one grid) or a list of mappings whose cells are joined (the same
    cell listed twice runs once), so that ablations can be run at one k only. ``name`` is
    also the default output folder ``runs/<name>``: 1 to 100 letters, digits, ``.``, ``_`` or
    ``-``, starting with a letter or digit.

    Raises:
        pydantic.ValidationError: from the constructor; :func:`load_config` and
            :func:`validate_config` turn it into one :class:`~iclkit.errors.ConfigError`.
    """

    name: str = "experiment"
    data: DataConfig
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    sweep: list[SweepConfig] = Field(min_length=1)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweeps(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "the name is the run's folder (runs/<name>): use 1 to 100 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _enough_unrelated_words(self) -> ExperimentConfig:
        wanted = len(self.data.labels)
        if any("unrelated" in grid.label_modes for grid in self.sweep) and (
            len(set(self.run.unrelated_labels)) < wanted
        ):
            raise ValueError(
                f"label mode 'unrelated' needs {wanted} distinct run.unrelated_labels "
                f"(one per label), got {self.run.unrelated_labels}"
            )
        return self


def _dotted(location: tuple[int | str, ...], raw: Any) -> str:
    """``('sweep', 0, 'k', 1)`` → ``sweep.k[1]`` (the index is dropped for a single mapping)."""
    parts: list[str] = []
    node = raw
    for key in location:
        if isinstance(key, int):
            if isinstance(node, list):
                parts[-1] += f"[{key}]"
                node = node[key] if key < len(node) else None
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, Mapping) else None
    return ".".join(parts) or "(top level)"


def config_error(error: ValidationError, raw: Any, source: str) -> ConfigError:
    """One :class:`ConfigError` for all the problems in ``error``, each on its own line.

    Each line names the key (dotted path), the problem with the allowed values, and the bad
    value.
    """
    lines = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against the documented keys"
        line = f"  {_dotted(tuple(problem['loc']), raw)}: {message}"
        if problem["type"] not in ("missing",):
            line += f" (got {short_repr(problem['input'])})"
        lines.append(line)
    count = len(lines)
    return ConfigError(
        f"{source}: {count} problem(s) in the experiment config:\n" + "\n".join(lines)
    )


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
