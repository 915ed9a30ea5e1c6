"""Calibrators: plugins that correct a classifier's label probabilities.

Built in: ``contextual`` (Zhao et al. 2021), ``domain`` (domain-context calibration, Fei et al.
2023) and ``batch`` (Zhou et al. 2023). Third-party calibrators register under the
``iclkit.calibrators`` entry-point group, like every other component.
"""

from iclkit.calibrators.base import (
    Calibrator,
    Probabilities,
    ProbeCalibrator,
    divide_out,
    same_fields,
)
from iclkit.calibrators.batch import BatchCalibrator
from iclkit.calibrators.contextual import CONTENT_FREE, ContextualCalibrator
from iclkit.calibrators.domain import DomainContextCalibrator, random_domain_inputs

__all__ = [
    "CONTENT_FREE",
    "BatchCalibrator",
    "Calibrator",
    "ContextualCalibrator",
    "DomainContextCalibrator",
    "Probabilities",
    "ProbeCalibrator",
    "divide_out",
    "random_domain_inputs",
    "same_fields",
]
