"""Run an experiment grid: build every cell's prompts, predict, and append the results.

``plan_experiment`` loads the data and expands the grid (all a dry run needs);
``run_experiment`` runs the cells not yet finished in the output folder and renders the
report. Predictions already in ``results.jsonl`` are never recomputed, so a run that was
interrupted (Ctrl-C, crash, kill) continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iclkit._version import __version__
from iclkit.backends.base import Backend
from iclkit.builder import PromptBuilder
from iclkit.example import Example
from iclkit.experiment.ablations import permute, relabel, verbalizer_for
from iclkit.experiment.config import ExperimentConfig
from iclkit.experiment.data import ExperimentData, load_data
from iclkit.experiment.grid import Cell, context_key, expand_grid, model_calls
from iclkit.experiment.preflight import check_prompts
from iclkit.experiment.report import Report, render_report
from iclkit.experiment.store import ResultsStore
from iclkit.formatters.base import Formatter
from iclkit.inference import GenerationClassifier, LikelihoodClassifier, Prediction
from iclkit.prompt import Prompt
from iclkit.registry import backends, formatters


@dataclass(frozen=True)
class Plan:
    """An expanded experiment: its data, cells, and the model calls each cell makes."""

    config: ExperimentConfig
    data: ExperimentData
    cells: list[Cell]
    calls: dict[str, int]
    grid_hash: str

    @property
    def predictions(self) -> int:
        """Predictions the whole grid makes (cells × evaluation queries)."""
        return len(self.cells) * len(self.data.eval)

    def info(self) -> dict[str, Any]:
        """What ``run.json`` records: the grid, its cells, the label space and the config."""
        return {
            "name": self.config.name,
            "grid_hash": self.grid_hash,
            "iclkit_version": __version__,
            "labels": list(self.config.data.labels),
            "eval_size": len(self.data.eval),
            "pool_size": len(self.data.pool),
            "cells": [{"id": cell.id, "params": cell.params()} for cell in self.cells],
            "config": self.config.model_dump(mode="json"),
        }


def plan_experiment(config: ExperimentConfig) -> Plan:
    """Load the data and expand the grid, without loading any model.

    Raises:
        FileNotFoundError: if a data file does not exist.
        DataError: for malformed data, labels outside the label space, empty inputs, or an
            example that does not fit the prompt template.
        ConfigError: if a k exceeds the pool.
    """
    data = load_data(config.data)
    check_prompts(config, data, _Prompts(config, data).formatter("gold"))
    context = context_key(config, data.fingerprint)
    cells = expand_grid(config, context, len(data.pool))
    n_content_free = len(config.run.content_free_inputs)
    calls = {
        cell.id: model_calls(cell, len(data.eval), n_content_free, config.run.batch_size)
        for cell in cells
    }
    grid_hash = hashlib.sha256(" ".join(sorted(calls)).encode()).hexdigest()[:16]
    return Plan(config=config, data=data, cells=cells, calls=calls, grid_hash=grid_hash)


def _key(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True)


class _Prompts:
    """Builds a cell's prompts.

    The base selection is built once per (selector, k, orderer); the cell's permutation,
    label transform and verbalizer are applied on top.
    """

    def __init__(self, config: ExperimentConfig, data: ExperimentData) -> None:
        self.config = config
        self.data = data
        self._base: dict[str, dict[str, Prompt]] = {}
        self._formatters: dict[str, Formatter] = {}

    def formatter(self, label_mode: str) -> Formatter:
        words = verbalizer_for(
            label_mode, self.config.data.labels, self.config.run.unrelated_labels
        )
        key = _key(words)
        if key not in self._formatters:
            prompt = self.config.prompt
            spec: dict[str, Any] = {"name": prompt.formatter, "verbalizer": words}
            if prompt.formatter == "text":
                spec |= {"template": prompt.template, "separator": prompt.separator}
            else:
                spec["input_template"] = prompt.template
            self._formatters[key] = formatters.create(spec)
        return self._formatters[key]

    def base(self, cell: Cell) -> dict[str, Prompt]:
        """The cell's base prompt for every evaluation query, keyed by query id.

        Built once per (selector, k, orderer) and shared by the cells that differ only in
        labels, order or model.
        """
        key = _key([cell.selector, cell.k, cell.orderer])
        if key not in self._base:
            builder = PromptBuilder(
                selector=cell.selector or "first",
                orderer=cell.orderer or "as-selected",
                formatter=self.formatter("gold"),
                k=cell.k,
                instruction=self.config.prompt.instruction,
            ).fit(self.data.pool)
            queries = list(self.data.eval)
            self._base[key] = {
                str(query.id): prompt
                for query, prompt in zip(queries, builder.build_batch(queries), strict=True)
            }
        return self._base[key]

    def for_cell(self, cell: Cell, queries: Sequence[Example]) -> list[Prompt]:
        base = self.base(cell)
        formatter = self.formatter(cell.label_mode)
        labels = list(self.config.data.labels)
        seed = cell.seed or 0
        prompts = []
        for query in queries:
            demos = permute(base[str(query.id)].demonstrations, cell.permutation, seed)
            demos = relabel(demos, cell.label_mode, labels, seed)
            prompts.append(formatter.format(query, demos, self.config.prompt.instruction))
        return prompts


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _calibration_twins(cells: Sequence[Cell]) -> list[list[Cell]]:
    """``cells`` grouped with the cells that differ from them only in calibration.

    A group runs batch by batch together, the calibrated cell first: it scores each query with
    its content-free inputs in one backend call (see
    :func:`~iclkit.inference.calibration.score_with_bias`), and the uncalibrated cell's scores
    of the same prompts are then answered by the backend from memory.
    """
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[_key(cell.model_dump(mode="json", exclude={"id", "calibration"}))].append(cell)
    # Calibrated first: its queries and their content-free inputs go to the backend together.
    return [sorted(group, key=lambda cell: not cell.calibration) for group in groups.values()]


def _record(cell: Cell, prompt: Prompt, prediction: Prediction) -> dict[str, Any]:
    return {
        "cell": cell.id,
        "query": str(prompt.query.id),
        "demos": [str(demo.example.id) for demo in prompt.demonstrations],
        "demo_labels": [demo.example.output for demo in prompt.demonstrations],
        "scores": {label: score.logprob for label, score in prediction.scores.items()},
        "probabilities": prediction.probabilities,
        "output": prediction.text,
        "prediction": prediction.label,
        "gold": prompt.query.output,
        "params": cell.params(),
    }


def _classifier(
    cell: Cell, backend: Backend, formatter: Formatter, config: ExperimentConfig
) -> LikelihoodClassifier | GenerationClassifier:
    """The :mod:`iclkit.inference` classifier that makes the cell's predictions."""
    words = formatter.verbalizer or {}
    if cell.scoring == "generate":
        return GenerationClassifier(backend, words, max_tokens=config.run.max_tokens)
    return LikelihoodClassifier(
        backend,
        words,
        method="acc_norm" if cell.scoring == "loglik-norm" else "acc",
        calibration="contextual" if cell.calibration else None,
        formatter=formatter,
        content_free=config.run.content_free_inputs,
    )


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Report:
    """Run every unfinished prediction of the grid into ``out`` and render the report.

    Predictions are appended to ``out/results.jsonl`` batch by batch (``run.batch_size``);
    those already there are skipped. A progress bar with ETA covers the whole grid. The
    folder is locked for the run (see :meth:`ResultsStore.lock`); nothing in it is deleted
    before the whole plan has been checked against the data.

    Raises:
        ConfigError: if ``out`` holds another config's results and neither ``resume`` nor
            ``overwrite`` is set, another run is using ``out``, or a component option is
            invalid.
        DataError: for bad data (see :func:`plan_experiment`).
        BackendError: if a model backend fails.
    """
    plan = plan_experiment(config)
    store = ResultsStore(out)
    with store.lock():
        done = store.open(plan.info(), resume=resume, overwrite=overwrite)
        _run_pending(config, plan, store, done, progress)
        return render_report(store.folder)


