"""Source resolution, split inference and carving, cleaning and label mapping."""

import bz2
import functools
import hashlib
import http.server
import importlib.metadata
import threading
from collections import Counter

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from hfx.tasks import TASKS
from hfx.training.adapters.common import sorted_labels
from hfx.training.params import Data, Model, ParamsError
from hfx.training.sources import _package_version, file_format, load_source, model_path, package_path
from hfx.training.splits import build_splits, cap_rows, carve_missing_splits
from tests.corpora import make_reviews

TextClassificationAdapter = TASKS["text-classification"].adapter_class()


def data(source, **overrides) -> Data:
    fields = dict(
        source=str(source),
        text_column="review",
        label_column="sentiment",
        exclude_labels=[],
        validation_size=0.1,
        test_size=0.1,
        seed=42,
    )
    return Data(**{**fields, **overrides})


@pytest.fixture
def reviews() -> pd.DataFrame:
    return make_reviews(50)


@pytest.mark.parametrize(
    "name, builder",
    [
        ("a.csv", "csv"),
        ("a.tsv", "csv"),
        ("a.json", "json"),
        ("a.jsonl", "json"),
        ("a.parquet", "parquet"),
        ("a.csv.bz2", "csv"),
        ("a.jsonl.gz", "json"),
        ("https://host/x/train.CSV?raw=1", "csv"),
    ],
)
def test_file_format_by_suffix(name, builder):
    assert file_format(name)[0] == builder


