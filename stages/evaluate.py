"""Stage 4: score the fine-tuned model on the test split, beside a classical baseline on the same train split,
and say how far its scores can be read as probabilities.

The model answers the raw test inputs through the serving half (hfx.serving), exactly as `python -m hfx.predict
--format pytorch` does on models/finetuned: the scores here are those of what is served.

Reads `task`, `evaluate.*`. Writes metrics/eval.json (the task's scores, per class, the loss, the baseline and
the margin over it, the most frequent confusions), metrics/calibration.json (the calibration error, and the
temperature fitted on validation that export stores for predict and serve), metrics/predictions.csv (a table
a person can read, with the `actual` and `predicted` columns the confusion matrix plots), metrics/errors.csv
(the most confident mistakes) and metrics/plots/ (the task's curves and tables, and the reliability diagram
before and after the temperature).
"""

import json
from pathlib import Path

import pandas as pd
import torch
from datasets import load_dataset

from hfx.serving.transforms import probabilities
from hfx.training.adapters import get_task
from hfx.training.adapters.common import scored
from hfx.training.artifacts import atomic_dir, atomic_file, write_json
from hfx.training.calibration import expected_calibration_error, fit_temperature, nll, reliability
from hfx.training.params import load_params, run_stage
from hfx.training.served_scores import serve_split


def served(task, folder: str, raw_split, batch_size: int):
    """The fine-tuned folder's answers to a split's raw inputs, through the serving half as `python -m
    hfx.predict --format pytorch` gives them."""
    return serve_split(Path(folder), "pytorch", task, raw_split, batch_size, torch.get_num_threads())


def decided(task, answers, raw_split) -> tuple:
    """The (logits, gold ids) each class answer was decided from."""
    return scored(answers.decided, task.gold_ids(raw_split, answers.model.info.labels))


def calibration(test: tuple, validation: tuple | None) -> tuple[dict, dict]:
    """(calibration.json, the reliability diagram's files): the test ECE, and with a validation split the
    temperature fitted on it and the ECE under that temperature, on test and on validation. Rounded to 4
    digits, so that what export reads changes with the model, not with evaluate.batch_size's float noise. A
    temperature that cannot be trusted stays 1.0, with the reason under `temperature_not_fitted`."""
    logits, labels = test
    summary = {"ece": expected_calibration_error(probabilities(logits), labels)}
    temperature = 1.0
    if validation is not None:
        fit_logits, fit_labels = validation
        temperature, kept_at_1 = fit_temperature(fit_logits, fit_labels)
        temperature = round(temperature, 4)
        summary |= {
            "ece_calibrated": expected_calibration_error(probabilities(logits, temperature), labels),
            "temperature": temperature,
            "validation_ece": expected_calibration_error(probabilities(fit_logits), fit_labels),
            "validation_ece_calibrated": expected_calibration_error(probabilities(fit_logits, temperature), fit_labels),
        }
    rounded = {key: round(value, 4) for key, value in summary.items()}
    if validation is not None and kept_at_1:
        rounded["temperature_not_fitted"] = kept_at_1  # why the temperature stays 1.0
    return rounded, {
        "reliability.json": reliability(probabilities(logits), labels),
        "reliability_calibrated.json": reliability(probabilities(logits, temperature), labels),
    }


def confusions(predictions: pd.DataFrame, count: int = 5) -> dict:
    """The most frequent mistakes, as {"gold -> predicted": rows}."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    pairs = wrong.groupby(["actual", "predicted"]).size().sort_values(ascending=False, kind="stable")
    return {f"{gold} -> {predicted}": int(n) for (gold, predicted), n in pairs.head(count).items()}


def main() -> None:
    params = load_params()
    task, paths = get_task(params.task), params.paths
    splits = ("train", "test", "validation")
    raw = load_dataset("parquet", data_files={split: f"{paths.raw}/{split}.parquet" for split in splits})

    test = served(task, paths.finetuned, raw["test"], params.evaluate.batch_size)
    names = test.model.info.labels
    evaluation = task.evaluation(raw["test"], test.results, test.decided, names)
    baseline = task.baseline(raw["train"], raw["test"])
    predictions = evaluation.predictions
    errors = task.worst_errors(predictions, params.evaluate.top_errors)
    metrics = {
        **evaluation.metrics,
        "n_test": len(raw["test"]),
        "baseline": baseline,
        "margin_over_baseline": {key: evaluation.metrics[key] - baseline[key] for key in task.margin_keys},
    }
    calibrated, reliability_files = {}, {}  # a number (regression) is not a probability to calibrate
    if task.scores_are_probabilities:
        logits, labels = decided(task, test, raw["test"])
        # The temperature is fitted on validation: the test split only ever measures.
        validation = None
        if params.evaluate.calibrate:
            validation_answers = served(task, paths.finetuned, raw["validation"], params.evaluate.batch_size)
            validation = decided(task, validation_answers, raw["validation"])
        calibrated, reliability_files = calibration((logits, labels), validation)
        metrics |= {
            "loss": nll(logits, labels),  # mean cross-entropy of the gold labels (entities: of each word seen)
            "top_confusions": confusions(predictions),
            "per_class": evaluation.per_class,
        }
    write_json(paths.eval_metrics, metrics)
    write_json(paths.calibration, calibrated)
    with atomic_file(paths.predictions) as partial:
        predictions.to_csv(partial, index=False)
    with atomic_file(paths.errors) as partial:
        errors.to_csv(partial, index=False)
    with atomic_dir(paths.eval_plots) as out:
        for name, content in {**evaluation.files, **reliability_files}.items():
            if isinstance(content, pd.DataFrame):
                content.to_csv(out / name, index=False)
            else:
                (out / name).write_text(json.dumps(content, indent=2) + "\n")
    scores = ", ".join(
        f"{key} {evaluation.metrics[key]:.4f} (baseline {baseline[key]:.4f})" for key in task.margin_keys
    )
    if "ece" in calibrated:
        scores += f"; calibration error {calibrated['ece']:.4f}"
    if "ece_calibrated" in calibrated:
        scores += f", {calibrated['ece_calibrated']:.4f} at temperature {calibrated['temperature']:g}"
    print(f"evaluate: {scores} -> {Path(paths.eval_metrics)}")


if __name__ == "__main__":
    run_stage(main)
