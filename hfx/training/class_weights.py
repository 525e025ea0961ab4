"""finetune.class_weights: each class's share of the loss set by how rare it is in train, for imbalanced data.

`balanced` weighs class c by rows / (classes x rows of c), scikit-learn's `compute_class_weight("balanced")`:
every class then counts in the loss as if the classes were equally common. Multi-label, where each label is a
yes-or-no question of its own, a label's positive rows weigh negatives / positives (BCE's `pos_weight`): its
yes and its no then count alike. The weighted cross-entropy goes to
the Trainer as its `compute_loss_func`. Labels of -100 (special tokens and later sub-tokens of a word in token
classification) count for nothing, as in the models' own loss. Unweighted, a new multi-label head starts each
label at its share of train rows (start_at_base_rates).
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from hfx.training.adapters.common import column_batches
from hfx.training.as_is import output_layer

IGNORED = -100


def train_label_ids(split) -> np.ndarray:
    """Every label id in the split's `labels` column, one per row or per tagged word; -100s left out."""
    parts = []
    for values in column_batches(split, "labels"):
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        ids = values.to_numpy(zero_copy_only=False)
        parts.append(ids[ids != IGNORED])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def balanced_weights(ids: np.ndarray, num_labels: int) -> torch.Tensor:
    """rows / (classes x rows of the class) for each class in train; 1 for a class train lacks."""
    present = np.unique(ids)
    weights = np.ones(num_labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=ids)
    return torch.tensor(weights, dtype=torch.float32)


def weighted_loss(weights: torch.Tensor):
    """The Trainer's `compute_loss_func`: cross-entropy with these class weights. Within a training step it
    sums over the labelled items and divides by the Trainer's count of them (`num_items_in_batch`), which is
    what the Trainer expects of such a function: gradient accumulation and many processes then average over
    the whole step. Without that count (evaluation), it is the weighted mean."""

    def compute_loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"]
        logits = logits.reshape(-1, logits.shape[-1]).float()
        labels = labels.reshape(-1).to(logits.device)
        weight = weights.to(logits.device)
        if num_items_in_batch is None:
            return F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORED)
        total = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORED, reduction="sum")
        return total / num_items_in_batch

    return compute_loss


def positive_weights(split, num_labels: int) -> torch.Tensor:
    """Multi-label: negatives / positives of each label in train (its 0/1 `labels` rows); 1 for a label train
    lacks."""
    positives, rows = np.zeros(num_labels), 0
    for values in column_batches(split, "labels"):
        hot = np.asarray(pc.list_flatten(values).to_numpy(zero_copy_only=False)).reshape(len(values), num_labels)
        positives, rows = positives + hot.sum(0), rows + len(values)
    weights = np.where(positives > 0, (rows - positives) / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def weighted_bce_loss(pos_weight: torch.Tensor):
    """The Trainer's `compute_loss_func` for multi-label: binary cross-entropy with each label's positives
    weighted, summed and divided by the Trainer's count of (row, label) items in the step, or their mean."""

    def compute_loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        labels = labels.to(logits.device, logits.dtype)
        weight = pos_weight.to(logits.device)
        if num_items_in_batch is None:
            return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)
        total = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight, reduction="sum")
        return total / num_items_in_batch

    return compute_loss


MULTI_LABEL = "multi_label_classification"  # transformers' problem_type


def start_at_base_rates(model, mode: str | None, train, problem_type: str | None) -> None:
    """Multi-label, unweighted: a new head starts each label at its share of train rows (its bias the logit of it),
    not at 0.5 for every label. Pushing all scores down at once from there can collapse a small model to one answer
    for every text (all-MiniLM-L6-v2 on GoEmotions, docs/benchmarks.md); the focal-loss paper starts rare classes
    at their prior for the same reason. Balanced, positives weigh as much as negatives and 0 is that start already."""
    if problem_type != MULTI_LABEL or mode is not None:
        return
    num_labels = model.config.num_labels
    negatives_per_positive = positive_weights(train, num_labels).clamp(1e-4, 1e4)
    with torch.no_grad():
        output_layer(model, num_labels).bias.copy_(-torch.log(negatives_per_positive))


def class_weighted_loss(mode: str | None, train, names: list[str], problem_type: str | None = None):
    """(the Trainer's compute_loss_func, or None for the model's own loss; a line saying the weights)."""
    if mode is None:
        return None, None
    if problem_type == MULTI_LABEL:
        weights = positive_weights(train, len(names))
        said = ", ".join(f"{name} {weight:.3g}" for name, weight in zip(names, weights.tolist()))
        return weighted_bce_loss(weights), f"finetune: weights of each label's positive rows ({mode}): {said}"
    weights = balanced_weights(train_label_ids(train), len(names))
    said = ", ".join(f"{name} {weight:.3g}" for name, weight in zip(names, weights.tolist()))
    return weighted_loss(weights), f"finetune: class weights ({mode}): {said}"
