"""Which int8 to serve: `make bench-int8` (after `dvc repro` of a text model).

Dynamic int8 measures each activation's range over a whole call's input, so a row's answer changes with the
rows that share its call. Two ways out, measured here against that and fp32, all through the serving half
(hfx.serving) on the raw test texts, in one process, one after the other:

- dynamic int8 run one row per call (what the exported folder serves by default);
- static int8 of the MatMuls (all ops fail on the pooler bias), activation ranges measured once on
  `export.calibration_rows` validation rows (QDQ), batched.

Per variant: test accuracy, rows/s over the test split (batches of 32, sorted by length), median latency of one
text alone, and how many test labels differ between batch size 1 and 32 (with the largest score difference).
Results: benchmarks/int8.json.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch
from datasets import load_from_disk
from transformers import AutoConfig, AutoTokenizer, DataCollatorWithPadding

from hfx.serving.folder import ACTIVATION_RANGES, FORMATS
from hfx.serving.loaded_model import LoadedModel
from hfx.training.onnx_export import batches, quantize
from hfx.training.params import load_params

RESULTS = Path(__file__).resolve().parent / "int8.json"


def measure(model: LoadedModel, texts: list[str], gold: list[str], latency_rows: int = 200) -> dict:
    model.predict(texts[:32], 32)  # warm-up
    start = time.perf_counter()
    batched = model.predict(texts, 32)
    seconds = time.perf_counter() - start
    alone = model.predict(texts, 1)
    times = []
    for text in texts[:latency_rows]:
        start = time.perf_counter()
        model.predict([text])
        times.append(time.perf_counter() - start)
    labels = [result[0]["label"] for result in batched]
    score_gap = max(
        abs(a[0]["score"] - {e["label"]: e["score"] for e in b}[a[0]["label"]]) for a, b in zip(batched, alone)
    )
    return {
        "test_accuracy": round(float(np.mean([a == b for a, b in zip(labels, gold)])), 4),
        "rows_per_s_batch32": round(len(texts) / seconds, 1),
        "latency_ms_one_text": round(float(np.median(times) * 1000), 3),
        "labels_changed_batch1_vs_32": sum(a[0]["label"] != b[0]["label"] for a, b in zip(batched, alone)),
        "max_score_difference_batch1_vs_32": float(f"{score_gap:.2e}"),
    }


def main() -> None:
    params = load_params()
    paths, threads = params.paths, torch.get_num_threads()
    test = pd.read_parquet(Path(paths.raw) / "test.parquet")
    texts, gold = list(test["text"]), list(test["label"])
    tokenizer = AutoTokenizer.from_pretrained(paths.export)
    validation = load_from_disk(paths.processed)["validation"]
    rows = validation.select(range(min(params.export.calibration_rows, len(validation))))
    ranges = [
        inputs
        for inputs, _ in batches(
            rows, DataCollatorWithPadding(tokenizer), list(tokenizer.model_input_names), params.export.batch_size
        )
    ]
    config = AutoConfig.from_pretrained(paths.export)
    results = {"rows": len(texts), "threads": threads, "calibration_rows": len(rows), "variants": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(shutil.copytree(paths.export, Path(scratch) / "export"))
        fp32, int8 = folder / FORMATS["fp32"], folder / FORMATS["int8"]
        results["variants"]["fp32, batched"] = measure(LoadedModel(folder, "fp32", threads), texts, gold)
        quantize(fp32, config, int8)
        dynamic = LoadedModel(folder, "int8", threads)
        results["variants"]["dynamic int8, one row per call"] = measure(dynamic, texts, gold)
        dynamic.runner.one_row_per_call = False  # what the folder served before: batched
        results["variants"]["dynamic int8, batched (per-batch ranges)"] = measure(dynamic, texts, gold)
        quantize(fp32, config, int8, ["MatMul"], calibration=ranges)  # all ops: ORT cannot scale the pooler bias
        static = LoadedModel(folder, "int8", threads)
        assert onnx.load(str(int8)).metadata_props[0].key == ACTIVATION_RANGES and not static.runner.one_row_per_call
        results["variants"]["static int8, batched"] = measure(static, texts, gold)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'variant':44} accuracy  rows/s  ms/text  labels changed by batching (max score gap)")
    for name, v in results["variants"].items():
        print(
            f"{name:44} {v['test_accuracy']:.4f} {v['rows_per_s_batch32']:7.1f} {v['latency_ms_one_text']:8.3f}"
            f"  {v['labels_changed_batch1_vs_32']} ({v['max_score_difference_batch1_vs_32']:.1e})"
        )


if __name__ == "__main__":
    main()
