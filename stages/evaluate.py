"""Stage 4: score the fine-tuned model on the test split, beside a TF-IDF baseline.

Reads `task`, `evaluate.batch_size`. Writes metrics/eval.json (accuracy, macro F1/precision/recall, loss,
per-class scores, ROC AUC, average precision, the baseline and the margin over it), metrics/predictions.csv
for the confusion matrix, and metrics/plots/ (ROC and precision-recall curves, per-class scores).
"""

import tempfile
from pathlib import Path

import pandas as pd
from datasets import load_dataset, load_from_disk
from transformers import AutoTokenizer, Trainer, TrainingArguments

from stages.artifacts import atomic_dir, atomic_file, read_json, write_json
from stages.params import load_params, run_stage
from stages.tasks import get_task, score_curves


def predict(model_dir: str, test, task, batch_size: int):
    """Logits and the mean loss over the test split, batched and padded per batch."""
    model = task.auto_model.from_pretrained(model_dir, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none")
        trainer = Trainer(model=model, args=args, data_collator=task.collator(tokenizer), processing_class=tokenizer)
        output = trainer.predict(test)
    return output.predictions, output.label_ids, output.metrics["test_loss"]


def main() -> None:
    params = load_params()
    task, paths = get_task(params.task), params.paths
    names = list(read_json(f"{paths.processed}/labels.json")["label2id"])
    test = load_from_disk(paths.processed)["test"]

    logits, labels, loss = predict(paths.finetuned, test, task, params.evaluate.batch_size)
    scores = task.metrics(labels, logits, names)
    curve_summary, curves = score_curves(labels, logits, names)
    raw = load_dataset("parquet", data_files={s: f"{paths.raw}/{s}.parquet" for s in ("train", "test")})
    baseline = task.baseline(raw["train"], raw["test"])

    metrics = {
        **{k: v for k, v in scores.items() if k != "per_class"},
        **curve_summary,
        "loss": float(loss),
        "n_test": len(test),
        "baseline": baseline,
        "margin_over_baseline": {
            "accuracy": scores["accuracy"] - baseline["accuracy"],
            "f1_macro": scores["f1_macro"] - baseline["f1_macro"],
        },
        "per_class": scores["per_class"],
    }
    write_json(paths.eval_metrics, metrics)
    predictions = pd.DataFrame({"actual": [names[i] for i in labels],
                                "predicted": [names[i] for i in logits.argmax(-1)]})
    with atomic_file(paths.predictions) as partial:
        predictions.to_csv(partial, index=False)
    with atomic_dir(paths.eval_plots) as out:
        for name, rows in curves.items():
            write_json(out / name, rows)
        per_class = pd.DataFrame([{"label": name, **values} for name, values in scores["per_class"].items()])
        per_class.to_csv(out / "per_class.csv", index=False)
    print(f"evaluate: accuracy {metrics['accuracy']:.4f} f1_macro {metrics['f1_macro']:.4f}"
          f" (baseline {baseline['accuracy']:.4f}) -> {Path(paths.eval_metrics)}")


if __name__ == "__main__":
    run_stage(main)
