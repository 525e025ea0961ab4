"""Per-task pre- and post-processing for `predict` and `serve`, behind one small interface.

A handler turns a request's `inputs` into items (`parse`; `read` for one item of a file or the command line),
items into encoded inputs (`encode`), each into the rows the model runs (`windows`, `pad`: one, or several
windows of a long text), their logits into the input's (`merge`), those into its result
(`decode(logits, encoded, item)`), and a result into output fields (`record` for JSON, `columns` for a table).
`options` names the request options the task takes; `input_field` names the input in a JSON result. A new task
adds a handler and names it in hfx/tasks.py; the server and the command stay as they are.
"""

import bisect
import json
import re

import numpy as np

from hfx.serving.entities import entity_spans
from hfx.serving.image_inputs import ImageInputsHandler
from hfx.serving.text_inputs import TextInputsHandler
from hfx.serving.transforms import probabilities, sigmoid


class ClassScoresHandler:
    """One label per input: every label's score, best first."""

    options = frozenset({"top_k", "raw_scores"})

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        """The logits the answer is decided from: the input's own, as one row."""
        return logits[None]

    def decode(self, logits: np.ndarray, row, item, top_k: int | None = None, raw_scores: bool = False) -> list[dict]:
        """[{label, score}] sorted by score: probabilities (calibrated by the folder's temperature), or the logits
        with raw_scores."""
        logits = logits.astype(np.float64)
        scores = logits if raw_scores else probabilities(logits, self.temperature)
        return [
            {"label": self.labels[j], "score": float(scores[j])} for j in np.argsort(-scores, kind="stable")[:top_k]
        ]

    @staticmethod
    def record(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, "scores": {e["label"]: e["score"] for e in result}} if all_scores else fields

    def column_names(self, all_scores: bool) -> list[str]:
        """The columns `columns` fills, in a fixed order: the best label and its score, then every label's."""
        return ["label", "score"] + ([f"score_{label}" for label in self.labels] if all_scores else [])

    @staticmethod
    def columns(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, **{f"score_{e['label']}": e["score"] for e in result}} if all_scores else fields


class TextClassificationHandler(TextInputsHandler, ClassScoresHandler):
    auto_model = "AutoModelForSequenceClassification"  # for the pytorch format
    options = ClassScoresHandler.options


class TextRegressionHandler(TextInputsHandler):
    """One number per text (or pair): the model's one output as it is, {"score": value}."""

    auto_model = "AutoModelForSequenceClassification"

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        return logits[None]

    @staticmethod
    def decode(logits: np.ndarray, row, item) -> dict:
        return {"score": float(logits[0])}

    @staticmethod
    def record(result: dict, all_scores: bool) -> dict:
        return result

    @staticmethod
    def column_names(all_scores: bool) -> list[str]:
        return ["score"]

    @staticmethod
    def columns(result: dict, all_scores: bool) -> dict:
        return result


class MultiLabelHandler(TextInputsHandler):
    """Any number of labels per text (or pair): each label's sigmoid score, and the labels whose score reaches
    their threshold (calibration.json; 0.5 without one)."""

    auto_model = "AutoModelForSequenceClassification"
    options = frozenset({"top_k", "raw_scores"})

    def __init__(self, info):
        super().__init__(info)
        self.thresholds = np.asarray(info.thresholds or [0.5] * len(self.labels), dtype=np.float64)

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        return logits[None]

    def decode(self, logits: np.ndarray, row, item, top_k: int | None = None, raw_scores: bool = False) -> dict:
        """{labels: those at or over their threshold, best first; scores: [{label, score}] of every label (the
        top_k best), sigmoid probabilities, or the logits with raw_scores}."""
        probabilities = sigmoid(logits)
        order = np.argsort(-probabilities, kind="stable")
        scores = logits.astype(np.float64) if raw_scores else probabilities
        return {
            "labels": [self.labels[j] for j in order if probabilities[j] >= self.thresholds[j]],
            "scores": [{"label": self.labels[j], "score": float(scores[j])} for j in order[:top_k]],
        }

    @staticmethod
    def record(result: dict, all_scores: bool) -> dict:
        scores = {"scores": {e["label"]: e["score"] for e in result["scores"]}} if all_scores else {}
        return {"labels": result["labels"], **scores}

    def column_names(self, all_scores: bool) -> list[str]:
        return ["labels"] + ([f"score_{label}" for label in self.labels] if all_scores else [])

    @staticmethod
    def columns(result: dict, all_scores: bool) -> dict:
        """The labels joined by commas (as `data.label_separator` reads them back), and each label's score."""
        scores = {f"score_{e['label']}": e["score"] for e in result["scores"]} if all_scores else {}
        return {"labels": ",".join(result["labels"]), **scores}