def test_unknown_format_names_the_valid_ones():
    with pytest.raises(ParamsError, match=r"cannot tell the format of 'a\.xlsx'; valid: \.csv"):
        file_format("a.xlsx")


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet", "csv.bz2"])
def test_local_file_in_each_format_loads_as_train(tmp_path, reviews, suffix):
    path = tmp_path / f"reviews.{suffix}"
    if suffix == "csv":
        reviews.to_csv(path, index=False)
    elif suffix == "tsv":
        reviews.to_csv(path, sep="\t", index=False)
    elif suffix == "jsonl":
        reviews.to_json(path, orient="records", lines=True)
    elif suffix == "parquet":
        reviews.to_parquet(path)
    else:
        path.write_bytes(bz2.compress(reviews.to_csv(index=False).encode()))
    loaded, read = load_source(data(path))
    assert read["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(loaded) == ["train"]
    assert loaded["train"]["review"] == reviews["review"].tolist()


def test_folder_splits_are_inferred_from_file_names(tmp_path, reviews):
    for split in ("train", "validation", "test"):
        reviews.to_csv(tmp_path / f"{split}.csv", index=False)
    loaded, read = load_source(data(tmp_path))
    assert set(loaded) == {"train", "validation", "test"}
    assert read["files"]["test"] == {"test.csv": hashlib.sha256((tmp_path / "test.csv").read_bytes()).hexdigest()}


def test_pkg_source_reads_a_file_inside_an_installed_package(tmp_path, monkeypatch, reviews, capsys):
    package = tmp_path / "site" / "review_assets"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    reviews.to_csv(package / "data" / "reviews.csv", index=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert package_path("pkg:review_assets/data/reviews.csv", "data.source") == package / "data" / "reviews.csv"
    loaded, read = load_source(data("pkg:review_assets/data/reviews.csv"))
    assert len(loaded["train"]) == 50
    assert read["package_version"] == "unknown" and len(read["sha256"]) == 64  # not an installed distribution
    assert "warning: data.source: package 'review_assets' has no installed distribution" in capsys.readouterr().err
    assert _package_version("yaml") == importlib.metadata.version("PyYAML")  # import name != distribution name


def test_pkg_source_errors_name_the_package_or_file():
    with pytest.raises(ParamsError, match="package 'no_such_package_xyz' is not installed"):
        package_path("pkg:no_such_package_xyz/a.csv", "data.source")
    with pytest.raises(ParamsError, match="'missing.csv' not found in package 'json'"):
        package_path("pkg:json/missing.csv", "data.source")


class ETagHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that also sends an ETag, as S3, GCS and most CDNs do."""

    def end_headers(self):
        self.send_header("ETag", '"v1-reviews"')
        super().end_headers()


def test_http_url_source_is_fetched_and_its_bytes_identified(tmp_path, reviews):
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    handler = functools.partial(ETagHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/reviews.csv"
        loaded, read = load_source(data(url))
        with pytest.raises(ParamsError, match=r"data.source: cannot (read|load) 'http://127.0.0.1:\d+/nope.csv'"):
            load_source(data(url.replace("reviews", "nope")))
    finally:
        server.shutdown()
    body = (tmp_path / "reviews.csv").read_bytes()
    assert loaded["train"]["sentiment"] == reviews["sentiment"].tolist()
    assert read["url"] == url and read["size"] == len(body) and read["sha256"] == hashlib.sha256(body).hexdigest()
    assert read["etag"] == "v1-reviews"
    assert read["last_modified"].endswith("GMT")  # the Last-Modified header, as served


def test_missing_local_source_is_one_clear_line(tmp_path):
    with pytest.raises(ParamsError, match="data.source: '.*nope.csv' does not exist"):
        load_source(data(tmp_path / "nope.csv"))


def test_model_path_resolution(tmp_path, tiny_model):
    assert model_path(Model(name=str(tiny_model))) == str(tiny_model)
    assert model_path(Model(name="org/some-model")) == "org/some-model"  # a Hub id, resolved by from_pretrained
    with pytest.raises(ParamsError, match="is not a model folder"):
        model_path(Model(name=str(tmp_path)))


def test_standardize_drops_and_counts_bad_rows():
    split = Dataset.from_dict(
        {
            "review": ["good film", "", "  ", None, "bad film", "a plot", "meh"],
            "sentiment": ["pos", "pos", "neg", "neg", "neg", "plot", None],
        }
    )
    clean, dropped = TextClassificationAdapter().standardize(split, data("x.csv", exclude_labels=["plot"]), "train")
    assert clean["text"] == ["good film", "bad film"] and clean["label"] == ["pos", "neg"]
    assert dropped == Counter({"empty_text": 3, "excluded_label:plot": 1, "missing_label": 1})


def test_standardize_maps_class_label_names_and_drops_unlabeled():
    features = Features({"review": Value("string"), "sentiment": ClassLabel(names=["negative", "positive"])})
    split = Dataset.from_dict({"review": ["a", "b", "c"], "sentiment": [1, 0, -1]}, features=features)
    clean, dropped = TextClassificationAdapter().standardize(split, data("x"), "test")
    assert clean["label"] == ["positive", "negative"] and dropped == Counter({"missing_label": 1})


def test_standardize_names_existing_columns_when_one_is_missing():
    split = Dataset.from_dict({"sentence": ["a"], "sentiment": ["pos"]})
    with pytest.raises(ParamsError, match="column 'review' not in the train split; columns: sentence, sentiment"):
        TextClassificationAdapter().standardize(split, data("x"), "train")


def test_label_order_is_numeric_for_numbers_and_alphabetical_otherwise():
    assert sorted_labels(["10", "2", "1"]) == ["1", "2", "10"]
    assert sorted_labels(["rotten", "fresh"]) == ["fresh", "rotten"]


def labelled(n_pos: int, n_neg: int) -> Dataset:
    return Dataset.from_dict(
        {"text": [f"t{i}" for i in range(n_pos + n_neg)], "label": ["pos"] * n_pos + ["neg"] * n_neg}
    )


def test_carving_takes_stratified_test_and_validation_from_train():
    splits, origin = carve_missing_splits(
        {"train": labelled(600, 400)}, data("x", validation_size=0.1, test_size=0.2), "label"
    )
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [700, 100, 200]
    assert Counter(splits["test"]["label"]) == {"pos": 120, "neg": 80}
    assert Counter(splits["validation"]["label"]) == {"pos": 60, "neg": 40}
    assert origin["test"].startswith("carved from train") and origin["train"] == "source"
    everything = [t for s in ("train", "validation", "test") for t in splits[s]["text"]]
    assert sorted(everything) == sorted(list(labelled(600, 400)["text"])), "no row lost or duplicated"


def test_carving_is_seeded_and_only_fills_missing_splits():
    test = labelled(5, 5)
    first, _ = carve_missing_splits({"train": labelled(60, 40), "test": test}, data("x"), "label")
    second, origin = carve_missing_splits({"train": labelled(60, 40), "test": test}, data("x"), "label")
    assert first["validation"]["text"] == second["validation"]["text"]
    assert first["test"]["text"] == test["text"] and origin["test"] == "source"
    other, _ = carve_missing_splits({"train": labelled(60, 40)}, data("x", seed=7), "label")
    assert other["validation"]["text"] != first["validation"]["text"]


def test_too_small_to_carve_is_a_clear_error():
    with pytest.raises(ParamsError, match="train has 5 rows, too few"):
        carve_missing_splits({"train": labelled(3, 2)}, data("x"), "label")


def test_cap_rows_keeps_label_proportions():
    capped = cap_rows(labelled(600, 400), 100, "label", seed=0)
    assert Counter(capped["label"]) == {"pos": 60, "neg": 40}
    assert cap_rows(labelled(6, 4), 100, "label", seed=0).num_rows == 10


def test_data_files_pick_split_files_in_a_folder(tmp_path, reviews, capsys):
    for name in ("train.csv", "train_fine.csv", "test.csv"):
        reviews.to_csv(tmp_path / name, index=False)
    inferred, _ = load_source(data(tmp_path))
    assert len(inferred["train"]) == 100, "datasets' name inference reads train.csv and train_fine.csv"
    assert "split 'train' reads 2 files (train.csv, train_fine.csv); set data.data_files" in capsys.readouterr().err
    chosen, _ = load_source(data(tmp_path, data_files={"train": "train.csv", "test": "test.csv"}))
    assert (len(chosen["train"]), len(chosen["test"])) == (50, 50)
    with pytest.raises(ParamsError, match="data.data_files: .*nope.csv"):
        load_source(data(tmp_path, data_files={"train": "nope.csv"}))


def reviews_split(n: int, seed: int = 0) -> Dataset:
    return Dataset.from_pandas(make_reviews(n, seed=seed))


def test_cap_rows_near_a_splits_size_falls_back_to_a_plain_seeded_sample():
    """10 rows, max 9: too few left out to stratify; a seeded sample, not a scikit-learn traceback."""
    ten = labelled(6, 4)
    capped = cap_rows(ten, 9, "label", seed=0)
    assert capped.num_rows == 9 and capped["text"] == cap_rows(ten, 9, "label", seed=0)["text"]


def test_other_names_of_validation_are_read_as_validation(capsys):
    loaded = {"train": reviews_split(80), "dev": reviews_split(20, seed=1), "test": reviews_split(20, seed=2)}
    splits, origin, _, unused = build_splits(loaded, data("x"), TextClassificationAdapter())
    assert splits["validation"]["text"] == loaded["dev"]["review"]
    assert origin["validation"] == "source split 'dev'" and unused == []


def test_an_unknown_split_is_an_error_when_validation_would_be_carved_instead():
    loaded = {"train": reviews_split(80), "eval": reviews_split(20, seed=1), "test": reviews_split(20, seed=2)}
    with pytest.raises(
        ParamsError,
        match=r"split 'eval' not read as train, validation or test, and validation would"
        r" be carved out of train; say which to use with data.splits",
    ):
        build_splits(loaded, data("x"), TextClassificationAdapter())
    splits, origin, _, unused = build_splits(
        loaded, data("x", splits={"train": "train", "validation": "eval", "test": "test"}), TextClassificationAdapter()
    )
    assert splits["validation"]["text"] == loaded["eval"]["review"] and unused == []


def test_an_unknown_split_beside_all_three_is_named_in_a_warning(capsys):
    loaded = {
        "train": reviews_split(80),
        "validation": reviews_split(20, seed=1),
        "test": reviews_split(20, seed=2),
        "unsupervised": reviews_split(10, seed=3),
    }
    *_, unused = build_splits(loaded, data("x"), TextClassificationAdapter())
    assert unused == ["unsupervised"]
    assert "warning: data.source: split 'unsupervised' not used" in capsys.readouterr().err


def test_data_splits_chooses_and_names_a_missing_split():
    loaded = {"train": reviews_split(80), "unsupervised": reviews_split(10, seed=3)}
    splits, origin, _, unused = build_splits(loaded, data("x", splits={"train": "train"}), TextClassificationAdapter())
    assert origin["validation"].startswith("carved from train") and unused == ["unsupervised"]
    with pytest.raises(
        ParamsError, match="data.splits: test: held_out not in the source; its splits: train, unsupervised"
    ):
        build_splits(loaded, data("x", splits={"train": "train", "test": "held_out"}), TextClassificationAdapter())
    both = {"train": reviews_split(80), "dev": reviews_split(20), "validation": reviews_split(20)}
    with pytest.raises(ParamsError, match="splits 'dev' and 'validation' both read as validation"):
        build_splits(both, data("x"), TextClassificationAdapter())
