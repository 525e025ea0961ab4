"""`task: question-answering`: a tiny BERT through `dvc repro` on generated articles whose answers are planted;
windows over long contexts, answer offsets, the pipeline's decoding, parity of every format, predict and serve
answers equal to evaluate's, and every bad row named with its split and row."""

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from hfx.serving.loaded_model import LoadedModel
from tests.corpora import make_articles
from tests.project import TINY_TRAINING, run, tiny_repo
from tests.references import pipeline_answers
from tests.served import Server

# Windows of 48 tokens, 16 shared: a long article takes several.
WINDOWS = {"preprocess__max_length": 48, "preprocess__stride": 16, "evaluate__max_answer_length": 8}


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_qa_model):
    test = make_articles(12, seed=1)
    # A question longer than a whole window: evaluate cuts it as training does, and scores the answer.
    long_question = {**test.iloc[0].to_dict(), "id": "long", "question": "where was " + "anna " * 80 + "born ?"}
    frames = {"train": make_articles(150), "test": pd.concat([test, pd.DataFrame([long_question])], ignore_index=True)}
    repo = tiny_repo(
        tmp_path_factory.mktemp("qa") / "repo",
        tiny_qa_model,
        frames,
        task="question-answering",
        file_format="jsonl",
        **WINDOWS,
        finetune__epochs=8,
        **TINY_TRAINING,
    )
    run(["dvc", "repro"], repo)
    return repo


def test_the_pipeline_answers_and_every_format_scores_what_predict_answers(qa_run):
    repo = qa_run
    scores = json.loads((repo / "metrics/eval.json").read_text())
    assert set(scores["margin_over_baseline"]) == {"exact_match", "f1"}
    assert scores["baseline"]["model"] == "lexical-sentence"
    assert scores["f1"] > scores["baseline"]["f1"]  # it learns where the planted answers are
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["f1"]["pytorch"] == export["f1"]["fp32"] == scores["f1"]
    assert json.loads((repo / "models/export/calibration.json").read_text()) == {"max_answer_length": 8}
    config = json.loads((repo / "models/export/config.json").read_text())
    assert config["hfx_long_texts"] == {"windows": "chunk", "stride": 16}
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert "by title" in manifest["splits"]["validation"]["origin"]
    predictions = pd.read_csv(repo / "metrics/predictions.csv", keep_default_na=False)
    assert len(predictions) == 37 and {"question", "predicted", "actual", "exact_match", "f1"} <= set(predictions)
    assert predictions["exact_match"].mean() == pytest.approx(scores["exact_match"])
    errors = pd.read_csv(repo / "metrics/errors.csv", keep_default_na=False)
    assert (errors["exact_match"] == 0).all() and list(errors["score"]) == sorted(errors["score"], reverse=True)
    card = (repo / "models/export/README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "| exact_match |" in card
    assert "| where was" in card or "| when was" in card or "| what did" in card  # answered examples


def test_predict_and_serve_answer_as_evaluate_scored(qa_run, tmp_path):
    repo = qa_run
    test = pd.read_json(repo / "inputs/test.jsonl", lines=True)
    evaluated = pd.read_csv(repo / "metrics/predictions.csv", keep_default_na=False)
    questions = tmp_path / "questions.jsonl"
    test[["question", "context"]].to_json(questions, orient="records", lines=True)
    out = tmp_path / "answers.jsonl"
    run([sys.executable, "-m", "hfx.predict", str(questions), "--format", "fp32", "--output", str(out)], repo)
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["answer"] for a in answers] == list(evaluated["predicted"])
    assert set(answers[0]) == {"question", "context", "answer", "score", "start", "end"}
    assert all(a["context"][a["start"] : a["end"]] == a["answer"] for a in answers)

    # A file mixing good rows with a question longer than the window (cut, as training cuts it, and answered)
    # and contexts with nothing the model reads (skipped, each named by its row).
    long_question = "where was " + " ".join(["anna"] * 80) + " born ?"
    mixed = pd.DataFrame(
        [
            {"question": test["question"][0], "context": test["context"][0]},
            {"question": long_question, "context": test["context"][1]},
            {"question": test["question"][2], "context": "\u200b"},
            {"question": test["question"][3], "context": "\x07"},
            {"question": test["question"][4], "context": test["context"][4]},
        ]
    )
    mixed.to_json(tmp_path / "mixed.jsonl", orient="records", lines=True)
    mixed_run = [sys.executable, "-m", "hfx.predict", str(tmp_path / "mixed.jsonl"), "--format", "fp32"]
    result = run([*mixed_run, "--output", str(out)], repo)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["question"] for a in written] == [test["question"][0], long_question, test["question"][4]]
    assert written[1]["answer"] and written[1]["answer"] in test["context"][1]
    skipped = re.findall(r"warning: row (\d+): (.*), skipped", result.stderr)
    assert [row for row, _ in skipped] == ["3", "4"], result.stderr
    assert all(reason.startswith("context: no words the model reads") for _, reason in skipped)
    assert "predict: 3 of 5 questions labelled (fp32)" in result.stderr

    server = Server(repo / "models/export", "--format", "fp32")
    try:
        first = {"question": test["question"][0], "context": test["context"][0]}
        status, single = server.predict({"inputs": first})
        assert status == 200 and single == {key: answers[0][key] for key in ("answer", "score", "start", "end")}
        status, many = server.predict({"inputs": test[["question", "context"]][:20].to_dict("records")})
        assert status == 200 and [a["answer"] for a in many] == list(evaluated["predicted"][:20])
        status, top = server.predict({"inputs": first, "top_k": 3})
        assert isinstance(top, list) and top[0]["answer"] == answers[0]["answer"]
        bad_inputs = (
            {"question": "who?"},
            ["a text"],
            {"question": " ", "context": "x"},
            [],
            {"question": "who?", "context": "\u200b"},
            {"question": "\x07", "context": test["context"][0]},
        )
        for bad in bad_inputs:
            status, body = server.predict({"inputs": bad})
            assert status == 422 and len(body["error"].splitlines()) == 1, body
        status, body = server.predict({"inputs": first, "top_k": 1_000_000_000})
        assert status == 422 and body["error"] == "top_k: 1000000000 is over this server's limit of 20 (--max-top-k)"
        assert len(server.predict({"inputs": first, "top_k": 20})[1]) <= 20
        status, cut = server.predict({"inputs": {"question": long_question, "context": test["context"][1]}})
        assert status == 200 and cut == {key: written[1][key] for key in ("answer", "score", "start", "end")}
        assert server.predict({"inputs": first})[0] == 200  # still serving
    finally:
        assert server.stop() == 0, server.log()[-2000:]


