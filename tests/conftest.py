"""Fixtures both tiers share: tiny models built from a config and a tokenizer trained on generated text.

tests/unit needs nothing else; tests/pipeline adds the tiny runs (its conftest.py). Nothing here needs the network
or ../shared."""

from pathlib import Path

import pytest

from tests.corpora import make_articles, make_reviews, make_sentences, make_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    corpus = make_reviews(400, seed=1)["review"].tolist()
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), corpus)


@pytest.fixture(scope="session")
def tiny_ner_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-ner-model"), make_sentences(300, seed=1)["text"].tolist())


@pytest.fixture(scope="session")
def tiny_qa_model(tmp_path_factory) -> Path:
    frame = make_articles(100, seed=99)
    return make_tiny_model(tmp_path_factory.mktemp("tiny-qa-model"), list(frame["context"]) + list(frame["question"]))
