"""Calibration: the ECE against a hand computation, the temperature on made-up over- and underconfident
scores, and the temperature the pipeline fits reaching the exported folder, `predict` and `serve`."""

import json
import shutil
import subprocess
import sys

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
from tests.conftest import ROOT, copy_of, run, stage_env


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


def test_the_temperature_reaches_the_folder_and_its_card(tiny_run, tmp_path):
    """The tiny run gets every validation row right: its temperature stays 1 and the card says why. A fitted one
    (written where evaluate writes it, then export run again) reaches the folder, and the card states it."""
    repo = tiny_run[0]
    evaluation = json.loads((repo / "metrics/calibration.json").read_text())
    calibration = json.loads((repo / "models/export/calibration.json").read_text())
    assert evaluation["temperature"] == calibration["temperature"] == 1.0
    assert "too few to fit" in evaluation["temperature_not_fitted"]
    card = (repo / "models/export/README.md").read_text()
    assert f"No temperature is applied: {evaluation['temperature_not_fitted']}" in card

    copy = copy_of(repo, tmp_path / "repo")
    fitted = {key: value for key, value in evaluation.items() if key != "temperature_not_fitted"} | {"temperature": 1.7}
    (copy / "metrics/calibration.json").write_text(json.dumps(fitted))
    run([sys.executable, "-m", "stages.export"], copy)
    calibration = json.loads((copy / "models/export/calibration.json").read_text())
    assert calibration["temperature"] == 1.7 and calibration["ece_calibrated"] == evaluation["ece_calibrated"]
    assert "temperature of 1.7" in (copy / "models/export/README.md").read_text()


def predict(folder, *texts) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/no_torch.py"),
            "-m",
            "hfx.predict",
            *texts,
            "--model",
            str(folder),
            "--format",
            "fp32",
            "--all-scores",
        ],
        cwd=ROOT,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_divides_the_logits_by_the_folders_temperature(exported_model, tmp_path):
    texts = ["the film was brilliant", "the plot was dull", "the cast was a really"]
    folders = {}
    for temperature in (1.0, 4.0):
        folders[temperature] = shutil.copytree(exported_model, tmp_path / str(temperature))
        (folders[temperature] / "calibration.json").write_text(json.dumps({"temperature": temperature}))
    scores = {
        t: [json.loads(line)["scores"] for line in predict(folder, *texts).stdout.splitlines()]
        for t, folder in folders.items()
    }
    for plain, cooled in zip(scores[1.0], scores[4.0]):
        labels = list(plain)
        logits = np.log([plain[label] for label in labels])  # up to a constant, which the softmax ignores
        assert [cooled[label] for label in labels] == pytest.approx(probabilities(logits, 4.0).tolist(), abs=1e-6)
        assert max(cooled, key=cooled.get) == max(plain, key=plain.get)

    (folders[4.0] / "calibration.json").write_text('{"temperature": -1}')
    refused = predict(folders[4.0], texts[0])
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "calibration.json" in refused.stderr
