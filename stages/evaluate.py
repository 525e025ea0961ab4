"""Stage 4: score the fine-tuned model on the test split, beside a classical baseline on the same train split.

Reads `task`, `evaluate.batch_size`. Writes metrics/eval.json (the task's scores, per class, the loss, the
baseline and the margin over it), metrics/predictions.csv (a table a person can read, with the `actual`
and `predicted` columns the confusion matrix plots) and metrics/plots/ (the task's curves and tables).
"""

import json
import tempfile
from pathlib import Path

import pandas as pd
from datasets import load_dataset, load_from_disk
from transformers import Trainer, TrainingArguments

from stages.artifacts import atomic_dir, atomic_file, read_json, write_json
from stages.params import load_params, run_stage
from stages.tasks import get_task


def predict(model_dir: str, test, task, batch_size: int):
    """Logits and the mean loss over the test split, batched and padded per batch."""
    model = task.auto_model.from_pretrained(model_dir, use_safetensors=True)
    processor = task.saved_processor(model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none")
        trainer = Trainer(model=model, args=args, data_collator=task.collator(processor), processing_class=processor)
        output = trainer.predict(test)
    return output.predictions, output.label_ids, output.metrics["test_loss"]


def main() -> None:
    params = load_params()
    task, paths = get_task(params.task), params.paths
    names = list(read_json(f"{paths.processed}/labels.json")["label2id"])
    test = load_from_disk(paths.processed)["test"]
    raw = load_dataset("parquet", data_files={s: f"{paths.raw}/{s}.parquet" for s in ("train", "test")})

    logits, labels, loss = predict(paths.finetuned, test, task, params.evaluate.batch_size)
    evaluation = task.evaluation(raw["test"], logits, labels, names)
    baseline = task.baseline(raw["train"], raw["test"])

    metrics = {
        **evaluation.metrics,
        "loss": float(loss),
        "n_test": len(test),
        "baseline": baseline,
        "margin_over_baseline": {key: evaluation.metrics[key] - baseline[key] for key in task.margin_keys},
        "per_class": evaluation.per_class,
    }
    write_json(paths.eval_metrics, metrics)
    with atomic_file(paths.predictions) as partial:
        evaluation.predictions.to_csv(partial, index=False)
    with atomic_dir(paths.eval_plots) as out:
        for name, content in evaluation.files.items():
            if isinstance(content, pd.DataFrame):
                content.to_csv(out / name, index=False)
            else:
                (out / name).write_text(json.dumps(content, indent=2) + "\n")
    scores = ", ".join(f"{key} {evaluation.metrics[key]:.4f} (baseline {baseline[key]:.4f})" for key in task.margin_keys)
    print(f"evaluate: {scores} -> {Path(paths.eval_metrics)}")


if __name__ == "__main__":
    run_stage(main)
