"""Classification metrics over gold and predicted labels, in scikit-learn's argument order.

Every function takes ``gold`` first and ``predicted`` second (as ``sklearn.metrics`` does);
a prediction of ``None`` (generated text that names no label) counts as wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from iclkit.errors import ConfigError

#: Stands for a ``None`` prediction inside scikit-learn, which needs strings throughout.
_NO_LABEL = "\x00no label\x00"


def _checked(gold: Sequence[str | None], predicted: Sequence[str | None]) -> tuple[list[str], ...]:
    if len(gold) != len(predicted):
        raise ConfigError(
            f"a metric needs as many predictions as gold labels (got {len(gold)} gold labels "
            f"and {len(predicted)} predictions)"
        )
    as_text = [[_NO_LABEL if v is None else str(v) for v in values] for values in (gold, predicted)]
    return tuple(as_text)


def accuracy(gold: Sequence[str | None], predicted: Sequence[str | None]) -> float:
    """The share of predictions equal to their gold label (0.0 for no predictions).

    Raises:
        ConfigError: if the two sequences differ in length.
    """
    gold_text, predicted_text = _checked(gold, predicted)
    if not gold_text:
        return 0.0
    return sum(g == p for g, p in zip(gold_text, predicted_text, strict=True)) / len(gold_text)


def macro_f1(
    gold: Sequence[str | None], predicted: Sequence[str | None], labels: Iterable[str]
) -> float:
    """The unweighted mean over ``labels`` of each label's F1 score (``sklearn.metrics.f1_score``).

    A label never predicted and never gold counts 0 (``zero_division=0``); a prediction outside
    ``labels`` (an unparsable generation) counts as a miss of its gold label and as nobody's
    false positive.

    Raises:
        ConfigError: if the two sequences differ in length or ``labels`` is empty.
    """
    from sklearn.metrics import f1_score

    gold_text, predicted_text = _checked(gold, predicted)
    label_list = [str(label) for label in labels]
    if not label_list:
        raise ConfigError("macro_f1 needs at least one label")
    if not gold_text:
        return 0.0
    return float(
        f1_score(gold_text, predicted_text, labels=label_list, average="macro", zero_division=0)
    )
