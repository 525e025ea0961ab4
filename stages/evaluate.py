"""Stage 4: score the fine-tuned model on the test split, beside a classical baseline on the same train split,
and say how far its scores can be read as probabilities.

The model answers the raw test inputs through the serving half (hfx.serving), exactly as `python -m hfx.predict
--format pytorch` does on models/finetuned: the scores here are those of what is served.

Reads `task`, `evaluate.*`. Writes metrics/eval.json (the task's scores, per class, the loss, the baseline
and the margin over it, the most frequent confusions), metrics/calibration.json (the calibration error, and
what export stores for predict and serve: the temperature, or multi-label's per-label thresholds, fitted on
validation), metrics/predictions.csv (a table a person can read, with `actual` and `predicted` columns),
metrics/errors.csv (the worst mistakes) and metrics/plots/ (the task's curves and tables, and the reliability
diagram before and after the temperature).
"""

import json
from pathlib import Path

import pandas as pd
import torch
from datasets import load_dataset

from hfx.training.adapters import get_adapter
from hfx.training.adapters.common import scored
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.artifacts import atomic_dir, atomic_file, write_json
from hfx.training.params import Params, Paths, load_params, run_stage
from hfx.training.served_scores import serve_split


def served(task: TaskAdapter, folder: str, raw_split, batch_size: int, calibration: dict | None = None):
    """The fine-tuned folder's answers to a split's raw inputs, through the serving half as `python -m
    hfx.predict --format pytorch` gives them, with `calibration` applied as export will store it."""
    return serve_split(Path(folder), "pytorch", task, raw_split, batch_size, torch.get_num_threads(), calibration)


def decided(task: TaskAdapter, answers, raw_split) -> tuple:
    """The (logits, gold) each answer was decided from."""
    return scored(answers.decided, task.gold_ids(raw_split, answers.model.info.labels))


def confusions(predictions: pd.DataFrame, count: int = 5) -> dict:
    """The most frequent mistakes, as {"gold -> predicted": rows}."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    pairs = wrong.groupby(["actual", "predicted"]).size().sort_values(ascending=False, kind="stable")
    return {f"{gold} -> {predicted}": int(n) for (gold, predicted), n in pairs.head(count).items()}


def fitted_on_validation(params: Params, task: TaskAdapter, raw) -> tuple[dict, dict, tuple | None]:
    """What turns logits into answers, fitted on validation (a temperature, per-label thresholds): the test
    split only ever measures, answered as the exported folder will answer it. Returns the settings predict and
    serve take from evaluate's params (question answering's longest answer), those with what was fitted, and
    validation's (logits, gold) when something was."""
    settings = task.served_settings(params.evaluate, raw["train"], params.paths.finetuned)
    calibration, fitted, validation = task.calibration, dict(settings), None
    if calibration and calibration.fits(params.evaluate):
        answers = served(task, params.paths.finetuned, raw["validation"], params.evaluate.batch_size)
        validation = decided(task, answers, raw["validation"])
        fitted |= calibration.fit(validation, answers.model.info.labels)
    return settings, fitted, validation


def write_outputs(
    paths: Paths, metrics: dict, calibration: dict, evaluation, errors: pd.DataFrame, plots: dict
) -> None:
    """metrics/eval.json, calibration.json, predictions.csv, errors.csv and the plots' files."""
    write_json(paths.eval_metrics, metrics)
    write_json(paths.calibration, calibration)
    with atomic_file(paths.predictions) as partial:
        evaluation.predictions.to_csv(partial, index=False)
    with atomic_file(paths.errors) as partial:
        errors.to_csv(partial, index=False)
    with atomic_dir(paths.eval_plots) as out:
        for name, content in plots.items():
            if isinstance(content, pd.DataFrame):
                content.to_csv(out / name, index=False)
            else:
                (out / name).write_text(json.dumps(content, indent=2) + "\n")


def summary(task: TaskAdapter, scores: dict, baseline: dict, calibrated: dict) -> str:
    line = ", ".join(f"{key} {scores[key]:.4f} (baseline {baseline[key]:.4f})" for key in task.margin_keys)
    if "ece" in calibrated:
        line += f"; calibration error {calibrated['ece']:.4f}"
    if "ece_calibrated" in calibrated:
        line += f", {calibrated['ece_calibrated']:.4f} at temperature {calibrated['temperature']:g}"
    if "thresholds" in calibrated:
        line += f"; {len(calibrated['thresholds'])} label thresholds fitted on validation"
    return line


def main() -> None:
    params = load_params()
    task, paths = get_adapter(params.task), params.paths
    splits = ("train", "test", "validation")
    raw = load_dataset("parquet", data_files={split: f"{paths.raw}/{split}.parquet" for split in splits})

    settings, fitted, validation = fitted_on_validation(params, task, raw)
    test = served(task, paths.finetuned, raw["test"], params.evaluate.batch_size, fitted)
    names = test.model.info.labels
    evaluation = task.evaluation(raw["test"], test.results, test.decided, names)
    baseline = task.baseline(raw["train"], raw["test"], validation=raw["validation"])
    metrics = {
        **evaluation.metrics,
        "n_test": len(raw["test"]),
        "baseline": baseline,
        "margin_over_baseline": {key: evaluation.metrics[key] - baseline[key] for key in task.margin_keys},
    }
    calibrated, reliability_files = {}, {}  # a number (regression) is not a probability to calibrate
    if task.calibration:
        calibrated, reliability_files, test_scores = task.calibration.report(
            decided(task, test, raw["test"]), validation, fitted, names
        )
        top_confusions = confusions(evaluation.predictions)
        metrics |= {**test_scores, "top_confusions": top_confusions, "per_class": evaluation.per_class}
    errors = task.worst_errors(evaluation.predictions, params.evaluate.top_errors)
    plots = {**evaluation.files, **reliability_files}
    write_outputs(paths, metrics, {**settings, **calibrated}, evaluation, errors, plots)
    print(f"evaluate: {summary(task, evaluation.metrics, baseline, calibrated)} -> {Path(paths.eval_metrics)}")


if __name__ == "__main__":
    run_stage(main)
