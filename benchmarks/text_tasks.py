"""`make bench-text-tasks`: the text tasks beyond one label per text, on the real data in ../shared/data.

`python -m benchmarks.text_tasks [NAME ...]` runs `dvc repro` in a fresh copy of the pipeline per NAME (all by
default) with the params below, params.yaml otherwise as it is, and records the test scores (the task's own,
per exported format), the baseline's and the wall time in benchmarks/text_tasks.json (other names' entries are
kept). The params are the ones docs/tasks.md documents as `dvc exp run -S ...` commands. Work folders live
under build/text_tasks/. `python -m benchmarks.text_tasks latency NAME ...` times earlier runs' int8 folders on
the same test inputs, interleaved.
"""

import json
import os
import sys
from pathlib import Path

import yaml
from datasets import load_dataset

from benchmarks.bench import copy_project, sh

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HFX_SHARED_DATA", ROOT.parent / "shared/data"))
WORK = ROOT / "build/text_tasks"
OUT = ROOT / "benchmarks/text_tasks.json"

# name -> (params overrides as `dvc exp run -S` takes them, the published anchor)
RUNS = {
    "mrpc": (
        {
            "data.source": "mrpc",
            "data.text_column": "sentence1",
            "data.text_pair_column": "sentence2",
            "data.label_column": "label",
            "data.label_names": ["different", "paraphrase"],
            "data.exclude_labels": [],
        },
        "BERT-base, GLUE test F1 88.9 (the paraphrase class)",
    ),
    "stsb": (
        {
            "task": "text-regression",
            "data.source": "stsb",
            "data.text_column": "sentence1",
            "data.text_pair_column": "sentence2",
            "data.label_column": "score",
            "data.exclude_labels": [],
            "finetune.epochs": 4,
        },
        "cross-encoder TinyBERT-L4 Spearman 85.5; all-MiniLM-L6-v2 as a bi-encoder 82.0",
    ),
    "goemotions": (
        {
            "task": "multi-label-classification",
            "data.source": "goemotions",
            "data.data_files": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
            "data.text_column": "text",
            "data.label_column": "labels",
            "data.exclude_labels": [],
            "finetune.epochs": 4,
            "finetune.class_weights": "balanced",
        },
        "BERT-base, Demszky et al. 2020: macro F1 0.46",
    ),
}

# Extractive question answering on SQuAD 1.1's dev set (the only split in ../shared/data/squad): train, validation
# and test are carved out of it by article (data.validation_size, data.test_size: 10% each), so the scores are not
# comparable with published SQuAD results. Windows of 384 tokens sharing 128, as SQuAD models are trained; batches
# of 16 and three epochs, as about 8,500 questions give few optimizer steps (run_qa.py trains on 88,000).
# STS-B with half the batch and half the learning rate (as cross-encoders are usually trained on it): twice the steps.
RUNS["stsb-b16"] = ({**RUNS["stsb"][0], "finetune.batch_size": 16, "finetune.learning_rate": 5.0e-5}, RUNS["stsb"][1])

# Paraphrase detection with twice the default's epochs: MRPC's 3,668 pairs give 115 optimizer steps an epoch.
RUNS["mrpc-6"] = ({**RUNS["mrpc"][0], "finetune.epochs": 6, "finetune.min_steps": 0}, RUNS["mrpc"][1])

# STS-B and MRPC trained on each pair in both orders too (preprocess.swap_pairs): how alike two sentences are, or
# whether one paraphrases the other, does not depend on which comes first. MRPC at 3 epochs of the doubled train
# split takes as many steps as mrpc-6.
RUNS["stsb-swap"] = ({**RUNS["stsb"][0], "preprocess.swap_pairs": True}, RUNS["stsb"][1])
# STS-B as sentence-transformers trains its STS-B cross-encoders (training_stsbenchmark.py): both orders, batches
# of 16, learning rate 2e-5, four epochs, warm-up over the first 10% (their loss is cross-entropy on scores / 5).
RUNS["stsb-st"] = (
    {**RUNS["stsb"][0], "preprocess.swap_pairs": True, "finetune.batch_size": 16, "finetune.learning_rate": 2.0e-5},
    RUNS["stsb"][1],
)
RUNS["mrpc-swap"] = (
    {**RUNS["mrpc"][0], "preprocess.swap_pairs": True, "finetune.epochs": 3, "finetune.min_steps": 0},
    RUNS["mrpc"][1],
)

