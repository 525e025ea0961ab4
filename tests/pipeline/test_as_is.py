"""`finetune.epochs: 0`: a ready-made classifier scored as it is, its labels matched to the data's by name."""

import json
import shutil
import subprocess
import sys

import pytest

from hfx.training.adapters import get_adapter
from hfx.training.as_is import model_as_is
from hfx.training.params import Model, ParamsError
from tests.project import ROOT, commit_all, copy_of, run, set_params, stage_env


def test_a_model_without_a_head_or_labels_is_refused_in_one_line(exported_model, tiny_model):
    task = get_adapter("text-classification")
    with pytest.raises(ParamsError, match="has no classification head"):
        model_as_is(task, Model(name=str(tiny_model)), {"neg": 0, "pos": 1})
    with pytest.raises(ParamsError, match=r"no label \['good'\]"):
        model_as_is(task, Model(name=str(exported_model)), {"good": 0, "pos": 1})


def test_the_exported_model_scored_as_is_gives_its_own_test_scores(exported_model, tmp_path):
    first = exported_model.parents[1]
    repo = copy_of(first, tmp_path / "repo")  # the same data and params, and the model that run exported
    set_params(
        repo,
        model__name=str(shutil.copytree(exported_model, tmp_path / "ready-made")),
        finetune__epochs=0,
        data__label_names={"pos": "pos", "neg": "neg"},  # the data's order, the reverse of the model's
    )
    commit_all(repo)
    result = run(["dvc", "repro"], repo)
    assert "kept as it is" in result.stdout

    trained, as_is = (json.loads((r / "metrics/eval.json").read_text()) for r in (first, repo))
    assert as_is["accuracy"] == trained["accuracy"] and as_is["f1_macro"] == trained["f1_macro"]
    assert as_is["loss"] == pytest.approx(trained["loss"], abs=1e-6)
    config = json.loads((repo / "models/finetuned/config.json").read_text())
    assert config["id2label"] == {"0": "pos", "1": "neg"}
    assert not (repo / "metrics/train/plots").exists(), "no training curves for a model that was not trained"
    texts = ["the film was brilliant", "the plot was dull"]
    labels = [
        [
            json.loads(line)["label"]
            for line in subprocess.run(
                [sys.executable, "-m", "hfx.predict", *texts, "--model", str(folder)],
                cwd=ROOT,
                env=stage_env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
        ]
        for folder in (exported_model, repo / "models/export")
    ]
    assert labels[0] == labels[1] == ["pos", "neg"]
    assert "as it is" in (repo / "models/export/README.md").read_text()
