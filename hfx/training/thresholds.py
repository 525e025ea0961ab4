"""Per-label thresholds for multi-label answers: a label is given when its sigmoid score reaches its threshold.

One threshold per label, fitted on the validation split to that label's best F1 (a rare label often needs a
threshold well under 0.5 to be given at all); 0.5 for a label validation never has. evaluate fits them, export
stores them in the folder's calibration.json, and predict and serve apply them. The test split only measures.
How far each label's scores can be read as probabilities is its calibration error (ECE, as for one label).
"""

import numpy as np
from scipy.special import expit

from hfx.training.calibration import expected_calibration_error, reliability
from hfx.training.params import Evaluate

DEFAULT = 0.5  # a label validation lacks: no evidence to move it


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The threshold with the best F1 on these rows: about halfway between the lowest score it keeps and the next
    one down, so that a format's float noise does not flip the row it was fitted at. Ties go to the higher one."""
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order]
    true_positives = np.cumsum(truth)
    kept = np.arange(1, len(scores) + 1)
    f1 = 2 * true_positives / (kept + truth.sum())
    cuts = np.flatnonzero(np.append(scores[:-1] > scores[1:], True))  # only between different scores
    best = cuts[np.argmax(f1[cuts])]
    below = scores[best + 1] if best + 1 < len(scores) else 0.0
    gap = scores[best] - below
    threshold = shortest_decimal(below + gap / 4, scores[best] - gap / 4)
    # Saturated sigmoids (1.0, or 0.0) can put it on an end: a folder takes only thresholds strictly between.
    return float(np.clip(threshold, np.finfo(np.float64).tiny, np.nextafter(1.0, 0.0)))


def shortest_decimal(low: float, high: float) -> float:
    """The number with the fewest significant digits between `low` and `high` (both in), nearest their middle:
    calibration.json's bytes change with the model, not with float noise, and no rounding moves a threshold
    past the score it was fitted to keep (rounding to 4 decimal places made 4e-5 a 0, given to every text)."""
    middle = (low + high) / 2
    for digits in range(1, 18):
        value = float(f"{middle:.{digits}g}")
        if low <= value <= high:
            return value
    return float(middle)


def fit_thresholds(probabilities: np.ndarray, gold: np.ndarray) -> list[tuple[float, bool]]:
    """(threshold, fitted) per label column: the best-F1 threshold, or (DEFAULT, False) for a label with no
    positive row here."""
    return [
        (best_threshold(probabilities[:, j], gold[:, j]), True) if gold[:, j].any() else (DEFAULT, False)
        for j in range(gold.shape[1])
    ]


def binary_cross_entropy(logits: np.ndarray, gold: np.ndarray) -> float:
    """Mean binary cross-entropy over every (row, label): the loss the model trained on."""
    logits = logits.astype(np.float64)
    return float((np.logaddexp(0, logits) - gold * logits).mean())


def binary_ece(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """A yes-or-no score's calibration error: a score of 0.2 should be right (a yes) about 2 times in 10."""
    return expected_calibration_error(np.stack([1 - probabilities, probabilities], -1), truth.astype(np.int64))


class PerLabelThresholds:
    """How evaluate makes multi-label answers: thresholds fitted on validation, always (they decide the labels)."""

    def fits(self, settings: Evaluate) -> bool:
        return True

    def fit(self, validation: tuple[np.ndarray, np.ndarray], names: list[str]) -> dict:
        """calibration.json's part that predict and serve apply: {"thresholds": {label: t}} (each as short as
        its place between two scores allows: `shortest_decimal`); labels left at 0.5 are named."""
        logits, gold = validation
        fitted = fit_thresholds(expit(logits.astype(np.float64)), gold)
        result = {"thresholds": {name: t for name, (t, _) in zip(names, fitted)}}
        default = [name for name, (_, was_fitted) in zip(names, fitted) if not was_fitted]
        if default:
            result["thresholds_not_fitted"] = f"validation has no row of {', '.join(default)}: {DEFAULT} kept"
        return result

    def report(self, test: tuple, validation: tuple | None, fitted: dict, names: list[str]) -> tuple[dict, dict, dict]:
        """(calibration.json, the reliability diagram's files, test metrics): each label's calibration error on
        test and their mean, beside the thresholds; the diagram pools every (row, label) score."""
        logits, gold = test
        probabilities = expit(logits.astype(np.float64))
        per_label = {name: binary_ece(probabilities[:, j], gold[:, j]) for j, name in enumerate(names)}
        summary = {
            "ece": round(float(np.mean(list(per_label.values()))), 4),
            "ece_per_label": {name: round(value, 4) for name, value in per_label.items()},
            **fitted,
        }
        pooled = np.stack([1 - probabilities.ravel(), probabilities.ravel()], -1)
        files = {"reliability.json": reliability(pooled, gold.ravel().astype(np.int64))}
        return summary, files, {"loss": binary_cross_entropy(logits, gold)}