def test_the_export_answers_as_transformers_model_and_pipeline_decoding_would(qa_run):
    """The fp32 file through predict against the PyTorch weights through transformers: its tokenizer's windows,
    AutoModelForQuestionAnswering's logits, and the question-answering pipeline's decoding (`pipeline_answers`)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    folder = qa_run / "models/export"
    test = pd.read_json(qa_run / "inputs/test.jsonl", lines=True)[:12]
    served = LoadedModel(folder, "fp32")
    answers = served.predict([[q, c] for q, c in zip(test["question"], test["context"])])
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForQuestionAnswering.from_pretrained(folder)
    for question, context, answer in zip(test["question"], test["context"], answers):
        windows = tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=48,
            stride=16,
            return_overflowing_tokens=True,
            padding=True,
            return_tensors="pt",
        )
        windows.pop("overflow_to_sample_mapping")
        with torch.inference_mode():
            output = model(**windows)
        logits = [
            np.stack([start[mask], end[mask]], axis=-1)
            for start, end, mask in zip(
                output.start_logits.numpy(), output.end_logits.numpy(), windows["attention_mask"].numpy() == 1
            )
        ]
        (expected,) = pipeline_answers(served.handler, question, context, logits, 1, 8)
        assert (answer["answer"], answer["start"], answer["end"]) == (
            expected["answer"],
            expected["start"],
            expected["end"],
        )
        assert answer["score"] == pytest.approx(expected["score"], rel=1e-4)
