"""Calibrators: plugins that correct a classifier's label probabilities.

Built in: ``contextual`` (Zhao et al. 2021). Third-party calibrators register under the
``iclkit.calibrators`` entry-point group, like every other component.
"""

from iclkit.calibrators.base import Calibrator, Probabilities, divide_out
from iclkit.calibrators.contextual import CONTENT_FREE, ContextualCalibrator

__all__ = ["CONTENT_FREE", "Calibrator", "ContextualCalibrator", "Probabilities", "divide_out"]
