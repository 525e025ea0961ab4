"""`task: text-regression` on pairs: a tiny BERT learns a number carried by the second text through `dvc repro`;
evaluate, export, predict, serve and `transformers.pipeline` give each pair the same number; bad numbers get one
line."""

import json
import random
import sys

import numpy as np
import pandas as pd
import pytest

from tests.corpora import FILLER_WORDS, POSITIVE_WORDS
from tests.project import ROOT, TINY_TRAINING, copy_of, run, set_params, tiny_repo
from tests.references import pipeline_as_served
from tests.served import Server


def make_scored_pairs(n: int, seed: int = 0) -> pd.DataFrame:
    """Two texts per row; the score is how many positive cue words the second one has (0 to 4)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        cues = rng.randint(0, 4)
        second = rng.choices(FILLER_WORDS, k=rng.randint(3, 8))
        for _ in range(cues):
            second.insert(rng.randrange(len(second) + 1), rng.choice(POSITIVE_WORDS))
        rows.append(
            {
                "first": " ".join(rng.choices(FILLER_WORDS + POSITIVE_WORDS, k=6)),
                "second": " ".join(second),
                "sim": cues,
            }
        )
    return pd.DataFrame(rows)


def regression_repo(dest, tiny_model, frames: dict, **params):
    columns = {"data__text_column": "first", "data__text_pair_column": "second", "data__label_column": "sim"}
    return tiny_repo(dest, tiny_model, frames, task="text-regression", **columns, **params)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, tiny_model):
    frames = {"train": make_scored_pairs(400), "test": make_scored_pairs(60, seed=1)}
    repo = regression_repo(
        tmp_path_factory.mktemp("regression") / "repo",
        tiny_model,
        frames,
        finetune__epochs=6,
        **TINY_TRAINING,
    )
    run(["dvc", "repro"], repo)
    return repo


def test_the_model_learns_the_number_and_every_format_scores_it(regression_run):
    repo = regression_run
    scores = json.loads((repo / "metrics/eval.json").read_text())
    assert scores["spearman"] > 0.5 and scores["pearson"] > 0.5 and scores["rmse"] > 0  # it learns the count
    assert scores["baseline"]["model"] == "tfidf-ridge"
    assert set(scores["margin_over_baseline"]) == {"pearson", "spearman"}
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["spearman"]["pytorch"] == scores["spearman"]
    # ONNX's outputs differ from PyTorch's in the 7th digit, which can reorder this tiny model's near-equal numbers
    assert abs(export["spearman"]["fp32"] - export["spearman"]["pytorch"]) < 0.01
    assert export["spearman"]["int8"] > 0.5  # int8 is approximate: on this 2-layer model it still ranks the pairs
    # A number is not a probability: nothing to calibrate, and predict and serve leave it as it is.
    assert json.loads((repo / "metrics/calibration.json").read_text()) == {}
    assert not (repo / "models/export/calibration.json").exists()
    card = (repo / "models/export/README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "| spearman |" in card
    assert "(predictions.png)" in card and (repo / "models/export/predictions.png").is_file()
    errors = pd.read_csv(repo / "metrics/errors.csv")
    assert list(errors["error"].abs()) == sorted(errors["error"].abs(), reverse=True)


def test_predict_pipeline_and_serve_give_each_pair_the_number_evaluate_scored(regression_run, tmp_path):
    repo = regression_run
    out = tmp_path / "scored.parquet"
    run(
        [
            *(sys.executable, "-m", "hfx.predict", str(repo / "data/raw/test.parquet")),
            *("--model", str(repo / "models/export"), "--format", "pytorch"),
            *("--text-pair-column", "text_pair", "--output", str(out)),
        ],
        ROOT,
    )
    scored = pd.read_parquet(out)
    evaluated = pd.read_csv(repo / "metrics/predictions.csv")
    assert np.allclose(scored["score"], evaluated["predicted"], atol=1e-5)

    head = scored.head(6)
    pairs = [[text, pair] for text, pair in zip(head["text"], head["text_pair"])]
    regress = pipeline_as_served("text-classification", repo / "models/export", function_to_apply="none")
    expected = [regress({"text": text, "text_pair": pair})["score"] for text, pair in pairs]
    assert np.allclose(expected, head["score"], atol=1e-5)

    server = Server(repo / "models/export", "--format", "fp32")
    try:
        status, answers = server.predict({"inputs": pairs})
        assert status == 200 and np.allclose([a["score"] for a in answers], head["score"], atol=1e-4)
        status, body = server.predict({"inputs": pairs, "top_k": 1})
        assert status == 422 and "top_k" in body["error"]
    finally:
        server.stop()


def test_a_regression_model_scored_as_it_is_gets_the_scores_it_was_trained_to(regression_run, tmp_path):
    """finetune.epochs: 0 on the fine-tuned folder: the same numbers, whatever its output is named."""
    repo = copy_of(regression_run, tmp_path / "repo")
    set_params(repo, finetune__epochs=0, model__name=str(regression_run / "models/finetuned"))
    run(["dvc", "repro"], repo)
    before = json.loads((regression_run / "metrics/eval.json").read_text())
    after = json.loads((repo / "metrics/eval.json").read_text())
    assert after["spearman"] == pytest.approx(before["spearman"], abs=1e-6)


def test_a_label_that_is_not_a_number_stops_download_naming_its_row(tmp_path, tiny_model):
    train = make_scored_pairs(40)
    train["sim"] = train["sim"].astype(object)
    train.loc[7, "sim"] = "high"
    train.loc[3, "sim"] = None  # an empty cell: dropped and counted, not an error
    repo = regression_repo(tmp_path / "repo", tiny_model, {"train": train, "test": make_scored_pairs(20, seed=1)})
    result = run(["dvc", "repro", "download"], repo, check=False)
    assert result.returncode != 0
    assert "data.label_column: row 7 of the train split has 'high', not a number" in result.stdout + result.stderr
