"""Pairs of texts (`data.text_pair_column`) as params: a text-classification setting, and swap_pairs needs a
second text (tests/pipeline/test_text_pairs.py trains and serves pairs)."""

import pytest

from tests.project import ROOT, set_params


def test_pairs_are_a_text_classification_setting(tmp_path):
    from hfx.training.params import ParamsError, load_params

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, task="token-classification", data__text_pair_column="second")
    with pytest.raises(ParamsError, match="data.text_pair_column"):
        load_params(params)


def test_swap_pairs_needs_a_second_text(tmp_path):
    from hfx.training.params import ParamsError, load_params

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, preprocess__swap_pairs=True)  # the default data has one text per row
    with pytest.raises(ParamsError, match="preprocess.swap_pairs"):
        load_params(params)
