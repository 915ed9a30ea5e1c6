"""Expand an experiment config into grid cells, and count the model calls they need."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from iclkit.errors import ConfigError
from iclkit.experiment.config import ExperimentConfig
from iclkit.registry import Registry, orderers, selectors


class Cell(BaseModel):
    """One point of the grid: everything that decides the predictions for the evaluation set.

    ``selector`` and ``orderer`` are the component specs with the cell's seed filled in where
    the component takes one; both are ``None`` for zero-shot (``k = 0``). ``seed`` is ``None``
    when nothing in the cell is random. ``permutation`` 0 is the orderer's own order; p > 0 a
    seeded permutation of it (the same one for every query). ``id`` is a hash of all of this
    and of the experiment's data, prompt and run settings.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    selector: dict[str, Any] | None
    k: int
    orderer: dict[str, Any] | None
    seed: int | None
    backend: dict[str, Any]
    calibration: bool
    scoring: str
    label_mode: str
    permutation: int

    def params(self) -> dict[str, Any]:
        """The cell's parameters (everything but the id) as a JSON-ready mapping."""
        return self.model_dump(mode="json", exclude={"id"})

    @property
    def selector_name(self) -> str:
        """The selector's display name: ``zero-shot`` for k = 0, else name and options."""
        return "zero-shot" if self.selector is None else component_label(self.selector)

    @property
    def orderer_name(self) -> str:
        """The orderer's display name (``-`` for zero-shot)."""
        return "-" if self.orderer is None else component_label(self.orderer)


def component_label(spec: dict[str, Any]) -> str:
    """``{"name": "mmr", "lambda_": 0.5, "seed": 1}`` → ``mmr(lambda_=0.5)`` (seed left out)."""
    options = {key: value for key, value in spec.items() if key not in ("name", "seed")}
    if not options:
        return str(spec["name"])
    inner = ",".join(f"{key}={value}" for key, value in sorted(options.items()))
    return f"{spec['name']}({inner})"


def _with_seed(
    registry: Registry[Any], spec: dict[str, Any], seed: int
) -> tuple[dict[str, Any], bool]:
    """The spec with ``seed`` filled in when the component takes one the spec does not fix."""
    if "seed" in spec or "seed" not in inspect.signature(registry.get(spec["name"])).parameters:
        return spec, False
    return {**spec, "seed": seed}, True


def context_key(config: ExperimentConfig, data_fingerprint: str) -> str:
    """A hash of everything outside the cells that changes predictions.

    That is the data content, the label space, the prompt and the run settings that reach the
    model (generation length, content-free inputs, unrelated label words).
    """
    payload = {
        "data": data_fingerprint,
        "labels": config.data.labels,
        "prompt": config.prompt.model_dump(mode="json"),
        "run": config.run.model_dump(mode="json", exclude={"batch_size"}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cell(context: str, **params: Any) -> Cell:
    blob = json.dumps([context, params], sort_keys=True, default=str).encode()
    return Cell(id=hashlib.sha256(blob).hexdigest()[:12], **params)


def expand_grid(config: ExperimentConfig, context: str, pool_size: int) -> list[Cell]:
    """Every distinct cell of every grid in ``config.sweep``, in sweep order.

    Parameters that do not apply collapse: zero-shot has no selector, orderer, label mode or
    permutation; a cell where nothing is random has no seed (its permutations are drawn from
    seed 0); generation has no calibration.

    Raises:
        ConfigError: if a k exceeds the pool size (naming the key).
        PluginNotFoundError, PluginLoadError: if a component cannot be loaded.
    """
    cells: dict[str, Cell] = {}
    for number, grid in enumerate(config.sweep):
        key = "sweep.k" if len(config.sweep) == 1 else f"sweep[{number}].k"
        too_big = [k for k in grid.k if k > pool_size]
        if too_big:
            raise ConfigError(
                f"{key}: k={too_big[0]} is larger than the pool ({pool_size} examples after "
                f"data.pool_slice/pool_size); allowed: 0 to {pool_size}"
            )
        for k, selector, orderer, seed, backend, calibration, scoring, mode in itertools.product(
            grid.k,
            grid.selectors,
            grid.orderers,
            grid.seeds,
            grid.backends,
            grid.calibration,
            grid.scoring,
            grid.label_modes,
        ):
            shared = {
                "k": k,
                "backend": backend,
                # Contextual calibration corrects label probabilities; generation has none.
                "calibration": calibration and scoring != "generate",
                "scoring": scoring,
            }
            if k == 0:
                cell = _cell(
                    context,
                    selector=None,
                    orderer=None,
                    seed=None,
                    label_mode="gold",
                    permutation=0,
                    **shared,
                )
                cells.setdefault(cell.id, cell)
                continue
            selector_spec, selector_seeded = _with_seed(selectors, selector, seed)
            orderer_spec, orderer_seeded = _with_seed(orderers, orderer, seed)
            seeded = selector_seeded or orderer_seeded or mode == "random"
            for permutation in range(min(grid.permutations, math.factorial(k))):
                cell = _cell(
                    context,
                    selector=selector_spec,
                    orderer=orderer_spec,
                    seed=seed if seeded else None,
                    label_mode=mode,
                    permutation=permutation,
                    **shared,
                )
                cells.setdefault(cell.id, cell)
    return list(cells.values())


def model_calls(cell: Cell, n_queries: int, n_content_free: int, batch_size: int) -> int:
    """How many prompts the cell sends to its backend for ``n_queries`` evaluation queries.

    One per query; contextual calibration adds one per content-free input for each distinct
    demonstration set in a batch: once per batch for zero-shot, at most once per query
    otherwise (fewer when queries share their demonstrations).
    """
    calls = n_queries
    if cell.calibration:
        sets = -(-n_queries // batch_size) if cell.k == 0 else n_queries
        calls += n_content_free * sets
    return calls
