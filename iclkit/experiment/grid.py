"""Expand an experiment config into grid cells (pipeline specs), and count their model calls."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from iclkit.errors import ConfigError
from iclkit.experiment.ablations import verbalizer_for
from iclkit.experiment.config import ExperimentConfig, LabelMode, set_path
from iclkit.registry import calibrators, methods, orderers, selectors
from iclkit.spec import PipelineSpec, component, takes_seed


class Cell(PipelineSpec):
    """One point of the grid: a :class:`~iclkit.spec.PipelineSpec` plus the two ablations.

    ``label_mode`` changes the demonstrations' labels (see :mod:`iclkit.experiment.ablations`);
    ``permutation`` 0 is the orderer's own order, p > 0 a seeded permutation of it (the same
    one for every query). Zero-shot cells (``k = 0``) keep the default selector and orderer and
    no seed; ``seed`` is ``None`` when nothing in the cell is random. ``id`` is a hash of all
    of this and of the experiment's data and run settings; secret options play no part.
    """

    label_mode: LabelMode = "gold"
    permutation: int = Field(default=0, ge=0)
    id: str = ""

    def params(self) -> dict[str, Any]:
        """The cell's parameters (everything but the id) as a JSON-ready mapping."""
        return self.model_dump(mode="json", exclude={"id"})

    def pipeline(self, unrelated: Sequence[str]) -> PipelineSpec:
        """The pipeline that makes and scores this cell's prompts, without the ablation fields.

        Its labels are shown as the label mode's words (``unrelated``: the ``unrelated`` words,
        one per label; otherwise the cell's own). The spec keeps the cell's secret options.
        """
        fields = self.model_dump(exclude={"id", "label_mode", "permutation"})
        fields["labels"] = verbalizer_for(self.label_mode, self.labels, unrelated)
        return PipelineSpec.model_validate(fields).with_secrets_of(self)

    @property
    def prompt_key(self) -> str:
        """Equal for cells that build the same prompts (they differ only in ``classifier``)."""
        return json.dumps(
            self.model_dump(mode="json", exclude={"id", "classifier"}), sort_keys=True
        )

    @property
    def selector_name(self) -> str:
        """The selector's display name: ``zero-shot`` for k = 0, else name and options."""
        return "zero-shot" if self.k == 0 else component_label(self.selector)


def component_label(spec: dict[str, Any] | None) -> str:
    """``{"name": "mmr", "lambda_": 0.5}`` → ``mmr(lambda_=0.5)``; long values are shortened."""
    if spec is None:
        return "none"
    options = {key: value for key, value in spec.items() if key != "name"}
    if not options:
        return str(spec["name"])
    shown = []
    for key, value in sorted(options.items()):
        text = repr(value) if isinstance(value, str) else str(value)
        shown.append(f"{key}={text[:24] + '…' if len(text) > 25 else text}")
    return f"{spec['name']}({','.join(shown)})"


def context_key(config: ExperimentConfig, data_fingerprint: str) -> str:
    """A hash of everything outside the cells that changes predictions.

    That is the data content and the words of the ``unrelated`` label ablation.
    """
    payload = {"data": data_fingerprint, "unrelated": config.run.unrelated_labels}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _paths_in_order(keys: list[str]) -> list[str]:
    """Whole fields before dotted paths into them.

    So that ``selector.fetch_k`` sets an option of the ``selector`` the same combination chose.
    """
    return sorted(keys, key=lambda key: "." in key)


