"""Pairs of texts (`data.text_pair_column`): a tiny BERT learns a label carried by the second text only, through
`dvc repro`; evaluate, predict, serve and `transformers.pipeline` answer each pair alike; bad pair inputs get
one line."""

import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.corpora import review
from tests.project import ROOT, TINY_TRAINING, run, tiny_repo
from tests.references import pipeline_as_served
from tests.served import NEGATIVE, POSITIVE, Server


def make_pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """Two reviews per row, each with its own sentiment cue; the label is the second one's, so a model that
    reads only the first text scores at chance."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        first, second = rng.choice(["pos", "neg"]), rng.choice(["pos", "neg"])
        rows.append({"premise": review(rng, first), "hypothesis": review(rng, second), "verdict": second})
    return pd.DataFrame(rows)


PAIRS = {"data__text_column": "premise", "data__text_pair_column": "hypothesis", "data__label_column": "verdict"}


@pytest.fixture(scope="module")
def pair_repo(tmp_path_factory, tiny_model):
    repo = tiny_repo(
        tmp_path_factory.mktemp("pairs") / "repo",
        tiny_model,
        {"train": make_pairs(320), "test": make_pairs(60, seed=1)},
        **PAIRS,
        finetune__epochs=5,
        **TINY_TRAINING,
    )
    run(["dvc", "repro"], repo)
    return repo


def predict_pairs(repo, out, fmt: str = "pytorch") -> pd.DataFrame:
    run(
        [
            sys.executable,
            "-m",
            "hfx.predict",
            str(repo / "data/raw/test.parquet"),
            "--model",
            str(repo / "models/export"),
            "--format",
            fmt,
            "--text-pair-column",
            "text_pair",
            "--output",
            str(out),
        ],
        ROOT,
    )
    return pd.read_parquet(out)


def test_the_model_reads_the_second_text(pair_repo):
    raw = pd.read_parquet(pair_repo / "data/raw/test.parquet")
    assert list(raw.columns) == ["text", "text_pair", "label"]
    scores = json.loads((pair_repo / "metrics/eval.json").read_text())
    assert scores["accuracy"] >= 0.8  # the label is in the second text alone
    assert json.loads((pair_repo / "models/export/config.json").read_text())["hfx_text_pairs"] is True
    export = json.loads((pair_repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["accuracy"]["fp32"] == export["accuracy"]["pytorch"] == scores["accuracy"]


@pytest.mark.parametrize("fmt", ["pytorch", "int8"])
def test_predict_answers_each_pair_as_evaluate_and_export_scored_it(pair_repo, tmp_path, fmt):
    labelled = predict_pairs(pair_repo, tmp_path / "labelled.parquet", fmt)
    accuracy = float((labelled["predicted_label"] == labelled["label"]).mean())
    assert accuracy == json.loads((pair_repo / "metrics/export.json").read_text())["accuracy"][fmt]
    if fmt == "pytorch":
        evaluated = pd.read_csv(pair_repo / "metrics/predictions.csv")
        assert evaluated["text_pair"].tolist() == labelled["text_pair"].tolist()
        assert evaluated["predicted"].tolist() == labelled["predicted_label"].tolist()
        assert np.allclose(evaluated["score"], labelled["score"], atol=1e-5)


def test_pipeline_and_the_server_answer_pairs_as_predict_does(pair_repo, tmp_path):
    labelled = predict_pairs(pair_repo, tmp_path / "labelled.parquet").head(8)
    pairs = [[text, pair] for text, pair in zip(labelled["text"], labelled["text_pair"])]
    classify = pipeline_as_served("text-classification", pair_repo / "models/export")
    expected = [classify({"text": text, "text_pair": pair}) for text, pair in pairs]
    assert [e["label"] for e in expected] == labelled["predicted_label"].tolist()
    assert np.allclose([e["score"] for e in expected], labelled["score"], atol=1e-5)

    server = Server(pair_repo / "models/export", "--format", "fp32")
    try:
        status, answers = server.predict({"inputs": pairs})
        assert status == 200
        assert [a[0]["label"] for a in answers] == labelled["predicted_label"].tolist()
        assert np.allclose([a[0]["score"] for a in answers], labelled["score"], atol=1e-4)
        status, one = server.predict({"inputs": pairs[0]})  # one pair, as text-embeddings-inference takes it
        assert status == 200 and one[0]["label"] == answers[0][0]["label"]
        for bad in ("a lone text", [["only one text"]], [["a", ""]], [["a", "b", "c"]]):
            status, body = server.predict({"inputs": bad})
            assert status == 422 and "\n" not in body["error"], body
        assert server.predict({"inputs": pairs[:2]})[0] == 200  # still serving
    finally:
        server.stop()


def test_predict_without_the_pair_column_says_what_to_give(pair_repo):
    result = subprocess.run(
        [sys.executable, "-m", "hfx.predict", "a text", "--model", str(pair_repo / "models/export")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "--text-pair-column" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_predict_with_a_pair_column_missing_from_the_table_names_it(pair_repo, tmp_path):
    table = tmp_path / "pairs.csv"
    pd.DataFrame({"text": [POSITIVE], "other": [NEGATIVE]}).to_csv(table, index=False)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "hfx.predict", str(table)),
            *("--model", str(pair_repo / "models/export"), "--text-pair-column", "second"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "--text-pair-column: column 'second' not in" in result.stderr


def test_a_pair_column_missing_from_one_split_stops_download_naming_it(tmp_path, tiny_model):
    frames = {"train": make_pairs(40), "test": make_pairs(20, seed=1).drop(columns="hypothesis")}
    repo = tiny_repo(tmp_path / "repo", tiny_model, frames, **PAIRS)
    result = run(["dvc", "repro", "download"], repo, check=False)
    assert result.returncode != 0
    assert "data.text_pair_column: column 'hypothesis' not in the test split" in result.stdout + result.stderr


def test_swap_pairs_trains_on_both_orders_and_scores_pairs_as_given(tmp_path, tiny_model):
    """preprocess.swap_pairs: train holds each pair twice, its texts swapped the second time, with the same label;
    validation and test stay as users send them."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    frames = {"train": make_pairs(40), "test": make_pairs(20, seed=1)}
    repo = tiny_repo(tmp_path / "repo", tiny_model, frames, **PAIRS, preprocess__swap_pairs=True)
    run(["dvc", "repro", "preprocess"], repo)
    raw = {name: pd.read_parquet(repo / f"data/raw/{name}.parquet") for name in ("train", "validation", "test")}
    processed = load_from_disk(str(repo / "data/processed"))
    assert {name: len(split) for name, split in processed.items()} == {
        "train": 2 * len(raw["train"]),
        "validation": len(raw["validation"]),
        "test": len(raw["test"]),
    }
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    n = len(raw["train"])
    for i in (0, n - 1):  # the first and last row, then their swapped copies
        given, swapped = processed["train"][i], processed["train"][n + i]
        row = raw["train"].iloc[i]
        assert given["input_ids"] == tokenizer(row["text"], row["text_pair"], truncation=True)["input_ids"]
        assert swapped["input_ids"] == tokenizer(row["text_pair"], row["text"], truncation=True)["input_ids"]
        assert given["labels"] == swapped["labels"]
    test_row = raw["test"].iloc[0]
    assert processed["test"][0]["input_ids"] == tokenizer(test_row["text"], test_row["text_pair"])["input_ids"]
