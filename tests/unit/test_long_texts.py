"""Token windows for entities in process: each word tagged at its first sub-token once windows are merged, and
`chunk` alike to `truncate` on a sentence that fits (tests/pipeline/test_long_texts.py runs `chunk` end to end)."""

import re

import numpy as np

from hfx.serving.folder import ModelInfo
from hfx.tasks import TASKS

MAX_LENGTH, STRIDE = 16, 4  # 14 words of filler per window: a 40-word review takes 4 windows


# Entities: a sentence's words tagged across windows, with logits made up by position (no training needed).
TAGS = ["O", "B-LOC", "I-LOC"]


SENTENCE = " ".join(["the mayor of ouagadougou met wei in lagos"] * 5)  # 40 words, some in several sub-tokens


def tagger(tiny_ner_model, stride):
    info = ModelInfo(tiny_ner_model, "tiny", "token-classification", TAGS, MAX_LENGTH, ["fp32"], chunk_stride=stride)
    return TASKS["token-classification"].handler_class()(info)


def made_up_logits(window, text):
    """Each token's logits: its word's start offset where the token opens the word, 1000 inside a word."""
    starts = {match.start() for match in re.finditer(r"\S+", text)}
    return np.array([[float(start) if start in starts else 1000.0] * len(TAGS) for start, _ in window.offsets])


def test_every_word_of_a_long_sentence_takes_its_first_sub_token_once_merged(tiny_ner_model):
    handler = tagger(tiny_ner_model, STRIDE)
    encoded = handler.encode([SENTENCE])[0]
    windows = handler.windows(encoded)
    assert len(windows) > 3 and any(
        w.offsets[1][0] not in {m.start() for m in re.finditer(r"\S+", SENTENCE)} for w in windows
    )
    merged = handler.merge([made_up_logits(w, SENTENCE) for w in windows], encoded, SENTENCE)
    starts = [match.start() for match in re.finditer(r"\S+", SENTENCE)]
    assert (merged[:, 0] == starts).all()  # every word seen, never from a window that opens inside it

    cut = tagger(tiny_ner_model, None)
    row = cut.encode([SENTENCE])[0]
    decided = cut.merge([made_up_logits(row, SENTENCE)], row, SENTENCE)
    assert np.isnan(decided[-1]).all() and not np.isnan(decided[0]).any()  # truncate: the last words unseen


def test_chunk_and_truncate_tag_a_sentence_that_fits_alike(tiny_ner_model):
    text = "the mayor of lagos met wei"
    rng = np.random.default_rng(0)
    chunked, cut = tagger(tiny_ner_model, STRIDE), tagger(tiny_ner_model, None)
    encoded = chunked.encode([text])[0]
    assert chunked.windows(encoded) == [encoded]
    logits = rng.normal(size=(len(encoded.ids), len(TAGS))).astype(np.float32)
    merged = chunked.merge([logits], encoded, text)
    assert np.array_equal(merged, cut.merge([logits], cut.encode([text])[0], text))
    assert chunked.decode(merged, encoded, text) == cut.decode(merged, encoded, text)


def test_training_windows_tag_each_word_at_its_first_sub_token(tiny_ner_model):
    from transformers import AutoTokenizer

    from hfx.training.adapters import get_adapter
    from hfx.training.params import Preprocess

    words = SENTENCE.split()
    tags = ["B-LOC" if word in {"ouagadougou", "lagos"} else "O" for word in words]
    tokenizer = AutoTokenizer.from_pretrained(tiny_ner_model)
    label2id = {tag: i for i, tag in enumerate(TAGS)}
    settings = Preprocess(max_length=MAX_LENGTH, long_texts="chunk", stride=STRIDE)
    rows = get_adapter("token-classification").tokenize(
        {"tokens": [words], "tags": [tags]}, tokenizer, settings, label2id
    )
    windows = tokenizer(
        [words],
        is_split_into_words=True,
        truncation=True,
        max_length=MAX_LENGTH,
        stride=STRIDE,
        return_overflowing_tokens=True,
    )
    assert len(rows["labels"]) == len(windows["input_ids"]) > 3
    tagged = set()
    for i, labels in enumerate(rows["labels"]):
        word_ids, offsets = windows.word_ids(i), windows.encodings[i].offsets
        for j, label in enumerate(labels):
            if label != -100:
                assert offsets[j][0] == 0, "a word is tagged at its first sub-token, not inside it"
                assert label == label2id[tags[word_ids[j]]]
                tagged.add(word_ids[j])
    assert tagged == set(range(len(words)))
    assert sum(rows["units"]) == len(words) and set(rows["truncated"]) == {0}
