"""`task: question-answering` in process: windows over long contexts, answer offsets and the pipeline's
decoding on made-up logits, the longest answer, training windows, and every bad row named with its split and
row (tests/pipeline/test_question_answering.py trains, exports, predicts and serves)."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hfx.tasks import TASKS
from hfx.training.adapters import get_adapter
from hfx.training.params import ParamsError, load_params
from hfx.training.sources import load_source
from hfx.training.splits import build_splits
from tests.corpora import make_articles
from tests.project import ROOT
from tests.references import pipeline_answers


@pytest.fixture(scope="module")
def handler(tiny_qa_model):
    QuestionAnsweringHandler = TASKS["question-answering"].handler_class()
    from hfx.serving.folder import ModelInfo

    info = ModelInfo(tiny_qa_model, "tiny", "question-answering", ["start", "end"], 48, [], chunk_stride=16)
    return QuestionAnsweringHandler(info)


def test_windows_are_the_tokenizers_and_answers_are_the_pipelines_on_random_logits(handler, tiny_qa_model):
    from transformers import AutoTokenizer

    tokenizer, rng = AutoTokenizer.from_pretrained(tiny_qa_model), np.random.default_rng(0)
    rows = make_articles(12, seed=3, filler=(20, 120))
    windows_seen = 0
    for question, context in zip(rows["question"], rows["context"]):
        encoded = handler.encode([[question, context]])[0]
        windows = handler.windows(encoded)
        expected = tokenizer(
            question, context, truncation="only_second", max_length=48, stride=16, return_overflowing_tokens=True
        )["input_ids"]
        assert [w.ids for w in windows] == expected  # every window holds the whole question
        windows_seen += len(windows)
        logits = [rng.normal(0, 3, (len(w.ids), 2)).astype(np.float32) for w in windows]
        for top_k in (1, 3):
            ours = handler.decode(logits, encoded, [question, context], top_k=top_k, max_answer_len=8)
            theirs = pipeline_answers(handler, question, context, logits, top_k, 8)
            ours = [ours] if top_k == 1 else ours
            assert [(a["answer"], a["start"], a["end"]) for a in ours] == [
                (a["answer"], a["start"], a["end"]) for a in theirs
            ]
            assert [a["score"] for a in ours] == pytest.approx([a["score"] for a in theirs], rel=1e-5)
    assert windows_seen > 2 * len(rows)  # long contexts: several windows each


def test_an_answer_at_the_end_of_a_long_context_and_one_across_two_windows(handler):
    context = " ".join(["river"] * 80 + ["market", "bridge", "paris"])
    question = "where ?"
    encoded = handler.encode([[question, context]])[0]
    windows = handler.windows(encoded)
    assert len(windows) > 2

    def peaked(words: tuple[str, str]) -> list[np.ndarray]:
        """Logits that put the start on the first word's token and the end on the second's, in every window."""
        logits = []
        for window in windows:
            row = np.zeros((len(window.ids), 2), dtype=np.float32)
            for column, word in enumerate(words):
                row[[i for i, t in enumerate(window.tokens) if t == word], column] = 10.0
            logits.append(row)
        return logits

    last = handler.decode(peaked(("paris", "paris")), encoded, [question, context])
    assert last["answer"] == "paris" and last["end"] == len(context)
    # "market bridge" is held whole by the last window only if the windows overlap there; the answer is found
    # and its scores from every window holding it add up.
    spanning = handler.decode(peaked(("market", "bridge")), encoded, [question, context])
    assert spanning["answer"] == "market bridge"
    assert context[spanning["start"] : spanning["end"]] == "market bridge"


def peaked_logits(windows: list, peaks: dict[int, dict[str, tuple[float, float]]]) -> list[np.ndarray]:
    """Per window, (start, end) logits of 0 but at the tokens named: `peaks[window][token] = (start, end)`."""
    logits = []
    for k, window in enumerate(windows):
        row = np.zeros((len(window.ids), 2), dtype=np.float32)
        for token, values in peaks.get(k, {}).items():
            row[[i for i, t in enumerate(window.tokens) if t == token]] = values
        logits.append(row)
    return logits


def roberta_style_folder(folder, corpus: list[str]):
    """A byte-level BPE tokenizer whose windows open with <s> (RoBERTa, XLM-R, BART), saved as transformers saves
    it: no [CLS] in its vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=specials, initial_alphabet=alphabet)
    )
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>"))
    )
    names = dict(bos_token="<s>", cls_token="<s>", eos_token="</s>", sep_token="</s>", pad_token="<pad>")
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", mask_token="<mask>", **names
    ).save_pretrained(folder)
    return folder


