"""Named entities (`task: token-classification`) in process: every input format, IOB1 -> IOB2, word-to-sub-token
alignment, bad inputs in one line (tests/pipeline/test_token_classification.py runs `dvc repro` end to end)."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, Features, Sequence, Value
from transformers import AutoTokenizer

from hfx.tasks import TASKS
from hfx.training.params import Data, ParamsError, Preprocess
from hfx.training.sources import load_source
from hfx.training.splits import build_splits
from tests.corpora import make_sentences

ADAPTER = TASKS["token-classification"].adapter_module()  # named after its task: imported through the registry


TokenClassificationAdapter, looks_iob1, to_iob2 = (
    ADAPTER.TokenClassificationAdapter,
    ADAPTER.looks_iob1,
    ADAPTER.to_iob2,
)


NER = TokenClassificationAdapter()


CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP I-PER
Smith NNP I-NP I-PER
visited VBD B-VP O
Paris NNP B-NP I-LOC

 \t
Acme\tNNP\tI-ORG
hired\tVBD\tO
Ali\tNNP\tI-PER
"""


def data(source, **overrides) -> Data:
    fields = dict(
        source=str(source),
        text_column="tokens",
        label_column="ner_tags",
        exclude_labels=[],
        validation_size=0.2,
        test_size=0.2,
        seed=0,
    )
    return Data(**{**fields, **overrides})


def build(source, **overrides):
    settings = data(source, **overrides)
    return build_splits(load_source(settings)[0], settings, NER)


def test_conll_files_read_into_tokens_and_tags(tmp_path):
    (tmp_path / "train.conll").write_text(CONLL * 5)
    (tmp_path / "test.conll").write_text(CONLL)
    loaded, read = load_source(data(tmp_path))
    assert set(loaded) == {"train", "test"} and set(read["files"]) == {"train", "test"}
    assert loaded["test"]["tokens"] == [["John", "Smith", "visited", "Paris"], ["Acme", "hired", "Ali"]]
    assert loaded["test"]["ner_tags"][1] == ["I-ORG", "O", "I-PER"], "the tag is the last column, tabs or spaces"
    other = tmp_path / "sentences.txt"
    other.write_text(CONLL)
    assert len(load_source(data(other, format="conll"))[0]["train"]) == 2, "data.format: conll for any name"


def test_iob1_is_converted_to_iob2_and_counted(tmp_path):
    (tmp_path / "data.conll").write_text(CONLL * 10)
    splits, _, counts, _ = build(tmp_path / "data.conll")
    tags = sorted({tuple(tags) for name in splits for tags in splits[name]["tags"]})
    assert tags == [("B-ORG", "O", "B-PER"), ("B-PER", "I-PER", "O", "B-LOC")], "every entity starts with B-"
    assert counts["train"]["fixed:iob1_to_iob2"] == 40, "4 entities open with I- in each of 10 copies"
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == (["B-PER", "I-PER", "B-PER", "O", "B-LOC"], 2)
    assert looks_iob1([["I-PER", "B-PER"]]) and not looks_iob1([["O", "B-PER", "I-PER"]])


