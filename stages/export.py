"""Stage 5: package the fine-tuned model for serving, write models/export/ and metrics/export.json.

Reads `task`, `export.*` (and, for the model card, the data, model and training params it shows). Writes a
`save_pretrained` folder that `transformers.pipeline` loads, `model.onnx` (dynamic batch and sequence axes),
`model_quantized.onnx` (int8: dynamic, or static with activation ranges from validation rows where the task
says so) and a model card; fails when ONNX disagrees with PyTorch, and times each format.
"""

import numpy as np
import torch
from datasets import load_from_disk

from stages.artifacts import atomic_dir, read_json, write_json
from stages.formats import CALIBRATION_FILE, FILES, Runner, batches, export_onnx, median_latency_ms, quantize
from stages.model_card import write_figures, write_model_card
from stages.params import StageError, load_params, run_stage
from stages.tasks import get_task


def main() -> None:
    params = load_params()
    task, paths, ex = get_task(params.task), params.paths, params.export
    threads = torch.get_num_threads()  # onnxruntime gets as many as PyTorch, for a fair latency comparison
    processed = load_from_disk(paths.processed)
    test, validation = processed["test"], processed["validation"]
    processor = task.saved_processor(paths.finetuned)
    # PyTorch is scored and timed as `pipeline()` runs it (the default attention, SDPA where the model has it).
    model = task.auto_model.from_pretrained(paths.finetuned, use_safetensors=True).eval()
    names = task.input_names(processor)

    task.prepare_export(processor, params)
    with atomic_dir(paths.export) as out:
        model.save_pretrained(out)
        processor.save_pretrained(out)
        runners = {"pytorch": Runner(model=model)}
        if ex.onnx:
            eager = task.auto_model.from_pretrained(paths.finetuned, use_safetensors=True, attn_implementation="eager")
            export_onnx(eager, *task.sample_inputs(processor), out / FILES["onnx"], task.logits_axes)
            runners["onnx"] = Runner(onnx_path=out / FILES["onnx"], threads=threads)
        if ex.quantize:
            calibration = None
            if task.static_int8:  # activation ranges from validation rows: never the test split it is scored on
                rows = validation.select(range(min(ex.calibration_rows, len(validation))))
                calibration = [inputs for inputs, _ in batches(rows, task.collator(processor), names, ex.batch_size)]
            quantize(out / FILES["onnx"], model.config, out / FILES["onnx_int8"], task.quantize_op_types, calibration)
            runners["onnx_int8"] = Runner(onnx_path=out / FILES["onnx_int8"], threads=threads)

        # Each format's predictions over the test split, and its largest logit difference from PyTorch.
        decoded = {fmt: [] for fmt in runners}
        differences = {fmt: 0.0 for fmt in runners if fmt != "pytorch"}
        for inputs, labels in batches(test, task.collator(processor), names, ex.batch_size):
            logits = {fmt: run(inputs) for fmt, run in runners.items()}
            for fmt in runners:
                decoded[fmt] += task.decode(logits[fmt], labels)
            for fmt in differences:
                differences[fmt] = max(differences[fmt], float(np.abs(logits[fmt] - logits["pytorch"]).max()))
        if differences.get("onnx", 0.0) > ex.parity_tolerance:
            raise StageError(f"export: {FILES['onnx']} differs from PyTorch by up to {differences['onnx']:.2e} in a"
                             f" logit, over export.parity_tolerance={ex.parity_tolerance:g}; nothing was exported"
                             " (set export.onnx: false to export PyTorch only)")
        label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        per_format = {fmt: task.metrics(pairs, label_names) for fmt, pairs in decoded.items()}
        metrics = {
            "formats": list(runners),
            task.headline: {fmt: scores[task.headline] for fmt, scores in per_format.items()},
            "size_mb": {fmt: round((out / FILES[fmt]).stat().st_size / 2**20, 2) for fmt in runners},
            **{f"{fmt}_max_abs_logit_diff": value for fmt, value in differences.items()},
            "n_test": len(test),
        }
        calibration = read_json(paths.calibration)
        if "temperature" in calibration:  # fitted by evaluate (evaluate.calibrate); weights and logits stay as trained
            write_json(out / CALIBRATION_FILE, {**calibration, "fitted_on": "the validation split, by log loss"})
        # The card shows what is the same on every run (no timings), so the folder's bytes are too.
        scores = per_format["pytorch"]
        write_figures(out, paths.predictions, paths.train_logs, label_names)
        figures = task.card_figures(out, test, paths.predictions)
        write_model_card(out / "README.md", params, task, read_json(f"{paths.raw}/manifest.json"), scores, metrics,
                         figures, read_json(paths.data_card), calibration,
                         read_json(f"{paths.data_plots}/lengths.json"))

    first = test.select(range(min(ex.latency_queries, len(test))))
    queries = [inputs for inputs, _ in batches(first, task.collator(processor), names, 1)]
    metrics["latency_ms_batch1"] = {fmt: round(median_latency_ms(run, queries), 3) for fmt, run in runners.items()}
    metrics["threads"] = threads
    write_json(paths.export_metrics, metrics)
    print(f"export: {', '.join(runners)}; {task.headline} {metrics[task.headline]};"
          f" latency {metrics['latency_ms_batch1']} ms -> {paths.export}")


if __name__ == "__main__":
    run_stage(main)
