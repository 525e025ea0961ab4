"""Property-based: any params edit is accepted or refused in one line; any small data file is split soundly."""

import copy
import uuid

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfx.tasks import TASKS
from hfx.training.params import Data, ParamsError, printable, validate
from hfx.training.sources import load_source
from hfx.training.splits import build_splits
from tests.project import ROOT

TextClassificationAdapter = TASKS["text-classification"].adapter_class()


DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())


SECTIONS = {name: list(value) for name, value in DEFAULTS.items() if isinstance(value, dict)}


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def edit(draw) -> tuple[str, str, object]:
    """(section, key, value): the key an existing one or a made-up one, drawn so a failure replays exactly."""
    section = draw(st.sampled_from(sorted(SECTIONS)))
    key = draw(st.one_of(st.sampled_from(sorted(SECTIONS[section])), st.text(min_size=1, max_size=16)))
    return section, key, draw(values)


edits = st.lists(edit(), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(edits)
def test_any_params_edit_is_valid_or_one_named_line(changes):
    raw = copy.deepcopy(DEFAULTS)
    touched = []
    for section, key, value in changes:
        raw[section][key] = value
        touched.append(printable(f"{section}.{key}"))
    try:
        params = validate(raw)
    except ParamsError as error:
        message = str(error)
        assert "\n" not in message
        assert any(key in message for key in touched) or "data.validation_size + data.test_size" in message
    else:
        assert params.finetune.learning_rate > 0 and params.finetune.epochs >= 0  # 0: score a ready-made model
        assert params.data.validation_size + params.data.test_size < 1


texts = st.one_of(st.none(), st.just(""), st.just("   "), st.text(min_size=1, max_size=30))


labels = st.one_of(st.none(), st.sampled_from(["pos", "neg", "meh", "plot"]))


rows = st.lists(st.tuples(texts, labels), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=rows,
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
    max_samples=st.one_of(st.none(), st.integers(1, 30)),
    near_size=st.integers(0, 3),
)
def test_any_small_data_file_is_split_soundly_or_refused_in_one_line(tmp_path, rows, fmt, max_samples, near_size):
    frame = pd.DataFrame(rows, columns=["review", "sentiment"])
    path = tmp_path / f"{uuid.uuid4().hex}.{fmt}"
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
    }[fmt]()
    if near_size and max_samples is not None:  # a cap just under the size of train, where stratifying breaks
        max_samples = max(1, round(0.6 * len(rows)) - near_size)
    data = Data(
        source=str(path),
        text_column="review",
        label_column="sentiment",
        exclude_labels=["plot"],
        validation_size=0.2,
        test_size=0.2,
        max_samples=max_samples,
        seed=0,
    )
    try:
        splits, _, dropped, _ = build_splits(load_source(data)[0], data, TextClassificationAdapter())
    except ParamsError as error:
        assert "\n" not in str(error)
        return
    kept = [row for name in ("train", "validation", "test") for row in zip(splits[name]["text"], splits[name]["label"])]
    assert all(text.strip() for text, _ in kept), "no empty text survives"
    assert all(label != "plot" for _, label in kept), "excluded labels are gone"
    if max_samples is None:
        assert len(kept) + sum(dropped["train"].values()) == len(rows), "every row is kept or counted as dropped"
    else:
        assert all(len(splits[name]) <= max_samples for name in splits)
    assert set(splits["validation"]["label"]) | set(splits["test"]["label"]) <= set(splits["train"]["label"])
    assert len(set(splits["train"]["label"])) >= 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_infinity_are_refused(bad):
    raw = copy.deepcopy(DEFAULTS)
    raw["finetune"]["epochs"] = bad
    with pytest.raises(ParamsError, match="finetune.epochs"):
        validate(raw)
