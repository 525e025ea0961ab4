"""Fixtures both tiers share: tiny models built from a config and a tokenizer trained on generated text.

tests/unit needs nothing else; tests/pipeline adds the tiny runs (its conftest.py). Nothing here needs the network
or ../shared."""

import json
import os
from collections import defaultdict
from pathlib import Path

# Before torch loads, here and in every stage a test starts: one thread per process. A tiny model runs no
# slower on one, and two test workers each starting two threads on two cores made every run 1.4-2x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests.corpora import make_articles, make_reviews, make_sentences, make_tiny_model  # noqa: E402
from tests.session_builds import built_once  # noqa: E402

# Seconds each module took in the last recorded run (`make test-durations`): workers take the longest modules
# first, so that the short ones, not a long one started last, end the run. Unknown modules count as long.
MODULE_SECONDS = Path(__file__).with_name("module_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true", help=f"write each module's seconds to {MODULE_SECONDS}")


def pytest_collection_modifyitems(config, items):
    seconds = json.loads(MODULE_SECONDS.read_text()) if MODULE_SECONDS.exists() else {}
    items.sort(key=lambda item: -seconds.get(module_of(item.nodeid), float("inf")))  # stable: order within a module


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


class DurationRecorder:
    """Sums setup, call and teardown per module on the process that reports (the controller under xdist)."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def pytest_runtest_logreport(self, report):
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session, exitstatus):
        if exitstatus == 0:
            ranked = sorted(self.seconds.items(), key=lambda pair: -pair[1])
            MODULE_SECONDS.write_text(json.dumps({module: round(s) for module, s in ranked}, indent=1) + "\n")


def pytest_configure(config):
    if config.getoption("--record-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(), "hfx-duration-recorder")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, worker_id) -> Path:
    """The tiny BERT every text run starts from; one folder for all workers, as the shared runs name it."""

    def build(folder: Path) -> dict:
        make_tiny_model(folder, make_reviews(400, seed=1)["review"].tolist())
        return {}

    return built_once(tmp_path_factory, worker_id, "tiny-model", build)[0]


@pytest.fixture(scope="session")
def tiny_ner_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-ner-model"), make_sentences(300, seed=1)["text"].tolist())


@pytest.fixture(scope="session")
def tiny_qa_model(tmp_path_factory) -> Path:
    frame = make_articles(100, seed=99)
    return make_tiny_model(tmp_path_factory.mktemp("tiny-qa-model"), list(frame["context"]) + list(frame["question"]))
