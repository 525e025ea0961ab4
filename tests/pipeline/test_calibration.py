"""Calibration: the ECE against a hand computation, the temperature on made-up over- and underconfident
scores, and the temperature the pipeline fits reaching the exported folder, `predict` and `serve`."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hfx.serving.transforms import probabilities
from tests.project import ROOT, copy_of, run, stage_env


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
