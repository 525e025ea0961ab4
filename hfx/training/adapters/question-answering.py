"""Extractive question answering: the span of a context that answers a question (SQuAD 1.1, the Hub's `squad`).

Rows are {id, title, question, context, answers: {text: [...], answer_start: [...]}}. A context longer than
`preprocess.max_length` is read in windows sharing `preprocess.stride` tokens, each holding the whole question, as
transformers' run_qa.py reads it; a window is trained to point at its question's first answer when it holds it
all, else at [CLS]. Answers are decided across windows by the serving half
(hfx/serving/handlers/question-answering.py) and scored by exact match and token F1 as SQuAD's evaluation
script scores them (hfx/training/answer_scores.py).
"""

import sys
import unicodedata
from collections import Counter

import numpy as np
import pandas as pd
from datasets import Dataset, Features, List, Value
from transformers import AutoTokenizer

from hfx.tasks import TASKS
from hfx.training.adapters.common import BATCH_ROWS, DROPPED, FIXED, Evaluation, clean_rows, column_batches
from hfx.training.adapters.text_inputs import TextInputsAdapter
from hfx.training.answer_scores import answer_scores, exact_match, sentence_answer, token_f1
from hfx.training.params import Data, Evaluate, Params, ParamsError, Preprocess

OUTPUTS = ["start", "end"]  # the head's two outputs per token, as labels.json and config.json name them
QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")
SHOWN_NOTES = 10  # bad rows named one per line, per split; the rest counted in the data card
ANSWER_SHARE = 0.99  # evaluate.max_answer_length: auto: the share of train answers the longest answer fits


def answer_lengths(split: Dataset, tokenizer) -> np.ndarray:
    """Each answer's length in tokens, as the model reads it: the context's tokens its characters overlap."""
    lengths = []
    for rows in split.select_columns(["context", "answers"]).iter(batch_size=BATCH_ROWS):
        contexts = list(dict.fromkeys(rows["context"]))  # questions often share a context: tokenized once
        tokens = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        offsets = dict(zip(contexts, tokens))
        for context, answers in zip(rows["context"], rows["answers"]):
            for text, start in zip(answers["text"], answers["answer_start"]):
                end = start + len(text)
                lengths.append(sum(1 for first, last in offsets[context] if first < end and last > start))
    return np.asarray(lengths or [1])


def has_text(value) -> bool:
    """Whether a cell holds a letter, digit, punctuation or symbol: spaces, control, zero-width and combining
    characters and U+FFFD alone are empty (BERT's normalizer drops them, and serving refuses such a question or
    context)."""
    return isinstance(value, str) and any(
        unicodedata.category(char)[0] in "LNPS" and char != "\ufffd" for char in value
    )


def answer_list(value) -> list[tuple[str, int]] | None:
    """(text, answer_start) pairs of a cell: the Hub's {text: [...], answer_start: [...]}, or a list of
    {text, answer_start} (SQuAD's JSON); None when it is neither."""
    if isinstance(value, dict) and isinstance(value.get("text"), list) and isinstance(value.get("answer_start"), list):
        if len(value["text"]) == len(value["answer_start"]):
            return list(zip(value["text"], value["answer_start"]))
    if isinstance(value, list) and all(isinstance(a, dict) and {"text", "answer_start"} <= set(a) for a in value):
        return [(a["text"], a["answer_start"]) for a in value]
    return None


def placed(text, start, context: str) -> tuple[int | None, str | None]:
    """(where the answer starts in the context, a note when it was not at its answer_start): repaired when the
    text occurs there exactly once, else None."""
    if not isinstance(text, str) or not text.strip():
        return None, "an empty answer text"
    if isinstance(start, int) and context[start : start + len(text)] == text:
        return start, None
    found = context.count(text)
    if found == 1:
        return context.index(text), f"answer {text!r} not at answer_start {start}; repaired (it occurs once)"
    return None, f"answer {text!r} not at answer_start {start} and occurs {found} times in the context; dropped"


