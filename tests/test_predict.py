"""`python -m hfx.predict` and `make predict` on the tiny pipeline's exported folder: texts, stdin and table files
in, JSONL or tables out, the same scores as `transformers.pipeline`, and one line for each kind of bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, pipeline_as_served, stage_env

POSITIVE, NEGATIVE = "the film was brilliant and superb", "the plot was dull and tedious"


def predict(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "tests/no_torch.py"), "-m", "hfx.predict", *map(str, args)],
                            cwd=ROOT, env=stage_env(), input=stdin, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_texts_as_arguments_give_jsonl_with_the_right_labels(exported_model):
    lines = jsonl(predict(POSITIVE, NEGATIVE, "--model", exported_model, "--all-scores").stdout)
    assert [(line["text"], line["label"]) for line in lines] == [(POSITIVE, "pos"), (NEGATIVE, "neg")]
    assert all(abs(sum(line["scores"].values()) - 1) < 1e-6 and line["score"] == max(line["scores"].values())
               for line in lines)


@pytest.mark.parametrize("fmt", ["fp32", "int8", "pytorch"])
def test_scores_match_transformers_pipeline_with_the_folders_temperature(exported_model, fmt):
    texts = [POSITIVE, NEGATIVE, "a really quite moving story and a superb cast", "the ending was messy"]
    expected = pipeline_as_served("text-classification", exported_model)(texts)
    args = [*texts, "--model", exported_model, "--format", fmt]
    got = jsonl(predict(*args).stdout) if fmt != "pytorch" else jsonl(subprocess.run(
        [sys.executable, "-m", "hfx.predict", *map(str, args)], cwd=ROOT, env=stage_env(), capture_output=True,
        text=True, check=True).stdout)  # the one format that needs torch
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    if fmt != "int8":  # int8 is approximate by design; its labels must still agree
        assert all(abs(g["score"] - e["score"]) < 1e-4 for g, e in zip(got, expected))


def test_stdin_reports_and_skips_empty_lines_or_fails_with_strict(exported_model):
    result = predict("-", "--model", exported_model, stdin=f"{POSITIVE}\n\n{NEGATIVE}\n")
    assert [line["label"] for line in jsonl(result.stdout)] == ["pos", "neg"]
    assert "warning: row 2: empty text, skipped" in result.stderr
    strict = predict("-", "--model", exported_model, "--strict", stdin=f"{POSITIVE}\n\n", check=False)
    assert strict.returncode == 1 and errors(strict) == ["error: row 2: empty text (--strict)"]


def test_csv_in_csv_out_keeps_the_columns_and_adds_label_and_score(exported_model, tmp_path):
    source = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [7, 8, 9], "review": [POSITIVE, None, NEGATIVE]}).to_csv(source, index=False)
    out = tmp_path / "labelled.csv"
    result = predict(source, "--text-column", "review", "--output", out, "--model", exported_model, "--all-scores")
    assert "warning: row 2: empty text, skipped" in result.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "review", "label", "score", "score_pos", "score_neg"]
    assert frame["id"].tolist() == [7, 8, 9] and frame["label"].fillna("").tolist() == ["pos", "", "neg"]
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("suffix", ["jsonl", "parquet", "tsv"])
def test_jsonl_parquet_and_tsv_files_are_read(exported_model, tmp_path, suffix):
    frame = pd.DataFrame({"text": [NEGATIVE, POSITIVE]})
    path = tmp_path / f"in.{suffix}"
    {"jsonl": lambda: frame.to_json(path, orient="records", lines=True), "parquet": lambda: frame.to_parquet(path),
     "tsv": lambda: frame.to_csv(path, sep="\t", index=False)}[suffix]()
    assert [line["label"] for line in jsonl(predict(path, "--model", exported_model).stdout)] == ["neg", "pos"]


def test_many_texts_in_batches_keep_their_order(exported_model, tmp_path):
    texts = [POSITIVE if i % 3 else NEGATIVE + " and" + " long" * (i % 7) for i in range(50)]
    path = tmp_path / "many.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    lines = jsonl(predict(path, "--model", exported_model, "--format", "fp32", "--batch-size", "4").stdout)
    assert [line["text"] for line in lines] == texts
    # Each row's label is the one it gets alone, whatever the tiny model makes of the padded words.
    alone = {text: jsonl(predict(text, "--model", exported_model, "--format", "fp32").stdout)[0]["label"]
             for text in set(texts)}
    assert [line["label"] for line in lines] == [alone[text] for text in texts]
    assert len(set(alone.values())) == 2, "both labels occur, so a shuffled order would show"


def test_make_predict_labels_a_file(exported_model, tmp_path):
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": [POSITIVE]}).to_csv(path, index=False)
    result = subprocess.run(["make", "-s", "--no-print-directory", "predict", f"INPUT={path}", f"MODEL={exported_model}",
                             f"OUTPUT={tmp_path / 'out.jsonl'}"], cwd=ROOT, env=stage_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert jsonl((tmp_path / "out.jsonl").read_text())[0]["label"] == "pos"


def test_bad_input_is_one_line(exported_model, tmp_path):
    table = tmp_path / "in.csv"
    pd.DataFrame({"review": [POSITIVE]}).to_csv(table, index=False)
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "no-int8").mkdir()
    for name in ("config.json", "tokenizer.json", "model.onnx"):
        (tmp_path / "no-int8" / name).write_bytes((exported_model / name).read_bytes())
    cases = [
        ((table, "--model", exported_model), "error: --text-column: column 'text' not in"),
        ((table, "--model", exported_model), "columns: review"),
        (("x", "--model", tmp_path / "not-a-model"), "is not an exported model folder: no config.json"),
        (("x", "--model", tmp_path / "nowhere"), "does not exist"),
        (("x", "--model", tmp_path / "no-int8"), "has no model_quantized.onnx for format int8; formats here: fp32"),
        (("x", "--model", exported_model, "--output", tmp_path / "out.csv"), "--output .csv/.parquet keeps a table's columns"),
    ]
    for args, message in cases:
        result = predict(*args, check=False)
        assert result.returncode == 1 and len(errors(result)) == 1 and message in errors(result)[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
