"""`python -m hfx.predict` and `make predict` on the tiny pipeline's exported folder: texts, stdin and table files
in, JSONL or tables out, the same scores as `transformers.pipeline`, and one line for each kind of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.project import ROOT, stage_env
from tests.references import pipeline_as_served

POSITIVE, NEGATIVE = "the film was brilliant and superb", "the plot was dull and tedious"


def predict(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests/no_torch.py"), "-m", "hfx.predict", *map(str, args)],
        cwd=ROOT,
        env=stage_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    assert all(
        abs(sum(line["scores"].values()) - 1) < 1e-6 and line["score"] == max(line["scores"].values()) for line in lines
    )


@pytest.mark.parametrize("fmt", ["fp32", "int8", "pytorch"])
def test_scores_match_transformers_pipeline_with_the_folders_temperature(exported_model, fmt):
    texts = [POSITIVE, NEGATIVE, "a really quite moving story and a superb cast", "the ending was messy"]
    expected = pipeline_as_served("text-classification", exported_model)(texts)
    args = [*texts, "--model", exported_model, "--format", fmt]
    got = (
        jsonl(predict(*args).stdout)
        if fmt != "pytorch"
        else jsonl(
            subprocess.run(
                [sys.executable, "-m", "hfx.predict", *map(str, args)],
                cwd=ROOT,
                env=stage_env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    )  # the one format that needs torch
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
    assert list(frame.columns) == ["id", "review", "label", "score", "score_neg", "score_pos"]
    assert frame["id"].tolist() == [7, 8, 9] and frame["label"].fillna("").tolist() == ["pos", "", "neg"]
    assert not list(tmp_path.glob("*.partial"))


def test_a_labelled_table_keeps_its_gold_label_beside_the_prediction(exported_model, tmp_path):
    """Labelling a test split (data/raw/test.parquet has text and label) must not overwrite the gold label."""
    source = tmp_path / "test.parquet"
    pd.DataFrame({"text": [POSITIVE, NEGATIVE], "label": ["neg", "neg"]}).to_parquet(source)
    predict(source, "--output", tmp_path / "out.parquet", "--model", exported_model)
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert list(frame.columns) == ["text", "label", "predicted_label", "score"]
    assert frame["label"].tolist() == ["neg", "neg"] and frame["predicted_label"].tolist() == ["pos", "neg"]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet", "tsv"])
def test_jsonl_parquet_and_tsv_files_are_read(exported_model, tmp_path, suffix):
    frame = pd.DataFrame({"text": [NEGATIVE, POSITIVE]})
    path = tmp_path / f"in.{suffix}"
    {
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
        "tsv": lambda: frame.to_csv(path, sep="\t", index=False),
    }[suffix]()
    assert [line["label"] for line in jsonl(predict(path, "--model", exported_model).stdout)] == ["neg", "pos"]


def test_many_texts_in_batches_keep_their_order(exported_model, tmp_path):
    texts = [POSITIVE if i % 3 else NEGATIVE + " and" + " long" * (i % 7) for i in range(50)]
    path = tmp_path / "many.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    lines = jsonl(predict(path, "--model", exported_model, "--format", "fp32", "--batch-size", "4").stdout)
    assert [line["text"] for line in lines] == texts
    # Each row's label is the one it gets alone, whatever the tiny model makes of the padded words.
    alone = {
        text: jsonl(predict(text, "--model", exported_model, "--format", "fp32").stdout)[0]["label"]
        for text in set(texts)
    }
    assert [line["label"] for line in lines] == [alone[text] for text in texts]
    assert len(set(alone.values())) == 2, "both labels occur, so a shuffled order would show"


def test_make_predict_labels_a_file(exported_model, tmp_path):
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": [POSITIVE]}).to_csv(path, index=False)
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "predict",
            f"INPUT={path}",
            f"MODEL={exported_model}",
            f"OUTPUT={tmp_path / 'out.jsonl'}",
        ],
        cwd=ROOT,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
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
        (
            ("x", "--model", exported_model, "--output", tmp_path / "out.csv"),
            "--output .csv/.parquet keeps a table's columns",
        ),
        (
            (tmp_path / "missing.csv", "--model", exported_model, "--output", tmp_path / "out.csv"),
            "missing.csv: no such file",
        ),
    ]
    for args, message in cases:
        result = predict(*args, check=False)
        assert result.returncode == 1 and len(errors(result)) == 1 and message in errors(result)[0], (
            args,
            result.stderr,
        )
        assert "Traceback" not in result.stderr


def test_the_model_cards_pipeline_gives_predicts_label_for_a_text_past_the_max_length(exported_model):
    """The card's snippet truncates as predict does: a text of over 600 tokens (past what the model can take)
    gets the same label from both, where a pipeline without truncation fails."""
    card = (exported_model / "README.md").read_text()
    assert 'pipeline("text-classification", model="path/to/this/folder", truncation=True)' in card
    # The cue words come first, then a neutral tail far past the max input length.
    texts = [f"{POSITIVE} " + "the story and the cast " * 130, f"{NEGATIVE} " + "the story and the cast " * 130]
    served = pipeline_as_served("text-classification", exported_model, truncation=True)
    assert len(served.tokenizer(texts[0])["input_ids"]) > 600
    got = jsonl(predict(*texts, "--model", exported_model, "--format", "fp32").stdout)
    assert [g["label"] for g in got] == [e["label"] for e in served(texts)] == ["pos", "neg"]


def test_a_folder_that_cuts_long_texts_on_the_left_is_cut_there(exported_model, tmp_path):
    """`truncation_side: left` in tokenizer_config.json (as transformers saves it): a text past the max length
    keeps its end, as the folder's transformers tokenizer and pipeline cut it, so the cue word at the end
    decides."""
    import shutil

    from transformers import AutoTokenizer

    from hfx.serving.loaded_model import LoadedModel

    folder = Path(shutil.copytree(exported_model, tmp_path / "left"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "truncation_side": "left"}))
    texts = ["the story and the cast " * 130 + POSITIVE, "the story and the cast " * 130 + NEGATIVE]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    expected = tokenizer(texts, truncation=True)["input_ids"]
    assert [row.ids for row in LoadedModel(folder, "fp32").handler.encode(texts)] == expected
    assert len(expected[0]) == 128 and expected[0][-2] == tokenizer.convert_tokens_to_ids("superb")
    served = pipeline_as_served("text-classification", folder, truncation=True)
    got = jsonl(predict(*texts, "--model", folder, "--format", "fp32").stdout)
    assert [g["label"] for g in got] == [e["label"] for e in served(texts)] == ["pos", "neg"]
    config["truncation_side"] = "middle"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    refused = predict("a text", "--model", folder, check=False)
    assert refused.returncode == 1 and "truncation_side 'middle'" in errors(refused)[0]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_table_larger_than_a_window_streams_through_in_order(exported_model, tmp_path, suffix):
    """9,000 rows are three windows of 4,096: rows stay in order, row numbers count across windows, and a
    --strict failure in the last window leaves neither the output nor its .partial behind."""
    texts = [POSITIVE if i % 3 else NEGATIVE for i in range(9000)]
    texts[8500] = ""
    source = tmp_path / f"big.{suffix}"
    frame = pd.DataFrame({"id": range(9000), "text": texts})
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source, row_group_size=1000)
    out = tmp_path / f"out.{suffix}"
    result = predict(source, "--output", out, "--model", exported_model, "--format", "fp32")
    assert "warning: row 8501: empty text, skipped" in result.stderr and "8999 of 9000 texts labelled" in result.stderr
    labelled = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
    assert labelled["id"].tolist() == list(range(9000))
    expected = ["pos" if i % 3 else "neg" for i in range(9000)]
    expected[8500] = None
    assert [label if isinstance(label, str) else None for label in labelled["label"]] == expected
    out.unlink()
    strict = predict(source, "--output", out, "--model", exported_model, "--format", "fp32", "--strict", check=False)
    assert strict.returncode == 1 and errors(strict) == ["error: row 8501: empty text (--strict)"]
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


# pytorch starts torch three times (half a minute): the full suite only.
@pytest.mark.parametrize("fmt", ["int8", "fp32", "pytorch"])
def test_an_answer_does_not_depend_on_what_shares_its_batch(exported_model, fmt):
    """Each text alone (--batch-size 1) and in mixed batches of short and long texts: the same label, and every
    score within 1e-5. Dynamic int8 would fail this if run batched: its activation ranges span the batch."""
    words = "the film story cast was a really plot and ending quite this movie brilliant dull".split()
    texts = [" ".join(words[(i * 7) % len(words) :] + words[: (i * 3) % len(words)] * (1 + i % 5)) for i in range(40)]
    runs = []
    for batch_size in ("1", "32", "7"):
        args = [*texts, "--model", exported_model, "--format", fmt, "--all-scores", "--batch-size", batch_size]
        runs.append(
            jsonl(
                predict(*args).stdout
                if fmt != "pytorch"
                else subprocess.run(
                    [sys.executable, "-m", "hfx.predict", *map(str, args)],
                    cwd=ROOT,
                    env=stage_env(),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        )
    alone, *batched = runs
    for together in batched:
        assert [line["label"] for line in together] == [line["label"] for line in alone]
        gap = max(
            abs(a["scores"][label] - b["scores"][label]) for a, b in zip(alone, together) for label in a["scores"]
        )
        assert gap <= 1e-5, f"{fmt}: a score moved by {gap:.1e} with its batch"
