"""`task: text-regression` as params: no class weights for a number (tests/pipeline/test_text_regression.py
trains, exports, predicts and serves)."""

import pytest

from tests.project import ROOT, set_params


def test_regression_takes_no_class_weights(tmp_path):
    from hfx.training.params import ParamsError, load_params

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, task="text-regression", finetune__class_weights="balanced")
    with pytest.raises(ParamsError, match="finetune.class_weights"):
        load_params(tmp_path / "params.yaml")
