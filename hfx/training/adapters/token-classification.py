"""Token classification (named entities): one IOB2 tag per word, scored by entity as conlleval does (seqeval)."""

from collections import Counter

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, Features, List, Value
from scipy.special import softmax
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from transformers import DataCollatorForTokenClassification

from hfx.training.adapters.common import (
    BATCH_ROWS,
    DROPPED,
    FIXED,
    Evaluation,
    clean_rows,
    column_batches,
    column_sum,
    confident_mistakes,
    label_text,
    require_columns,
    score_curves,
    scored,
)
from hfx.training.adapters.text_inputs import TextInputsAdapter
from hfx.training.calibration import TemperatureScaling
from hfx.training.params import Data, ParamsError, Preprocess


def entity_type(tag: str) -> str | None:
    return None if tag == "O" else tag[2:]


def to_iob2(tags: list[str]) -> tuple[list[str], int]:
    """I-X that begins an entity (after O, another type or nothing) becomes B-X: IOB1's convention, or an
    invalid IOB2 sequence. Returns (tags, how many were changed)."""
    fixed, changed, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and entity_type(previous) != tag[2:]:
            tag, changed = "B-" + tag[2:], changed + 1
        fixed.append(tag)
        previous = tag
    return fixed, changed


def iob1_evidence(sentences, seen: tuple[bool, bool] = (False, False)) -> tuple[bool, bool]:
    """IOB1 writes B- only between two adjacent entities of one type, so every entity it opens follows one.
    Folds a batch of tag sequences into (an entity opened with B-, an entity opened with I-); the data looks
    IOB1 when, over all batches, only the second is seen."""
    opens_with_b, opens_with_i = seen
    for tags in sentences:
        previous = "O"
        for tag in tags:
            opens = tag != "O" and entity_type(previous) != tag[2:]
            opens_with_b |= opens and tag.startswith("B-")
            opens_with_i |= opens and tag.startswith("I-")
            previous = tag
    return opens_with_b, opens_with_i


def looks_iob1(sentences) -> bool:
    return iob1_evidence(sentences) == (False, True)


