"""The model card as the Hub reads it: rendered from its Jinja2 template, with the base model, dataset and license
as Hub ids, and the test scores as `model-index`."""

import copy

import pytest
import yaml

from hfx.training.adapters import get_adapter
from hfx.training.model_card import card_data
from hfx.training.params import PARAMS_FILE, validate

COMMIT = "0123456789abcdef0123456789abcdef01234567"


SCORES = {"accuracy": 0.91234, "f1_macro": 0.9, "precision_macro": 0.89, "recall_macro": 0.91, "per_class": {}}


@pytest.fixture(scope="module")
def default_raw() -> dict:
    return yaml.safe_load(open(PARAMS_FILE))


def params_with(raw: dict, **sections):
    raw = copy.deepcopy(raw)
    for section, values in sections.items():
        raw[section] |= values
    return validate(raw)


def test_a_packaged_model_and_a_hub_dataset_are_written_as_the_hub_ids_they_stand_for(default_raw):
    params = params_with(default_raw, data={"source": "hf:stanfordnlp/sst2", "config": "default"})
    data = card_data(params, get_adapter(params.task), SCORES, {"read": {"hub_commit": COMMIT}})
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.license == "apache-2.0"  # from the packaged model's own card
    assert data.datasets == ["stanfordnlp/sst2"]
    results = data.eval_results
    assert [(r.metric_type, r.metric_value) for r in results] == [
        ("accuracy", 0.9123),
        ("f1_macro", 0.9),
        ("precision_macro", 0.89),
        ("recall_macro", 0.91),
    ]
    assert {(r.dataset_type, r.dataset_config, r.dataset_revision, r.dataset_split) for r in results} == {
        ("stanfordnlp/sst2", "default", COMMIT, "test")
    }


def test_what_has_no_hub_id_is_not_given_one(default_raw, tiny_model):
    """A local model folder and a packaged data file have no Hub id; a model trained from scratch
    (`model.init: random`) does not start from its base model's weights, so the card claims none."""
    params = params_with(default_raw, model={"name": str(tiny_model)})
    data = card_data(params, get_adapter(params.task), SCORES, {"read": {}})
    assert data.base_model is None and data.datasets is None and data.license is None
    assert data.eval_results[0].dataset_name == "rotten_tomatoes_corpus_full.csv.bz2"
    scratch = params_with(default_raw, model={"init": "random"})
    assert card_data(scratch, get_adapter(scratch.task), SCORES, {"read": {}}).base_model is None
