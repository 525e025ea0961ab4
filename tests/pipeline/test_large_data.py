"""Data larger than memory: download and preprocess hold a batch of rows at a time, never a whole split.

Each stage runs in its own process with Python's allocations traced (tracemalloc) and Arrow's memory pool
watched, from after its imports to its end, on the same kind of data at two sizes. Loading a split whole
(pandas, Python lists, an in-memory table, one Parquet row group) makes what a stage holds grow by at least the
bytes the extra rows take; reading a batch at a time adds only what sampling the splits needs (row indices, a
few bytes a row).
"""

import json
import sys

import pytest

from tests.corpora import make_reviews
from tests.project import REVIEWS, run, tiny_repo

ROWS, MORE_ROWS = 5_000, 40_000  # about 2.4 and 19 MB of csv

GROWTH = 0.25  # what a stage may hold more, at most, as a share of the bytes the extra rows add to the csv...
SLACK_MB = 5  # ...plus batches the garbage collector has not freed yet, which varies from run to run


PROBE = """
import importlib, json, sys, tracemalloc
import pyarrow as pa
pa.set_cpu_count(1), pa.set_io_thread_count(1)  # threads reading ahead would blur the peak
stage = importlib.import_module("stages." + sys.argv[1])  # imports are not the data's memory
tracemalloc.start()
stage.main()
print(json.dumps({"python_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                  "arrow_mb": pa.default_memory_pool().max_memory() / 2**20}))
"""


def held_mb(tmp_path, tiny_model, rows: int) -> dict[str, float]:
    """The csv's size and the most each stage holds at once (Python and Arrow peaks added), in MB, on `rows`
    reviews of about 500 characters."""
    reviews = make_reviews(rows)
    reviews["review"] = [" ".join([text] * 10) for text in reviews["review"]]
    repo = tiny_repo(tmp_path / f"repo-{rows}", tiny_model, {"train": reviews}, **REVIEWS)
    held = {"csv": (repo / "inputs/train.csv").stat().st_size / 2**20}
    for stage in ("download", "preprocess"):
        result = run([sys.executable, "-c", PROBE, stage], repo, env={"PYTHONPATH": str(repo)})
        peak = json.loads(result.stdout.strip().splitlines()[-1])
        held[stage] = peak["python_mb"] + peak["arrow_mb"]
    assert sum(json.loads((repo / "data/processed/stats.json").read_text())["rows"].values()) == rows
    return held


@pytest.fixture(scope="module")
def held(tmp_path_factory, tiny_model) -> dict[int, dict[str, float]]:
    return {rows: held_mb(tmp_path_factory.mktemp("large"), tiny_model, rows) for rows in (ROWS, MORE_ROWS)}


@pytest.mark.parametrize("stage", ["download", "preprocess"])
def test_memory_stays_flat_when_the_rows_grow(held, stage):
    small, large = held[ROWS], held[MORE_ROWS]
    added = large["csv"] - small["csv"]
    assert large[stage] - small[stage] < GROWTH * added + SLACK_MB, (
        f"{stage} held {small[stage]:.1f} MB for {ROWS} rows and {large[stage]:.1f} MB for {MORE_ROWS}:"
        f" {large[stage] - small[stage]:.1f} MB more for {added:.1f} MB more data"
    )