def _collapse(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop what does not apply, so that no cell runs twice.

    Zero-shot has no selector, orderer, label mode or permutation; a method without label
    probabilities (generation) has no calibration.
    """
    classifier = raw.get("classifier")
    if isinstance(classifier, dict) and "method" in classifier:
        method = component(classifier["method"], methods)
        if not methods.get(method["name"]).calibrates:
            raw["classifier"] = {k: v for k, v in classifier.items() if k != "calibration"}
    if raw.get("k", PipelineSpec.model_fields["k"].default) == 0:
        for key in ("selector", "orderer", "seed", "label_mode"):
            raw.pop(key, None)
    return raw


def _random(spec: PipelineSpec, label_mode: str) -> bool:
    """Whether anything in the cell draws from its seed."""
    return (
        takes_seed(selectors, spec.selector)
        or takes_seed(orderers, spec.orderer)
        or label_mode == "random"
    )


def expand_grid(config: ExperimentConfig, context: str, pool_size: int) -> list[Cell]:
    """Every distinct cell of every grid in ``config.sweep``, in sweep order.

    Each grid is the product of its lists in the order its keys are written. Parameters that
    do not apply collapse: zero-shot has no selector, orderer, label mode or permutation; a
    cell where nothing is random has no seed (its permutations are drawn from seed 0);
    generation has no calibration.

    Raises:
        ConfigError: if a k exceeds the pool size (naming the key).
    """
    cells: dict[str, Cell] = {}
    for number, grid in enumerate(config.sweep):
        keys = [key for key in grid if key != "permutations"]
        orders = int(grid.get("permutations", 1))
        for combination in itertools.product(*(grid[key] for key in keys)):
            raw = copy.deepcopy(config.base_spec())
            chosen = dict(zip(keys, combination, strict=True))
            for key in _paths_in_order(keys):
                set_path(raw, key, chosen[key])
            made = cells_of(raw, context, orders)
            if made[0].k > pool_size:
                where = "sweep.k" if len(config.sweep) == 1 else f"sweep[{number}].k"
                raise ConfigError(
                    f"{where}: k={made[0].k} is larger than the pool ({pool_size} examples "
                    f"after data.pool_slice/pool_size and the dev split); allowed: 0 to "
                    f"{pool_size}"
                )
            for cell in made:
                cells.setdefault(cell.id, cell)
    return list(cells.values())


def cells_of(raw: dict[str, Any], context: str, orders: int = 1) -> list[Cell]:
    """The cells of one pipeline mapping (with ``label_mode``): one per demonstration order.

    What does not apply is dropped (see :func:`expand_grid`); each cell's id is a hash of its
    parameters and ``context``.
    """
    raw = _collapse(copy.deepcopy(raw))
    label_mode = raw.pop("label_mode", "gold")
    spec = PipelineSpec.model_validate(raw)
    if spec.k == 0 or not _random(spec, label_mode):
        raw["seed"] = None
    cells = []
    for permutation in range(min(orders if spec.k else 1, math.factorial(spec.k))):
        cell = Cell.model_validate({**raw, "label_mode": label_mode})
        cell = cell.model_copy(update={"permutation": permutation})
        blob = json.dumps([context, cell.params()], sort_keys=True).encode()
        cells.append(cell.model_copy(update={"id": hashlib.sha256(blob).hexdigest()[:12]}))
    return cells


def scoring_calls(cell: PipelineSpec) -> int:
    """Model calls the cell's method makes per query, the calibrator's probes included.

    One scoring (ensembles and sampling: several), each with the calibrator's probes (fewer
    when queries share their demonstrations and so their probes); none for a method that does
    not use the backend.
    """
    method = methods.create(cell.classifier.method)
    if not method.uses_backend:
        return 0
    probes = 0
    if cell.classifier.calibration is not None:
        probes = calibrators.create(cell.classifier.calibration).probes_per_prompt()
    return method.calls_per_prompt() * (1 + probes)


def model_calls(cell: PipelineSpec, n_queries: int) -> int:
    """How many prompts the cell scores for ``n_queries`` evaluation queries (at most).

    Per query, the method's :func:`scoring_calls` plus what an LM-aware selector (``cone``,
    ``mdl``) spends choosing the demonstrations.
    """
    selecting = 0
    if cell.k > 0:
        selecting = selectors.create(cell.options("selector")).calls_per_query(cell.k)
    return n_queries * (scoring_calls(cell) + selecting)
