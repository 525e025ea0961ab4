"""What the task adapters share: label names and order, and the shape of an evaluation."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Evaluation:
    """What evaluate writes for a task: eval.json's scores, the per-class table, a predictions table a person
    can read (with `actual` and `predicted` columns, for the confusion matrix), and files for metrics/plots."""
    metrics: dict
    per_class: dict
    predictions: pd.DataFrame
    files: dict = field(default_factory=dict)  # name -> DataFrame (csv) or list of rows (json)


def sorted_labels(names) -> list[str]:
    """A stable label order: numeric labels by value, others alphabetically."""
    names = set(names)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def label_text(value, names: list[str] | None) -> str | None:
    """A label as text: a ClassLabel id through its names (-1, unlabeled, is None), numbers without '.0'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if names is not None:  # a ClassLabel: -1 marks an unlabeled row (e.g. GLUE test splits)
        return names[value] if 0 <= value < len(names) else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None
