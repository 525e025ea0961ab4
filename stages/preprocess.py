"""Stage 2: tokenize data/raw/ with the model's fast tokenizer, write data/processed/.

Reads `task`, `model.*`, `preprocess.*`. Fixes the label order once (labels.json). Truncates to max_length
(and counts what was cut: texts, or words of a sentence) and does not pad: batches are padded to their own
longest row at training time. Writes the rest of the data card to metrics/data_plots/: each split's label
balance and, for texts, their length in tokens (lengths.json: percentiles and the share cut; a histogram).
Splits are read and written a batch at a time (memory-mapped Arrow), so memory stays bounded whatever their size.
With `preprocess.swap_pairs`, train holds each pair of texts in both orders.
"""

from pathlib import Path

import numpy as np
from datasets import load_dataset

from hfx.training.adapters import get_adapter
from hfx.training.adapters.common import BATCH_ROWS, column_batches, column_sum
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.artifacts import atomic_dir, read_json, save_datasets, write_json
from hfx.training.data_card import label_balance, length_card, length_histogram
from hfx.training.params import Params, load_params, run_stage
from hfx.training.splits import SPLITS, both_orders


def tokenized_splits(params: Params, task: TaskAdapter, splits, processor, label2id: dict) -> tuple:
    """Each split tokenized a batch at a time, and how many rows (or words) each has and had cut off."""
    tokenized = splits.map(
        task.tokenize,
        batched=True,
        batch_size=BATCH_ROWS,
        remove_columns=splits["train"].column_names,
        fn_kwargs={"processor": processor, "settings": params.preprocess, "label2id": label2id},
        num_proc=params.preprocess.num_proc if params.preprocess.num_proc > 1 else None,
        desc="tokenize",
    )
    truncated = {name: column_sum(ds, "truncated") for name, ds in tokenized.items()}  # rows, or words cut off
    units = {name: column_sum(ds, "units") for name, ds in tokenized.items()}  # rows, or words
    return tokenized.remove_columns(["truncated", "units"]), truncated, units


def write_processed(params: Params, task: TaskAdapter, tokenized, label2id: dict, truncated: dict) -> dict:
    """data/processed/: the splits, labels.json and stats.json, which it returns."""
    with atomic_dir(params.paths.processed) as out:
        save_datasets(tokenized, out)
        write_json(out / "labels.json", {"id2label": dict(enumerate(label2id)), "label2id": label2id})
        stats = {
            "max_length": params.preprocess.max_length,
            "rows": {name: len(ds) for name, ds in tokenized.items()},
            # what a pass over each split reads from disk
            "size_mb": {
                name: round(sum(f.stat().st_size for f in (out / name).glob("*.arrow")) / 2**20, 2)
                for name in tokenized
            },
        }
        if task.truncated_unit:
            stats[f"truncated_{task.truncated_unit}"] = truncated
        if task.group_by_length:
            stats["mean_tokens"] = {
                name: round(column_sum(ds, "length") / max(len(ds), 1), 2) for name, ds in tokenized.items()
            }
        write_json(out / "stats.json", stats)
    return stats


def write_data_plots(params: Params, task: TaskAdapter, tokenized, truncated: dict, units: dict) -> None:
    """The rest of the data card: each split's label balance and, for texts, their length in tokens."""
    max_length = params.preprocess.max_length
    with atomic_dir(params.paths.data_plots) as plots:
        manifest = read_json(Path(params.paths.raw) / "manifest.json")
        labels = {name: split["labels"] for name, split in manifest["splits"].items()}
        label_balance(labels).to_csv(plots / "label_balance.csv", index=False)
        lengths = {}  # in tokens, for texts; images have none
        if task.group_by_length:
            lengths = {
                name: np.concatenate([b.to_numpy() for b in column_batches(ds, "length")])
                for name, ds in tokenized.items()
            }
            length_histogram(lengths, max_length).to_csv(plots / "length_histogram.csv", index=False)
        write_json(plots / "lengths.json", length_card(lengths, truncated, units, max_length))


def main() -> None:
    params = load_params()
    task, raw = get_adapter(params.task), Path(params.paths.raw)
    task.check_settings(params.model, params.preprocess)
    processor = task.load_processor(params.model)

    splits = load_dataset("parquet", data_files={name: str(raw / f"{name}.parquet") for name in SPLITS})
    if params.preprocess.swap_pairs:  # train only: validation and test are scored as users send them
        splits["train"] = both_orders(splits["train"])
    names = task.label_names(splits["train"], params.data)  # download checked them: >= 2, none unseen in train
    label2id = {name: i for i, name in enumerate(names)}
    tokenized, truncated, units = tokenized_splits(params, task, splits, processor, label2id)
    stats = write_processed(params, task, tokenized, label2id, truncated)
    write_data_plots(params, task, tokenized, truncated, units)
    cut = f", truncated {task.truncated_unit} {truncated}" if task.truncated_unit else ""
    print(f"preprocess: {len(names)} labels{cut}, {sum(stats['size_mb'].values()):.1f} MB -> {params.paths.processed}")


if __name__ == "__main__":
    run_stage(main)
