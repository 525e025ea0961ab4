"""Named entities (`task: token-classification`): every input format, IOB1 -> IOB2, word-to-sub-token alignment,
bad inputs in one line, and `dvc repro` end to end on a tiny BERT, with ONNX parity, the `pipeline()` client and
`predict`/`serve` answering with the pipeline's entity spans."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.corpora import generated_splits, make_sentences
from tests.project import ROOT, run, tiny_repo
from tests.references import pipeline_as_served

NER_SPLITS = generated_splits({"train": 240, "test": 60}, make=make_sentences)


def conll_files(folder: Path) -> None:
    """The original CoNLL format: `word POS tag` lines, blank between sentences, tags in IOB1."""
    for split, frame in NER_SPLITS.items():
        lines = []
        for words, tags in zip(frame["text"].str.split(), frame["label"].str.split()):
            iob1 = [("I-" + t[2:] if t.startswith("B-") else t) for t in tags]  # no adjacent entities: no B-
            lines += [f"{w} NN {t}" for w, t in zip(words, iob1)] + [""]
        (folder / f"{split}.conll").write_text("-DOCSTART- -X- O\n\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def ner_repo(tmp_path_factory, tiny_ner_model):
    """The tiny NER pipeline reading CoNLL files."""
    repo = tiny_repo(
        tmp_path_factory.mktemp("ner") / "repo",
        tiny_ner_model,
        conll_files,
        task="token-classification",
        data__text_column="tokens",
        data__label_column="ner_tags",
        finetune__epochs=6,
        finetune__warmup_ratio=0.0,
        finetune__learning_rate=3e-3,
        finetune__batch_size=16,
        export__latency_queries=5,
    )
    return repo, run(["dvc", "repro"], repo)


def test_repro_tags_entities_end_to_end(ner_repo):
    repo, result = ner_repo
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert manifest["fixed"]["train"]["iob1_to_iob2"] > 200, "every train entity opened with I-"
    assert set(manifest["splits"]["test"]["labels"]) == {"LOC", "ORG", "PER"}
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert metrics["f1"] > 0.9 and set(metrics["per_class"]) == {"LOC", "ORG", "PER"}
    assert metrics["baseline"]["model"] == "crf-word-shape" and "f1" in metrics["margin_over_baseline"]
    predictions = pd.read_csv(repo / "metrics/predictions.csv")
    assert list(predictions.columns) == ["sentence", "word", "actual", "predicted", "score"]
    entities = json.loads((repo / "metrics/data.json").read_text())["labels"]  # the data card: entities per type
    assert set(entities["test"]) == {"LOC", "ORG", "PER"}
    errors = pd.read_csv(repo / "metrics/errors.csv")  # the most confident wrong words, if any
    assert (errors["actual"] != errors["predicted"]).all() and errors["score"].is_monotonic_decreasing
    sentences = pd.read_csv(repo / "metrics/plots/sentences.csv")
    assert len(sentences) == 60 and sentences["words"][0] == NER_SPLITS["test"]["text"][0]
    stats = json.loads((repo / "data/processed/stats.json").read_text())
    assert stats["truncated_words"] == {"train": 0, "validation": 0, "test": 0}
    card = (repo / "models/export/README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "| PER |" in card


def test_onnx_matches_pytorch_for_every_token(ner_repo):
    repo, _ = ner_repo
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["f1"]["fp32"] == export["f1"]["pytorch"] and export["f1"]["int8"] > 0.9


def test_pipeline_client_returns_named_entity_groups(ner_repo):
    from transformers import pipeline

    repo, _ = ner_repo
    card = (repo / "models/export/README.md").read_text()
    assert "aggregation_strategy='first'" in card  # what the card tells users to run
    tagger = pipeline("token-classification", model=str(repo / "models/export"), aggregation_strategy="first")
    found = [(e["entity_group"], e["word"]) for e in tagger("john smith visited new york last week")]
    assert found == [("PER", "john smith"), ("LOC", "new york")]


def test_cut_words_are_counted_and_scored_as_o(ner_repo):
    repo, _ = ner_repo
    result = run(["dvc", "exp", "run", "-S", "preprocess.max_length=8"], repo)
    stats = json.loads((repo / "data/processed/stats.json").read_text())
    assert stats["truncated_words"]["test"] > 0, result.stdout[-1000:]
    cut = pd.read_csv(repo / "metrics/predictions.csv")
    words_in_test = sum(len(t.split()) for t in NER_SPLITS["test"]["text"])
    assert len(cut) == words_in_test, "every word is scored, cut or not"


# Words the pipeline's pre-tokenizer splits the same way as spaces do (no punctuation inside a word), so
# pipeline(aggregation_strategy="first") and hfx agree on every span.
SENTENCES = [
    "john smith visited new york last week",
    "Shares of ACME Corp fell in Rio de Janeiro today",
    "mary jones moved to oslo ☃",
    "nothing happened here",
]


def spans(entities: list[dict]) -> list[tuple]:
    """(type, start, end) of each entity; hfx's `word` is the text it covers, the pipeline's its decoded tokens."""
    return [(e["entity_group"], e["start"], e["end"]) for e in entities]


@pytest.mark.parametrize("fmt", ["pytorch", "fp32"])
def test_predict_gives_the_pipelines_entity_spans(ner_repo, fmt):
    repo, _ = ner_repo
    expected = pipeline_as_served("token-classification", repo / "models/export", aggregation_strategy="first")(
        SENTENCES
    )
    assert spans(expected[0]) == [("PER", 0, 10), ("LOC", 19, 27)]
    result = run(
        [sys.executable, "-m", "hfx.predict", *SENTENCES, "--model", str(repo / "models/export"), "--format", fmt], ROOT
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == SENTENCES
    for line, want in zip(lines, expected):
        assert spans(line["entities"]) == spans(want)
        assert all(e["word"] == line["text"][e["start"] : e["end"]] for e in line["entities"])
        assert [e["score"] for e in line["entities"]] == pytest.approx([float(e["score"]) for e in want], abs=1e-4)


def test_predict_writes_entities_into_a_table_and_refuses_all_scores(ner_repo, tmp_path):
    repo, _ = ner_repo
    pd.DataFrame({"id": range(len(SENTENCES)), "text": SENTENCES}).to_csv(tmp_path / "in.csv", index=False)
    run(
        [
            sys.executable,
            "-m",
            "hfx.predict",
            str(tmp_path / "in.csv"),
            "--model",
            str(repo / "models/export"),
            "--output",
            str(tmp_path / "out.csv"),
        ],
        ROOT,
    )
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == ["id", "text", "entities"]
    assert json.loads(table["entities"][0])[0]["word"] == "john smith"
    refused = run(
        [sys.executable, "-m", "hfx.predict", "ana", "--model", str(repo / "models/export"), "--all-scores"],
        ROOT,
        check=False,
    )
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "token-classification" in refused.stderr


def test_serve_answers_with_entity_spans_and_rejects_text_options(ner_repo):
    from tests.served import Server

    repo, _ = ner_repo
    server = Server(repo / "models/export", "--format", "fp32")
    try:
        status, one = server.predict({"inputs": SENTENCES[0]})
        assert status == 200 and spans(one)[:2] == [("PER", 0, 10), ("LOC", 19, 27)]
        status, many = server.predict({"inputs": SENTENCES})
        assert status == 200 and len(many) == len(SENTENCES) and many[0] == one and many[3] == []
        status, body = server.predict({"inputs": "ana", "top_k": 2})
        assert status == 422 and "top_k" in body["error"] and "token-classification" in body["error"]
        info = json.loads(server.get("/info")[1])
        assert info["task"] == "token-classification" and info["labels"][0] == "O"
        assert server.predict({"inputs": SENTENCES[0]}) == (200, one)
    finally:
        assert server.stop() == 0


def test_spans_match_the_pipeline_for_any_logits(ner_repo):
    """Random logits reach cases a trained model rarely shows: adjacent B- tags, [UNK] inside an entity, lone I-,
    tags on a word's later sub-tokens that disagree with its first."""
    import torch
    from transformers import pipeline

    from hfx.serving.loaded_model import LoadedModel

    repo, _ = ner_repo
    tagger = pipeline("token-classification", model=str(repo / "models/export"), aggregation_strategy="first")
    preprocess, _, postprocess = tagger._sanitize_parameters(aggregation_strategy="first")
    handler = LoadedModel(repo / "models/export", "fp32").handler
    rng = np.random.default_rng(0)
    for trial in range(200):
        text = SENTENCES[trial % len(SENTENCES)]
        row = handler.encode([text])[0]
        logits = rng.normal(scale=3, size=(len(row.ids), len(handler.labels))).astype(np.float32)
        # The pipeline sees the logits over the folder's temperature, as hfx scores them.
        scaled = torch.from_numpy(logits / np.float32(handler.temperature))[None]
        outputs = {**next(iter(tagger.preprocess(text, **preprocess))), "logits": scaled}
        want = tagger.postprocess([outputs], **postprocess)
        got = handler.decode(handler.merge([logits], row, text), row, text)
        assert spans(got) == spans(want), text
        assert [e["score"] for e in got] == pytest.approx([float(e["score"]) for e in want], abs=1e-6)


