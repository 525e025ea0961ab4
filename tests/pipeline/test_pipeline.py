"""End to end: `dvc repro` in a throw-away copy of the repo, on a tiny BERT and generated data."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from datasets import load_from_disk
from transformers import AutoModel

from tests.project import ROOT, commit_all, copy_of, run, stage_env

EVAL_KEYS = {
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "loss",
    "n_test",
    "per_class",
    "baseline",
    "roc_auc",
    "average_precision",
    "top_confusions",
}


EXPORT_FILES = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.onnx",
    "model_quantized.onnx",
    "README.md",
    "confusion_matrix.png",
    "training_curves.png",
    "calibration.json",
}


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory, tiny_run):
    """A copy of the tiny run (its pipeline has run once), which these tests change, and that run's output."""
    repo, first = tiny_run
    return copy_of(repo, tmp_path_factory.mktemp("e2e") / "repo"), first


def test_repro_runs_every_stage_and_writes_every_out(pipeline_repo):
    repo, first = pipeline_repo
    assert ran_stages(first.stdout) == ["check_params", "download", "preprocess", "finetune", "evaluate", "export"]

    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert manifest["splits"]["validation"]["origin"].startswith("carved from train")
    assert manifest["splits"]["test"]["origin"] == "source"
    assert sum(s["rows"] for s in manifest["splits"].values()) == 300
    labels = json.loads((repo / "data/processed/labels.json").read_text())
    assert labels["id2label"] == {"0": "neg", "1": "pos"}

    config = json.loads((repo / "models/finetuned/config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    assert EXPORT_FILES <= {p.name for p in (repo / "models/export").iterdir()}

    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert EVAL_KEYS <= set(metrics)
    assert metrics["n_test"] == 60
    assert set(metrics["per_class"]) == {"neg", "pos"}
    assert set(metrics["baseline"]) >= {"accuracy", "f1_macro"}
    assert metrics["accuracy"] > 0.8, "the cue-word task is easy; the tiny model must learn it"
    predictions = pd.read_csv(repo / "metrics/predictions.csv")
    assert list(predictions.columns) == ["text", "actual", "predicted", "score"] and len(predictions) == 60
    test_texts = pd.read_csv(repo / "inputs/test.csv")["review"].tolist()
    assert predictions["text"].tolist() == test_texts, "one row per test text, in order"

    train_metrics = json.loads((repo / "metrics/train/metrics.json").read_text())
    assert "eval" in train_metrics and "train" in train_metrics
    assert (repo / "metrics/train/plots/metrics/train/loss.tsv").is_file()
    logged_params = yaml.safe_load((repo / "metrics/train/params.yaml").read_text())
    assert logged_params["learning_rate"] == 3e-3 and "output_dir" not in logged_params, (
        "curated, not all TrainingArguments"
    )

    roc = json.loads((repo / "metrics/plots/roc.json").read_text())
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0} and roc[-1] == {"fpr": 1.0, "tpr": 1.0}
    per_class = (repo / "metrics/plots/per_class.csv").read_text().splitlines()
    assert per_class[0] == "label,precision,recall,f1,support" and len(per_class) == 3
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    errors = pd.read_csv(repo / "metrics/errors.csv")  # all of them: fewer than evaluate.top_errors
    assert len(errors) == len(wrong) and (errors["actual"] != errors["predicted"]).all()
    assert errors["score"].is_monotonic_decreasing and sum(metrics["top_confusions"].values()) == len(wrong)
    for name in ("reliability.json", "reliability_calibrated.json"):
        assert sum(point["count"] for point in json.loads((repo / "metrics/plots" / name).read_text())) == 60
    calibration = json.loads((repo / "metrics/calibration.json").read_text())
    assert 0 <= calibration["ece_calibrated"] <= 1 and 0 <= calibration["ece"] <= 1 and calibration["temperature"] > 0
    card = (repo / "models/export/README.md").read_text()
    assert "![Confusion matrix on the test split](confusion_matrix.png)" in card
    assert (repo / "models/export/training_curves.png").read_bytes().startswith(b"\x89PNG")


def test_onnx_matches_pytorch(pipeline_repo):
    repo, _ = pipeline_repo
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["formats"] == ["pytorch", "fp32", "int8"]
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["accuracy"]["fp32"] == export["accuracy"]["pytorch"]
    assert abs(export["accuracy"]["int8"] - export["accuracy"]["pytorch"]) <= 0.05
    assert export["f1_macro"]["fp32"] == export["f1_macro"]["pytorch"]  # each card score per format, not only one
    assert all(export["latency_ms_batch1"][f] > 0 for f in export["formats"])


@pytest.mark.parametrize("fmt", ["pytorch", "fp32", "int8"])
def test_predict_over_the_test_split_gets_exactly_the_accuracy_export_reports(pipeline_repo, tmp_path, fmt):
    """What is measured is what is served: `python -m hfx.predict` on data/raw/test.parquet, as a user runs it."""
    repo, _ = pipeline_repo
    out = tmp_path / "labelled.parquet"
    run(
        [
            sys.executable,
            "-m",
            "hfx.predict",
            str(repo / "data/raw/test.parquet"),
            "--model",
            str(repo / "models/export"),
            "--format",
            fmt,
            "--output",
            str(out),
        ],
        ROOT,
    )
    labelled = pd.read_parquet(out)
    accuracy = float((labelled["predicted_label"] == labelled["label"]).mean())
    assert accuracy == json.loads((repo / "metrics/export.json").read_text())["accuracy"][fmt]
    assert accuracy == json.loads((repo / "metrics/eval.json").read_text())["accuracy"] or fmt == "int8"
    if fmt == "pytorch":  # evaluate's answers are predict's, row by row: the same serving code on the same weights
        evaluated = pd.read_csv(repo / "metrics/predictions.csv")
        assert evaluated["predicted"].tolist() == labelled["predicted_label"].tolist()
        assert np.allclose(evaluated["score"], labelled["score"], atol=1e-5)


def test_exported_folder_loads_in_a_pipeline(pipeline_repo):
    from transformers import pipeline

    repo, _ = pipeline_repo
    classify = pipeline("text-classification", model=str(repo / "models/export"))
    assert classify("the film was brilliant and superb")[0]["label"] == "pos"
    assert classify("the plot was dull and tedious")[0]["label"] == "neg"


def test_second_repro_runs_nothing_and_status_is_clean(pipeline_repo):
    repo, _ = pipeline_repo
    again = run(["dvc", "repro"], repo)
    assert ran_stages(again.stdout) == []
    status = run(["dvc", "status", "--json"], repo)
    assert json.loads(status.stdout) == {}


def test_dvc_sends_no_usage_report_without_being_told(pipeline_repo):
    """The project's .dvc/config turns DVC's analytics off: DVC ignores DO_NOT_TRACK, and the report's background
    process costs a no-op `dvc repro` a tenth of its time."""
    repo, _ = pipeline_repo
    env = {k: v for k, v in stage_env().items() if k not in ("DVC_NO_ANALYTICS", "DVC_TEST", "DO_NOT_TRACK")}
    verbose = subprocess.run(["dvc", "status", "-v"], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert "Analytics is disabled" in verbose.stdout + verbose.stderr


def test_plots_and_metrics_are_registered(pipeline_repo):
    repo, _ = pipeline_repo
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    files = next(iter(shown.values()))["data"]
    assert set(files) == {
        "metrics/data.json",
        "metrics/data_plots/lengths.json",
        "metrics/eval.json",
        "metrics/calibration.json",
        "metrics/export.json",
    }
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    names = set(plots["data"] if "data" in plots else plots)
    assert {
        "Training and validation loss",
        "Validation scores",
        "Learning rate",
        "Confusion matrix (test)",
        "ROC (test)",
        "Precision-recall (test)",
        "Per-class F1 (test)",
        "Reliability (test)",
        "Label balance per split",
        "Text length in tokens per split",
    } <= names


def test_exp_run_with_new_learning_rate_reruns_only_downstream_stages(pipeline_repo):
    repo, _ = pipeline_repo
    commit_all(repo, "first run")
    result = run(["dvc", "exp", "run", "-S", "finetune.learning_rate=2e-3"], repo)
    assert ran_stages(result.stdout) == ["check_params", "finetune", "evaluate", "export"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    runs = [exp["revs"][0]["data"] for rev in shown for exp in (rev.get("experiments") or [])]
    new_lr = [data for data in runs if data["params"]["params.yaml"]["data"]["finetune"]["learning_rate"] == 2e-3]
    assert len(new_lr) == 1, "the experiment is listed with its learning rate"
    assert {"accuracy", "f1_macro", "loss"} <= set(new_lr[0]["metrics"]["metrics/eval.json"]["data"])


def test_evaluate_param_reruns_only_evaluate(pipeline_repo):
    repo, _ = pipeline_repo
    result = run(["dvc", "exp", "run", "-S", "evaluate.batch_size=8"], repo)
    assert ran_stages(result.stdout) == ["check_params", "evaluate"]


def test_token_embeddings_train_by_default_and_stay_pretrained_when_frozen(pipeline_repo, tiny_model):
    repo, _ = pipeline_repo
    pretrained = AutoModel.from_pretrained(tiny_model)
    default_run = AutoModel.from_pretrained(repo / "models/finetuned")
    assert not torch.equal(default_run.get_input_embeddings().weight, pretrained.get_input_embeddings().weight)

    run(["dvc", "exp", "run", "-S", "finetune.freeze_token_embeddings=true", "finetune"], repo)  # the weights only
    frozen_run = AutoModel.from_pretrained(repo / "models/finetuned")
    assert torch.equal(frozen_run.get_input_embeddings().weight, pretrained.get_input_embeddings().weight)
    first_dense = [model.encoder.layer[0].output.dense.weight for model in (frozen_run, pretrained)]
    assert not torch.equal(*first_dense), "the rest of the model still trains"


def test_balanced_class_weights_train_with_the_weights_said(pipeline_repo):
    repo, _ = pipeline_repo
    run(["git", "checkout", "--", "params.yaml"], repo)
    result = run(["dvc", "exp", "run", "-S", "finetune.class_weights=balanced", "evaluate"], repo)
    run(["git", "checkout", "--", "params.yaml"], repo)
    said = re.search(r"finetune: class weights \(balanced\): neg ([\d.]+), pos ([\d.]+)", result.stdout)
    assert said, result.stdout[-2000:]
    labels = np.array(load_from_disk(str(repo / "data/processed"))["train"]["labels"])
    expected = [len(labels) / (2 * (labels == i).sum()) for i in (0, 1)]
    assert [float(w) for w in said.groups()] == pytest.approx(expected, rel=1e-2)
    assert json.loads((repo / "metrics/eval.json").read_text())["accuracy"] > 0.8


def test_a_classifier_with_another_label_count_gets_a_new_head(pipeline_repo, tmp_path, tiny_model):
    """Starting from an already fine-tuned classifier (say a 3-class one) for this 2-class data."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    repo, _ = pipeline_repo
    classifier = tmp_path / "three-label-classifier"
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    AutoModelForSequenceClassification.from_pretrained(
        tiny_model, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()}
    ).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(classifier)

    run(["git", "checkout", "--", "params.yaml"], repo)  # the committed params, not an earlier test's experiment
    result = run(["dvc", "exp", "run", "-S", f"model.name={classifier}", "evaluate"], repo)
    assert "comes with a 3-label head; a new 2-label head is trained in its place" in result.stdout
    config = json.loads((repo / "models/finetuned/config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert json.loads((repo / "metrics/eval.json").read_text())["accuracy"] > 0.8