def test_a_window_without_the_answer_weighs_its_first_token_with_a_roberta_style_tokenizer(tmp_path):
    """Training points a window that lacks the answer at its first token (<s> here), so that token stays in
    the window's softmax: a decoy in a window that says "not here" loses to the answer in the window that
    holds it, though its own logit is higher."""
    QuestionAnsweringHandler = TASKS["question-answering"].handler_class()
    from hfx.serving.folder import ModelInfo

    rows = make_articles(40, seed=11)
    folder = roberta_style_folder(tmp_path / "roberta", list(rows["context"]) + list(rows["question"]))
    handler = QuestionAnsweringHandler(
        ModelInfo(folder, "tiny", "question-answering", ["start", "end"], 48, [], chunk_stride=16)
    )
    assert handler.cls_id == handler.tokenizer.token_to_id("<s>") and handler.tokenizer.token_to_id("[CLS]") is None
    context = " ".join(["river"] * 30 + ["paris"] + ["market"] * 30 + ["lagos"] + ["bridge"] * 30)
    question = "where was anna born ?"
    encoded = handler.encode([[question, context]])[0]
    windows = handler.windows(encoded)
    holding = [k for k, window in enumerate(windows) if "Ġparis" in window.tokens]
    decoy = [k for k, window in enumerate(windows) if "Ġlagos" in window.tokens and "Ġparis" not in window.tokens]
    assert len(windows) >= 3 and holding and decoy
    peaks = {k: {"<s>": (10.0, 10.0)} for k in range(len(windows))}
    for k in holding:
        peaks[k] = {"Ġparis": (5.0, 5.0)}  # the model's answer, in the window that holds it
    for k in decoy:
        peaks[k]["Ġlagos"] = (6.0, 6.0)  # higher, but where the model says there is no answer
    answer = handler.decode(peaked_logits(windows, peaks), encoded, [question, context])
    assert answer["answer"] == "paris" and context[answer["start"] : answer["end"]] == "paris"
    # Its pairs have four special tokens, not BERT's three: a question longer than a window leaves room for them.
    long = handler.read(["where was " + "anna " * 80 + "born ?", context])
    assert all(len(window.ids) <= 48 for window in handler.windows(handler.encode([long])[0]))


def test_a_folder_that_cuts_on_the_left_reads_its_windows_as_transformers_does(tiny_qa_model, tmp_path):
    """`truncation_side: left` in tokenizer_config.json: the windows run from the context's end, as the folder's
    transformers tokenizer makes them (and as training made them)."""
    import shutil

    from transformers import AutoTokenizer

    QuestionAnsweringHandler = TASKS["question-answering"].handler_class()
    from hfx.serving.folder import ModelInfo

    folder = Path(shutil.copytree(tiny_qa_model, tmp_path / "left"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "truncation_side": "left"}))
    left = QuestionAnsweringHandler(ModelInfo(folder, "tiny", "question-answering", [], 48, [], chunk_stride=16))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = make_articles(6, seed=3, filler=(40, 120))
    for question, context in zip(rows["question"], rows["context"]):
        expected = tokenizer(
            question, context, truncation="only_second", max_length=48, stride=16, return_overflowing_tokens=True
        )["input_ids"]
        assert [w.ids for w in left.windows(left.encode([[question, context]])[0])] == expected
        assert len(expected) > 1


def test_the_same_answer_at_two_places_reports_where_it_scored_best(handler):
    """A "paris" in the first window and another in the last: their scores add up, and the place reported is the
    last one's, where it scored higher, though the first window is read first."""
    context = "anna went to paris . " + " ".join(["river"] * 80) + " . later anna lived in paris ."
    question = "where ?"
    encoded = handler.encode([[question, context]])[0]
    windows = handler.windows(encoded)
    holding = [k for k, window in enumerate(windows) if "paris" in window.tokens]
    assert holding[0] == 0 and holding[-1] == len(windows) - 1 and len(windows) > 2
    logits = peaked_logits(windows, {0: {"paris": (2.0, 2.0)}, holding[-1]: {"paris": (6.0, 6.0)}})
    for top_k in (1, 3):
        answer = handler.decode(logits, encoded, [question, context], top_k=top_k)
        answer = answer if top_k == 1 else answer[0]
        assert answer["answer"] == "paris" and answer["start"] == context.rindex("paris")


