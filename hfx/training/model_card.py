"""The exported model's README.md: a Hugging Face model card with data, params and metrics."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from hfx.serving.folder import CALIBRATION_FILE, FORMATS
from hfx.training.params import Params


def _table(rows: list[tuple]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in body])


def write_figures(out: Path, predictions_csv: str, train_logs: str, names: list[str]) -> None:
    """Static PNGs for people who look at the model folder rather than at DVC."""
    predictions = pd.read_csv(predictions_csv, dtype=str)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.2 * len(names) + 2.5))
    ConfusionMatrixDisplay.from_predictions(
        predictions["actual"], predictions["predicted"], labels=names, ax=ax, colorbar=False, xticks_rotation=45
    )
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)

    curves = Path(train_logs) / "plots" / "metrics"
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for tsv, label, ax in (
        ("loss.tsv", "train loss", loss_ax),
        ("eval/loss.tsv", "validation loss", loss_ax),
        ("eval/accuracy.tsv", "validation accuracy", score_ax),
        ("eval/f1_macro.tsv", "validation macro F1", score_ax),
    ):
        if (curves / tsv).is_file():
            frame = pd.read_csv(curves / tsv, sep="\t")
            ax.plot(frame["step"], frame.iloc[:, -1], marker="o" if len(frame) < 20 else None, label=label)
    for ax, title in ((loss_ax, "Loss"), (score_ax, "Validation scores")):
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=100)
    plt.close("all")


def _overlap(data_card: dict | None) -> str:
    """The data card in one paragraph: rows seen in training that are scored again."""
    if not data_card:
        return ""
    leak, repeated = data_card["leakage"], data_card["duplicates_in_train"]
    return (
        f"\nTest rows also in train: {leak['test_in_train']['exact']} ({leak['test_in_train']['normalised']} ignoring"
        f" case, spaces and punctuation); validation rows also in train: {leak['validation_in_train']['exact']}"
        f" ({leak['validation_in_train']['normalised']}); duplicate rows within train: {repeated['exact']}"
        f" ({repeated['normalised']}).\n"
    )


def _title(params: Params) -> str:
    if params.finetune.epochs == 0:  # hfx/training/as_is.py
        return f"{params.model.name} for {params.task}, as it is (not fine-tuned here: finetune.epochs 0)"
    return f"Fine-tuned {params.model.name} for {params.task}"


def _inputs(data_card: dict | None, lengths: dict | None) -> str:
    """How long the texts are in tokens and how many were cut, or the image sizes."""
    text = ""
    if lengths:
        parts = [
            f"{name} {s['tokens']['p50']} / {s['tokens']['p90']} / {s['tokens']['p99']} / {s['tokens']['max']}"
            for name, s in lengths.items()
        ]
        cut = ", ".join(f"{100 * s['truncated_share']:.1f}% of {name}" for name, s in lengths.items())
        text += (
            f"\nLength in tokens (median / 90th percentile / 99th / longest): {'; '.join(parts)}. Cut at"
            f" preprocess.max_length ({next(iter(lengths.values()))['max_length']}): {cut}.\n"
        )
    for name, sizes in ((data_card or {}).get("image_sizes") or {}).items():
        text += f"\nImage sizes in {name}: " + ", ".join(f"{size} ({n})" for size, n in sizes.items()) + ".\n"
    return text


def _calibration(calibration: dict | None) -> str:
    """What the scores mean as probabilities, before and after the temperature predict and serve apply."""
    if not calibration:
        return ""
    text = (
        f"\nExpected calibration error (ECE) on test: {calibration['ece']:.4f}: how far, on average, a score is"
        " from how often such scores are right (0: a score of 0.9 is right 9 times in 10)."
    )
    if "temperature_not_fitted" in calibration:
        text += f" No temperature is applied: {calibration['temperature_not_fitted']}."
    elif "temperature" in calibration:
        text += (
            f" `hfx.predict` and `hfx.serve` divide the logits by a temperature of {calibration['temperature']:g},"
            f" fitted on the validation split ({CALIBRATION_FILE}): ECE {calibration['validation_ece']:.4f} ->"
            f" {calibration['validation_ece_calibrated']:.4f} on validation, {calibration['ece']:.4f} ->"
            f" {calibration['ece_calibrated']:.4f} on test. `transformers.pipeline` gives the uncalibrated"
            " scores; the predicted labels are the same either way."
        )
    return text + "\n"


def write_model_card(
    path: Path,
    params: Params,
    task,
    manifest: dict,
    scores: dict,
    export_metrics: dict,
    figures: list[tuple[str, str]] = (),
    data_card: dict | None = None,
    calibration: dict | None = None,
    lengths: dict | None = None,
) -> None:
    """`scores`: test metrics of the exported PyTorch model (see metrics/eval.json for the full evaluation);
    `figures`: the task's own (file, caption) pairs in the folder; `data_card`: duplicates and leakage;
    `calibration`: the calibration error and the temperature (metrics/calibration.json); `lengths`: the texts'
    length in tokens (metrics/data_plots/lengths.json)."""
    headline = [key for key in task.card_metrics if key in scores]
    front_matter = {
        "library_name": "transformers",
        "pipeline_tag": params.task,
        "base_model": params.model.name,
        "tags": ["hfx", "dvc"],
        "model-index": [
            {
                "name": Path(params.paths.export).name,
                "results": [
                    {
                        "task": {"type": params.task},
                        "dataset": {"name": params.data.source, "type": params.data.source, "split": "test"},
                        "metrics": [{"type": key, "value": round(scores[key], 4)} for key in headline],
                    }
                ],
            }
        ],
    }
    splits = manifest["splits"]
    fmt = export_metrics["formats"]
    per_class = [("class", "precision", "recall", "f1", "support")] + [
        (name, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"])
        for name, v in scores["per_class"].items()
    ]
    options = "".join(f", {key}={value!r}" for key, value in task.pipeline_kwargs.items())
    card = f"""---
{yaml.safe_dump(front_matter, sort_keys=False).strip()}
---

