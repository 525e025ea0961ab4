"""The exported model's README.md: a Hugging Face model card with data, params and metrics."""

from pathlib import Path

import yaml

from stages.params import Params


def _table(rows: list[tuple]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in body])


def write_model_card(path: Path, params: Params, manifest: dict, eval_metrics: dict, export_metrics: dict) -> None:
    front_matter = {
        "library_name": "transformers",
        "pipeline_tag": params.task,
        "base_model": params.model.name,
        "tags": ["hfx", "dvc"],
        "model-index": [{"name": path.parent.name, "results": [{
            "task": {"type": params.task},
            "dataset": {"name": params.data.source, "type": params.data.source, "split": "test"},
            "metrics": [{"type": "accuracy", "value": round(eval_metrics["accuracy"], 4)},
                        {"type": "f1", "name": "f1_macro", "value": round(eval_metrics["f1_macro"], 4)}],
        }]}],
    }
    splits = manifest["splits"]
    fmt = export_metrics["formats"]
    card = f"""---
{yaml.safe_dump(front_matter, sort_keys=False).strip()}
---

# Fine-tuned {params.model.name} for {params.task}

Trained by the [hfx](https://dvc.org) DVC pipeline (`dvc repro`): download, preprocess, finetune, evaluate, export.

## Data
Source `{params.data.source}` (text column `{params.data.text_column}`, label column `{params.data.label_column}`).

{_table([("split", "rows", "origin", "labels")] + [(n, s["rows"], s["origin"], s["labels"]) for n, s in splits.items()])}

## Training
{_table([("param", "value")] + [(k, v) for k, v in params.finetune.model_dump().items()] + [("max_length", params.preprocess.max_length)])}

## Test metrics
{_table([("metric", "value"), ("accuracy", f"{eval_metrics['accuracy']:.4f}"), ("f1_macro", f"{eval_metrics['f1_macro']:.4f}"),
         ("loss", f"{eval_metrics['loss']:.4f}"), ("TF-IDF baseline accuracy", f"{eval_metrics['baseline']['accuracy']:.4f}")])}

## Formats
{_table([("format", "file", "test accuracy", "size (MB)", "latency at batch 1 (ms)")] + [
    (f, {"pytorch": "model.safetensors", "onnx": "model.onnx", "onnx_int8": "model_quantized.onnx"}[f],
     f"{export_metrics['accuracy'][f]:.4f}", export_metrics["size_mb"][f], export_metrics["latency_ms_batch1"][f]) for f in fmt])}

Latency: median of single queries, {export_metrics['threads']} threads, on the machine that ran the export.

## Use
```python
from transformers import pipeline
classifier = pipeline("{params.task}", model="path/to/this/folder")
```
"""
    path.write_text(card)
