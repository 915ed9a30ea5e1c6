"""Run an experiment grid: split it into work units, run them, and append their results.

``plan_experiment`` loads the data, expands the grid and splits it into :class:`WorkUnit` s
(all a dry run needs); ``run_experiment`` runs the units not yet finished in the output folder
and renders the report. A unit is a group of cells that build the same prompts (they differ
only in how labels are read off the model) × a shard of the evaluation set; its records are
appended in one write, so that units can run in any order, be retried, and be skipped when a
re-run finds them finished. Predictions already in ``results.jsonl`` are never recomputed, so
a run that was interrupted (Ctrl-C, crash, kill) continues where it stopped, and the finished
``results.jsonl`` holds the same records in the same order however the run went.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iclkit._version import __version__
from iclkit.backends.base import Backend
from iclkit.builder import PromptBuilder
from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.experiment.ablations import permute, relabel
from iclkit.experiment.baselines import baseline_cells
from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import ExperimentData, load_data, load_dev_data
from iclkit.experiment.grid import Cell, context_key, expand_grid, model_calls, scoring_calls
from iclkit.experiment.preflight import check_prompts
from iclkit.experiment.report import Report, render_report
from iclkit.experiment.store import ResultsStore
from iclkit.inference import Prediction
from iclkit.prompt import Prompt


@dataclass(frozen=True)
class WorkUnit:
    """Cells that build the same prompts × a shard of the evaluation set.

    ``index`` is the unit's place in the plan; ``cells`` and ``queries`` are ids, in grid and
    evaluation-set order. A unit's records are all (cell, query) pairs of the two.
    """

    index: int
    cells: tuple[str, ...]
    queries: tuple[str, ...]

    def pairs(self) -> list[tuple[str, str]]:
        """The (cell id, query id) pairs the unit predicts, in record order."""
        return [(cell, query) for cell in self.cells for query in self.queries]


@dataclass(frozen=True)
class Plan:
    """An expanded experiment: its data, cells, work units and the model calls of each cell.

    ``baselines`` maps the id of each baseline cell to its baseline's name (see
    :mod:`iclkit.experiment.baselines`); ``baseline_info`` records how they were set up.
    """

    config: ExperimentConfig
    data: ExperimentData
    cells: list[Cell]
    units: list[WorkUnit]
    calls: dict[str, int]
    grid_hash: str
    baselines: dict[str, str] = field(default_factory=dict)
    baseline_info: dict[str, Any] = field(default_factory=dict)
    _cells: dict[str, Cell] = field(init=False, repr=False, compare=False)
    _queries: dict[str, Example] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cells", {cell.id: cell for cell in self.cells})
        object.__setattr__(self, "_queries", {str(q.id): q for q in self.data.eval})

    @property
    def predictions(self) -> int:
        """Predictions the whole grid makes (cells × evaluation queries)."""
        return len(self.cells) * len(self.data.eval)

    def cell(self, cell_id: str) -> Cell:
        """The cell with this id."""
        return self._cells[cell_id]

    def query(self, query_id: str) -> Example:
        """The evaluation example with this id."""
        return self._queries[query_id]

    @cached_property
    def order(self) -> dict[tuple[str, str], int]:
        """Each (cell id, query id) pair's place in the finished ``results.jsonl``."""
        pairs = (pair for unit in self.units for pair in unit.pairs())
        return {pair: place for place, pair in enumerate(pairs)}

    def info(self) -> dict[str, Any]:
        """What ``run.json`` records: the grid, its cells, the label space and the config."""
        return {
            "name": self.config.name,
            "grid_hash": self.grid_hash,
            "iclkit_version": __version__,
            "labels": list(self.config.data.labels),
            "eval_size": len(self.data.eval),
            "pool_size": len(self.data.pool),
            "cells": [
                {"id": cell.id, "params": cell.params(), "baseline": self.baselines.get(cell.id)}
                for cell in self.cells
            ],
            "baselines": self.baseline_info,
            "config": self.config.model_dump(mode="json"),
        }

    def only(self, cell_ids: Container[str]) -> Plan:
        """The same plan with only the cells in ``cell_ids`` (their units and calls)."""
        cells = [cell for cell in self.cells if cell.id in cell_ids]
        return _plan(self.config, self.data, cells, self.baselines, self.baseline_info)