def test_an_invalid_iob2_sequence_is_repaired_and_counted():
    split = Dataset.from_dict(
        {"tokens": [["a", "b", "c"], ["d", "e"]], "ner_tags": [["B-LOC", "I-PER", "O"], ["B-PER", "I-PER"]]}
    )
    clean, counts = NER.standardize(split, data("x"), "train")
    assert clean["tags"] == [["B-LOC", "B-PER", "O"], ["B-PER", "I-PER"]]
    assert counts == Counter({"fixed:invalid_iob2_repaired": 1})


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_words_and_tags_as_strings_or_lists_in_any_table(tmp_path, fmt):
    frame = make_sentences(40)
    path = tmp_path / f"ner.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)  # space-separated words and tags, as ../shared/data/conll2003
    else:
        lists = pd.DataFrame({"text": frame["text"].str.split(), "label": frame["label"].str.split()})
        lists.to_json(path, orient="records", lines=True) if fmt == "jsonl" else lists.to_parquet(path)
    splits, *_ = build(path, text_column="text", label_column="label")
    assert sum(len(s) for s in splits.values()) == 40
    assert all(len(w) == len(t) for s in splits.values() for w, t in zip(s["tokens"], s["tags"]))
    assert NER.label_names(splits["train"], None) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_integer_tags_with_class_label_names_as_the_hub_has_them():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    split = Dataset.from_dict(
        {"tokens": [["ana", "lopez", "in", "oslo"], []], "ner_tags": [[1, 2, 0, 3], []]}, features=features
    )
    clean, counts = NER.standardize(split, data("x"), "train")
    assert clean["tags"] == [["B-PER", "I-PER", "O", "B-LOC"]] and counts == Counter({"empty_sentence": 1})


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            {"tokens": [["a", "b"]], "ner_tags": [["O"]]},
            "data: train row 1 has 2 words and 1 tags; each word needs one tag",
        ),
        (
            {"tokens": [["a", "b"]], "ner_tags": [["O", "PER"]]},
            "data: train row 1 has the tag 'PER'; tags are O, B-<type> or I-<type> (IOB1 or IOB2)",
        ),
    ],
)
def test_bad_sentences_are_one_line(rows, message):
    with pytest.raises(ParamsError) as error:
        NER.standardize(Dataset.from_dict(rows), data("x"), "train")
    assert str(error.value) == message


def test_unseen_entity_types_and_no_entities_are_one_line(tmp_path):
    train = make_sentences(30)
    train.to_csv(tmp_path / "train.csv", index=False)
    test = pd.DataFrame({"text": ["the museum opened"], "label": ["B-FAC O O"]})
    test.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ParamsError, match=r"entity types \['FAC'\] in test never appear in train"):
        build(tmp_path, text_column="text", label_column="label")
    pd.DataFrame({"text": ["nothing here"] * 10, "label": ["O O"] * 10}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ParamsError, match="train has no entity"):
        build(tmp_path, text_column="text", label_column="label")


def test_first_sub_token_carries_the_tag_and_cut_words_are_counted(tiny_ner_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_ner_model)
    label2id = {name: i for i, name in enumerate(["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])}
    batch = {"tokens": [["zanzi", "ali"], ["oslo"] * 20], "tags": [["B-LOC", "B-PER"], ["B-LOC"] * 20]}
    encoded = NER.tokenize(batch, tokenizer, Preprocess(max_length=12), label2id)
    first = encoded.word_ids(0)
    labels = encoded["labels"][0]
    assert first[0] is None and labels[0] == -100, "special tokens are -100"
    assert first.count(0) > 1, "the unseen word splits into several sub-tokens"
    assert [labels[i] for i, w in enumerate(first) if w == 0] == [1] + [-100] * (first.count(0) - 1)
    assert labels[first.index(1)] == 3
    assert encoded["truncated"] == [0, 20 - 10], "12 tokens hold [CLS], 10 words and [SEP]"
    every = NER.tokenize(batch, tokenizer, Preprocess(max_length=12, label_all_subtokens=True), label2id)
    assert [every["labels"][0][i] for i, w in enumerate(first) if w == 0] == [1] + [2] * (first.count(0) - 1)


def test_words_cut_off_count_as_predicted_o_with_no_score():
    """evaluate reads the served spans back as a tag per word: a word without a span is O, and a word the model
    never saw (NaN decision logits: past max_length) has no score."""
    names = ["O", "B-PER", "I-PER"]
    raw = Dataset.from_dict({"tokens": [["ana", "met", "ali"]], "tags": [["B-PER", "O", "B-PER"]]})
    results = [[{"entity_group": "PER", "score": 0.9, "word": "ana", "start": 0, "end": 3}]]
    decided = [np.array([[0, 5, 0], [5, 0, 0], [np.nan] * 3])]
    evaluation = NER.evaluation(raw, results, decided, names)
    assert evaluation.metrics["recall"] == 0.5 and evaluation.metrics["precision"] == 1.0
    assert evaluation.predictions["predicted"].tolist() == ["B-PER", "O", "O"]
    assert evaluation.predictions["score"].isna().tolist() == [False, False, True]