class ImageClassificationHandler(ImageInputsHandler, ClassScoresHandler):
    auto_model = "AutoModelForImageClassification"
    options = ClassScoresHandler.options


class TokenClassificationHandler(TextInputsHandler):
    """Entity spans by word, as `pipeline("token-classification", aggregation_strategy="first")` gives them.

    A word is what the training data calls one: a run of characters between spaces. Training labels a word's
    first sub-token, so that sub-token's tag is the word's, and a word is never split between entities."""

    auto_model = "AutoModelForTokenClassification"

    @staticmethod
    def first_subtokens(row, text: str) -> list[tuple[int, int, int]]:
        """(start, end, position of its first sub-token) of each word the row holds (a word past the max input
        length is not in it)."""
        spans = [match.span() for match in re.finditer(r"\S+", text)]
        starts = [start for start, _ in spans]
        words, previous = [], None
        for i, (start, end) in enumerate(row.offsets):
            if row.special_tokens_mask[i] or start == end:
                continue
            word = bisect.bisect_right(starts, start) - 1
            if word != previous:
                words.append((*spans[word], i))
                previous = word
        return words

    def merge(self, window_logits: list[np.ndarray], encoded, text: str) -> np.ndarray:
        """The logits the answer is decided from, one row per word of the text: its first sub-token's (the mean
        over the windows that hold it, when a long text is read in windows), or NaN for a word the model did
        not see (past the max input length). A window that opens inside a word does not count for that word."""
        starts = [match.start() for match in re.finditer(r"\S+", text)]
        seen = [[] for _ in starts]
        for k, (window, logits) in enumerate(zip(self.windows(encoded), window_logits)):
            for n, (start, _, i) in enumerate(self.first_subtokens(window, text)):
                if not (k and n == 0 and window.offsets[i][0] > start):
                    seen[bisect.bisect_left(starts, start)].append(logits[i])
        decided = np.full((len(starts), len(self.labels)), np.nan, dtype=np.float32)
        for word, rows in enumerate(seen):
            if rows:
                decided[word] = rows[0] if len(rows) == 1 else np.mean(rows, axis=0)
        return decided

    @staticmethod
    def decision_logits(logits: np.ndarray, encoded, text: str) -> np.ndarray:
        return logits  # merge gives them by word

    def word_tags(self, logits: np.ndarray, text: str) -> list[tuple[int, int, int, float]]:
        """(start, end, tag id, score) of each word the model saw: its tag and probability, calibrated by the
        folder's temperature."""
        spans = [match.span() for match in re.finditer(r"\S+", text)]
        seen = np.flatnonzero(~np.isnan(logits[:, 0])) if len(logits) else np.zeros(0, dtype=np.int64)
        scores = probabilities(logits[seen].astype(np.float32), self.temperature)
        return [(*spans[w], int(row.argmax()), float(row.max())) for w, row in zip(seen, scores)]

    def decode(self, logits: np.ndarray, encoded, text: str) -> list[dict]:
        """[{entity_group, score, word, start, end}] (`entity_spans`) from the words' logits (`merge`): `word` is
        the text the entity covers, `score` the mean of its words' scores."""
        words = self.word_tags(logits, text)
        entities = []
        for kind, first, last in entity_spans([self.labels[tag] for _, _, tag, _ in words]):
            start, end = words[first][0], words[last][1]
            score = float(np.mean([score for *_, score in words[first : last + 1]], dtype=np.float32))
            entities.append({"entity_group": kind, "score": score, "word": text[start:end], "start": start, "end": end})
        return entities

    @staticmethod
    def record(result: list[dict], all_scores: bool) -> dict:
        return {"entities": result}

    @staticmethod
    def column_names(all_scores: bool) -> list[str]:
        return ["entities"]

    @staticmethod
    def columns(result: list[dict], all_scores: bool) -> dict:
        return {"entities": json.dumps(result, ensure_ascii=False)}