def _run_pending(
    config: ExperimentConfig,
    plan: Plan,
    store: ResultsStore,
    done: set[tuple[str, str]],
    progress: bool,
) -> None:
    """Predict every (cell, query) of ``plan`` not in ``done`` and append it to ``store``."""
    queries = list(plan.data.eval)
    pending = {
        cell.id: [query for query in queries if (cell.id, str(query.id)) not in done]
        for cell in plan.cells
    }
    remaining = sum(len(todo) for todo in pending.values())
    prompts = _Prompts(config, plan.data)
    by_backend: dict[str, list[Cell]] = defaultdict(list)
    for cell in plan.cells:
        if pending[cell.id]:
            by_backend[_key(cell.backend)].append(cell)
    with tqdm(
        total=plan.predictions,
        initial=plan.predictions - remaining,
        unit="pred",
        desc=config.name,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for cells in by_backend.values():
            backend = backends.create(cells[0].backend)
            for twins in _calibration_twins(cells):
                todo = {cell.id: {str(q.id) for q in pending[cell.id]} for cell in twins}
                union = [
                    query for query in queries if any(str(query.id) in t for t in todo.values())
                ]
                classifiers = {
                    cell.id: _classifier(cell, backend, prompts.formatter(cell.label_mode), config)
                    for cell in twins
                }
                for batch in _batches(union, config.run.batch_size):
                    for cell in twins:
                        cell_batch = [q for q in batch if str(q.id) in todo[cell.id]]
                        if not cell_batch:
                            continue
                        seed = "" if cell.seed is None else f" seed={cell.seed}"
                        bar.set_postfix_str(
                            f"{cell.selector_name} k={cell.k}{seed} {cell.label_mode}"
                        )
                        cell_prompts = prompts.for_cell(cell, cell_batch)
                        predictions = classifiers[cell.id].predict(cell_prompts)
                        store.append(
                            [
                                _record(cell, prompt, prediction)
                                for prompt, prediction in zip(
                                    cell_prompts, predictions, strict=True
                                )
                            ]
                        )
                        bar.update(len(cell_batch))
