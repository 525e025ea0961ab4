"""finetune.class_weights: the balanced weights from train's labels, and the weighted loss the Trainer gets."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hfx.training.class_weights import balanced_weights, class_weighted_loss, train_label_ids, weighted_loss


def test_balanced_weights_make_each_class_count_as_if_classes_were_equally_common():
    ids = np.array([0] * 95 + [1] * 5)
    weights = balanced_weights(ids, 2)
    assert weights.tolist() == pytest.approx([100 / (2 * 95), 100 / (2 * 5)])
    per_class_total = [float(weights[c]) * (ids == c).sum() for c in (0, 1)]
    assert per_class_total == pytest.approx([50, 50])


def test_a_class_train_lacks_weighs_one_and_ignored_tags_are_not_counted():
    """Token classification: labels per word, -100 on special tokens and later sub-tokens."""
    train = Dataset.from_dict({"labels": [[-100, 0, 0, 1, -100], [-100, 0, 0, 0, -100]]})
    ids = train_label_ids(train)
    assert sorted(ids.tolist()) == [0, 0, 0, 0, 0, 1]
    assert balanced_weights(ids, 3).tolist() == pytest.approx([6 / (2 * 5), 6 / (2 * 1), 1.0])


def test_no_weights_leaves_the_models_own_loss():
    assert class_weighted_loss(None, Dataset.from_dict({"labels": [0, 1]}), ["neg", "pos"]) == (None, None)


def test_equal_weights_give_the_models_own_loss_and_rare_class_mistakes_cost_more(tiny_model):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    inputs = tokenizer(["a great film", "a dull film", "the plot", "superb cast"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 0, 0])
    with torch.no_grad():
        outputs = model(**inputs, labels=labels)
    ones = weighted_loss(torch.ones(2))
    assert float(ones(outputs, labels)) == pytest.approx(float(outputs.loss), rel=1e-6)
    assert float(ones(outputs, labels, num_items_in_batch=4)) == pytest.approx(float(outputs.loss), rel=1e-6)

    # One row of the rare class among four: its error weighs 3x the others' once balanced.
    rare_weighted = weighted_loss(balanced_weights(labels.numpy(), 2))
    per_row = torch.nn.functional.cross_entropy(outputs.logits, labels, reduction="none")
    expected = (per_row * torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3])).sum() / 4
    assert float(rare_weighted(outputs, labels, num_items_in_batch=4)) == pytest.approx(float(expected), rel=1e-5)


def test_multi_label_weighs_each_labels_positive_rows_by_its_negatives_over_its_positives():
    import torch.nn.functional as F

    from hfx.training.class_weights import positive_weights

    # label 0 in 1 row of 4, label 1 in 2 of 4, label 2 in none
    train = Dataset.from_dict({"labels": [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]})
    weights = positive_weights(train, 3)
    assert weights.tolist() == pytest.approx([3.0, 1.0, 1.0])
    loss, line = class_weighted_loss("balanced", train, ["a", "b", "c"], "multi_label_classification")
    assert "a 3" in line
    logits = torch.tensor([[0.3, -1.0, 2.0], [-0.5, 0.2, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights)
    assert float(loss({"logits": logits}, labels)) == pytest.approx(float(expected))
    assert float(loss({"logits": logits}, labels, num_items_in_batch=6)) == pytest.approx(float(expected))
