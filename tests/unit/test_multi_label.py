"""`task: multi-label-classification` in process: its params, thresholds fitted per label, and a new head
starting at each label's share of train (tests/pipeline/test_multi_label.py trains and serves one)."""

import json

import numpy as np
import pytest

from tests.project import ROOT, set_params


def test_multi_label_takes_pairs_class_weights_and_a_label_separator(tmp_path):
    from hfx.training.params import ParamsError, load_params

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(
        tmp_path,
        task="multi-label-classification",
        data__text_pair_column="context",
        data__label_separator="|",
        finetune__class_weights="balanced",
    )
    params = load_params(tmp_path / "params.yaml")
    assert params.task == "multi-label-classification" and params.data.text_pair_column == "context"
    assert params.data.label_separator == "|" and params.finetune.class_weights == "balanced"
    set_params(tmp_path, preprocess__long_texts="chunk")  # windows read single texts; a pair is read whole
    with pytest.raises(ParamsError, match="preprocess.long_texts: chunk splits single texts"):
        load_params(tmp_path / "params.yaml")


def test_each_threshold_is_the_best_f1_cut_between_two_scores_and_a_label_validation_lacks_keeps_half():
    from hfx.training.thresholds import best_threshold, fit_thresholds

    # Keeping the top 3 finds both positives for one false one: F1 0.8, the best; the cut lies halfway down,
    # written as short as the middle half of the gap allows.
    assert best_threshold(np.array([0.9, 0.8, 0.3, 0.2, 0.1]), np.array([1, 0, 1, 0, 0])) == 0.25
    # Equal scores are never split: both are in or both are out (0.35 is the middle, 0.3 the shortest near it).
    assert best_threshold(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == 0.3
    probabilities = np.array([[0.9, 0.4], [0.2, 0.6]])
    assert fit_thresholds(probabilities, np.array([[1, 0], [0, 0]]))[1] == (0.5, False)
    # Saturated scores: the threshold stays strictly between 0 and 1, where a folder takes it.
    assert 0.99 < best_threshold(np.array([1.0, np.nextafter(1.0, 0.0)]), np.array([1, 0])) < 1.0
    assert 0.0 < best_threshold(np.array([0.0, 0.0]), np.array([1, 1])) < 1e-300


def test_a_rare_labels_tiny_threshold_is_stored_as_fitted_and_given_to_its_one_row(tiny_model):
    """One positive among 200 validation rows, scored 4.5e-5, the others less: its threshold lies between, and
    the stored one (JSON, as export writes calibration.json) gives the label to that row alone. Rounded to 4
    decimal places it was 0.0, and every row got the label."""
    from scipy.special import logit

    from hfx.serving.folder import ModelInfo
    from hfx.tasks import TASKS

    MultiLabelHandler = TASKS["multi-label-classification"].handler_class()
    from hfx.training.thresholds import PerLabelThresholds

    rng = np.random.default_rng(0)
    rare = np.append(4.5e-5, rng.uniform(1e-7, 4.4e-5, 199))
    common = rng.uniform(0, 1, 200)
    gold = np.stack([np.eye(200)[0], common > 0.5], axis=1).astype(np.int64)
    logits = logit(np.stack([rare, common], axis=1)).astype(np.float32)
    fitted = json.loads(json.dumps(PerLabelThresholds().fit((logits, gold), ["rare", "common"])))
    threshold = fitted["thresholds"]["rare"]
    assert np.sort(rare)[-2] < threshold <= 4.5e-5 and len(repr(threshold)) <= 8  # short, and where it was fitted
    info = ModelInfo(tiny_model, "tiny", "multi-label-classification", ["rare", "common"], 128, [])
    info.thresholds = [fitted["thresholds"][name] for name in info.labels]
    handler = MultiLabelHandler(info)
    given = [handler.decode(row, None, None)["labels"] for row in logits]
    assert [i for i, labels in enumerate(given) if "rare" in labels] == [0]


@pytest.mark.parametrize("class_weights", [None, "balanced"])
def test_a_new_head_starts_at_each_labels_share_of_train(tmp_path, tiny_model, class_weights):
    import torch
    from datasets import Dataset

    from hfx.training.adapters import get_adapter
    from hfx.training.as_is import output_layer
    from hfx.training.params import load_params
    from hfx.training.trainer_setup import starting_model

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(
        tmp_path, task="multi-label-classification", model__name=str(tiny_model), finetune__class_weights=class_weights
    )
    params = load_params(tmp_path / "params.yaml")
    names = ["complaint", "ending", "praise"]
    labels = {"label2id": {name: i for i, name in enumerate(names)}, "id2label": dict(enumerate(names))}
    train = Dataset.from_dict({"labels": [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1]]})
    model = starting_model(get_adapter(params.task), params, labels, announce=False, train=train)
    start = torch.sigmoid(output_layer(model, 3).bias).tolist()
    # Unweighted, each label starts at its share of rows; balanced weighs positives as negatives: a half.
    expected = [0.75, 0.25, 0.25] if class_weights is None else [0.5, 0.5, 0.5]
    assert start == pytest.approx(expected, abs=1e-6)
