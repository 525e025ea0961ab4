"""Stage 5: package the fine-tuned model for serving, write models/export/ and metrics/export.json.

Reads `task`, `export.*` (and `data.source`, `model.name` for the model card). Writes a `save_pretrained`
folder that `transformers.pipeline` loads, `model.onnx` (dynamic batch and sequence axes),
`model_quantized.onnx` (dynamic int8), and a model card; checks ONNX parity and times each format.
"""

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from datasets import load_from_disk
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model
from transformers import AutoTokenizer

from stages.artifacts import atomic_dir, read_json, write_json
from stages.model_card import write_figures, write_model_card
from stages.params import load_params, run_stage
from stages.tasks import get_task


class LogitsOnly(torch.nn.Module):
    """Positional inputs in the tokenizer's order, logits out: a clean graph signature for ONNX."""

    def __init__(self, model, input_names):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.input_names, inputs))).logits


def export_onnx(model, tokenizer, path: Path) -> None:
    names = list(tokenizer.model_input_names)
    sample = tokenizer(["a short example", "a somewhat longer example sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    # The TorchScript exporter: its graphs match onnxruntime's transformer fusion patterns.
    wrapper = LogitsOnly(model, names).eval()  # export restores the wrapper's mode onto the model
    torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(path), input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    onnx.checker.check_model(str(path))


def quantize(onnx_path: Path, config, out_path: Path) -> None:
    """Fuse attention/LayerNorm/GELU where onnxruntime knows the architecture, then int8 weights per channel."""
    source = onnx_path
    if config.model_type in MODEL_TYPES:
        fused = optimize_model(str(onnx_path), model_type=config.model_type, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
        source = onnx_path.with_name("model_fused.onnx")
        fused.save_model_to_file(str(source))
    quantize_dynamic(str(source), str(out_path), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    if source != onnx_path:
        source.unlink()


def batches(test, collator, input_names, batch_size):
    for start in range(0, len(test), batch_size):
        rows = test.select(range(start, min(start + batch_size, len(test))))
        batch = collator([{k: row[k] for k in input_names} for row in rows])
        yield {k: batch[k] for k in input_names}, np.array(rows["labels"])


class Runner:
    """One model format behind one call: numpy inputs in, logits out."""

    def __init__(self, model=None, onnx_path: Path | None = None, threads: int = 1):
        self.model = model
        if onnx_path is not None:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def __call__(self, inputs: dict) -> np.ndarray:
        if self.model is not None:
            with torch.inference_mode():
                return self.model(**{k: torch.as_tensor(v) for k, v in inputs.items()}).logits.float().numpy()
        return self.session.run(["logits"], {k: np.asarray(v) for k, v in inputs.items()})[0]


def median_latency_ms(runner: Runner, queries: list[dict]) -> float:
    runner(queries[0])  # warm-up
    times = []
    for query in queries:
        start = time.perf_counter()
        runner(query)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def main() -> None:
    params = load_params()
    task, paths, ex = get_task(params.task), params.paths, params.export
    threads = torch.get_num_threads()  # onnxruntime gets as many as PyTorch, for a fair latency comparison
    test = load_from_disk(paths.processed)["test"]
    tokenizer = AutoTokenizer.from_pretrained(paths.finetuned)
    model = task.auto_model.from_pretrained(paths.finetuned, use_safetensors=True, attn_implementation="eager").eval()
    names = list(tokenizer.model_input_names)

    with atomic_dir(paths.export) as out:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        runners = {"pytorch": Runner(model=model)}
        if ex.onnx:
            export_onnx(model, tokenizer, out / "model.onnx")
            runners["onnx"] = Runner(onnx_path=out / "model.onnx", threads=threads)
        if ex.quantize:
            quantize(out / "model.onnx", model.config, out / "model_quantized.onnx")
            runners["onnx_int8"] = Runner(onnx_path=out / "model_quantized.onnx", threads=threads)

        logits = {fmt: [] for fmt in runners}
        labels = []
        for inputs, batch_labels in batches(test, task.collator(tokenizer), names, ex.batch_size):
            labels.append(batch_labels)
            for fmt, run in runners.items():
                logits[fmt].append(run({k: v.numpy() for k, v in inputs.items()}))
        labels = np.concatenate(labels)
        logits = {fmt: np.concatenate(parts) for fmt, parts in logits.items()}
        queries = [{k: np.array([row[k]]) for k in names} for row in test.select(range(min(ex.latency_queries, len(test))))]

        files = {"pytorch": "model.safetensors", "onnx": "model.onnx", "onnx_int8": "model_quantized.onnx"}
        metrics = {
            "formats": list(runners),
            "accuracy": {fmt: float((value.argmax(-1) == labels).mean()) for fmt, value in logits.items()},
            "size_mb": {fmt: round((out / files[fmt]).stat().st_size / 2**20, 2) for fmt in runners},
            "latency_ms_batch1": {fmt: round(median_latency_ms(run, queries), 3) for fmt, run in runners.items()},
            "threads": threads,
            "n_test": len(labels),
        }
        if ex.onnx:
            metrics["onnx_max_abs_logit_diff"] = float(np.abs(logits["onnx"] - logits["pytorch"]).max())
        # The card's scores come from this stage's own pass, so evaluate-only params never rerun export.
        label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        scores = task.metrics(labels, logits["pytorch"], label_names)
        write_figures(out, paths.predictions, paths.train_logs, label_names)
        write_model_card(out / "README.md", params, read_json(f"{paths.raw}/manifest.json"), scores, metrics)
    write_json(paths.export_metrics, metrics)
    print(f"export: {', '.join(runners)}; accuracy {metrics['accuracy']}; latency {metrics['latency_ms_batch1']} ms"
          f" -> {paths.export}")


if __name__ == "__main__":
    run_stage(main)
