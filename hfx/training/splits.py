"""Train / validation / test splits: find them in a source, carve the ones it lacks, cap sizes (stratified, seeded)."""

import sys

import numpy as np
from datasets import Dataset, concatenate_datasets
from sklearn.model_selection import train_test_split

from hfx.training.adapters.common import label_codes
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.params import Data, ParamsError

SPLITS = ("train", "validation", "test")
# Other names sources use for the same splits (Hub datasets, competitions, papers).
ALIASES = {"training": "train", "dev": "validation", "valid": "validation", "val": "validation", "testing": "test"}


def name_splits(loaded: dict, data: Data) -> tuple[dict[str, str], list[str]]:
    """Which of the source's splits is train, validation and test: `data.splits` when given, else by name and
    alias. Returns ({our name: the source's name}, the source's splits left unused)."""
    if data.splits is not None:
        missing = [f"{ours}: {theirs}" for ours, theirs in data.splits.items() if theirs not in loaded]
        if missing:
            raise ParamsError(f"data.splits: {', '.join(missing)} not in the source; its splits: {', '.join(loaded)}")
        return dict(data.splits), sorted(set(loaded) - set(data.splits.values()))
    named, unused = {}, []
    for name in loaded:
        ours = ALIASES.get(name.lower(), name.lower())
        if ours not in SPLITS:
            unused.append(name)
        elif ours in named:
            raise ParamsError(
                f"data.source: splits '{named[ours]}' and '{name}' both read as {ours};"
                f" choose one with data.splits, e.g. {{{ours}: {name}}}"
            )
        else:
            named[ours] = name
    return named, unused


def build_splits(loaded: dict, data: Data, task: TaskAdapter) -> tuple[dict, dict, dict, list[str]]:
    """Clean every split the source has, carve the missing ones, cap sizes.

    Returns (splits, where each came from, rows dropped per split and why, the source's unused splits)."""
    named, unused = name_splits(loaded, data)
    carved = [name for name in ("validation", "test") if name not in named]
    if unused and carved and data.splits is None:
        raise ParamsError(
            f"data.source: split{'s' * (len(unused) > 1)} {', '.join(map(repr, unused))} not read as"
            f" train, validation or test, and {' and '.join(carved)} would be carved out of train;"
            f" say which to use with data.splits, e.g. {{train: train, {carved[0]}: {unused[0]}}}"
        )
    if unused and data.splits is None:
        print(
            f"warning: data.source: split{'s' * (len(unused) > 1)} {', '.join(map(repr, unused))} not used"
            " (not train, validation or test); data.splits chooses",
            file=sys.stderr,
        )
    splits, dropped = {}, {}
    for name in SPLITS:
        if name in named:
            splits[name], dropped[name] = task.standardize(loaded[named[name]], data, named[name])
    if len(splits.get("train", [])) == 0 and "train" in dropped:
        raise ParamsError(
            f"data: no rows left in train after dropping {dict(dropped['train'])}"
            f" (data.exclude_labels={data.exclude_labels})"
        )
    splits, origin = carve_missing_splits(splits, data, task.stratify_column, task.group_column)
    origin.update({ours: f"source split '{theirs}'" for ours, theirs in named.items() if ours != theirs})
    splits = {name: cap_rows(ds, data.max_samples, task.stratify_column, data.seed) for name, ds in splits.items()}
    task.check_labels(splits)
    return splits, origin, dropped, unused


def _split_off(ds: Dataset, count: int, column: str | None, seed: int, why: str) -> tuple[Dataset, Dataset]:
    """Stratified by `column` (when the task has one): (rest, `count` rows taken out)."""
    labels = label_codes(ds, column) if column else None
    n_classes = len(np.unique(labels)) if column else 1
    if count < n_classes or len(ds) - count < n_classes:
        raise ParamsError(
            f"{why}: train has {len(ds)} rows, too few to take {count} out for each of its {n_classes}"
            f" labels; use a larger dataset, a larger fraction or provide that split"
        )
    try:
        keep, take = train_test_split(np.arange(len(ds)), test_size=count, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise ParamsError(f"{why}: cannot stratify train by label ({exc}); provide that split in the source") from None
    return ds.select(np.sort(keep)), ds.select(np.sort(take))


def _split_off_groups(ds: Dataset, count: int, group: str, seed: int, why: str) -> tuple[Dataset, Dataset]:
    """(rest, at least `count` rows taken out in whole groups: every row of a group on one side). Groups are
    taken in a seeded random order; a row without a group is a group of its own."""
    keys = [key if key is not None else f"row {i}" for i, key in enumerate(ds[group])]
    names, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    taken = order[: int(np.searchsorted(np.cumsum(sizes[order]), count)) + 1]
    if len(taken) == len(names):
        raise ParamsError(
            f"{why}: train has {len(names)} {group}s, too few to take {count} rows out in whole {group}s and leave"
            f" some for train; provide that split in the source, or use a smaller fraction"
        )
    take = np.isin(inverse, taken)
    return ds.select(np.flatnonzero(~take)), ds.select(np.flatnonzero(take))


def carve_missing_splits(
    splits: dict[str, Dataset], data: Data, column: str | None, group: str | None = None
) -> tuple[dict[str, Dataset], dict]:
    """Take test, then validation, out of train (fractions of train's size) for each split the source lacks: in
    whole groups when the task has a `group` column the data fills (an article's questions), else stratified by
    `column`."""
    if len(splits.get("train", [])) == 0:
        raise ParamsError(f"data.source: no rows in a train split (splits found: {', '.join(splits) or 'none'})")
    origin = {name: "source" for name in splits}
    train, total = splits["train"], len(splits["train"])
    for name, fraction in (("test", data.test_size), ("validation", data.validation_size)):
        if len(splits.get(name, [])) == 0:
            count, why = max(1, round(fraction * total)), f"data.{name}_size={fraction}"
            if group in train.column_names and any(key is not None for key in train[group]):
                train, splits[name] = _split_off_groups(train, count, group, data.seed, why)
                origin[name] = f"carved from train by {group} ({fraction:g} of {total} rows)"
            else:
                train, splits[name] = _split_off(train, count, column, data.seed, why)
                origin[name] = f"carved from train ({fraction:g} of {total} rows)"
    splits["train"] = train
    return {name: splits[name] for name in SPLITS}, origin


def cap_rows(ds: Dataset, max_samples: int | None, column: str | None, seed: int) -> Dataset:
    """A stratified seeded sample of at most `max_samples` rows (plain seeded when a label is too rare or the task
    has no single label per row)."""
    if max_samples is None or len(ds) <= max_samples:
        return ds
    rows = np.arange(len(ds))
    try:
        keep, _ = train_test_split(
            rows, train_size=max_samples, stratify=label_codes(ds, column) if column else None, random_state=seed
        )
    except ValueError:  # too few rows of a label, or too few left out, to keep the proportions
        keep, _ = train_test_split(rows, train_size=max_samples, random_state=seed)
    return ds.select(np.sort(keep))


def both_orders(train: Dataset) -> Dataset:
    """The train rows, then each again with its two texts swapped and the same label. For tasks whose answer does
    not depend on the order of the texts (how alike they are, whether one paraphrases the other): twice the
    training pairs, and a model that learns to answer both orders alike, as sentence-transformers trains its
    STS-B cross-encoders. The Trainer shuffles the rows."""
    swapped = train.rename_columns({"text": "swapped_pair", "text_pair": "text"})
    swapped = swapped.rename_column("swapped_pair", "text_pair").select_columns(train.column_names)
    return concatenate_datasets([train, swapped.cast(train.features)])
