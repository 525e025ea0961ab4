"""Token classification: entity spans by word, as `pipeline("token-classification", aggregation_strategy="first")`
gives them; the entity F1 evaluate reports is that of these spans."""

import bisect
import json
import re

import numpy as np

from hfx.serving.handlers.texts import TextInputsHandler
from hfx.serving.transforms import probabilities


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity in a sentence's word tags, grouped as the pipeline groups
    them: B-X starts an entity, I-X continues one of type X just before it or starts one, O ends it. evaluate
    scores entities grouped by this too, so its F1 is that of the spans predict and serve give."""
    entities, previous = [], None
    for i, tag in enumerate(tags):
        prefix, kind = tag.split("-", 1) if tag[:2] in ("B-", "I-") else ("", tag)
        if tag == "O":
            previous = None
            continue
        if entities and previous == kind and prefix != "B":
            entities[-1][2] = i
        else:
            entities.append([kind, i, i])
        previous = kind
    return [tuple(entity) for entity in entities]


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
