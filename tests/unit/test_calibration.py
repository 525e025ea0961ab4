"""Calibration: the ECE against a hand computation, the temperature on made-up over- and underconfident
scores, and each answer scored by the logits it was decided from (tests/pipeline/test_calibration.py follows
the fitted temperature to the folder, `predict` and `serve`)."""

import numpy as np
import pytest

from hfx.serving.transforms import probabilities
from hfx.training.adapters.common import scored
from hfx.training.calibration import (
    TemperatureScaling,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
)


def test_ece_equals_a_hand_computation():
    # Four predictions at 0.9 (three right) and two at 0.6 (one right), in bins (0.867, 0.933] and (0.533, 0.6]:
    # ECE = 4/6 * |0.75 - 0.9| + 2/6 * |0.5 - 0.6| = 0.1 + 0.0333...
    probs = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 0])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.1 + 0.1 / 3, abs=1e-12)
    points = reliability(probs, labels)
    assert [(p["bin"], p["count"], p["accuracy"]) for p in points] == [("0.53-0.60", 2, 0.5), ("0.87-0.93", 4, 0.75)]
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == 0.0


@pytest.mark.parametrize("scale", [3.0, 0.5])  # over- and underconfident
def test_temperature_undoes_a_scaled_model_and_keeps_every_prediction(scale):
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=1.5, size=(4000, 4))
    labels = np.array([rng.choice(4, p=p) for p in probabilities(true_logits)])
    logits = true_logits * scale  # the model's scores: right ranking, wrong confidence
    validation, test = slice(0, 2000), slice(2000, None)
    temperature, not_fitted = fit_temperature(logits[validation], labels[validation])
    assert not_fitted is None
    assert temperature == pytest.approx(scale, rel=0.1)
    assert nll(logits[validation], labels[validation], temperature) < nll(logits[validation], labels[validation])
    before = expected_calibration_error(probabilities(logits[test]), labels[test])
    after = expected_calibration_error(probabilities(logits[test], temperature), labels[test])
    assert after < before / 2
    assert (probabilities(logits, temperature).argmax(-1) == logits.argmax(-1)).all()


def test_a_temperature_that_cannot_be_trusted_stays_1_and_says_why():
    """A validation split the model gets all right would pull the fit to its lower bound (scores of 1.0 for wrong
    answers too); one it gets right by chance, to its upper bound. Both keep 1.0 and say why."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    logits = np.eye(2)[labels] * rng.uniform(0.5, 3, (400, 1))  # every validation row right
    temperature, why = fit_temperature(logits, labels)
    assert temperature == 1.0 and "0 wrong predictions of 400" in why
    test_logits, test_labels = rng.normal(size=(100, 2)), rng.integers(0, 2, 100)
    scaling = TemperatureScaling()
    summary, _, _ = scaling.report(
        (test_logits, test_labels), (logits, labels), scaling.fit((logits, labels), ["a", "b"]), ["a", "b"]
    )
    assert summary["temperature"] == 1.0 and "too few to fit" in summary["temperature_not_fitted"]
    assert summary["ece_calibrated"] == summary["ece"]
    coin = np.eye(2)[np.where(np.arange(400) % 2, labels, 1 - labels)] * 5  # half wrong, all sure: no T fits
    temperature, why = fit_temperature(coin, labels)
    assert temperature == 1.0 and "bound 20" in why


def test_without_validation_only_the_test_ece_is_reported():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(50, 3)), rng.integers(0, 3, 50)
    summary, files, _ = TemperatureScaling().report((logits, labels), None, {}, ["a", "b", "c"])
    assert summary == {"ece": round(expected_calibration_error(probabilities(logits), labels), 4)}
    assert files["reliability.json"] == files["reliability_calibrated.json"]  # no temperature: the same points


def test_each_answer_is_scored_by_the_logits_it_was_decided_from_and_unseen_words_are_left_out():
    one_per_text = [np.array([[0.0, 1.0]]), np.array([[2.0, 3.0]])]
    flat, gold = scored(one_per_text, [np.array([1]), np.array([0])])
    assert flat.tolist() == [[0, 1], [2, 3]] and gold.tolist() == [1, 0]
    one_per_word = [np.array([[0.0, 1.0], [2.0, 3.0], [np.nan, np.nan]]), np.array([[4.0, 5.0]])]
    flat, gold = scored(one_per_word, [np.array([1, 0, 1]), np.array([0])])
    assert flat.tolist() == [[0, 1], [2, 3], [4, 5]] and gold.tolist() == [1, 0, 0]
