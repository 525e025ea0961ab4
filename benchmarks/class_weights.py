"""`make bench-class-weights`: finetune.class_weights on imbalanced data, against the TF-IDF baseline.

From SST-2 (../shared/data/sst2 or $HFX_SST2) it draws splits with 5% positive sentences: train from SST-2's
train (4,000 rows), validation from its validation split and test from its test split, each with every
negative it has up to the size and positives for 5%. A copy of the pipeline then runs `dvc repro` on them
twice, with `finetune.class_weights` null and balanced, params.yaml otherwise as it is. Prints a table (macro F1,
the positives' precision, recall and F1, accuracy, the baseline's macro F1, wall time) and writes
benchmarks/class_weights.json. Work folders live under build/class_weights/. About 15 minutes on 2 cores.
"""

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from benchmarks.bench import copy_project, sh

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("HFX_SST2", ROOT.parent / "shared/data/sst2"))
WORK = ROOT / "build/class_weights"
POSITIVE_SHARE = 0.05
SIZES = {"train": 4000, "validation": None, "test": None}  # None: every negative of the split, plus 5% positives


def imbalanced(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    negatives, positives = frame[frame["label"] == 0], frame[frame["label"] == 1]
    negative_rows = len(negatives) if rows is None else round(rows * (1 - POSITIVE_SHARE))
    positive_rows = round(negative_rows * POSITIVE_SHARE / (1 - POSITIVE_SHARE))
    sample = pd.concat(
        [negatives.sample(negative_rows, random_state=seed), positives.sample(positive_rows, random_state=seed)]
    )
    return sample.sample(frac=1, random_state=seed).reset_index(drop=True)


def write_data(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, (split, rows) in enumerate(SIZES.items()):
        frame = imbalanced(pd.read_csv(SST2 / f"{split}.csv"), rows, seed=i)
        frame.to_csv(folder / f"{split}.csv", index=False)
        counts[split] = {"rows": len(frame), "positives": int(frame["label"].sum())}
    return counts


def run(data: Path, class_weights: str | None) -> dict:
    repo = copy_project(WORK / f"run-{class_weights or 'none'}")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(
        source=str(data),
        text_column="text",
        label_column="label",
        exclude_labels=[],
        label_names=["negative", "positive"],
    )
    params["finetune"]["class_weights"] = class_weights
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _, seconds = sh(["dvc", "repro"], repo)
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    positive = evaluation["per_class"]["positive"]
    return {
        "class_weights": class_weights,
        "f1_macro": evaluation["f1_macro"],
        "positive_precision": positive["precision"],
        "positive_recall": positive["recall"],
        "positive_f1": positive["f1"],
        "accuracy": evaluation["accuracy"],
        "baseline_f1_macro": evaluation["baseline"]["f1_macro"],
        "wall_s": round(seconds, 1),
    }


def main() -> None:
    if not all((SST2 / f"{split}.csv").is_file() for split in SIZES):
        sys.exit(f"bench-class-weights: skipped, SST-2 not found at {SST2} (set HFX_SST2)")
    data = WORK / "data"
    counts = write_data(data)
    print(json.dumps(counts))
    print("| class_weights | macro F1 | positive precision | recall | F1 | accuracy | baseline macro F1 | wall |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for class_weights in (None, "balanced"):
        r = run(data, class_weights)
        results.append(r)
        print(
            f"| {class_weights or 'null'} | {r['f1_macro']:.4f} | {r['positive_precision']:.4f} |"
            f" {r['positive_recall']:.4f} | {r['positive_f1']:.4f} | {r['accuracy']:.4f} |"
            f" {r['baseline_f1_macro']:.4f} | {time.strftime('%M:%S', time.gmtime(r['wall_s']))} |",
            flush=True,
        )
    out = ROOT / "benchmarks/class_weights.json"
    out.write_text(json.dumps({"splits": counts, "runs": results}, indent=2) + "\n")
    print(f"-> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