def test_a_word_is_one_entity_or_none_whatever_its_later_sub_tokens_say(ner_repo):
    """A word takes its first sub-token's tag, as training labels it: 'Ouagadougou' (ou ##aga ##dou ##go ##u)
    with B-LOC first is one LOC entity, never 'ou' alone or five; '@SnoopDogg' and 'U.S.' (which the tokenizer
    splits at punctuation) are whole words too. Every other sub-token gets random logits."""
    from hfx.serving.loaded_model import LoadedModel

    repo, _ = ner_repo
    handler = LoadedModel(repo / "models/export", "fp32").handler
    handler.tokenizer.no_truncation()  # an earlier test may have exported with a short max_length
    text = "the mayor of Ouagadougou met @SnoopDogg in U.S. cities"
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    row = handler.encode([text])[0]
    first = {}  # word index -> its first sub-token
    for i, (start, _) in enumerate(row.offsets):
        word = next((w for w, (a, b) in enumerate(words) if a <= start < b), None)
        if not row.special_tokens_mask[i] and word is not None:
            first.setdefault(word, i)
    assert len(row.tokens) > len(words) + 4, row.tokens  # several words are several sub-tokens
    rng = np.random.default_rng(0)
    tag = {name: i for i, name in enumerate(handler.labels)}
    for _ in range(100):
        logits = rng.normal(scale=3, size=(len(row.ids), len(handler.labels))).astype(np.float32)
        for word, token in first.items():
            logits[token] = -10
            logits[token, tag["B-LOC" if word == 3 else "O"]] = 10  # Ouagadougou: B-LOC; every other word: O
        entities = handler.decode(handler.merge([logits], row, text), row, text)
        assert [(e["entity_group"], e["word"]) for e in entities] == [("LOC", "Ouagadougou")], entities
        logits = rng.normal(scale=3, size=(len(row.ids), len(handler.labels))).astype(np.float32)
        for entity in handler.decode(handler.merge([logits], row, text), row, text):
            assert (entity["start"] in {a for a, _ in words}) and (entity["end"] in {b for _, b in words}), entity


