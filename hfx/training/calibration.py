"""Whether a model's scores can be read as probabilities: the expected calibration error (ECE), the bins of a
reliability diagram, and one temperature, fitted on validation, that divides the logits so that they can
(Guo et al., "On Calibration of Modern Neural Networks", 2017). A temperature never changes a prediction."""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from hfx.serving.transforms import probabilities
from hfx.training.params import Evaluate

BINS = 15  # equal-width confidence bins, as the ECE is usually reported


def _bins(probs: np.ndarray, labels: np.ndarray, bins: int) -> list[tuple[int, int, float, float]]:
    """(bin, predictions, mean confidence, accuracy) per non-empty bin of top-class confidence, bin i holding
    the confidences in (i/bins, (i+1)/bins]."""
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return [
        (b, int((index == b).sum()), float(confidence[index == b].mean()), float(correct[index == b].mean()))
        for b in range(bins)
        if (index == b).any()
    ]


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """The reliability diagram's points: a calibrated model has accuracy equal to confidence in every bin."""
    return [
        {
            "bin": f"{b / bins:.2f}-{(b + 1) / bins:.2f}",
            "confidence": round(confidence, 6),
            "accuracy": round(accuracy, 6),
            "count": count,
        }
        for b, count, confidence, accuracy in _bins(probs, labels, bins)
    ]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """The gap between accuracy and confidence, averaged over the bins weighted by their predictions: 0.05 means
    that scores of 0.9 are right about 85 or 95 times in 100."""
    return sum(
        count * abs(accuracy - confidence) for _, count, confidence, accuracy in _bins(probs, labels, bins)
    ) / len(labels)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the gold labels under softmax(logits / temperature)."""
    return float(-log_softmax(logits / temperature, axis=-1)[np.arange(len(labels)), labels].mean())


BOUNDS = (0.05, 20.0)  # the temperatures searched
MIN_ERRORS = 3  # wrong validation predictions below which there is nothing to fit a temperature to


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, str | None]:
    """(temperature, None): the temperature in BOUNDS with the lowest NLL on these rows (above 1 the model was
    overconfident). (1.0, why) when no temperature can be trusted: the rows have fewer than MIN_ERRORS wrong
    predictions (the NLL then falls toward a temperature of 0, making every answer, wrong ones too, score 1.0),
    or the search stops at a bound."""
    errors = int((logits.argmax(-1) != labels).sum())
    if errors < MIN_ERRORS:
        return 1.0, (
            f"validation has {errors} wrong predictions of {len(labels)}, under {MIN_ERRORS}: too few to fit"
            " a temperature to; scores are the model's own"
        )
    low, high = np.log(BOUNDS[0]), np.log(BOUNDS[1])
    result = minimize_scalar(
        lambda log_t: nll(logits, labels, np.exp(log_t)), bounds=(low, high), method="bounded", options={"xatol": 1e-5}
    )
    if min(result.x - low, high - result.x) < 1e-3:
        return 1.0, (
            f"the fit stopped at the bound {np.exp(result.x):.3g} of {BOUNDS[0]:g}..{BOUNDS[1]:g}: no"
            " temperature in range fits validation; scores are the model's own"
        )
    return float(np.exp(result.x)), None


class TemperatureScaling:
    """How evaluate makes softmax scores readable as probabilities (one label per input, or per word): one
    temperature fitted on validation when `evaluate.calibrate` asks for it."""

    def fits(self, settings: Evaluate) -> bool:
        return settings.calibrate

    def fit(self, validation: tuple[np.ndarray, np.ndarray], names: list[str]) -> dict:
        """calibration.json's part that predict and serve apply: {"temperature": T}, rounded to 4 digits so that
        what export reads changes with the model, not with evaluate.batch_size's float noise. A temperature that
        cannot be trusted stays 1.0, with the reason under `temperature_not_fitted`."""
        temperature, kept_at_1 = fit_temperature(*validation)
        return {"temperature": round(temperature, 4), **({"temperature_not_fitted": kept_at_1} if kept_at_1 else {})}

    def report(self, test: tuple, validation: tuple | None, fitted: dict, names: list[str]) -> tuple[dict, dict, dict]:
        """(calibration.json, the reliability diagram's files, test metrics): the test ECE, and with a fitted
        temperature the ECE under it on test and on validation; the diagram before and after it; the test loss."""
        logits, labels = test
        temperature = fitted.get("temperature", 1.0)
        summary = {"ece": expected_calibration_error(probabilities(logits), labels)}
        if validation is not None:
            fit_logits, fit_labels = validation
            summary |= {
                "ece_calibrated": expected_calibration_error(probabilities(logits, temperature), labels),
                "temperature": temperature,
                "validation_ece": expected_calibration_error(probabilities(fit_logits), fit_labels),
                "validation_ece_calibrated": expected_calibration_error(
                    probabilities(fit_logits, temperature), fit_labels
                ),
            }
        rounded = {key: round(value, 4) for key, value in summary.items()}
        if "temperature_not_fitted" in fitted:
            rounded["temperature_not_fitted"] = fitted["temperature_not_fitted"]
        files = {
            "reliability.json": reliability(probabilities(logits), labels),
            "reliability_calibrated.json": reliability(probabilities(logits, temperature), labels),
        }
        return rounded, files, {"loss": nll(logits, labels)}  # mean cross-entropy of the gold labels
