"""Experiments: a config describes a grid; iclkit runs it reproducibly and reports what worked.

Python API (the same as ``iclkit run CONFIG``)::

    from iclkit.experiment import load_config, run_experiment

    config = load_config("examples/quickstart.yaml")
    report = run_experiment(config, "runs/quickstart")
    print(report.seeds)

The runner (which imports the backends) is loaded only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iclkit.experiment.config import (
    DataConfig,
    ExperimentConfig,
    RunConfig,
    TuneConfig,
    load_config,
    validate_config,
)

if TYPE_CHECKING:
    from iclkit.experiment.report import Report, render_report
    from iclkit.experiment.runner import Plan, plan_experiment, run_experiment

_LAZY = {
    "Report": "iclkit.experiment.report",
    "render_report": "iclkit.experiment.report",
    "Plan": "iclkit.experiment.runner",
    "plan_experiment": "iclkit.experiment.runner",
    "run_experiment": "iclkit.experiment.runner",
}


def __getattr__(name: str) -> Any:
    """Import the runner and report names on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'iclkit.experiment' has no attribute {name!r}")


__all__ = [
    "DataConfig",
    "ExperimentConfig",
    "Plan",
    "Report",
    "RunConfig",
    "TuneConfig",
    "load_config",
    "plan_experiment",
    "render_report",
    "run_experiment",
    "validate_config",
]
