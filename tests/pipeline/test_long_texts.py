"""Texts longer than the model's max length (`preprocess.long_texts: chunk`): read in overlapping windows whose
logits are averaged (classification) or merged by word (entities), alike in evaluate, predict and serve; on a
text that fits, the same answer as `truncate`."""

import json
import random
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from hfx.serving.folder import LONG_TEXTS, ModelError
from hfx.serving.loaded_model import LoadedModel, all_windows
from tests.corpora import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS
from tests.project import ROOT, TINY_TRAINING, run, tiny_repo
from tests.served import Server

MAX_LENGTH, STRIDE = 16, 4  # 14 words of filler per window: a 40-word review takes 4 windows


def long_review(rng: random.Random, label: str, late: bool) -> str:
    """40 filler words and one cue word: anywhere, or (late) among the last five, past the first window."""
    words = rng.choices(FILLER_WORDS, k=40)
    position = rng.randrange(35, 41) if late else rng.randrange(41)
    words.insert(position, rng.choice(POSITIVE_WORDS if label == "pos" else NEGATIVE_WORDS))
    return " ".join(words)


def long_reviews(n: int, seed: int, late: bool) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = [rng.choice(["pos", "neg"]) for _ in range(n)]
    return pd.DataFrame({"review": [long_review(rng, label, late) for label in labels], "sentiment": labels})


@pytest.fixture(scope="module")
def chunk_run(tmp_path_factory, tiny_model):
    """The tiny BERT trained on 40-word reviews in windows of 16 tokens; tested on reviews whose cue word comes
    after the first window."""
    repo = tiny_repo(
        tmp_path_factory.mktemp("chunk") / "repo",
        tiny_model,
        {"train": long_reviews(240, seed=0, late=False), "test": long_reviews(60, seed=1, late=True)},
        data__text_column="review",
        data__label_column="sentiment",
        preprocess__max_length=MAX_LENGTH,
        preprocess__long_texts="chunk",
        preprocess__stride=STRIDE,
        finetune__epochs=4,
        **TINY_TRAINING,
    )
    run(["dvc", "repro"], repo)
    return repo


def truncating_copy(folder, dest):
    """The same exported model, told to cut long texts (config.json without hfx_long_texts)."""
    copy = shutil.copytree(folder, dest)
    config = json.loads((copy / "config.json").read_text())
    del config[LONG_TEXTS]
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def predict_csv(folder, table, out, fmt="fp32") -> pd.DataFrame:
    run(
        [
            sys.executable,
            "-m",
            "hfx.predict",
            str(table),
            "--model",
            str(folder),
            "--format",
            fmt,
            "--output",
            str(out),
        ],
        ROOT,
    )
    return pd.read_csv(out)


def test_chunk_reads_what_truncation_cuts_off(chunk_run, tmp_path):
    stats = json.loads((chunk_run / "data/processed/stats.json").read_text())
    assert stats["rows"]["train"] > 3 * 216  # every training text is several windows (216: train less validation)
    assert set(stats["truncated_rows"].values()) == {0}
    config = json.loads((chunk_run / "models/export/config.json").read_text())
    assert config[LONG_TEXTS] == {"windows": "chunk", "stride": STRIDE}
    assert (
        "read whole, in overlapping windows of 16 tokens (4 shared"
        in (chunk_run / "models/export/README.md").read_text()
    )
    accuracy = json.loads((chunk_run / "metrics/eval.json").read_text())["accuracy"]
    assert accuracy >= 0.85  # the cue is past the first window in every test review

    table = chunk_run / "data/raw/test.parquet"
    cut = predict_csv(truncating_copy(chunk_run / "models/export", tmp_path / "cut"), table, tmp_path / "cut.csv")
    assert (cut["predicted_label"] == cut["label"]).mean() <= 0.75  # the first window alone has no cue


@pytest.mark.parametrize("fmt", ["pytorch", "fp32", "int8"])
def test_predict_answers_long_texts_as_evaluate_and_export_scored_them(chunk_run, tmp_path, fmt):
    labelled = predict_csv(chunk_run / "models/export", chunk_run / "data/raw/test.parquet", tmp_path / "p.csv", fmt)
    accuracy = float((labelled["predicted_label"] == labelled["label"]).mean())
    assert accuracy == json.loads((chunk_run / "metrics/export.json").read_text())["accuracy"][fmt]
    if fmt == "pytorch":
        evaluated = pd.read_csv(chunk_run / "metrics/predictions.csv")
        assert evaluated["predicted"].tolist() == labelled["predicted_label"].tolist()
        assert np.allclose(evaluated["score"], labelled["score"], atol=1e-5)


def test_a_long_answer_is_the_mean_of_its_windows_each_run_alone(chunk_run):
    model = LoadedModel(chunk_run / "models/export", "fp32", threads=1)
    texts = pd.read_parquet(chunk_run / "data/raw/test.parquet")["text"].tolist()[:6] + ["a short one"]
    encoded = model.handler.encode(texts)
    logits, window_logits = model.item_logits(encoded, texts, batch_size=32)
    assert len(window_logits) == len(all_windows(model.handler, encoded)) > len(texts)
    for one, answer in zip(encoded, logits):
        alone = [model([window])[0] for window in model.handler.windows(one)]
        assert np.allclose(answer, np.mean(alone, axis=0), atol=1e-5)


def test_chunk_and_truncate_answer_a_text_that_fits_alike(chunk_run, tmp_path):
    short = ["the film was great", "a dull and tedious plot", "really the cast was superb and charming"]
    chunked = LoadedModel(chunk_run / "models/export", "fp32", threads=1)
    cut = LoadedModel(truncating_copy(chunk_run / "models/export", tmp_path / "cut"), "fp32", threads=1)
    assert chunked.predict(short) == cut.predict(short)
    long = pd.read_parquet(chunk_run / "data/raw/test.parquet")["text"].tolist()[:8]
    assert chunked.predict(long) != cut.predict(long)


def test_the_server_answers_long_texts_as_predict_does(chunk_run, tmp_path):
    table = chunk_run / "data/raw/test.parquet"
    labelled = predict_csv(chunk_run / "models/export", table, tmp_path / "p.csv").head(10)
    server = Server(chunk_run / "models/export", "--format", "fp32")
    try:
        status, answers = server.predict({"inputs": labelled["text"].tolist()})  # no truncate: none is cut
        assert status == 200, answers
        assert [a[0]["label"] for a in answers] == labelled["predicted_label"].tolist()
        assert np.allclose([a[0]["score"] for a in answers], labelled["score"], atol=1e-4)
    finally:
        server.stop()


def test_a_folder_with_unreadable_windows_says_what_it_expects(chunk_run, tmp_path):
    folder = shutil.copytree(chunk_run / "models/export", tmp_path / "bad")
    config = json.loads((folder / "config.json").read_text())
    config[LONG_TEXTS] = {"windows": "chunk", "stride": MAX_LENGTH}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=LONG_TEXTS) as error:
        LoadedModel(folder, "fp32")
    assert "\n" not in str(error.value)
