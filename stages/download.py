"""Stage 1: fetch the dataset, clean it, settle train/validation/test, write data/raw/.

Reads `task`, `data.*`. Writes one parquet file per split and manifest.json (what was read, what was dropped),
and the data card (metrics/data.json, for `dvc exp show`): rows, labels and dropped rows per split, image
sizes, duplicates in train, and leakage, the validation and test rows that also appear in train.
"""

import sys
from pathlib import Path

from hfx.training.adapters import get_adapter
from hfx.training.adapters.common import BATCH_ROWS, FIXED
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.artifacts import atomic_dir, write_json
from hfx.training.data_card import data_card
from hfx.training.params import Params, load_params, run_stage
from hfx.training.sources import load_source
from hfx.training.splits import build_splits


def manifest_of(params: Params, task: TaskAdapter, loaded: dict, read: list, built: tuple) -> dict:
    """What was read, from where, and what was kept, dropped or repaired in each split."""
    splits, origin, dropped, unused = built
    return {
        "task": params.task,
        "source": params.data.source,
        "read": read,
        "columns": task.columns_read(params.data),
        "splits_in_source": sorted(loaded),
        "splits_unused": unused,
        "splits": {
            name: {"rows": len(ds), "origin": origin[name], "labels": task.label_counts(ds)}
            for name, ds in splits.items()
        },
        # Rows dropped, and (token classification) tags converted or repaired, per split and why.
        "dropped": {
            name: {k: v for k, v in counts.items() if not k.startswith(FIXED)} for name, counts in dropped.items()
        },
        "fixed": {
            name: {k.removeprefix(FIXED): v for k, v in counts.items() if k.startswith(FIXED)}
            for name, counts in dropped.items()
        },
        "max_samples": params.data.max_samples,
    }


def warn_of_leakage(card: dict, data_card_path: str) -> None:
    leaked = card["leakage"]["test_in_train"]
    if leaked["normalised"]:
        print(
            f"warning: data: {leaked['exact']} test rows also appear in train ({leaked['normalised']} once case,"
            " spaces and punctuation are ignored); test scores overstate how the model does on new data"
            f" ({data_card_path})",
            file=sys.stderr,
        )


def main() -> None:
    params = load_params()
    task = get_adapter(params.task)
    loaded, read = load_source(params.data)
    built = build_splits(loaded, params.data, task)
    splits = built[0]
    manifest = manifest_of(params, task, loaded, read, built)
    labels = {name: split["labels"] for name, split in manifest["splits"].items()}
    card = data_card(splits, task, labels, manifest["dropped"])
    warn_of_leakage(card, params.paths.data_card)

    with atomic_dir(params.paths.raw) as out:
        for name, ds in splits.items():
            # Row groups of a batch each: the next stage then reads a batch at a time, not the whole split.
            ds.to_parquet(str(Path(out) / f"{name}.parquet"), batch_size=BATCH_ROWS)
        write_json(Path(out) / "manifest.json", manifest)
    write_json(params.paths.data_card, card)

    sizes = ", ".join(f"{name} {len(ds)}" for name, ds in splits.items())
    total_dropped = sum(sum(c.values()) for c in manifest["dropped"].values())
    print(f"download: {sizes} rows; dropped {total_dropped} -> {params.paths.raw}")


if __name__ == "__main__":
    run_stage(main)
