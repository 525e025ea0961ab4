"""The data card: duplicates inside train and validation/test rows that also appear in train (leakage)."""

import json
import sys

from datasets import Dataset

from stages.data_card import data_card, normalised
from tests.conftest import make_repo, make_reviews, run, set_params


def splits(train, validation, test, column="text"):
    return {name: Dataset.from_dict({column: rows}) for name, rows in
            (("train", train), ("validation", validation), ("test", test))}


def test_finds_planted_duplicates_and_near_duplicates_and_nothing_else():
    card = data_card(splits(
        train=["The movie was great", "a dull film", "A  DULL film!", "a dull film", "unique one"],
        validation=["nothing alike", "a dull, film"],
        test=["the movie was great.", "a dull film", "brand new text", "the movie was good"]), "text")
    assert card["duplicates_in_train"] == {"exact": 1, "normalised": 2}
    assert card["leakage"]["test_in_train"] == {"exact": 1, "normalised": 2}
    assert card["leakage"]["validation_in_train"] == {"exact": 0, "normalised": 1}


def test_normalising_ignores_case_spaces_and_punctuation_only():
    assert normalised("  It's GREAT,\tisn't it?! ") == normalised("its great isnt it") == "its great isnt it"
    assert normalised("great") != normalised("grate")


def test_sentences_and_images_are_compared_whole():
    card = data_card(splits(train=[["Paris", "is", "big"], ["Oslo"]], validation=[["oslo"]],
                            test=[["Paris", "is", "big"], ["Paris", "is"]], column="tokens"), "tokens")
    assert card["leakage"]["test_in_train"] == {"exact": 1, "normalised": 1}
    assert card["leakage"]["validation_in_train"] == {"exact": 0, "normalised": 1}
    image = {"bytes": b"\x89PNG same", "path": None}
    card = data_card(splits(train=[image, {"bytes": b"\x89PNG other", "path": None}], validation=[image],
                            test=[{"bytes": b"\x89PNG new", "path": None}], column="image"), "image")
    assert card["leakage"] == {"test_in_train": {"exact": 0, "normalised": 0},
                               "validation_in_train": {"exact": 1, "normalised": 1}}


def test_download_writes_the_card_and_warns_when_test_rows_are_in_train(tmp_path, tiny_model):
    repo = make_repo(tmp_path / "repo")
    (repo / "inputs").mkdir()
    train, test = make_reviews(200, seed=0), make_reviews(40, seed=1)
    test.loc[:2, "review"] = train["review"][:3].str.upper().values  # 3 test rows copied from train, shouted
    train.to_csv(repo / "inputs/train.csv", index=False)
    test.to_csv(repo / "inputs/test.csv", index=False)
    set_params(repo, data__source="inputs", data__text_column="review", data__label_column="sentiment",
               data__exclude_labels=[], model__name=str(tiny_model))
    result = run([sys.executable, "-m", "stages.download"], repo)
    card = json.loads((repo / "metrics/data.json").read_text())
    exact_in_test = sum(text in set(train["review"]) for text in test["review"])
    assert card["leakage"]["test_in_train"]["normalised"] >= 3
    assert card["leakage"]["test_in_train"]["exact"] == exact_in_test
    assert card["rows"]["test"] == 40
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: data:")]
    assert len(warnings) == 1 and "test rows also appear in train" in warnings[0]


def test_model_card_states_the_leakage_of_its_data(exported_model):
    card = json.loads((exported_model.parents[1] / "metrics/data.json").read_text())
    leaked = card["leakage"]["test_in_train"]
    text = (exported_model / "README.md").read_text()
    assert f"Test rows also in train: {leaked['exact']} ({leaked['normalised']} ignoring" in text