class QuestionAnsweringAdapter(TextInputsAdapter):
    name = "question-answering"
    auto_model = "AutoModelForQuestionAnswering"
    columns = ("question", "context", "answers")
    input_key = "question_column"
    stratify_column = None  # questions have no label to stratify on
    group_column = "title"  # carved splits keep an article's questions together
    fixed_outputs = len(OUTPUTS)  # finetune.epochs: 0 keeps a ready-made model's start and end outputs as they are
    truncated_unit = "questions"  # questions cut to leave each window room for the context
    headline = "f1"
    best_metric = "span_accuracy"
    validation_metrics = ("span_accuracy",)  # windows whose best start and end are the labelled ones
    card_metrics = ("exact_match", "f1")
    margin_keys = ("exact_match", "f1")
    pipeline_kwargs = None  # transformers 5 has no question-answering pipeline
    calibration = None  # answers are spans, not classes: no temperature
    test_figure = None
    logits_axes = {0: "batch", 1: "sequence"}
    outputs = ("start_logits", "end_logits")

    def served_settings(self, settings: Evaluate, train: Dataset, folder: str) -> dict:
        """The longest answer predict and serve give, in tokens: `evaluate.max_answer_length`, or with `auto` the
        length that ANSWER_SHARE of the train answers fit in, as the folder's tokenizer reads them in context."""
        if settings.max_answer_length != "auto":
            return {"max_answer_length": settings.max_answer_length}
        lengths = answer_lengths(train, AutoTokenizer.from_pretrained(folder))
        longest = max(1, int(np.percentile(lengths, 100 * ANSWER_SHARE, method="higher")))
        print(
            f"evaluate: answers of up to {longest} tokens ({ANSWER_SHARE:.0%} of the {len(lengths):,} train answers"
            f" fit, the longest has {lengths.max()}; evaluate.max_answer_length: auto)"
        )
        return {"max_answer_length": longest}

    def columns_read(self, data: Data) -> dict[str, str]:
        return {"question": data.question_column, "context": data.context_column, "answers": data.answers_column}

    def served_inputs(self, raw_test) -> list:
        return [list(pair) for pair in zip(raw_test["question"], raw_test["context"])]

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {id, title, question, context, answers}; drops (and counts) empty questions and contexts,
        rows without an answer, and answers not found in their context. Names each bad row on stderr."""
        keys = ("question_column", "context_column", "answers_column")
        for key in keys:
            if getattr(data, key) not in split.column_names:
                raise ParamsError(
                    f"data.{key}: column '{getattr(data, key)}' not in the {split_name} split;"
                    f" columns: {', '.join(split.column_names)}"
                )
        answers = {"text": List(Value("string")), "answer_start": List(Value("int64"))}
        features = Features(
            {
                "id": Value("string"),
                "title": Value("string"),
                "question": Value("string"),
                "context": Value("string"),
                "answers": answers,
                "repaired": Value("int64"),
                DROPPED: Value("string"),
                "error": Value("string"),
            }
        )
        notes = []
        kept, dropped, _ = clean_rows(split, self._clean, features, notes=notes, data=data, split_name=split_name)
        for note in notes[:SHOWN_NOTES]:
            print(f"warning: data: {note}", file=sys.stderr)
        if len(notes) > SHOWN_NOTES:
            more = len(notes) - SHOWN_NOTES
            print(f"warning: data: {more} more in {split_name} (counted in the data card)", file=sys.stderr)
        repaired = sum(values.to_numpy().sum() for values in column_batches(kept, "repaired"))
        if repaired:
            dropped[f"{FIXED}answer_start_repaired"] = int(repaired)
        return kept.remove_columns("repaired"), dropped

    @staticmethod
    def _clean(batch: dict, indices: list[int], data: Data, split_name: str) -> dict:
        rows = {key: [] for key in ("id", "title", "question", "context", "answers", "repaired", DROPPED, "error")}
        ids = batch.get("id") or [None] * len(indices)
        titles = batch.get("title") or [None] * len(indices)
        cells = zip(indices, ids, titles, *(batch[getattr(data, key)] for key in ("question_column", "context_column")))
        for (index, row_id, title, question, context), value in zip(cells, batch[data.answers_column]):
            where = f"{split_name} row {index + 1}"
            found, notes, repaired = answer_list(value), [], 0
            reason = (
                "empty_question"
                if not has_text(question)
                else "empty_context"
                if not has_text(context)
                else "answers_not_text_and_answer_start"
                if found is None
                else "no_answer"
                if not found
                else None
            )
            texts, starts = [], []
            for text, start in found if reason is None else []:
                position, note = placed(text, start, context)
                if note:
                    notes.append(f"{where}: {note}")
                if position is not None:
                    texts.append(text), starts.append(position)
                    repaired += position != start
            if reason is None and not texts:
                reason = "answer_not_in_context"
            if reason and not notes:
                notes.append(f"{where}: {reason.replace('_', ' ')}; dropped")
            rows["id"].append(str(row_id) if row_id is not None else str(index))
            rows["title"].append(title if isinstance(title, str) else None)
            rows["question"].append(question if reason is None else None)
            rows["context"].append(context if reason is None else None)
            rows["answers"].append({"text": texts, "answer_start": starts})
            rows["repaired"].append(repaired)
            rows[DROPPED].append(reason)
            rows["error"].append("; ".join(notes) or None)
        return rows

    def label_counts(self, split: Dataset) -> dict:
        """The data card's balance: questions by their question word (what, who, when...; other)."""
        counts = Counter()
        for questions in column_batches(split, "question"):
            for question in questions.to_pylist():
                words = question.lower().split()
                counts[next((w for w in words if w in QUESTION_WORDS), "other")] += 1
        return dict(sorted(counts.items()))

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        """Nothing to check beyond rows in train (download's checks): an answer is any span of its context."""

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        return list(OUTPUTS)

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        """Each question with its context in windows of max_length tokens (`stride` shared), as run_qa.py does;
        `start_positions`/`end_positions`: the first answer's tokens in the window that holds all of it, else
        [CLS] (0). A question longer than leaves room for the context is cut (`truncated`), as served."""
        served = TASKS[self.name].handler_module()  # questions are cut as the handler cuts them
        room = served.question_room(
            settings.max_length, settings.stride, processor.num_special_tokens_to_add(pair=True)
        )
        asked = processor(batch["question"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        questions = [served.cut_question(q, offsets, room) for q, offsets in zip(batch["question"], asked)]
        encoded = processor(
            questions,
            batch["context"],
            truncation="only_second",
            max_length=settings.max_length,
            stride=settings.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        sources, offsets = encoded.pop("overflow_to_sample_mapping"), encoded.pop("offset_mapping")
        starts, ends = [], []
        for i, (source, window) in enumerate(zip(sources, offsets)):
            answer = batch["answers"][source]
            first_char = answer["answer_start"][0]
            last_char = first_char + len(answer["text"][0])
            context = [j for j, sequence in enumerate(encoded.sequence_ids(i)) if sequence == 1]
            if window[context[0]][0] > first_char or window[context[-1]][1] < last_char:
                starts.append(0), ends.append(0)  # not all in this window: [CLS]
                continue
            starts.append(next(j for j in context if window[j][1] > first_char))
            ends.append(next(j for j in reversed(context) if window[j][0] < last_char))
        encoded["start_positions"], encoded["end_positions"] = starts, ends
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        first = [i == 0 or sources[i - 1] != source for i, source in enumerate(sources)]
        cut = [int(len(offsets) > room) for offsets in asked]
        encoded["truncated"] = [cut[source] if is_first else 0 for source, is_first in zip(sources, first)]
        encoded["units"] = [int(is_first) for is_first in first]  # questions
        return encoded

    def prepare_saved(self, model, tokenizer, params: Params) -> None:
        super().prepare_saved(model, tokenizer, params)
        # Contexts are always read in windows: predict and serve share `stride` tokens between them as trained.
        model.config.hfx_long_texts = {"windows": "chunk", "stride": params.preprocess.stride}

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            (start_logits, end_logits), (starts, ends) = eval_prediction.predictions, eval_prediction.label_ids
            hits = (start_logits.argmax(-1) == starts) & (end_logits.argmax(-1) == ends)
            return {"span_accuracy": float(hits.mean())}

        return compute

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold answers, served answer) per question."""
        return [(answers["text"], result["answer"]) for answers, result in zip(raw_test["answers"], results)]

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        return answer_scores(pairs)

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        """Exact match and token F1 of the served answers; a row per question a person can read."""
        pairs = self.served_pairs(results, raw_test, names)
        predictions = pd.DataFrame(
            {
                "id": raw_test["id"],
                "question": raw_test["question"],
                "actual": [" | ".join(gold) for gold, _ in pairs],
                "predicted": [answer for _, answer in pairs],
                "score": [round(result["score"], 5) for result in results],
                "exact_match": [exact_match(answer, gold) for gold, answer in pairs],
                "f1": [round(token_f1(answer, gold), 5) for gold, answer in pairs],
            }
        )
        return Evaluation(metrics=self.metrics(pairs, names), per_class={}, predictions=predictions)

    def card_examples(self, predictions_csv: str, count: int = 5) -> list[dict]:
        """The first test questions with the model's answer and the gold ones."""
        rows = pd.read_csv(predictions_csv, nrows=count, keep_default_na=False)
        return rows[["question", "predicted", "actual", "f1"]].to_dict("records")

    def worst_errors(self, predictions: pd.DataFrame, count: int) -> pd.DataFrame:
        """The answers that match no gold answer, the most confident first."""
        wrong = predictions[predictions["exact_match"] == 0]
        return wrong.sort_values("score", ascending=False, kind="stable").head(count)

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """The context sentence sharing the most words with the question, answered with its run of words the
        question lacks that fits the question's type (a number for when/how many; a name for who/where)."""
        pairs = [
            (answers["text"], sentence_answer(question, context))
            for question, context, answers in zip(test["question"], test["context"], test["answers"])
        ]
        return {"model": "lexical-sentence", **answer_scores(pairs)}
