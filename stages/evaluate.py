"""Stage 4: score the fine-tuned model on the test split, beside a classical baseline on the same train split,
and say how far its scores can be read as probabilities.

Reads `task`, `evaluate.*`. Writes metrics/eval.json (the task's scores, per class, the loss, the baseline and
the margin over it, the most frequent confusions), metrics/calibration.json (the calibration error, and the
temperature fitted on validation that export stores for predict and serve), metrics/predictions.csv (a table a person can read, with the `actual` and `predicted` columns the
confusion matrix plots), metrics/errors.csv (the most confident mistakes) and metrics/plots/ (the task's
curves and tables, and the reliability diagram before and after the temperature).
"""

import json
import tempfile
from pathlib import Path

import pandas as pd
from datasets import load_dataset, load_from_disk
from transformers import Trainer, TrainingArguments

from hfx.training.artifacts import atomic_dir, atomic_file, read_json, write_json
from hfx.training.calibration import expected_calibration_error, fit_temperature, probabilities, reliability, scored
from hfx.training.params import load_params, run_stage
from hfx.training.adapters import get_task


def predict(model_dir: str, splits: list, task, batch_size: int) -> list:
    """Per split: its logits, labels and mean loss, batched and padded per batch."""
    model = task.auto_model.from_pretrained(model_dir, use_safetensors=True)
    processor = task.saved_processor(model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none")
        trainer = Trainer(model=model, args=args, data_collator=task.collator(processor), processing_class=processor)
        outputs = [trainer.predict(split) for split in splits]
    return [(out.predictions, out.label_ids, out.metrics["test_loss"]) for out in outputs]


def calibration(test: tuple, validation: tuple | None) -> tuple[dict, dict]:
    """(calibration.json, the reliability diagram's files): the test ECE, and with a validation split the
    temperature fitted on it and the ECE under that temperature, on test and on validation. Rounded to 4
    digits, so that what export reads changes with the model, not with evaluate.batch_size's float noise. A
    temperature that cannot be trusted stays 1.0, with the reason under `temperature_not_fitted`."""
    logits, labels = scored(*test)
    summary = {"ece": expected_calibration_error(probabilities(logits), labels)}
    temperature = 1.0
    if validation is not None:
        fit_logits, fit_labels = scored(*validation)
        temperature, kept_at_1 = fit_temperature(fit_logits, fit_labels)
        temperature = round(temperature, 4)
        summary |= {"ece_calibrated": expected_calibration_error(probabilities(logits, temperature), labels),
                    "temperature": temperature,
                    "validation_ece": expected_calibration_error(probabilities(fit_logits), fit_labels),
                    "validation_ece_calibrated": expected_calibration_error(probabilities(fit_logits, temperature), fit_labels)}
    rounded = {key: round(value, 4) for key, value in summary.items()}
    if validation is not None and kept_at_1:
        rounded["temperature_not_fitted"] = kept_at_1  # why the temperature stays 1.0
    return rounded, {"reliability.json": reliability(probabilities(logits), labels),
                     "reliability_calibrated.json": reliability(probabilities(logits, temperature), labels)}


def confusions(predictions: pd.DataFrame, count: int = 5) -> dict:
    """The most frequent mistakes, as {"gold -> predicted": rows}."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    pairs = wrong.groupby(["actual", "predicted"]).size().sort_values(ascending=False, kind="stable")
    return {f"{gold} -> {predicted}": int(n) for (gold, predicted), n in pairs.head(count).items()}


def main() -> None:
    params = load_params()
    task, paths = get_task(params.task), params.paths
    names = list(read_json(f"{paths.processed}/labels.json")["label2id"])
    processed = load_from_disk(paths.processed)
    test = processed["test"]
    raw = load_dataset("parquet", data_files={s: f"{paths.raw}/{s}.parquet" for s in ("train", "test")})

    # The temperature is fitted on validation: the test split only ever measures.
    splits = [test, processed["validation"]] if params.evaluate.calibrate else [test]
    (logits, labels, loss), *validation = predict(paths.finetuned, splits, task, params.evaluate.batch_size)
    evaluation = task.evaluation(raw["test"], test, logits, labels, names)
    baseline = task.baseline(raw["train"], raw["test"])
    calibrated, reliability_files = calibration((logits, labels), validation[0][:2] if validation else None)
    predictions = evaluation.predictions
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    errors = wrong.sort_values("score", ascending=False, kind="stable").head(params.evaluate.top_errors)

    metrics = {
        **evaluation.metrics,
        "loss": float(loss),
        "n_test": len(test),
        "baseline": baseline,
        "margin_over_baseline": {key: evaluation.metrics[key] - baseline[key] for key in task.margin_keys},
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
    scores = ", ".join(f"{key} {evaluation.metrics[key]:.4f} (baseline {baseline[key]:.4f})" for key in task.margin_keys)
    print(f"evaluate: {scores}; calibration error {calibrated['ece']:.4f}"
          + (f", {calibrated['ece_calibrated']:.4f} at temperature {calibrated['temperature']:g}" if validation else "")
          + f" -> {Path(paths.eval_metrics)}")


if __name__ == "__main__":
    run_stage(main)
