"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use").

A content-free input ("N/A", "", "[MASK]") is put through the same instruction and
demonstrations as the real query; the label distribution the model gives it estimates the
prompt's label bias. The bias is the mean of those distributions; calibrated probabilities are
the model's label probabilities divided by the bias, renormalised to sum to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from iclkit.backends.base import Backend, ContinuationScore
from iclkit.errors import ConfigError
from iclkit.example import Example
from iclkit.formatters.base import Formatter
from iclkit.inference.labels import LabelSpace
from iclkit.prompt import Prompt

CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")
"""The content-free inputs of Zhao et al. 2021."""

Method = Literal["acc", "acc_norm"]


def label_probabilities(
    scores: Sequence[Sequence[ContinuationScore]], method: Method = "acc"
) -> npt.NDArray[np.float64]:
    """Softmax over each prompt's label log-likelihoods: an ``(n_prompts, n_labels)`` array.

    ``method="acc"`` uses the summed log-likelihood of each label's continuation,
    ``"acc_norm"`` the mean per token (length-normalised).

    Raises:
        ConfigError: for an unknown ``method``.
    """
    if method == "acc":
        logits = np.array([[s.logprob for s in row] for row in scores], dtype=np.float64)
    elif method == "acc_norm":
        logits = np.array(
            [[s.logprob / s.n_tokens for s in row] for row in scores], dtype=np.float64
        )
    else:
        raise ConfigError(f"method must be 'acc' or 'acc_norm', got {method!r}")
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    probabilities: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def content_free_prompts(
    prompt: Prompt, formatter: Formatter, content_free: Sequence[str] = CONTENT_FREE
) -> list[Prompt]:
    """``prompt`` rebuilt with each content-free input in place of its query.

    Every input field of the query (all of them, for multi-field inputs) is replaced by the
    content-free string; demonstrations and instruction stay as they are. ``formatter`` must
    be the one that built ``prompt``.

    Raises:
        ConfigError: if ``content_free`` is empty.
        TemplateError: if the formatter cannot render the content-free query.
    """
    if not content_free:
        raise ConfigError("content_free needs at least one input, e.g. ('N/A', '', '[MASK]')")
    query = prompt.query.input
    return [
        formatter.format(
            Example(input=text if isinstance(query, str) else dict.fromkeys(query, text)),
            prompt.demonstrations,
            prompt.instruction,
        )
        for text in content_free
    ]


def _score_unique(
    backend: Backend, prompts: Sequence[Prompt], space: LabelSpace
) -> dict[tuple[str, str], list[ContinuationScore]]:
    """Label scores of the distinct prompts among ``prompts``, from one backend call."""
    unique: dict[tuple[str, str], Prompt] = {}
    for prompt in prompts:
        unique.setdefault((prompt.text, prompt.answer_prefix), prompt)
    keys = list(unique)
    scored = backend.score(
        [unique[k] for k in keys], [space.continuations(unique[k].answer_prefix) for k in keys]
    )
    return dict(zip(keys, scored, strict=True))


def _bias(
    groups: Sequence[Sequence[Prompt]],
    scored: dict[tuple[str, str], list[ContinuationScore]],
    method: Method,
) -> npt.NDArray[np.float64]:
    """Mean label probabilities over each group of content-free prompts."""
    keys = list(dict.fromkeys((cf.text, cf.answer_prefix) for group in groups for cf in group))
    probabilities = dict(
        zip(keys, label_probabilities([scored[k] for k in keys], method), strict=True)
    )
    return np.array(
        [
            np.mean([probabilities[(cf.text, cf.answer_prefix)] for cf in group], axis=0)
            for group in groups
        ]
    )


def contextual_bias(
    backend: Backend,
    prompts: Sequence[Prompt],
    space: LabelSpace,
    formatter: Formatter,
    method: Method = "acc",
    content_free: Sequence[str] = CONTENT_FREE,
) -> npt.NDArray[np.float64]:
    """The label bias of each prompt: mean label probabilities over its content-free inputs.

    Prompts that share instruction and demonstrations share content-free prompts, which are
    scored once. Returns an ``(n_prompts, n_labels)`` array.

    Raises:
        BackendError: if the backend cannot score.
        ConfigError: for an unknown ``method`` or empty ``content_free``.
    """
    groups = [content_free_prompts(p, formatter, content_free) for p in prompts]
    scored = _score_unique(backend, [cf for group in groups for cf in group], space)
    return _bias(groups, scored, method)


def score_with_bias(
    backend: Backend,
    prompts: Sequence[Prompt],
    space: LabelSpace,
    formatter: Formatter,
    method: Method = "acc",
    content_free: Sequence[str] = CONTENT_FREE,
) -> tuple[list[list[ContinuationScore]], npt.NDArray[np.float64]]:
    """The label scores of ``prompts`` and their :func:`contextual_bias`, in one backend call.

    Sending a query and its content-free inputs together lets a backend run their shared
    instruction and demonstrations once (the ``local`` backend does).

    Raises:
        BackendError: if the backend cannot score.
        ConfigError: for an unknown ``method`` or empty ``content_free``.
    """
    groups = [content_free_prompts(p, formatter, content_free) for p in prompts]
    scored = _score_unique(backend, [*prompts, *(cf for group in groups for cf in group)], space)
    scores = [scored[(p.text, p.answer_prefix)] for p in prompts]
    return scores, _bias(groups, scored, method)


def calibrate(
    probabilities: npt.NDArray[np.float64], bias: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Divide label probabilities by the bias and renormalise each row to sum to one.

    Raises:
        ConfigError: if the shapes differ.
    """
    if probabilities.shape != bias.shape:
        raise ConfigError(
            f"probabilities {probabilities.shape} and bias {bias.shape} differ in shape"
        )
    adjusted = probabilities / np.clip(bias, 1e-12, None)
    calibrated: npt.NDArray[np.float64] = adjusted / adjusted.sum(axis=1, keepdims=True)
    return calibrated
