"""The data card: rows, labels and what was dropped per split, duplicates inside train, validation/test rows that
also appear in train (leakage), text lengths in tokens and image sizes."""

import numpy as np
from datasets import Dataset

from hfx.training.data_card import label_balance, length_card, length_histogram, normalised, overlaps


def splits(train, validation, test, column="text"):
    return {
        name: Dataset.from_dict({column: rows})
        for name, rows in (("train", train), ("validation", validation), ("test", test))
    }


def test_finds_planted_duplicates_and_near_duplicates_and_nothing_else():
    card = overlaps(
        splits(
            train=["The movie was great", "a dull film", "A  DULL film!", "a dull film", "unique one"],
            validation=["nothing alike", "a dull, film"],
            test=["the movie was great.", "a dull film", "brand new text", "the movie was good"],
        ),
        "text",
    )
    assert card["duplicates_in_train"] == {"exact": 1, "normalised": 2}
    assert card["leakage"]["test_in_train"] == {"exact": 1, "normalised": 2}
    assert card["leakage"]["validation_in_train"] == {"exact": 0, "normalised": 1}


def test_normalising_ignores_case_spaces_and_punctuation_only():
    assert normalised("  It's GREAT,\tisn't it?! ") == normalised("its great isnt it") == "its great isnt it"
    assert normalised("great") != normalised("grate")


def test_sentences_and_images_are_compared_whole():
    card = overlaps(
        splits(
            train=[["Paris", "is", "big"], ["Oslo"]],
            validation=[["oslo"]],
            test=[["Paris", "is", "big"], ["Paris", "is"]],
            column="tokens",
        ),
        "tokens",
    )
    assert card["leakage"]["test_in_train"] == {"exact": 1, "normalised": 1}
    assert card["leakage"]["validation_in_train"] == {"exact": 0, "normalised": 1}
    image = {"bytes": b"\x89PNG same", "path": None}
    card = overlaps(
        splits(
            train=[image, {"bytes": b"\x89PNG other", "path": None}],
            validation=[image],
            test=[{"bytes": b"\x89PNG new", "path": None}],
            column="image",
        ),
        "image",
    )
    assert card["leakage"] == {
        "test_in_train": {"exact": 0, "normalised": 0},
        "validation_in_train": {"exact": 1, "normalised": 1},
    }


def test_lengths_are_percentiles_of_the_tokens_and_shares_add_up():
    lengths = {"train": np.arange(1, 101), "test": np.array([3, 3, 128, 128])}
    card = length_card(lengths, {"train": 0, "test": 2}, {"train": 100, "test": 4}, max_length=128)
    assert card["train"]["tokens"] == {
        "p50": int(np.percentile(lengths["train"], 50)),
        "p90": 90,
        "p99": 99,
        "max": 100,
    }
    assert card["test"]["truncated_share"] == 0.5 and card["test"]["tokens"]["max"] == 128
    words = length_card({"test": np.array([12, 12])}, {"test": 9}, {"test": 45}, max_length=12)  # 9 of 45 words cut
    assert words["test"]["truncated_share"] == 0.2
    histogram = length_histogram(lengths, 128, bins=8)
    assert list(histogram["tokens"]) == [0, 16, 32, 48, 64, 80, 96, 112]
    assert histogram["train"].sum() == 1 and histogram["test"].tolist() == [0.5, 0, 0, 0, 0, 0, 0, 0.5]
    balance = label_balance({"train": {"neg": 3, "pos": 1}, "test": {"pos": 2}})
    assert balance.to_dict("records") == [
        {"label": "neg (train)", "share": 0.75},
        {"label": "neg (test)", "share": 0.0},
        {"label": "pos (train)", "share": 0.25},
        {"label": "pos (test)", "share": 1.0},
    ]
