"""The catalogue of mechanism checks and the one call that runs a check and writes its files."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType

from iclkit.errors import ConfigError
from iclkit.mech.report import CheckReport

CHECKS: dict[str, tuple[str, str]] = {
    "softmax-knn": (
        "iclkit.mech.softmax_knn",
        "Softmax attention over (x, y) pairs is a Gaussian-kernel smoother; c→∞ gives 1-NN.",
    ),
    "lsa-gd": (
        "iclkit.mech.lsa_gd",
        "Linear self-attention = one GD step (von Oswald et al. 2023; Ahn et al. 2023).",
    ),
    "momentum-attention": (
        "iclkit.mech.momentum",
        "Momentum attention identities and a comparison on a synthetic ICL task (Dai et al.).",
    ),
    "induction": (
        "iclkit.mech.induction",
        "Induction heads in Gemma 3 270M and the phase change of a toy model (Olsson et al.).",
    ),
    "function-class": (
        "iclkit.mech.function_class",
        "A tiny transformer learns in-context linear regression (Garg et al. 2022).",
    ),
    "icl-vs-ft": (
        "iclkit.mech.icl_vs_ft",
        "ICL vs fine-tuning of attention K/V on SST-2 with Gemma 3 270M (Dai et al. 2023).",
    ),
    "tabular-icl": (
        "iclkit.mech.tabular_icl",
        "A prior-fitted transformer classifies small real tables in context (TabPFN-style).",
    ),
    "label-anchors": (
        "iclkit.mech.label_anchors",
        "Label words as anchors: saliency flows and isolation on SST-2, Gemma (Wang et al.).",
    ),
}
"""Check name → (module with ``run(fast, seed)`` and ``plot(report, path)``, one-line summary)."""


def check_module(name: str) -> ModuleType:
    """The module implementing the check called ``name``.

    Raises:
        ConfigError: if there is no such check.
    """
    if name not in CHECKS:
        raise ConfigError(f"unknown mechanism check {name!r}; available: {', '.join(CHECKS)}")
    return importlib.import_module(CHECKS[name][0])


def run_check(
    name: str, *, fast: bool = False, seed: int = 0, out_dir: Path | None = None
) -> CheckReport:
    """Run the check ``name``; with ``out_dir``, write ``NAME.json`` and ``NAME.png`` there.

    Raises:
        ConfigError: if there is no such check.
    """
    module = check_module(name)
    start = time.perf_counter()
    report: CheckReport = module.run(fast=fast, seed=seed)
    report.seconds = time.perf_counter() - start
    if out_dir is not None:
        module.plot(report, out_dir / f"{name}.png")
        report.write_json(out_dir / f"{name}.json")
    return report