def _as_list(value, names: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.split()
    return [label_text(v, names) or "" for v in value]


def _clean_sentences(batch: dict, indices: list[int], data: Data, names: list[str] | None, split_name: str) -> dict:
    rows = {"tokens": [], "tags": [], "changed": [], DROPPED: []}
    for index, words, tags in zip(indices, batch[data.text_column], batch[data.label_column]):
        words, tags = _as_list(words, None), _as_list(tags, names)
        if not words:
            rows["tokens"].append([]), rows["tags"].append([]), rows["changed"].append(0)
            rows[DROPPED].append("empty_sentence")
            continue
        if tags is None or len(tags) != len(words):
            raise ParamsError(
                f"data: {split_name} row {index + 1} has {len(words)} words and"
                f" {len(tags or [])} tags; each word needs one tag"
            )
        bad = next((t for t in tags if t != "O" and (t[:2] not in ("B-", "I-") or len(t) < 3)), None)
        if bad is not None:
            raise ParamsError(
                f"data: {split_name} row {index + 1} has the tag '{bad}'; tags are O, B-<type> or"
                " I-<type> (IOB1 or IOB2)"
            )
        tags, changed = to_iob2(tags)
        rows["tokens"].append(list(words)), rows["tags"].append(tags), rows["changed"].append(changed)
        rows[DROPPED].append(None)
    return rows


def word_features(words: list[str], i: int) -> dict:
    """The usual CRF features of a word and its neighbours: the word, its affixes and its shape."""

    def describe(word: str, prefix: str) -> dict:
        shape = "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word)
        return {
            f"{prefix}lower": word.lower(),
            f"{prefix}suffix3": word[-3:].lower(),
            f"{prefix}suffix2": word[-2:],
            f"{prefix}prefix2": word[:2].lower(),
            f"{prefix}title": word.istitle(),
            f"{prefix}upper": word.isupper(),
            f"{prefix}digit": word.isdigit(),
            f"{prefix}shape": shape[:6],
        }

    features = {"bias": 1.0, **describe(words[i], "")}
    features.update(describe(words[i - 1], "-1:") if i > 0 else {"BOS": True})
    features.update(describe(words[i + 1], "+1:") if i < len(words) - 1 else {"EOS": True})
    return features


class TokenClassificationAdapter(TextInputsAdapter):
    name = "token-classification"
    auto_model = "AutoModelForTokenClassification"
    stratify_column = None  # a sentence has many tags: carving and capping sample plainly
    columns = ("tokens", "tags")
    headline = "f1"
    best_metric = "f1"
    validation_metrics = ("accuracy", "f1", "f1_macro", "precision", "recall")
    card_metrics = ("f1", "precision", "recall", "f1_macro", "accuracy")  # the model card's test scores
    pipeline_kwargs = {"aggregation_strategy": "first"}  # entity spans by word, a word tagged as its first sub-token
    margin_keys = ("f1",)
    logits_axes = {0: "batch", 1: "sequence"}
    truncated_unit = "words"
    calibration = TemperatureScaling()  # softmax scores, made readable as probabilities by a temperature
    test_figure = "confusion_matrix"  # the model card's figure of the test split
    worst_errors = staticmethod(confident_mistakes)

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {tokens, tags} lists in IOB2. Drops (and counts) empty sentences; a sentence whose word and tag
        counts differ is an error. An I- tag that opens an entity becomes B-: IOB1 and IOB2 are read the same way,
        since IOB1 writes B- only where IOB2 does too. Counted under `fixed:` as `iob1_to_iob2` when the data
        looks IOB1 (no entity opens with B-), else as `invalid_iob2_repaired`."""
        require_columns(split, data, split_name)
        inner = getattr(split.features[data.label_column], "feature", None)  # List(ClassLabel): Hub conll2003
        names = inner.names if isinstance(inner, ClassLabel) else None
        seen = (False, False)  # a first pass over the tags alone: what the repairs are counted as
        for tags in column_batches(split, data.label_column, BATCH_ROWS):
            seen = iob1_evidence((_as_list(t, names) or [] for t in tags.to_pylist()), seen)
        iob1 = seen == (False, True)  # as looks_iob1, over every batch
        features = Features(
            {
                "tokens": List(Value("string")),
                "tags": List(Value("string")),
                "changed": Value("int64"),
                DROPPED: Value("string"),
            }
        )
        kept, counts, _ = clean_rows(split, _clean_sentences, features, data=data, names=names, split_name=split_name)
        changed = column_sum(kept, "changed")
        if changed:
            counts[f"{FIXED}{'iob1_to_iob2' if iob1 else 'invalid_iob2_repaired'}"] = changed
        return kept.remove_columns("changed"), counts

    def label_counts(self, split: Dataset) -> dict:
        """Entities per type."""
        counts = Counter()
        for batch in column_batches(split, "tags", BATCH_ROWS):
            counts.update(t[2:] for tags in batch.to_pylist() for t in tags if t.startswith("B-"))
        return dict(sorted(counts.items()))

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        types = set(self.label_counts(splits["train"]))
        if not types:
            raise ParamsError("data: train has no entity (every tag is O); token classification needs some")
        for split in ("validation", "test"):
            unseen = sorted(set(self.label_counts(splits[split])) - types)
            if unseen:
                raise ParamsError(
                    f"data: entity types {unseen} in {split} never appear in train (train types: {sorted(types)})"
                )

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        """O first, then B- and I- of each entity type in train, alphabetically: a stable order."""
        return ["O"] + [f"{prefix}-{kind}" for kind in self.label_counts(train) for prefix in ("B", "I")]

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        """The first sub-token of each word carries its tag; the others (or, with label_all_subtokens, their
        I- form) and special tokens -100. `word_starts`: 1 at each word's first sub-token, which evaluate scores
        (and predict and serve read the word's tag from). `truncated`: words cut off by max_length, of `units`."""
        chunk = settings.long_texts == "chunk"
        windows = {"stride": settings.stride, "return_overflowing_tokens": True} if chunk else {}
        encoded = processor(
            batch["tokens"], is_split_into_words=True, truncation=True, max_length=settings.max_length, **windows
        )
        sources = encoded.pop("overflow_to_sample_mapping", None) or list(range(len(batch["tokens"])))
        labels, starts, truncated, units = [], [], [], []
        for i, source in enumerate(sources):
            tags, first_window = batch["tags"][source], i == 0 or sources[i - 1] != source
            # A later window may open inside a word: its first sub-token there continues the word (offset > 0)
            word_ids, offsets = encoded.word_ids(i), encoded.encodings[i].offsets
            opening = next((j for j, word in enumerate(word_ids) if word is not None), None)
            continued = None if first_window or opening is None or offsets[opening][0] == 0 else word_ids[opening]
            row, starts_row, previous = [], [], None
            for word in word_ids:
                counted = word is not None and word != continued
                first = counted and word != previous
                starts_row.append(int(first))
                if first:
                    row.append(label2id[tags[word]])
                elif counted and settings.label_all_subtokens:
                    row.append(label2id["I-" + tags[word][2:] if tags[word] != "O" else "O"])
                else:
                    row.append(-100)
                previous = word
            labels.append(row)
            starts.append(starts_row)
            kept = max((w for w in word_ids if w is not None), default=-1) + 1
            truncated.append(0 if chunk else len(tags) - kept)
            units.append(len(tags) if first_window else 0)
        encoded["labels"] = labels
        encoded["word_starts"] = starts
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        encoded["truncated"] = truncated
        encoded["units"] = units
        return encoded

    def collator(self, tokenizer):
        return DataCollatorForTokenClassification(tokenizer)

    def decode(self, logits: np.ndarray, labels: np.ndarray) -> list[tuple]:
        """(gold ids, predicted ids) per sentence at its labelled positions, from the Trainer's logits
        (validation while training; with preprocess.label_all_subtokens every sub-token counts)."""
        predicted = logits.argmax(-1)
        return [
            (row[keep].tolist(), guess[keep].tolist()) for row, guess, keep in zip(labels, predicted, labels != -100)
        ]

    def gold_ids(self, raw_split: Dataset, names: list[str]) -> list[np.ndarray]:
        """Each sentence's gold tag ids, one per word (the shape of the handler's decision logits)."""
        ids = {name: i for i, name in enumerate(names)}
        return [np.array([ids[tag] for tag in tags]) for tags in raw_split["tags"]]

    def served_inputs(self, raw_test: Dataset) -> list:
        """The test split's sentences as a user hands them to predict and serve: the words joined by spaces."""
        return [" ".join(words) for words in raw_test["tokens"]]

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold ids, served ids) per sentence, a tag per word: words inside a served entity span take B-/I- of its
        type, the others (and words past the max input length) O."""
        ids = {name: i for i, name in enumerate(names)}
        pairs = []
        for words, tags, entities in zip(raw_test["tokens"], raw_test["tags"], results):
            starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]])
            served = ["O"] * len(words)
            for entity in entities:
                inside = [i for i, start in enumerate(starts) if entity["start"] <= start < entity["end"]]
                for i in inside:
                    served[i] = ("B-" if i == inside[0] else "I-") + entity["entity_group"]
            pairs.append(([ids[tag] for tag in tags], [ids[tag] for tag in served]))
        return pairs

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold = [[names[i] for i in g] for g, _ in pairs]
        predicted = [[names[i] for i in p] for _, p in pairs]
        return entity_scores(gold, predicted)

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            scores = self.metrics(self.decode(eval_prediction.predictions, eval_prediction.label_ids), names)
            return {key: scores[key] for key in self.validation_metrics}

        return compute

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        """Whole sentences, a tag per word, read back from the served entity spans (`results`): a word cut off
        by max_length counts as predicted O. Each word's score and the curves come from the logits its tag was
        decided from (`decided`: its first sub-token's)."""
        pairs = self.served_pairs(results, raw_test, names)
        gold = [[names[i] for i in g] for g, _ in pairs]
        predicted = [[names[i] for i in p] for _, p in pairs]
        scores = entity_scores(gold, predicted)
        words = raw_test["tokens"]
        # Each word's score: the probability of its predicted tag (none for a word cut off by max_length).
        word_scores = [
            [None if np.isnan(c) else c for c in softmax(d.astype(np.float64), axis=-1).max(-1).round(5)]
            for d in decided
        ]
        predictions = pd.DataFrame(
            [
                {"sentence": s, "word": word, "actual": g, "predicted": p, "score": c}
                for s, (sentence, gs, ps, cs) in enumerate(zip(words, gold, predicted, word_scores))
                for word, g, p, c in zip(sentence, gs, ps, cs + [None] * (len(gs) - len(cs)))
            ]
        )
        sentences = pd.DataFrame(
            {
                "words": [" ".join(w) for w in words],
                "gold": [" ".join(g) for g in gold],
                "predicted": [" ".join(p) for p in predicted],
                "correct": [g == p for g, p in zip(gold, predicted)],
            }
        )
        per_class = pd.DataFrame([{"label": kind, **values} for kind, values in scores["per_class"].items()])
        # ROC and precision-recall of the tag scores, one-vs-rest over every word the model saw.
        logits, labels = scored(decided, self.gold_ids(raw_test, names))
        curve_summary, curves = score_curves(labels, logits, names)
        return Evaluation(
            metrics={
                **{k: v for k, v in scores.items() if k != "per_class"},
                **{f"token_{k}": v for k, v in curve_summary.items()},
            },
            per_class=scores["per_class"],
            predictions=predictions,
            files={**curves, "per_class.csv": per_class, "sentences.csv": sentences},
        )

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """A CRF on word, affix and shape features of each word and its neighbours, on the same train split."""
        import sklearn_crfsuite

        crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100)
        crf.fit([[word_features(w, i) for i in range(len(w))] for w in train["tokens"]], list(train["tags"]))
        predicted = crf.predict([[word_features(w, i) for i in range(len(w))] for w in test["tokens"]])
        scores = entity_scores([list(t) for t in test["tags"]], [list(p) for p in predicted])
        return {"model": "crf-word-shape", **{key: scores[key] for key in ("f1", "precision", "recall")}}


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 in strict IOB2 mode (as conlleval), per type with support, their
    micro average (`f1`) and macro average (`f1_macro`), and token accuracy."""
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    tokens = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    micro = report["micro avg"]
    return {
        "f1": float(micro["f1-score"]),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "accuracy": sum(g == p for g, p in tokens) / max(len(tokens), 1),
        "per_class": {
            kind: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for kind, v in sorted(report.items())
            if not kind.endswith(" avg")
        },
    }
