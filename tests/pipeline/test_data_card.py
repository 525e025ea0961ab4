"""The data card: rows, labels and what was dropped per split, duplicates inside train, validation/test rows that
also appear in train (leakage), text lengths in tokens and image sizes."""

import json
import sys

import numpy as np
import pandas as pd

from tests.corpora import make_reviews
from tests.project import REVIEWS, run, tiny_repo


def test_download_writes_the_card_and_warns_when_test_rows_are_in_train(tmp_path, tiny_model):
    train, test = make_reviews(200, seed=0), make_reviews(40, seed=1)
    test.loc[:2, "review"] = train["review"][:3].str.upper().values  # 3 test rows copied from train, shouted
    repo = tiny_repo(tmp_path / "repo", tiny_model, {"train": train, "test": test}, **REVIEWS)
    result = run([sys.executable, "-m", "stages.download"], repo)
    card = json.loads((repo / "metrics/data.json").read_text())
    exact_in_test = sum(text in set(train["review"]) for text in test["review"])
    assert card["leakage"]["test_in_train"]["normalised"] >= 3
    assert card["leakage"]["test_in_train"]["exact"] == exact_in_test
    assert card["rows"]["test"] == 40
    assert card["labels"]["test"] == test["sentiment"].value_counts().sort_index().to_dict()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: data:")]
    assert len(warnings) == 1 and "test rows also appear in train" in warnings[0]


def test_model_card_states_the_leakage_of_its_data(exported_model):
    card = json.loads((exported_model.parents[1] / "metrics/data.json").read_text())
    leaked = card["leakage"]["test_in_train"]
    text = (exported_model / "README.md").read_text()
    assert f"Test rows also in train: {leaked['exact']} ({leaked['normalised']} ignoring" in text


def test_the_runs_card_holds_labels_lengths_and_drops_and_the_model_card_states_them(exported_model):
    from datasets import load_from_disk

    repo = exported_model.parents[1]
    card = json.loads((repo / "metrics/data.json").read_text())
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert card["labels"] == {name: split["labels"] for name, split in manifest["splits"].items()}
    assert card["dropped"] == manifest["dropped"]
    lengths = json.loads((repo / "metrics/data_plots/lengths.json").read_text())
    test_lengths = np.array(load_from_disk(repo / "data/processed")["test"]["length"])
    assert lengths["test"]["tokens"]["p90"] == int(np.percentile(test_lengths, 90))
    assert lengths["test"]["tokens"]["max"] == test_lengths.max() and lengths["test"]["truncated_share"] == 0
    histogram = pd.read_csv(repo / "metrics/data_plots/length_histogram.csv")
    assert np.allclose(histogram[["train", "validation", "test"]].sum(), 1, atol=1e-4)
    text = (exported_model / "README.md").read_text()
    assert f"test {lengths['test']['tokens']['p50']} / {lengths['test']['tokens']['p90']}" in text