def test_top_k_selects_the_k_best_spans_as_a_full_sort_would():
    best_spans = TASKS["question-answering"].handler_module().best_spans

    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(5, 60))
        start, end = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
        allowed = rng.random(n) > 0.3
        scores = np.tril(np.triu(np.outer(start, end)), 7)
        everything = sorted(
            (-scores[s, e], s, e) for s in range(n) for e in range(s, min(n, s + 8)) if allowed[s] and allowed[e]
        )
        for k in (1, 3, 20, 10_000):
            assert [(s, e) for s, e, _ in best_spans(start, end, allowed, k, 8)] == [
                (s, e) for _, s, e in everything[:k]
            ]


def test_a_question_longer_than_the_window_is_cut_as_training_cuts_it(handler):
    question = "where was " + " ".join(["anna"] * 120) + " born ?"
    context = "anna was born in paris in 1950 ."
    item = handler.read([question, context])
    assert len(handler.whole.encode(item[0], add_special_tokens=False).ids) == handler.question_room
    encoded = handler.encode([item])[0]
    assert all(len(window.ids) <= 48 for window in handler.windows(encoded))
    logits = [np.zeros((len(w.ids), 2), dtype=np.float32) for w in handler.windows(encoded)]
    assert handler.decode(logits, encoded, item)["answer"] in context


@pytest.mark.parametrize("context", ["\u200b", "\x07", "\u200b\u200b \x07"])
def test_a_context_with_nothing_the_model_reads_is_refused_by_name(handler, context):
    from hfx.serving.input_errors import InputError

    with pytest.raises(InputError, match="^context: no words the model reads"):
        handler.read(["where was anna born ?", context])
    with pytest.raises(InputError, match="^question: no words the model reads"):
        handler.read(["\x07", "anna was born in paris ."])


def test_the_longest_answer_is_what_99_percent_of_train_answers_fit_unless_set(tiny_qa_model, capsys):
    """A set where one answer in six has twenty words: auto reaches them, where a fixed 8 (or the old 30 on
    real data) would cut them in every format."""
    from transformers import AutoTokenizer

    rows = make_articles(40, seed=6).to_dict("records")
    for row in rows[::6]:
        long = " ".join(["the river runs past old houses"] * 4)  # 24 words
        row["context"] = f"{row['context']} {long} ."
        row["answers"] = {"text": [long], "answer_start": [row["context"].index(long)]}
    train = Dataset.from_list(rows)
    task, tokenizer = get_adapter("question-answering"), AutoTokenizer.from_pretrained(tiny_qa_model)
    longest = len(tokenizer(" ".join(["the river runs past old houses"] * 4), add_special_tokens=False)["input_ids"])
    settings = load_params(ROOT / "params.yaml").evaluate
    assert settings.max_answer_length == "auto"
    assert task.served_settings(settings, train, str(tiny_qa_model)) == {"max_answer_length": longest}
    assert f"evaluate: answers of up to {longest} tokens (99% of the 120 train answers fit" in capsys.readouterr().out
    fixed = settings.model_copy(update={"max_answer_length": 8})
    assert task.served_settings(fixed, train, str(tiny_qa_model)) == {"max_answer_length": 8}


def test_training_windows_point_at_the_answer_or_at_cls(tiny_qa_model):
    from transformers import AutoTokenizer

    task, tokenizer = get_adapter("question-answering"), AutoTokenizer.from_pretrained(tiny_qa_model)
    rows = make_articles(20, seed=5, filler=(30, 120))
    batch = {key: list(rows[key]) for key in ("question", "context", "answers")}
    settings = load_params(ROOT / "params.yaml").preprocess.model_copy(update={"max_length": 48, "stride": 16})
    encoded = task.tokenize(batch, tokenizer, settings, {"start": 0, "end": 1})
    pointed = 0
    for i, (start, end) in enumerate(zip(encoded["start_positions"], encoded["end_positions"])):
        source = encoded.encodings[i]
        if start == 0:
            assert end == 0
            continue
        pointed += 1
        text = rows["context"][sum(encoded["units"][: i + 1]) - 1]
        answer = rows["answers"][sum(encoded["units"][: i + 1]) - 1]["text"][0]
        assert text[source.offsets[start][0] : source.offsets[end][1]] == answer
    assert pointed >= len(rows)  # each question's answer is in at least one window
    assert sum(encoded["units"]) == len(rows) and len(encoded["input_ids"]) > len(rows)