def _units(cells: Sequence[Cell], queries: Sequence[Example], size: int) -> list[WorkUnit]:
    groups: dict[str, list[str]] = {}
    for cell in cells:
        groups.setdefault(cell.prompt_key, []).append(cell.id)
    ids = [str(query.id) for query in queries]
    shards = [tuple(ids[start : start + size]) for start in range(0, len(ids), size)]
    units: list[WorkUnit] = []
    for members in groups.values():
        for shard in shards:
            units.append(WorkUnit(index=len(units), cells=tuple(members), queries=shard))
    return units


def plan_experiment(
    config: ExperimentConfig,
    data: ExperimentData | None = None,
    dev: ExperimentData | None = None,
) -> Plan:
    """Load the data and expand the grid, with its baselines, into cells and work units.

    ``data`` replaces what ``config.data`` describes (``iclkit tune`` passes its dev split).
    ``dev`` is the split the ``knn-vote`` baseline's k is chosen on; by default the dev split
    ``iclkit tune`` would carve from the pool (at most half of it), so that ``iclkit run``
    chooses it as ``iclkit tune`` does and never on the evaluation set. Choosing it embeds
    the pool with the bundled embedder (through the embedding cache); nothing else loads a
    model.

    Raises:
        FileNotFoundError: if a data file does not exist.
        DataError: for malformed data, labels outside the label space, empty inputs, or an
            example that does not fit the pipeline's formatter.
        ConfigError: if the config has no evaluation set, or a k exceeds the pool.
    """
    given = data
    if data is None:
        if config.data.source("eval") is None:
            raise ConfigError(
                "data.eval is missing: `iclkit run` evaluates the grid on it. Fix: add "
                "data.eval (or use `iclkit tune`, which chooses on a dev split of the pool)"
            )
        data = load_data(config.data)
    context = context_key(config, data.fingerprint)
    grid = expand_grid(config, context, len(data.pool))
    check_prompts(grid, data, "dev" if given is not None and given is dev else "eval")
    size = min(config.tune.dev_size, len(data.pool) // 2)
    if dev is None and "knn-vote" in config.baselines.include and size > 0:
        dev = load_dev_data(config.data, size, config.tune.dev_seed)
    baselines = baseline_cells(config, len(data.pool), context, dev)
    known = set(baselines.names)
    cells = baselines.cells + [cell for cell in grid if cell.id not in known]
    return _plan(config, data, cells, baselines.names, baselines.info)


def _plan(
    config: ExperimentConfig,
    data: ExperimentData,
    cells: list[Cell],
    baselines: dict[str, str],
    baseline_info: dict[str, Any],
) -> Plan:
    calls = {cell.id: model_calls(cell, len(data.eval)) for cell in cells}
    grid_hash = hashlib.sha256(" ".join(sorted(calls)).encode()).hexdigest()[:16]
    units = _units(cells, list(data.eval), config.run.batch_size)
    return Plan(
        config=config,
        data=data,
        cells=cells,
        units=units,
        calls=calls,
        grid_hash=grid_hash,
        baselines={cell.id: baselines[cell.id] for cell in cells if cell.id in baselines},
        baseline_info=baseline_info,
    )


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class UnitRunner:
    """Runs work units in one process, keeping what units share between them.

    One backend per backend spec (one loaded model) and one fitted builder per selection
    (selector, k, orderer, seed, formatter, instruction, token budget, backend) live as long
    as the runner.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._backends: dict[str, Backend] = {}
        self._builders: dict[str, PromptBuilder] = {}

    def backend(self, cell: Cell) -> Backend:
        """The backend of ``cell`` (made on first use, then shared)."""
        key = _json_key(cell.options("backend"))
        if key not in self._backends:
            self._backends[key] = cell.create_backend()
        return self._backends[key]

    def builder(self, cell: Cell) -> PromptBuilder:
        """The fitted builder that selects ``cell``'s demonstrations (with its gold labels)."""
        key = _json_key(cell.model_dump(exclude={"id", "classifier", "label_mode", "permutation"}))
        if key not in self._builders:
            # Gold labels: the label mode only changes what is shown, not what is selected.
            spec = cell.model_copy(update={"label_mode": "gold"}).pipeline([])
            self._builders[key] = spec.builder(self.backend(cell)).fit(self.plan.data.pool)
        return self._builders[key]

    def prompts(self, cell: Cell, queries: Sequence[Example]) -> tuple[list[Prompt], PromptBuilder]:
        """``cell``'s prompts for ``queries`` and the builder that renders them.

        The demonstrations are selected by the gold-label builder; the cell's permutation and
        label mode are applied on top and the prompt is rendered with the words it shows.
        """
        base = self.builder(cell)
        prompts = base.build_batch(queries)
        if cell.label_mode == "gold" and cell.permutation == 0:
            return prompts, base
        spec = cell.pipeline(self.plan.config.run.unrelated_labels)
        view = base.with_formatter({**spec.options("formatter"), "verbalizer": spec.labels})
        labels = list(cell.labels)
        seed = cell.seed or 0
        changed = []
        for prompt in prompts:
            demos = permute(prompt.demonstrations, cell.permutation, seed)
            demos = relabel(demos, cell.label_mode, labels, seed)
            rendered = view.render(prompt.query, demos)
            changed.append(rendered.model_copy(update={"dropped": prompt.dropped}))
        return changed, view

    def run(self, unit: WorkUnit, done: Container[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """The records of ``unit``'s (cell, query) pairs not in ``done``, in record order.

        Raises:
            BackendError: if a model backend fails.
            TemplateError, SelectionError, TokenBudgetError: if a prompt cannot be built.
        """
        cells = [self.plan.cell(cell_id) for cell_id in unit.cells]
        todo = {cell.id: [q for q in unit.queries if (cell.id, q) not in done] for cell in cells}
        needed = [q for q in unit.queries if any(q in ids for ids in todo.values())]
        if not needed:
            return []
        first = cells[0]
        queries = [self.plan.query(q) for q in needed]
        prompts, view = self.prompts(first, queries)
        by_query = dict(zip(needed, prompts, strict=True))
        backend = self.backend(first)
        unrelated = self.plan.config.run.unrelated_labels
        records = []
        for cell in cells:
            if not todo[cell.id]:
                continue
            chosen = [by_query[q] for q in todo[cell.id]]
            predictions = cell.pipeline(unrelated).scorer(backend).predict(chosen, view)
            calls = scoring_calls(cell)
            for prompt, prediction in zip(chosen, predictions, strict=True):
                records.append(_record(cell, prompt, prediction, backend, calls))
        return records


def _record(
    cell: Cell, prompt: Prompt, prediction: Prediction, backend: Backend, calls: int
) -> dict[str, Any]:
    return {
        "cell": cell.id,
        "query": str(prompt.query.id),
        "text": prompt.query.text,
        "demos": [str(demo.example.id) for demo in prompt.demonstrations],
        "demo_labels": [demo.example.output for demo in prompt.demonstrations],
        "demo_scores": [demo.score for demo in prompt.demonstrations],
        "dropped": [str(demo.example.id) for demo in prompt.dropped],
        "scores": {label: score.logprob for label, score in prediction.scores.items()},
        "probabilities": prediction.probabilities,
        "output": prediction.text,
        "prediction": prediction.label,
        "gold": prompt.query.output,
        **_cost(prompt, prediction, backend, calls),
        "params": cell.params(),
    }


def _cost(prompt: Prompt, prediction: Prediction, backend: Backend, calls: int) -> dict[str, int]:
    """The prompt tokens and model calls one prediction cost, choosing its demonstrations too.

    The method's own count when it gives one (ensembles, sampling), else one scoring of the
    prompt with ``calls`` model calls (probes included); none for a method without a model.
    """
    tokens = prediction.prompt_tokens
    if tokens is None:
        tokens = backend.count_tokens(prompt.text) if calls else 0
    made = calls if prediction.model_calls is None else prediction.model_calls
    return {
        "prompt_tokens": tokens + prompt.selection_tokens,
        "model_calls": made + prompt.selection_calls,
    }


def run_units(
    plan: Plan, units: Sequence[WorkUnit], done: Container[tuple[str, str]]
) -> Iterator[tuple[WorkUnit, list[dict[str, Any]]]]:
    """Run ``units`` one after another in this process, yielding each with its new records."""
    runner = UnitRunner(plan)
    for unit in units:
        yield unit, runner.run(unit, done)


#: What runs a plan's pending units and yields each with its new records, in any order:
#: :func:`run_units` (this process) or an executor of :mod:`iclkit.experiment.executors`.
UnitExecutor = Callable[
    [Plan, Sequence[WorkUnit], Container[tuple[str, str]]],
    Iterator[tuple[WorkUnit, list[dict[str, Any]]]],
]


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    html: bool = True,
    executor: UnitExecutor = run_units,
) -> Report:
    """Run every unfinished prediction of the grid into ``out`` and render the report.

    The same as ``run_plan(plan_experiment(config), out, ...)``; ``html=False`` skips
    ``report.html``; ``executor`` runs the work units (default: this process; see
    :mod:`iclkit.experiment.executors`). Nothing in ``out`` is deleted before the whole plan
    has been checked against the data.

    Raises:
        ConfigError: if ``out`` holds another config's results and neither ``resume`` nor
            ``overwrite`` is set, another run is using ``out``, or a component option is
            invalid.
        DataError: for bad data (see :func:`plan_experiment`).
        BackendError: if a model backend fails.
    """
    return run_plan(
        plan_experiment(config),
        out,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        html=html,
        executor=executor,
    )


def run_plan(
    plan: Plan,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    html: bool = True,
    executor: UnitExecutor = run_units,
) -> Report:
    """Run every unfinished prediction of ``plan`` into ``out`` and render the report.

    ``executor`` runs the pending work units, here or in workers, and hands back their
    records; only this function writes the folder. Each unit's predictions are appended to
    ``out/results.jsonl`` in one write, as the unit finishes; predictions already there are
    skipped (also when an executor hands a unit back twice). A progress bar with ETA covers
    the whole grid. When every unit is done, ``results.jsonl`` is put in plan order (the
    same file whatever the executor, the order of the units or the interruptions). The
    folder is locked for the run (see :meth:`ResultsStore.lock`): a second run on it stops
    with a clear error.

    Raises:
        ConfigError: if ``out`` holds another config's results and neither ``resume`` nor
            ``overwrite`` is set.
        BackendError: if a model backend fails.
    """
    store = ResultsStore(out)
    with store.lock():
        done = store.open(plan.info(), resume=resume, overwrite=overwrite)
        pending = [unit for unit in plan.units if any(p not in done for p in unit.pairs())]
        remaining = sum(sum(p not in done for p in unit.pairs()) for unit in pending)
        with tqdm(
            total=plan.predictions,
            initial=plan.predictions - remaining,
            unit="pred",
            desc=plan.config.name,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            for unit, records in executor(plan, pending, done):
                new = [r for r in records if (r["cell"], r["query"]) not in done]
                done.update((r["cell"], r["query"]) for r in new)
                first = plan.cell(unit.cells[0])
                bar.set_postfix_str(f"{first.selector_name} k={first.k}", refresh=False)
                store.append(new)
                bar.update(len(new))
        store.put_in_order(plan.order)
        return render_report(store.folder, html=html)