def test_a_word_is_decided_by_its_first_sub_token_and_a_cut_word_by_none(ner_repo):
    """What evaluate scores and calibrates on: one row per word, its first sub-token's logits; NaN past max_length."""
    from hfx.serving.loaded_model import LoadedModel

    repo, _ = ner_repo
    handler = LoadedModel(repo / "models/export", "fp32").handler
    text = "the mayor of Ouagadougou met ali"
    words = [match.start() for match in re.finditer(r"\S+", text)]
    handler.tokenizer.no_truncation()  # an earlier test may have exported with a short max_length
    full = handler.encode([text])[0]
    first = {}  # word -> the position of its first sub-token
    for i, (start, _) in enumerate(full.offsets):
        if not full.special_tokens_mask[i]:
            first.setdefault(max(w for w, word_start in enumerate(words) if word_start <= start), i)
    assert len(full.ids) > len(words) + 4, full.tokens  # several words are several sub-tokens
    handler.tokenizer.enable_truncation(first[4] + 1)  # [CLS], the first four words, [SEP]: 'met', 'ali' cut off
    row = handler.encode([text])[0]
    logits = np.arange(len(row.ids) * len(handler.labels), dtype=np.float32).reshape(len(row.ids), -1)
    decided = handler.merge([logits], row, text)
    assert decided.shape == (6, len(handler.labels))
    assert (decided[:4] == logits[[first[w] for w in range(4)]]).all(), "each word's first sub-token"
    assert np.isnan(decided[4:]).all(), "words past max_length"


@pytest.mark.parametrize("fmt", ["pytorch", "fp32", "int8"])
def test_predict_over_the_test_split_gets_exactly_the_entity_f1_export_reports(ner_repo, tmp_path, fmt):
    """The test sentences through `python -m hfx.predict`, as a user sends them (words joined by spaces); the
    served spans read back as a tag per word and scored by seqeval here: export.json's F1 exactly."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    repo, _ = ner_repo
    test = pd.read_parquet(repo / "data/raw/test.parquet")
    pd.DataFrame({"text": [" ".join(words) for words in test["tokens"]]}).to_csv(tmp_path / "test.csv", index=False)
    run(
        [
            sys.executable,
            "-m",
            "hfx.predict",
            str(tmp_path / "test.csv"),
            "--model",
            str(repo / "models/export"),
            "--format",
            fmt,
            "--output",
            str(tmp_path / "out.csv"),
        ],
        ROOT,
    )
    served = []
    for words, entities in zip(test["tokens"], pd.read_csv(tmp_path / "out.csv")["entities"]):
        starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]])
        tags = ["O"] * len(words)
        for entity in json.loads(entities):
            inside = [i for i, start in enumerate(starts) if entity["start"] <= start < entity["end"]]
            tags[inside[0] : inside[-1] + 1] = [f"B-{entity['entity_group']}"] + [f"I-{entity['entity_group']}"] * (
                len(inside) - 1
            )
        served.append(tags)
    f1 = f1_score([list(tags) for tags in test["tags"]], served, mode="strict", scheme=IOB2)
    assert f1 == json.loads((repo / "metrics/export.json").read_text())["f1"][fmt]
    if fmt == "pytorch":  # evaluate scores the fine-tuned folder through the same serving code
        assert f1 == json.loads((repo / "metrics/eval.json").read_text())["f1"]
