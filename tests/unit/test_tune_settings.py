"""The tune: section of params.yaml: a bad search space is one line naming the key, before any trial."""

import copy

import pytest
import yaml

from hfx.training.params import ParamsError, validate
from tests.project import ROOT


@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_space(raw, space: dict) -> dict:
    changed = copy.deepcopy(raw)
    changed["tune"]["space"] = space
    return changed


def test_the_default_space_searches_the_usual_finetune_params(raw):
    tune = validate(raw).tune
    assert set(tune.space) == {
        "finetune.learning_rate",
        "finetune.epochs",
        "finetune.batch_size",
        "finetune.weight_decay",
        "finetune.warmup_ratio",
    }
    assert tune.space["finetune.learning_rate"].log and tune.space["finetune.epochs"].whole_numbers
    assert not tune.space["finetune.weight_decay"].whole_numbers


@pytest.mark.parametrize(
    "space, message",
    [
        ({"finetune.learning_rte": {"low": 1e-5, "high": 1e-4}}, "did you mean 'finetune.learning_rate'?"),
        ({"paths.raw": {"choices": ["a", "b"]}}, "'paths.raw' is not a param a search can vary"),
        ({"export.batch_size": {"choices": [8, 16]}}, "'export.batch_size' is not a param a search can vary"),
        ({"finetune.learning_rate": {"low": 1e-4, "high": 1e-5}}, "empty range: low 0.0001 must be below high 1e-05"),
        ({"finetune.weight_decay": {"low": 0.0, "high": 0.1, "log": True}}, "a log scale needs low above 0"),
        ({"finetune.batch_size": {"choices": [16, 0]}}, "tune.space.finetune.batch_size: 0 is not a value"),
        ({"finetune.optim": {"choices": ["adam"]}}, "'adam' is not a value finetune.optim takes"),
        ({"finetune.learning_rate": {"low": 1e-5}}, "needs low and high (a range) or choices"),
        ({"finetune.epochs": {"choices": []}}, "tune.space.finetune.epochs"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_key(raw, space, message):
    with pytest.raises(ParamsError) as error:
        validate(with_space(raw, space))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_empty_space_or_a_bad_study_name_is_refused(raw):
    with pytest.raises(ParamsError, match="tune.space"):
        validate(with_space(raw, {}))
    named = copy.deepcopy(raw)
    named["tune"]["study"] = "my study/1"  # names git refs of its experiments
    with pytest.raises(ParamsError, match="tune.study"):
        validate(named)


def test_params_without_a_tune_section_still_run_the_pipeline(raw):
    del raw["tune"]
    assert validate(raw).tune is None
