"""Train / validation / test splits: carve the ones a source lacks and cap sizes, stratified and seeded."""

import numpy as np
from datasets import Dataset
from sklearn.model_selection import train_test_split

from stages.params import Data, ParamsError

SPLITS = ("train", "validation", "test")


def _split_off(ds: Dataset, count: int, column: str, seed: int, why: str) -> tuple[Dataset, Dataset]:
    """Stratified: (rest, `count` rows taken out)."""
    labels = list(ds[column])
    n_classes = len(set(labels))
    if count < n_classes or len(ds) - count < n_classes:
        raise ParamsError(f"{why}: train has {len(ds)} rows, too few to take {count} out for each of its {n_classes}"
                          f" labels; use a larger dataset, a larger fraction or provide that split")
    try:
        keep, take = train_test_split(np.arange(len(ds)), test_size=count, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise ParamsError(f"{why}: cannot stratify train by label ({exc}); provide that split in the source") from None
    return ds.select(np.sort(keep)), ds.select(np.sort(take))


def carve_missing_splits(splits: dict[str, Dataset], data: Data, column: str) -> tuple[dict[str, Dataset], dict]:
    """Take test, then validation, out of train (fractions of train's size) for each split the source lacks."""
    if len(splits.get("train", [])) == 0:
        raise ParamsError(f"data.source: no rows in a train split (splits found: {', '.join(splits) or 'none'})")
    origin = {name: "source" for name in splits}
    train, total = splits["train"], len(splits["train"])
    for name, fraction in (("test", data.test_size), ("validation", data.validation_size)):
        if len(splits.get(name, [])) == 0:
            count = max(1, round(fraction * total))
            train, splits[name] = _split_off(train, count, column, data.seed, f"data.{name}_size={fraction}")
            origin[name] = f"carved from train ({fraction:g} of {total} rows)"
    splits["train"] = train
    return {name: splits[name] for name in SPLITS}, origin


def cap_rows(ds: Dataset, max_samples: int | None, column: str, seed: int) -> Dataset:
    """A stratified seeded sample of at most `max_samples` rows (plain seeded when a label is too rare)."""
    if max_samples is None or len(ds) <= max_samples:
        return ds
    labels = list(ds[column])
    stratify = labels if min(np.unique(labels, return_counts=True)[1]) >= 2 and max_samples >= len(set(labels)) else None
    keep, _ = train_test_split(np.arange(len(ds)), train_size=max_samples, stratify=stratify, random_state=seed)
    return ds.select(np.sort(keep))