# GoEmotions two epochs longer: validation macro F1 still rose at every one of the default run's four epochs.
RUNS["goemotions-6"] = ({**RUNS["goemotions"][0], "finetune.epochs": 6}, RUNS["goemotions"][1])

RUNS["squad"] = (
    {
        "task": "question-answering",
        "data.source": "squad",
        "data.splits": {"train": "validation"},
        "data.exclude_labels": [],
        "preprocess.max_length": 384,
        "preprocess.stride": 128,
        "finetune.epochs": 3,
        "finetune.batch_size": 16,
        "finetune.min_steps": 0,
    },
    "none comparable (SQuAD dev carved by article); the aim is F1 30 points over the lexical baseline",
)

# A first, shorter look: 3,000 training questions (a seeded sample), one epoch.
RUNS["squad-3k"] = (
    {**RUNS["squad"][0], "data.max_samples": 3000, "finetune.epochs": 1, "finetune.batch_size": 32},
    RUNS["squad"][1],
)

# Long texts: IMDb reviews (median 174 words; 74% over 128) cut at 128 tokens, read in windows of 128, or cut at
# 512. 2,000 rows per split and two epochs, so that the three fit in about two hours on 2 CPU cores.
IMDB = {
    "data.source": "imdb",
    "data.data_files": {"train": "train.csv", "test": "test.csv"},  # beside them: the reviews' source file names
    "data.exclude_labels": [],
    "data.label_column": "label",
    "data.max_samples": 2000,
    "finetune.epochs": 2,
    "finetune.min_steps": 0,
}
IMDB_ANCHOR = "BERT-base at 512 tokens about 0.94; TF-IDF about 0.88-0.89 (full train split)"
RUNS |= {
    "imdb-truncate-128": ({**IMDB, "preprocess.long_texts": "truncate"}, IMDB_ANCHOR),
    "imdb-chunk-128": ({**IMDB, "preprocess.long_texts": "chunk", "preprocess.stride": 32}, IMDB_ANCHOR),
    "imdb-truncate-512": ({**IMDB, "preprocess.max_length": 512}, IMDB_ANCHOR),
}


def set_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = str(SHARED / value) if dotted == "data.source" else value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(name: str) -> dict:
    overrides, anchor = RUNS[name]
    repo = copy_project(WORK / name)
    set_params(repo, overrides)
    _, seconds = sh(["dvc", "repro"], repo)
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    export = json.loads((repo / "metrics/export.json").read_text())
    data = json.loads((repo / "metrics/data.json").read_text())
    return {
        "params": overrides,
        "anchor": anchor,
        "rows": data["rows"],
        "test": {k: v for k, v in evaluation.items() if k not in ("per_class", "top_confusions")},
        "per_class": evaluation.get("per_class"),
        "export": {k: v for k, v in export.items() if isinstance(v, dict)},
        "wall_s": round(seconds, 1),
    }


def latency(names: list[str], count: int = 100) -> None:
    """`python -m benchmarks.text_tasks latency NAME ...`: the int8 folders of earlier runs answer the same `count`
    test inputs one at a time, interleaved in one process, so their latencies compare on a noisy machine."""
    import statistics
    import time

    from hfx.serving.loaded_model import LoadedModel
    from hfx.training.adapters import get_adapter

    models = {name: LoadedModel(WORK / name / "models/export", "int8") for name in names}
    first = models[names[0]]
    raw = load_dataset("parquet", data_files=str(WORK / names[0] / "data/raw/test.parquet"))["train"]
    inputs = get_adapter(first.info.task).served_inputs(raw.select(range(min(count, len(raw)))))
    times = {name: [] for name in names}
    for model in models.values():
        model.predict(inputs[:2])  # warm-up
    for item in inputs:
        for name, model in models.items():
            start = time.perf_counter()
            model.predict([model.handler.read(item)])
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{name}: median {1000 * statistics.median(seconds):.1f} ms over {len(seconds)} inputs (int8, batch 1)")


def main() -> None:
    if sys.argv[1:2] == ["latency"]:
        return latency(sys.argv[2:])
    names = sys.argv[1:] or list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        sys.exit(f"bench-text-tasks: unknown {unknown}; known: {', '.join(RUNS)}")
    missing = [name for name in names if not (SHARED / RUNS[name][0]["data.source"]).is_dir()]
    if missing:
        sys.exit(f"bench-text-tasks: skipped, {missing} not found under {SHARED} (set HFX_SHARED_DATA)")
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name in names:
        results[name] = run(name)
        print(json.dumps({name: results[name]["test"], "wall_s": results[name]["wall_s"]}), flush=True)
        OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
