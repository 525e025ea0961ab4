"""Stage 5: package the fine-tuned model for serving, write models/export/ and metrics/export.json.

Reads `task`, `export.*` (and, for the model card, the data, model and training params it shows). Writes a
`save_pretrained` folder that `transformers.pipeline` loads, `model.onnx` (dynamic batch and sequence axes),
`model_quantized.onnx` (int8: dynamic, or static with activation ranges from validation rows where the task
says so), calibration.json (the temperature or per-label thresholds evaluate fitted) and a model card. Every
format is scored and timed through the serving half (hfx.serving) on the raw test inputs, as `predict` and
`serve` answer them; fails when ONNX disagrees with PyTorch.
"""

import torch
import transformers
from datasets import load_dataset, load_from_disk

from hfx.serving.folder import CALIBRATION_FILE, CALIBRATION_KEYS, FORMATS
from hfx.training.adapters import get_adapter
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.artifacts import atomic_dir, read_json, write_json
from hfx.training.model_card import CardFacts, render_model_card, write_figures
from hfx.training.onnx_export import batches, export_onnx, quantize
from hfx.training.params import Params, StageError, load_params, run_stage
from hfx.training.served_scores import largest_difference, median_latency_ms, serve_split

FITTED_BY = {"temperature": "log loss", "thresholds": "each label's F1"}  # what evaluate fits on validation


def save_for_pipelines(model, processor, calibration: dict, out) -> None:
    """The `save_pretrained` folder `transformers.pipeline` loads, and what evaluate fitted to decide answers."""
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if set(CALIBRATION_KEYS) & set(calibration):  # weights and logits stay as trained
        fits = [how for key, how in FITTED_BY.items() if key in calibration]  # settings are not fitted
        fitted = {"fitted_on": f"the validation split, by {fits[0]}"} if fits else {}
        write_json(out / CALIBRATION_FILE, {**calibration, **fitted})


def write_onnx(params: Params, task: TaskAdapter, processor, config, out) -> list[str]:
    """model.onnx and its int8 copy, as export.* asks; the formats the folder then holds."""
    paths, ex = params.paths, params.export
    formats = ["pytorch"]
    if ex.onnx:
        eager = getattr(transformers, task.auto_model).from_pretrained(
            paths.finetuned, use_safetensors=True, attn_implementation="eager"
        )
        export_onnx(eager, *task.sample_inputs(processor), out / FORMATS["fp32"], task.logits_axes, task.outputs)
        formats.append("fp32")
    if ex.quantize:
        ranges = None
        if task.static_int8:  # activation ranges from validation rows: never the test split it is scored on
            validation = load_from_disk(paths.processed)["validation"]
            rows = validation.select(range(min(ex.calibration_rows, len(validation))))
            ranges = [
                inputs
                for inputs, _ in batches(rows, task.collator(processor), task.input_names(processor), ex.batch_size)
            ]
        quantize(out / FORMATS["fp32"], config, out / FORMATS["int8"], task.quantize_op_types, ranges)
        formats.append("int8")
    return formats


def scores_per_format(params: Params, task: TaskAdapter, out, served: dict, raw_test, label_names: list) -> tuple:
    """Each format's scores from its answers to the test inputs, and the PyTorch model's, which the card shows;
    fails when ONNX disagrees with PyTorch."""
    ex, formats = params.export, list(served)
    differences = {fmt: largest_difference(served[fmt].logits, served["pytorch"].logits) for fmt in formats[1:]}
    if differences.get("fp32", 0.0) > ex.parity_tolerance:
        raise StageError(
            f"export: {FORMATS['fp32']} differs from PyTorch by up to {differences['fp32']:.2e} in a"
            f" logit, over export.parity_tolerance={ex.parity_tolerance:g}; nothing was exported"
            " (set export.onnx: false to export PyTorch only)"
        )
    per_format = {
        fmt: task.metrics(task.served_pairs(answers.results, raw_test, label_names), label_names)
        for fmt, answers in served.items()
    }
    metrics = {
        "formats": formats,
        # every score the card shows, per format: what int8 costs in each, not only the headline
        **{
            key: {fmt: scores[key] for fmt, scores in per_format.items()}
            for key in dict.fromkeys((task.headline, *task.card_metrics))
            if key in per_format["pytorch"]
        },
        "size_mb": {fmt: round((out / FORMATS[fmt]).stat().st_size / 2**20, 2) for fmt in formats},
        **{f"{fmt}_max_abs_logit_diff": value for fmt, value in differences.items()},
        "n_test": len(raw_test),
    }
    return metrics, per_format["pytorch"]


def write_card(
    params: Params, task: TaskAdapter, out, scores: dict, metrics: dict, calibration: dict, label_names: list
) -> None:
    """README.md and its figures. The card shows what is the same on every run (no timings), so the folder's
    bytes are too."""
    paths = params.paths
    write_figures(out, paths.predictions, paths.train_logs, label_names, task, paths.eval_plots)
    facts = CardFacts(
        manifest=read_json(f"{paths.raw}/manifest.json"),
        scores=scores,
        export_metrics=metrics,
        figures=task.card_figures(out, load_from_disk(paths.processed)["test"], paths.predictions),
        data_card=read_json(paths.data_card),
        calibration=calibration,
        lengths=read_json(f"{paths.data_plots}/lengths.json"),
        predictions_csv=paths.predictions,
    )
    render_model_card(params, task, facts).save(out / "README.md")


def main() -> None:
    params = load_params()
    task, paths, ex = get_adapter(params.task), params.paths, params.export
    threads = torch.get_num_threads()  # onnxruntime gets as many as PyTorch, for a fair latency comparison
    raw_test = load_dataset("parquet", data_files={"test": f"{paths.raw}/test.parquet"})["test"]
    processor = task.saved_processor(paths.finetuned)
    model = getattr(transformers, task.auto_model).from_pretrained(paths.finetuned, use_safetensors=True).eval()
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]

    with atomic_dir(paths.export) as out:
        calibration = read_json(paths.calibration)  # from evaluate
        save_for_pipelines(model, processor, calibration, out)
        formats = write_onnx(params, task, processor, model.config, out)
        # Each format answers the raw test inputs as predict and serve do; its scores come from those answers.
        served = {fmt: serve_split(out, fmt, task, raw_test, ex.batch_size, threads) for fmt in formats}
        metrics, pytorch_scores = scores_per_format(params, task, out, served, raw_test, label_names)
        write_card(params, task, out, pytorch_scores, metrics, calibration, label_names)

    metrics["latency_ms_batch1"] = {
        fmt: round(median_latency_ms(answers.model, task, raw_test, ex.latency_queries), 3)
        for fmt, answers in served.items()
    }
    metrics["threads"] = threads
    write_json(paths.export_metrics, metrics)
    print(
        f"export: {', '.join(formats)}; {task.headline} {metrics[task.headline]};"
        f" latency {metrics['latency_ms_batch1']} ms -> {paths.export}"
    )


if __name__ == "__main__":
    run_stage(main)