def standardized(rows: list[dict], capsys, **data):
    params = load_params(ROOT / "params.yaml")
    settings = params.data.model_copy(update=data)
    kept, counts = get_adapter("question-answering").standardize(Dataset.from_list(rows), settings, "train")
    return kept, counts, [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]


def test_bad_rows_are_named_by_split_and_row_and_counted(capsys):
    context = "ada lovelace wrote the first program . ada lived in london ."
    good = {
        "question": "who wrote it ?",
        "context": context,
        "answers": {"text": ["ada lovelace"], "answer_start": [0]},
    }
    rows = [
        good,
        {**good, "answers": {"text": ["the first program"], "answer_start": [3]}},  # moved: occurs once, repaired
        {**good, "answers": {"text": ["ada"], "answer_start": [5]}},  # occurs twice: dropped
        {**good, "answers": {"text": ["paris"], "answer_start": [0]}},  # not in the context: dropped
        {**good, "question": "  "},
        {**good, "context": ""},
        {**good, "context": "\u200b\x07 ", "answers": {"text": ["\x07"], "answer_start": [1]}},  # nothing to read
        {**good, "context": "\ufffd\u0301", "answers": {"text": ["\ufffd"], "answer_start": [0]}},  # nor here
        {**good, "answers": {"text": [], "answer_start": []}},
        {**good, "answers": {"text": ["ada lovelace", "london"], "answer_start": [0, 99]}},  # one kept, one repaired
    ]
    kept, counts, lines = standardized(rows, capsys)
    assert len(kept) == 3 and kept[1]["answers"] == {"text": ["the first program"], "answer_start": [19]}
    assert kept[2]["answers"] == {"text": ["ada lovelace", "london"], "answer_start": [0, context.index("london")]}
    assert dict(counts) == {
        "answer_not_in_context": 2,
        "empty_question": 1,
        "empty_context": 3,
        "no_answer": 1,
        "fixed:answer_start_repaired": 2,
    }
    assert len(lines) == 9 and all(line.startswith("warning: data: train row ") for line in lines)
    assert "train row 2: answer 'the first program' not at answer_start 3; repaired" in lines[0]
    assert "train row 3:" in lines[1] and "occurs 2 times" in lines[1] and "dropped" in lines[1]
    with pytest.raises(ParamsError, match="data.context_column: column 'passage' not in the train split"):
        standardized(rows, capsys, context_column="passage")


def test_carved_splits_keep_each_articles_questions_together():
    params = load_params(ROOT / "params.yaml")
    data = params.data.model_copy(update={"validation_size": 0.2, "test_size": 0.2})
    frame = make_articles(30, seed=7)
    splits, origin, _, _ = build_splits({"train": Dataset.from_pandas(frame)}, data, get_adapter("question-answering"))
    titles = {name: set(split["title"]) for name, split in splits.items()}
    assert not titles["train"] & titles["test"] and not titles["train"] & titles["validation"]
    assert not titles["validation"] & titles["test"]
    assert sum(len(split) for split in splits.values()) == len(frame) and len(splits["test"]) >= 18
    assert origin["test"].startswith("carved from train by title")


def test_squads_own_json_reads_as_one_question_per_row(tmp_path):
    frame = make_articles(3, seed=4)
    articles = [
        {
            "title": title,
            "paragraphs": [
                {
                    "context": rows["context"].iloc[0],
                    "qas": [
                        {
                            "id": row.id,
                            "question": row.question,
                            "answers": [
                                {"text": text, "answer_start": start}
                                for text, start in zip(row.answers["text"], row.answers["answer_start"])
                            ],
                        }
                        for row in rows.itertuples()
                    ],
                }
            ],
        }
        for title, rows in frame.groupby("title", sort=False)
    ]
    (tmp_path / "dev-v1.1.json").write_text(json.dumps({"version": "1.1", "data": articles}))
    data = load_params(ROOT / "params.yaml").data.model_copy(update={"source": str(tmp_path / "dev-v1.1.json")})
    loaded, _ = load_source(data)
    assert loaded["train"].to_list() == frame.to_dict("records")
