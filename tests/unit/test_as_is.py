"""`finetune.epochs: 0`: a ready-made classifier scored as it is, its labels matched to the data's by name."""

import pytest

from hfx.training.as_is import matched_rows
from hfx.training.params import ParamsError


def test_labels_match_by_name_then_ignoring_case_and_missing_ones_are_listed():
    assert matched_rows(["neg", "pos"], ["pos", "neg"], "m") == [1, 0]
    assert matched_rows(["NEGATIVE", "neutral", "POSITIVE"], ["positive", "negative"], "m") == [2, 0]
    with pytest.raises(ParamsError) as refused:
        matched_rows(["neg", "pos"], ["good", "pos", "bad"], "some/model")
    assert "['good', 'bad']" in str(refused.value) and "some/model" in str(refused.value)