# {_title(params)}

{
        "Scored" if params.finetune.epochs == 0 else "Trained"
    } by the hfx [DVC](https://dvc.org) pipeline (`dvc repro`): download, preprocess, finetune, evaluate, export.

## Data
Source `{params.data.source}` ({task.input_key.replace("_", " ")} `{task.input_column(params.data)}`, label column `{
        params.data.label_column
    }`).

{
        _table(
            [("split", "rows", "origin", "labels")]
            + [(n, s["rows"], s["origin"], s["labels"]) for n, s in splits.items()]
        )
    }
{_overlap(data_card)}{_inputs(data_card, lengths)}
## Training
{
        _table(
            [("param", "value")]
            + [(k, v) for k, v in params.finetune.model_dump().items()]
            + [("max_length", params.preprocess.max_length)]
        )
    }

## Test metrics
{_table([("metric", "value")] + [(k, f"{scores[k]:.4f}") for k in headline])}

{_table(per_class)}
{_calibration(calibration)}
## Formats
{
        _table(
            [("format", "file", f"test {task.headline}", "size (MB)")]
            + [(f, FORMATS[f], f"{export_metrics[task.headline][f]:.4f}", export_metrics["size_mb"][f]) for f in fmt]
        )
    }

Latency depends on the machine: the project's `metrics/export.json` has the median batch-1 latency of each
format on the machine that exported this folder.

![Confusion matrix on the test split](confusion_matrix.png)

![Training loss and validation scores](training_curves.png)
{"".join(f"{chr(10)}![{caption}]({file}){chr(10)}" for file, caption in figures)}
## Use
```python
from transformers import pipeline
model = pipeline("{params.task}", model="path/to/this/folder"{options})
```
"""
    path.write_text(card)
